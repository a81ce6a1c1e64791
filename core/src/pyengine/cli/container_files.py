"""Commands on a container's files: commit, diff, export, cp."""

from __future__ import annotations

import base64
import json
import os
import sys
import tarfile
import tempfile
from typing import Any, BinaryIO

import click

from pyengine.cli.app import client_of
from pyengine.cli.client import APIError, Client
from pyengine.cli.session import CommandError

_SETTINGS = {"help_option_names": ["--help"]}
_KIND_LETTERS = {0: "C", 1: "A", 2: "D"}
_GO_MODE_DIR = 1 << 31
_GO_MODE_SYMLINK = 1 << 27


@click.command(context_settings=_SETTINGS)
@click.option("-a", "--author", default="", help='Author (e.g., "John Hannibal Smith <hannibal@a-team.com>")')
@click.option(
    "-c", "--change", "changes", multiple=True, help="Apply Dockerfile instruction to the created image"
)
@click.option("-m", "--message", default="", help="Commit message")
@click.option("-p/--pause", "--pause/--no-pause", default=True, help="Pause container during commit")
@click.argument("container")
@click.argument("reference", required=False)
@click.pass_context
def commit(
    ctx: click.Context, author: str, changes: tuple[str, ...], message: str, pause: bool, container: str,
    reference: str | None,
) -> int:
    """Create a new image from a container's changes."""
    query: dict[str, Any] = {"container": container, "pause": pause}
    if reference:
        query["repo"] = reference  # as the docker CLI: the whole reference, tag left empty
    if author:
        query["author"] = author
    if message:
        query["comment"] = message
    if changes:
        query["changes"] = list(changes)
    reply = client_of(ctx).post("/commit", query)
    print(reply["Id"])
    return 0


@click.command(context_settings=_SETTINGS)
@click.argument("container")
@click.pass_context
def diff(ctx: click.Context, container: str) -> int:
    """Inspect changes to files or directories on a container's filesystem."""
    for change in client_of(ctx).get(f"/containers/{container}/changes") or []:
        print(f"{_KIND_LETTERS.get(change['Kind'], '?')} {change['Path']}")
    return 0


@click.command(context_settings=_SETTINGS)
@click.option("-o", "--output", help="Write to a file, instead of STDOUT")
@click.argument("container")
@click.pass_context
def export(ctx: click.Context, output: str | None, container: str) -> int:
    """Export a container's filesystem as a tar archive."""
    if not output and sys.stdout.isatty():
        raise CommandError("cowardly refusing to save to a terminal. Use the -o flag or redirect", 1)
    response = client_of(ctx).open_stream("GET", f"/containers/{container}/export")
    try:
        if output:
            with open(output, "wb") as file:
                _copy_body(response, file)
        else:
            _copy_body(response, sys.stdout.buffer)
            sys.stdout.buffer.flush()
    finally:
        response.conn.close()
    return 0


def _copy_body(response: Any, out: BinaryIO) -> int:
    total = 0
    for chunk in response.iter_raw():
        out.write(chunk)
        total += len(chunk)
    return total


def _split(argument: str) -> tuple[str | None, str]:
    """``container:path`` -> (container, path); a local path (with no colon before a slash) -> None."""
    if argument.startswith((".", "/")) or ":" not in argument:
        return None, argument
    container, _, path = argument.partition(":")
    if "/" in container:
        return None, argument
    return container, path


@click.command(context_settings=_SETTINGS)
@click.option("-a", "--archive", is_flag=True, help="Archive mode (copy all uid/gid information)")
@click.option("-L", "--follow-link", is_flag=True, help="Always follow symbol link in SRC_PATH")
@click.option("-q", "--quiet", is_flag=True, help="Suppress progress output during copy")
@click.argument("source")
@click.argument("destination")
@click.pass_context
def cp(
    ctx: click.Context, archive: bool, follow_link: bool, quiet: bool, source: str, destination: str
) -> int:
    """Copy files/folders between a container and the local filesystem (one side is CONTAINER:PATH)."""
    src_container, src_path = _split(source)
    dst_container, dst_path = _split(destination)
    if (src_container is None) == (dst_container is None):
        raise CommandError("must specify at least one container source" if src_container is None
                           else "copying between containers is not supported", 1)
    client = client_of(ctx)
    if src_container is not None:
        size = _copy_from_container(client, src_container, src_path or "/", dst_path, follow_link)
    else:
        assert dst_container is not None
        size = _copy_to_container(client, src_path, dst_container, dst_path or "/", archive, follow_link)
    if not quiet and dst_path != "-":
        print(f"Successfully copied {_human(size)} to {destination}", file=sys.stderr)
    return 0


def _human(size: int) -> str:
    value = float(size)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.3g}{unit}" if unit != "B" else f"{size}B"
        value /= 1000
    return f"{size}B"


def _stat(client: Client, container: str, path: str) -> dict[str, Any] | None:
    try:
        response = client.request("HEAD", f"/containers/{container}/archive", {"path": path})
    except APIError as exc:
        if exc.status == 404 and not exc.message.startswith("No such container"):
            return None
        raise
    response.read()
    return json.loads(base64.b64decode(response.headers.get("x-docker-container-path-stat", "") or "e30="))


# ---- container -> local --------------------------------------------------------------------------

def _copy_from_container(client: Client, container: str, path: str, destination: str, follow: bool) -> int:
    if follow:
        found = _stat(client, container, path)
        if found and found["mode"] & _GO_MODE_SYMLINK and found.get("linkTarget"):
            path = found["linkTarget"]
    response = client.open_stream("GET", f"/containers/{container}/archive", {"path": path})
    try:
        if destination == "-":
            size = _copy_body(response, sys.stdout.buffer)
            sys.stdout.buffer.flush()
            return size
        with tempfile.TemporaryFile() as spool:
            size = _copy_body(response, spool)
            spool.seek(0)
            _extract_locally(spool, destination)
        return size
    finally:
        response.conn.close()


def _extract_locally(spool: BinaryIO, destination: str) -> None:
    """Unpack the daemon's tar at ``destination``: into it when it is a directory, else as it."""
    with tarfile.open(fileobj=spool, mode="r:") as tar:
        members = tar.getmembers()
        if not members:
            return
        top = members[0].name.split("/")[0]
        top_is_dir = members[0].isdir() or len(members) > 1
        if os.path.isdir(destination):
            target_dir, rename = destination, None
        else:
            if destination.endswith("/"):
                raise CommandError(f"destination directory {destination!r} does not exist", 1)
            if os.path.exists(destination) and top_is_dir:
                raise CommandError(f"cannot copy a directory to the file {destination!r}", 1)
            target_dir, rename = os.path.dirname(destination) or ".", os.path.basename(destination)
            if not os.path.isdir(target_dir):
                raise CommandError(f"destination directory {target_dir!r} does not exist", 1)
        for member in members:
            if rename is not None and top != ".":
                member.name = _rebase(member.name, top, rename)
                if member.islnk():
                    member.linkname = _rebase(member.linkname, top, rename)
            tar.extract(member, target_dir, filter="tar")


def _rebase(name: str, old: str, new: str) -> str:
    if name == old or name.startswith(old + "/"):
        return new + name[len(old):]
    return name


# ---- local -> container --------------------------------------------------------------------------

def _copy_to_container(
    client: Client, source: str, container: str, path: str, copy_owner: bool, follow: bool
) -> int:
    query: dict[str, Any] = {"noOverwriteDirNonDir": True}
    if copy_owner:
        query["copyUIDGID"] = True
    if source == "-":  # a tar on stdin, unpacked into the destination directory
        query["path"] = path
        client.open_stream("PUT", f"/containers/{container}/archive", query, sys.stdin.buffer,
                           {"Content-Type": "application/x-tar"}).conn.close()
        return 0
    if not os.path.lexists(source):
        raise CommandError(f"lstat {source}: no such file or directory", 1)
    if follow:
        source = os.path.realpath(source)
    found = _stat(client, container, path)
    name = os.path.basename(source.rstrip("/")) or "."
    if found is not None and found["mode"] & _GO_MODE_DIR:
        directory, arcname = path, name
    else:
        if found is None and path.endswith("/"):
            raise CommandError(f"Error response from daemon: Could not find the file {path} in container "
                               f"{container}", 1)
        if found is not None and os.path.isdir(source) and not os.path.islink(source):
            raise CommandError(f"cannot copy directory {source!r} to the file {path!r}", 1)
        directory, arcname = os.path.dirname(path.rstrip("/")) or "/", os.path.basename(path.rstrip("/"))
    query["path"] = directory
    with tempfile.TemporaryFile() as spool:
        with tarfile.open(fileobj=spool, mode="w:", format=tarfile.PAX_FORMAT) as tar:
            tar.add(source, arcname=arcname)
        size = spool.tell()
        spool.seek(0)
        client.open_stream("PUT", f"/containers/{container}/archive", query, spool,
                           {"Content-Type": "application/x-tar"}).conn.close()
    return size
