"""Registry and archive commands: push, login, logout, save, load, image prune.

Credentials live where the docker CLI keeps them ($DOCKER_CONFIG/config.json, default
~/.docker/config.json); the daemon gets them per request in X-Registry-Auth.
"""

from __future__ import annotations

import getpass
import sys
from typing import Any

import click

from pyengine.cli.app import client_of
from pyengine.cli.client import APIError
from pyengine.cli.images import normalize_name, split_reference
from pyengine.cli.progress_display import display
from pyengine.cli.session import CommandError
from pyengine.distribution import auth

_SETTINGS = {"help_option_names": ["--help"]}
DOCKER_HUB = "https://index.docker.io/v1/"


def registry_of_name(name: str) -> str:
    """The registry host of an image name (``docker.io`` for unqualified names)."""
    return normalize_name(name).split("/", 1)[0]


def registry_auth_header(name: str) -> str:
    """X-Registry-Auth for the registry of ``name``, from the stored credentials."""
    registry = registry_of_name(name)
    creds = auth.load_credentials(registry)
    return auth.encode_registry_auth(creds, registry)


@click.command(context_settings=_SETTINGS)
@click.option("-q", "--quiet", is_flag=True, help="Suppress verbose output")
@click.option("-a", "--all-tags", is_flag=True, help="Push all tags of an image to the repository")
@click.argument("name")
@click.pass_context
def push(ctx: click.Context, quiet: bool, all_tags: bool, name: str) -> int:
    """Upload an image to a registry."""
    client = client_of(ctx)
    repo, tag = split_reference(name)
    query: dict[str, Any] = {} if all_tags else {"tag": tag}
    response = client.open_stream(
        "POST", f"/images/{repo}/push", query, b"", {"X-Registry-Auth": registry_auth_header(repo)}
    )
    try:
        messages = response.iter_json()
        if quiet:
            for message in messages:
                if message.get("error"):
                    raise CommandError(str(message["error"]), 1)
            print(name)
        else:
            display(messages)
    finally:
        response.conn.close()
    return 0


@click.command(context_settings=_SETTINGS)
@click.option("-u", "--username", help="Username")
@click.option("-p", "--password", help="Password")
@click.option("--password-stdin", is_flag=True, help="Take the password from stdin")
@click.argument("server", required=False)
@click.pass_context
def login(
    ctx: click.Context, username: str | None, password: str | None, password_stdin: bool, server: str | None
) -> int:
    """Authenticate to a registry (defaults to Docker Hub)."""
    server = server or DOCKER_HUB
    if password_stdin:
        if password:
            raise CommandError("--password and --password-stdin are mutually exclusive", 1)
        if not username:
            raise CommandError("Must provide --username with --password-stdin", 1)
        password = sys.stdin.read().rstrip("\r\n")
    if password and not password_stdin:
        print("WARNING! Using --password via the CLI is insecure. Use --password-stdin.", file=sys.stderr)
    if not username:
        username = input("Username: ").strip()
    if not username:
        raise CommandError("Error: Non-null Username Required", 1)
    if not password:
        password = getpass.getpass("Password: ")
    if not password:
        raise CommandError("Error: Password Required", 1)
    client = client_of(ctx)
    body = {"username": username, "password": password, "serveraddress": server}
    try:
        client.request("POST", "/auth", body=body).read()
    except APIError as exc:
        raise CommandError(f"Error response from daemon: {exc.message}", 1) from exc
    path = auth.store_credentials(server, auth.Credentials(username=username, password=password))
    print(f"WARNING! Your password will be stored unencrypted in {path}.", file=sys.stderr)
    print("Login Succeeded")
    return 0


@click.command(context_settings=_SETTINGS)
@click.argument("server", required=False)
def logout(server: str | None) -> int:
    """Log out from a registry."""
    server = server or DOCKER_HUB
    shown = auth.auth_key(server)
    if auth.remove_credentials(server):
        print(f"Removing login credentials for {shown}")
    else:
        print(f"Not logged in to {shown}")
    return 0


@click.command(context_settings=_SETTINGS)
@click.option("-o", "--output", help="Write to a file, instead of STDOUT")
@click.argument("images", nargs=-1, required=True)
@click.pass_context
def save(ctx: click.Context, output: str | None, images: tuple[str, ...]) -> int:
    """Save one or more images to a tar archive (streamed to STDOUT by default)."""
    if not output and sys.stdout.isatty():
        raise CommandError("Cowardly refusing to save to a terminal. Use the -o flag or redirect", 1)
    client = client_of(ctx)
    response = client.open_stream("GET", "/images/get", {"names": list(images)})
    tmp = f"{output}.tmp-save" if output else None
    try:
        sink = open(tmp, "wb") if tmp else sys.stdout.buffer  # noqa: SIM115
        try:
            for chunk in response.iter_raw():
                sink.write(chunk)
        finally:
            if tmp:
                sink.close()
        if tmp and output:
            import os

            os.replace(tmp, output)
    except BaseException:
        if tmp:
            import contextlib
            import os

            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        raise
    finally:
        response.conn.close()
    return 0


@click.command(context_settings=_SETTINGS)
@click.option("-i", "--input", "input_path", help="Read from tar archive file, instead of STDIN")
@click.option("-q", "--quiet", is_flag=True, help="Suppress the load output")
@click.pass_context
def load(ctx: click.Context, input_path: str | None, quiet: bool) -> int:
    """Load an image from a tar archive or STDIN."""
    if not input_path and sys.stdin.isatty():
        raise CommandError("requested load from stdin, but stdin is empty", 1)
    client = client_of(ctx)
    try:
        body = open(input_path, "rb") if input_path else sys.stdin.buffer  # noqa: SIM115
    except OSError as exc:
        raise CommandError(f"open {input_path}: {exc.strerror.lower() if exc.strerror else exc}", 1) from exc
    try:
        response = client.open_stream(
            "POST", "/images/load", {"quiet": quiet}, body, {"Content-Type": "application/x-tar"}
        )
    finally:
        if input_path:
            body.close()
    try:
        display(response.iter_json(), tty=False)
    finally:
        response.conn.close()
    return 0


@click.group(context_settings=_SETTINGS)
def image() -> None:
    """Manage images."""


@image.command("prune", context_settings=_SETTINGS)
@click.option("-a", "--all", "all_", is_flag=True, help="Remove all unused images, not just dangling ones")
@click.option("-f", "--force", is_flag=True, help="Do not prompt for confirmation")
@click.option("--filter", "filters", multiple=True, help='Provide filter values (e.g. "until=<timestamp>")')
@click.pass_context
def image_prune(ctx: click.Context, all_: bool, force: bool, filters: tuple[str, ...]) -> int:
    """Remove unused images."""
    from pyengine.cli import fastjson as json

    if not force:
        warning = (
            "WARNING! This will remove all images without at least one container associated to them."
            if all_
            else "WARNING! This will remove all dangling images."
        )
        answer = input(f"{warning}\nAre you sure you want to continue? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            return 0
    doc: dict[str, dict[str, bool]] = {}
    for item in filters:
        key, _, value = item.partition("=")
        doc.setdefault(key, {})[value] = True
    doc["dangling"] = {"false" if all_ else "true": True}  # as the docker CLI sends it
    client = client_of(ctx)
    report = client.post("/images/prune", {"filters": json.dumps(doc)})
    deleted = report.get("ImagesDeleted") or []
    if deleted:
        print("Deleted Images:")
        for item in deleted:
            if item.get("Untagged"):
                print(f"untagged: {item['Untagged']}")
            if item.get("Deleted"):
                print(f"deleted: {item['Deleted']}")
        print()
    from pyengine.distribution.progress import human_size

    print(f"Total reclaimed space: {human_size(report.get('SpaceReclaimed') or 0)}")
    return 0
