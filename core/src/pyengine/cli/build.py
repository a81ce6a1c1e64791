"""``pyengine build``: send a context directory as a tar (filtered by .dockerignore, as docker does) to
``POST /build`` and print the daemon's progress."""

from __future__ import annotations

import json
import os
import secrets
import stat
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

from pyengine.cli.app import client_of
from pyengine.cli.images import progress_lines
from pyengine.cli.session import CommandError

_SETTINGS = {"help_option_names": ["--help"]}


def dockerfile_entry(root: str, dockerfile: str | None) -> tuple[str, bytes | None]:
    """The Dockerfile's name in the context tar, and its content when it must be added to the tar
    (``-f -`` or a file outside the context, as the docker CLI does)."""
    if dockerfile == "-":
        return f".dockerfile.{secrets.token_hex(10)}", sys.stdin.buffer.read()
    if dockerfile:
        full = os.path.abspath(dockerfile)
        if full.startswith(root + os.sep):
            return os.path.relpath(full, root), None
        try:
            with open(full, "rb") as handle:
                return f".dockerfile.{secrets.token_hex(10)}", handle.read()
        except OSError as exc:
            raise CommandError(f"unable to prepare context: {exc}", 1) from exc
    if not os.path.isfile(os.path.join(root, "Dockerfile")):
        raise CommandError(
            "unable to prepare context: unable to evaluate symlinks in Dockerfile path: "
            f"lstat {os.path.join(root, 'Dockerfile')}: no such file or directory",
            1,
        )
    return "Dockerfile", None


def context_chunks(root: str, name: str, extra: bytes | None) -> Iterator[bytes]:
    """The context tar of ``root`` (what .dockerignore keeps), in pieces: headers as tarfile writes
    them, file contents read in large blocks (faster than ``TarFile.add``, and never held whole)."""
    from pyengine.build.ignore import ALWAYS_SENT, read_dockerignore, walk_included

    matcher = read_dockerignore(Path(root))
    for rel in walk_included(Path(root), matcher, (*ALWAYS_SENT, name)):
        path = os.path.join(root, rel)
        st = os.lstat(path)
        info = tarfile.TarInfo(rel)
        info.mode = stat.S_IMODE(st.st_mode)
        info.uid, info.gid = st.st_uid, st.st_gid
        info.mtime = int(st.st_mtime)
        if stat.S_ISDIR(st.st_mode):
            info.type = tarfile.DIRTYPE
        elif stat.S_ISLNK(st.st_mode):
            info.type = tarfile.SYMTYPE
            info.linkname = os.readlink(path)
        elif stat.S_ISREG(st.st_mode):
            yield from _file_entry(info, path, st.st_size)
            continue
        elif stat.S_ISFIFO(st.st_mode):
            info.type = tarfile.FIFOTYPE
        else:
            continue  # sockets and devices are no build input
        yield info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")
    if extra is not None:
        info = tarfile.TarInfo(name)
        info.size = len(extra)
        info.mode = 0o644
        yield info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")
        yield extra + b"\0" * (-len(extra) % tarfile.BLOCKSIZE)
    yield b"\0" * (2 * tarfile.BLOCKSIZE)


def _file_entry(info: tarfile.TarInfo, path: str, size: int) -> Iterator[bytes]:
    info.size = size
    yield info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")
    with open(path, "rb") as handle:
        left = size
        while left > 0:
            chunk = handle.read(min(left, 1 << 20))
            if not chunk:
                raise OSError(f"{path} shrank while being sent")
            left -= len(chunk)
            yield chunk
    yield b"\0" * (-size % tarfile.BLOCKSIZE)


def write_context(root: str, name: str, extra: bytes | None, out: Any) -> None:
    """Write the context tar of ``root`` to the stream ``out``."""
    for chunk in context_chunks(root, name, extra):
        out.write(chunk)


class _ContextStream:
    """The context tar as a readable stream for the chunked upload. A failure while reading the
    files fails the upload (the chunked body is never finished, so the daemon does not build from
    half a context)."""

    def __init__(self, root: str, name: str, extra: bytes | None) -> None:
        self._chunks = context_chunks(root, name, extra)

    def read(self, size: int = -1) -> bytes:
        try:
            for chunk in self._chunks:
                if chunk:  # an empty piece (no padding needed) would read as the end
                    return chunk
            return b""
        except OSError as exc:
            raise CommandError(f"error sending the build context: {exc}", 1) from exc

    def close(self) -> None:
        self._chunks.close()


@click.command(context_settings=_SETTINGS)
@click.option("-t", "--tag", "tags", multiple=True, help="Name and optionally a tag (name:tag)")
@click.option("-f", "--file", "dockerfile", help="Name of the Dockerfile (default: PATH/Dockerfile)")
@click.option("--build-arg", "build_args", multiple=True, help="Set build-time variables")
@click.option("--target", help="Set the target build stage to build")
@click.option("--no-cache", is_flag=True, help="Do not use cache when building the image")
@click.option("--cache-from", "cache_from", multiple=True, help="Images to consider as cache sources")
@click.option("-q", "--quiet", is_flag=True, help="Suppress the build output and print image ID on success")
@click.option("--label", "labels", multiple=True, help="Set metadata for an image")
@click.option("--rm/--no-rm", default=True, help="Remove intermediate containers (always done)")
@click.option("--pull", is_flag=True, help="Accepted for compatibility; pyengine cannot pull")
@click.argument("path")
@click.pass_context
def build(
    ctx: click.Context,
    tags: tuple[str, ...],
    dockerfile: str | None,
    build_args: tuple[str, ...],
    target: str | None,
    no_cache: bool,
    cache_from: tuple[str, ...],
    quiet: bool,
    labels: tuple[str, ...],
    rm: bool,
    pull: bool,
    path: str,
) -> int:
    """Build an image from a Dockerfile."""
    client = client_of(ctx)
    args: dict[str, str | None] = {}
    for item in build_args:
        key, sep, value = item.partition("=")
        args[key] = value if sep else os.environ.get(key)
    if "SOURCE_DATE_EPOCH" not in args and os.environ.get("SOURCE_DATE_EPOCH"):
        args["SOURCE_DATE_EPOCH"] = os.environ["SOURCE_DATE_EPOCH"]
    label_map = dict(item.partition("=")[::2] for item in labels)
    root = os.path.abspath(path)
    if not os.path.isdir(root):
        raise CommandError(f'unable to prepare context: path "{path}" not found', 1)
    name, extra = dockerfile_entry(root, dockerfile)
    stream = _ContextStream(root, name, extra)
    try:
        query: dict[str, Any] = {"dockerfile": name, "t": list(tags), "rm": "1" if rm else "0"}
        if args:
            query["buildargs"] = json.dumps(args)
        if label_map:
            query["labels"] = json.dumps(label_map)
        if cache_from:
            query["cachefrom"] = json.dumps(list(cache_from))
        if target:
            query["target"] = target
        if no_cache:
            query["nocache"] = "1"
        if quiet:
            query["q"] = "1"
        response = client.open_stream("POST", "/build", query, stream, {"Content-Type": "application/x-tar"})
    finally:
        stream.close()
    try:
        image_id = ""
        for message in response.iter_json():
            if "aux" in message:
                image_id = message["aux"].get("ID", "")
                continue
            for line in progress_lines(iter([message])):
                if not quiet:
                    sys.stdout.write(line)
                    sys.stdout.flush()
        if quiet and image_id:
            print(image_id)
    finally:
        response.conn.close()
    return 0
