"""Image commands: pull, import, tag, rmi, history."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Any, TextIO

import click

from pyengine.cli.app import client_of
from pyengine.cli.client import APIError, Client
from pyengine.cli.gotemplate_funcs import TemplateError
from pyengine.cli.session import CommandError

_SETTINGS = {"help_option_names": ["--help"]}
DEFAULT_REGISTRY = "docker.io"
EMPTY_AUTH = "e30="  # base64 of "{}": the docker CLI sends it when it has no credentials


def split_reference(reference: str) -> tuple[str, str]:
    """``name[:tag][@digest]`` -> (name, tag or digest); the tag defaults to ``latest``."""
    name, at, digest = reference.partition("@")
    if at:
        return name, digest
    repo, colon, tag = name.rpartition(":")
    if colon and "/" not in tag:
        return repo, tag
    return name, "latest"


def normalize_name(name: str) -> str:
    """The fully qualified repository docker sends: ``busybox`` -> ``docker.io/library/busybox``."""
    first, slash, _rest = name.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost"):
        return name
    if not slash:
        return f"{DEFAULT_REGISTRY}/library/{name}"
    return f"{DEFAULT_REGISTRY}/{name}"


def progress_lines(messages: Iterator[dict[str, Any]]) -> Iterator[str]:
    """The text docker prints for a JSON progress stream (non-terminal mode: one line per message).

    A message with ``error`` ends the stream with a CommandError carrying the daemon's text.
    """
    for message in messages:
        if message.get("error") or message.get("errorDetail"):
            detail = message.get("errorDetail") or {}
            raise CommandError(str(message.get("error") or detail.get("message")), 1)
        if "stream" in message:
            yield message["stream"]
            continue
        status = message.get("status")
        if not status:
            continue
        if message.get("progress") and message.get("id"):
            continue  # progress bars only make sense on a terminal that redraws lines
        prefix = f"{message['id']}: " if message.get("id") else ""
        yield f"{prefix}{status}\n"


def stream_pull(
    client: Client, reference: str, out: TextIO = sys.stdout, quiet: bool = False, platform: str | None = None
) -> None:
    """``POST /images/create?fromImage=&tag=``, printing progress; raises APIError or CommandError."""
    from pyengine.cli.distribution import registry_auth_header
    from pyengine.cli.progress_display import display

    name, tag = split_reference(reference)
    query = {"fromImage": normalize_name(name), "tag": tag}
    if platform:
        query["platform"] = platform
    response = client.open_stream(
        "POST", "/images/create", query, b"", {"X-Registry-Auth": registry_auth_header(name)}
    )
    try:
        if quiet:
            for _line in progress_lines(response.iter_json()):
                pass
        else:
            display(response.iter_json(), out)
    finally:
        response.conn.close()


@click.command(context_settings=_SETTINGS)
@click.option("-q", "--quiet", is_flag=True, help="Suppress verbose output")
@click.option("-a", "--all-tags", is_flag=True, help="Download all tagged images in the repository")
@click.option("--platform", help="Set platform if server is multi-platform capable")
@click.argument("reference")
@click.pass_context
def pull(ctx: click.Context, quiet: bool, all_tags: bool, platform: str | None, reference: str) -> int:
    """Download an image from a registry."""
    client = client_of(ctx)
    if all_tags:
        raise CommandError("pulling all tags (-a) is not supported by pyengine yet", 1)
    stream_pull(client, reference, quiet=quiet, platform=platform)
    name, tag = split_reference(reference)
    separator = "@" if "@" in reference else ":"
    print(f"{normalize_name(name)}{separator}{tag}")
    return 0


@click.command("import", context_settings=_SETTINGS)
@click.option(
    "-c", "--change", "changes", multiple=True, help="Apply Dockerfile instruction to the created image"
)
@click.option("-m", "--message", help="Set commit message for imported image")
@click.option("--platform", help="Set platform if server is multi-platform capable")
@click.argument("source")
@click.argument("reference", required=False)
@click.pass_context
def import_(
    ctx: click.Context,
    changes: tuple[str, ...],
    message: str | None,
    platform: str | None,
    source: str,
    reference: str | None,
) -> int:
    """Import the contents from a tarball to create a filesystem image."""
    client = client_of(ctx)
    query: dict[str, Any] = {"fromSrc": "-"}
    if reference:
        # As the docker CLI: the whole reference goes in ``repo`` and ``tag`` stays empty.
        query["repo"] = reference
        query["tag"] = ""
    if message:
        query["message"] = message
    if changes:
        query["changes"] = list(changes)
    if platform:
        query["platform"] = platform
    body: Any
    if source == "-":
        body = sys.stdin.buffer
    elif "://" in source:
        query["fromSrc"] = source
        body = b""
    else:
        try:
            body = open(source, "rb")  # noqa: SIM115 - closed below, after the upload
        except OSError as exc:
            raise CommandError(f"open {source}: {exc.strerror.lower() if exc.strerror else exc}", 1) from exc
    headers = {"Content-Type": "application/x-tar"}
    try:
        response = client.open_stream("POST", "/images/create", query, body, headers)
    finally:
        if hasattr(body, "close") and body is not sys.stdin.buffer:
            body.close()
    try:
        for line in progress_lines(response.iter_json()):
            sys.stdout.write(line)
            sys.stdout.flush()
    finally:
        response.conn.close()
    return 0


@click.command(context_settings=_SETTINGS)
@click.argument("source")
@click.argument("target")
@click.pass_context
def tag(ctx: click.Context, source: str, target: str) -> int:
    """Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE."""
    client = client_of(ctx)
    repo, tag_name = split_reference(target)
    client.request("POST", f"/images/{source}/tag", {"repo": repo, "tag": tag_name}).read()
    return 0


@click.command(context_settings=_SETTINGS)
@click.option("-f", "--force", is_flag=True, help="Force removal of the image")
@click.option("--no-prune", is_flag=True, help="Do not delete untagged parents")
@click.argument("images", nargs=-1, required=True)
@click.pass_context
def rmi(ctx: click.Context, force: bool, no_prune: bool, images: tuple[str, ...]) -> int:
    """Remove one or more images."""
    client = client_of(ctx)
    query: dict[str, Any] = {}
    if force:
        query["force"] = True
    if no_prune:
        query["noprune"] = True
    failed = False
    for image in images:
        try:
            results = client.delete(f"/images/{image}", query) or []
        except APIError as exc:
            print(f"Error response from daemon: {exc.message}", file=sys.stderr)
            failed = True
            continue
        for entry in results:
            if entry.get("Untagged"):
                print(f"Untagged: {entry['Untagged']}")
            if entry.get("Deleted"):
                print(f"Deleted: {entry['Deleted']}")
    return 1 if failed else 0


@click.command(context_settings=_SETTINGS)
@click.option("-H", "--human/--no-human", default=True, help="Print sizes and dates in human readable format")
@click.option("--no-trunc", is_flag=True, help="Don't truncate output")
@click.option("-q", "--quiet", is_flag=True, help="Only show image IDs")
@click.option("--format", "format_text", default="", help="Format output using a custom template")
@click.argument("image")
@click.pass_context
def history(
    ctx: click.Context, human: bool, no_trunc: bool, quiet: bool, format_text: str, image: str
) -> int:
    """Show the history of an image."""
    from pyengine.cli import formatting

    client = client_of(ctx)
    layers = client.get(f"/images/{image}/history") or []
    rows = [formatting.history_row(layer, truncate=not no_trunc, human=human) for layer in layers]
    if quiet and not format_text:
        format_text = "{{.ID}}"
    try:
        text = formatting.render_rows(format_text, rows, formatting.HISTORY_HEADERS, formatting.HISTORY_TABLE)
    except TemplateError as exc:
        raise CommandError(str(exc), 1) from exc
    sys.stdout.write(text)
    return 0
