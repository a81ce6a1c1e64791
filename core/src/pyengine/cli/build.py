"""``pyengine build``: send a context directory as a tar (filtered by .dockerignore, as docker does) to
``POST /build`` and print the daemon's progress."""

from __future__ import annotations

import json
import os
import secrets
import sys
import tarfile
import tempfile
from typing import Any

import click

from pyengine.cli.app import client_of
from pyengine.cli.images import progress_lines
from pyengine.cli.session import CommandError

_SETTINGS = {"help_option_names": ["--help"]}


def context_tar(path: str, dockerfile: str | None, spool: Any) -> str:
    """Write the context tar of directory ``path`` to ``spool``; return the Dockerfile's name in it."""
    from pyengine.build.context import ALWAYS_SENT, read_dockerignore, walk_included

    root = os.path.abspath(path)
    if not os.path.isdir(root):
        raise CommandError(f'unable to prepare context: path "{path}" not found', 1)
    name = "Dockerfile"
    extra: tuple[str, bytes] | None = None
    if dockerfile == "-":
        name = f".dockerfile.{secrets.token_hex(10)}"
        extra = (name, sys.stdin.buffer.read())
    elif dockerfile:
        full = os.path.abspath(dockerfile)
        if full.startswith(root + os.sep):
            name = os.path.relpath(full, root)
        else:
            try:
                with open(full, "rb") as handle:
                    content = handle.read()
            except OSError as exc:
                raise CommandError(f"unable to prepare context: {exc}", 1) from exc
            name = f".dockerfile.{secrets.token_hex(10)}"
            extra = (name, content)
    if extra is None and not os.path.isfile(os.path.join(root, name)):
        raise CommandError(f"unable to prepare context: unable to evaluate symlinks in Dockerfile path: "
                           f"lstat {os.path.join(root, name)}: no such file or directory", 1)
    from pathlib import Path

    matcher = read_dockerignore(Path(root))
    with tarfile.open(fileobj=spool, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for rel in walk_included(Path(root), matcher, (*ALWAYS_SENT, name)):
            tar.add(os.path.join(root, rel), arcname=rel, recursive=False)
        if extra is not None:
            info = tarfile.TarInfo(extra[0])
            info.size = len(extra[1])
            info.mode = 0o644
            import io

            tar.addfile(info, io.BytesIO(extra[1]))
    return name


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
    with tempfile.TemporaryFile() as spool:
        name = context_tar(path, dockerfile, spool)
        spool.seek(0)
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
        response = client.open_stream("POST", "/build", query, spool, {"Content-Type": "application/x-tar"})
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
