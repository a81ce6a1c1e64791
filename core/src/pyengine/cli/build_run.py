"""Running ``pyengine build`` once its flags are parsed (by click in :mod:`pyengine.cli.build`, or
without click by :mod:`pyengine.cli.fastbuild`): the context goes to ``POST /build`` and the
daemon's progress is printed.

Unless ``--no-cache`` is given, the context goes by digest first (file contents replaced by their
sha256, see :mod:`pyengine.cli.build_context`): a fully cached build then never sends the files.
When a step that is not cached needs them, the daemon says so before showing anything and the
context is sent again in full. ``PYENGINE_BUILD_CONTEXT=full`` always sends it in full.
"""

from __future__ import annotations

import os
import sys

from pyengine.cli import fastjson as json
from pyengine.cli.build_context import ContextError, FullContext, context_entries, digest_tar
from pyengine.cli.session import CommandError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from pyengine.cli.client import Client

DIGESTS_HEADER = "X-Pyengine-Context"  # pyengine.api.build: this request's context is by digest


def build_params() -> dict[str, Any]:
    """The parameters of a build with every flag at its default."""
    return {
        "tags": [],
        "dockerfile": None,
        "build_args": [],
        "target": None,
        "no_cache": False,
        "cache_from": [],
        "quiet": False,
        "labels": [],
        "rm": True,
        "pull": False,
        "path": None,
    }


def dockerfile_entry(root: str, dockerfile: str | None) -> tuple[str, bytes | None]:
    """The Dockerfile's name in the context tar, and its content when it must be added to the tar
    (``-f -`` or a file outside the context, as the docker CLI does)."""
    if dockerfile == "-":
        return f".dockerfile.{os.urandom(10).hex()}", sys.stdin.buffer.read()
    if dockerfile:
        full = os.path.abspath(dockerfile)
        if full.startswith(root + os.sep):
            return os.path.relpath(full, root), None
        try:
            with open(full, "rb") as handle:
                return f".dockerfile.{os.urandom(10).hex()}", handle.read()
        except OSError as exc:
            raise CommandError(f"unable to prepare context: {exc}", 1) from exc
    if not os.path.isfile(os.path.join(root, "Dockerfile")):
        raise CommandError(
            "unable to prepare context: unable to evaluate symlinks in Dockerfile path: "
            f"lstat {os.path.join(root, 'Dockerfile')}: no such file or directory",
            1,
        )
    return "Dockerfile", None


def run_build(client: Client, params: dict[str, Any]) -> int:
    """Build the context directory ``params["path"]``; the exit status."""
    args: dict[str, str | None] = {}
    for item in params["build_args"]:
        key, sep, value = item.partition("=")
        args[key] = value if sep else os.environ.get(key)
    if "SOURCE_DATE_EPOCH" not in args and os.environ.get("SOURCE_DATE_EPOCH"):
        args["SOURCE_DATE_EPOCH"] = os.environ["SOURCE_DATE_EPOCH"]
    label_map = dict(item.partition("=")[::2] for item in params["labels"])
    path = params["path"]
    root = os.path.abspath(path)
    if not os.path.isdir(root):
        raise CommandError(f'unable to prepare context: path "{path}" not found', 1)
    name, extra = dockerfile_entry(root, params["dockerfile"])
    query: dict[str, Any] = {
        "dockerfile": name,
        "t": list(params["tags"]),
        "rm": "1" if params["rm"] else "0",
    }
    if args:
        query["buildargs"] = json.dumps(args)
    if label_map:
        query["labels"] = json.dumps(label_map)
    if params["cache_from"]:
        query["cachefrom"] = json.dumps(list(params["cache_from"]))
    if params["target"]:
        query["target"] = params["target"]
    if params["no_cache"]:
        query["nocache"] = "1"
    quiet = params["quiet"]
    if quiet:
        query["q"] = "1"
    try:
        entries = context_entries(root, name)
        if not params["no_cache"] and os.environ.get("PYENGINE_BUILD_CONTEXT", "") != "full":
            body = digest_tar(root, entries, name, extra)
            headers = {"Content-Type": "application/x-tar", DIGESTS_HEADER: "digests"}
            response = client.open_stream("POST", "/build", query, body, headers)
            if _show_build(response, quiet):
                return 0
        stream = FullContext(root, entries, name, extra)
        response = client.open_stream("POST", "/build", query, stream, {"Content-Type": "application/x-tar"})
    except ContextError as exc:
        raise CommandError(str(exc), 1) from exc
    if not _show_build(response, quiet):
        raise CommandError("the daemon asked for the build context again", 1)
    return 0


def _show_build(response: Any, quiet: bool) -> bool:
    """Print the build's progress; False when the daemon needs the full context (nothing was
    built or printed then). An error in the stream ends it with a CommandError."""
    try:
        image_id = ""
        for message in response.iter_json():
            aux = message.get("aux")
            if aux is not None:
                if aux.get("PyengineContext") == "needed":
                    return False
                image_id = aux.get("ID", "")
                continue
            if message.get("error") or message.get("errorDetail"):
                detail = message.get("errorDetail") or {}
                raise CommandError(str(message.get("error") or detail.get("message")), 1)
            text = message.get("stream")
            if text is None and message.get("status"):
                text = message["status"] + "\n"
            if text and not quiet:
                sys.stdout.write(text)
                sys.stdout.flush()
        if quiet and image_id:
            print(image_id)
    finally:
        response.conn.close()
    return True


def write_context(root: str, name: str, extra: bytes | None, out: Any) -> None:
    """Write the full context tar of ``root`` to the stream ``out``."""
    context = FullContext(root, context_entries(root, name), name, extra)
    for piece in context.pieces():
        if isinstance(piece, bytes):
            out.write(piece)
            continue
        path, size = piece
        with open(path, "rb") as handle:
            data = handle.read(size)
        if len(data) != size:
            raise ContextError(f"error sending the build context: {path} shrank while being sent")
        out.write(data)
