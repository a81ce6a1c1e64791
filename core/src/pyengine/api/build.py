"""``POST /build``: the context tar in the body, Docker's JSON progress stream out.

Errors found before the first step (no Dockerfile, a syntax error, a bad tag) are HTTP errors, as
Docker's; errors of a step come in the stream as ``{"errorDetail": ..., "error": ...}``. Tags are
set only when every step succeeded.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from pathlib import Path
from typing import Any

from aiohttp import web

from pyengine.api.app import add_route
from pyengine.api.common import engine, off_loop, query_bool
from pyengine.build import context as ctx
from pyengine.build import dockerfile as df
from pyengine.build.executor import BuildCancelled, Builder, BuildOptions, familiar_tags
from pyengine.build.steps import StepFailed
from pyengine.build.tarcontext import BuildContext, ContextNeeded
from pyengine.build.tarstream import StreamIndexer
from pyengine.errors import EngineError, InvalidArgument
from pyengine.images import reference

log = logging.getLogger(__name__)


_swept: set[Path] = set()  # build directories cleaned by this daemon process
# pyengine's CLI sends the context by digest first (file contents replaced by their sha256) when it
# sends this header; the answer is then either the build or CONTEXT_NEEDED, after which it sends the
# context in full (see pyengine.cli.build).
DIGESTS_HEADER = "X-Pyengine-Context"
CONTEXT_NEEDED = {"aux": {"PyengineContext": "needed"}}
_WRITE_BATCH = 4 << 20
_READ_SIZE = 1 << 20


def _json_query(request: web.Request, name: str, default: Any) -> Any:
    raw = request.query.get(name, "")
    if not raw:
        return default
    try:
        return json.loads(raw)
    except ValueError:
        raise InvalidArgument(f"invalid JSON in {name}: {raw}") from None


def build_options(request: web.Request) -> BuildOptions:
    build_args = _json_query(request, "buildargs", {})
    labels = _json_query(request, "labels", {})
    cache_from = _json_query(request, "cachefrom", [])
    if not isinstance(build_args, dict) or not isinstance(labels, dict) or not isinstance(cache_from, list):
        raise InvalidArgument("buildargs and labels must be JSON objects, cachefrom a JSON list")
    epoch_text = build_args.get("SOURCE_DATE_EPOCH") or request.headers.get("X-Source-Date-Epoch")
    epoch = None
    if epoch_text:
        try:
            epoch = int(epoch_text)
        except ValueError:
            raise InvalidArgument(f"invalid SOURCE_DATE_EPOCH: {epoch_text}") from None
    return BuildOptions(
        dockerfile=request.query.get("dockerfile") or "Dockerfile",
        tags=familiar_tags(request.query.getall("t", [])),
        build_args={str(k): (None if v is None else str(v)) for k, v in build_args.items()},
        no_cache=query_bool(request, "nocache"),
        target=request.query.get("target") or None,
        labels={str(k): str(v) for k, v in labels.items()},
        cache_from=[str(x) for x in cache_from],
        source_date_epoch=epoch,
    )


async def build(request: web.Request) -> web.StreamResponse:
    eng = engine(request)
    options = build_options(request)
    quiet = query_bool(request, "q")
    work = Path(eng.config.data_root) / "build"
    if work not in _swept:
        # what a daemon that died mid-build left; no build of this process has started yet
        _swept.add(work)
        await off_loop(ctx.remove_tree, work)
    work.mkdir(exist_ok=True, mode=0o700)
    build_dir = work / secrets.token_hex(8)
    context_dir = build_dir / "context"
    try:
        build_dir.mkdir(mode=0o700)
        tar_path = build_dir / "context.tar"
        members, by_digest = await _receive_context(request, tar_path)
        if by_digest and request.headers.get(DIGESTS_HEADER) != "digests":
            raise InvalidArgument(f"a context sent by digest needs the {DIGESTS_HEADER}: digests header")
        try:
            context = await off_loop(
                BuildContext, tar_path, context_dir, options.dockerfile, members, by_digest=by_digest
            )
            text = await off_loop(context.read_dockerfile)
        except ContextNeeded:
            return await _ask_for_context(request, None)
        df.parse(text).select(options.target)  # syntax errors as an HTTP error, before any output

        response = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
        await response.prepare(request)

        async def emit(item: dict[str, Any]) -> None:
            if quiet and "stream" in item:
                return
            try:
                await response.write(json.dumps(item).encode() + b"\r\n")
            except ConnectionError:
                pass  # the client left; the builder sees it through client_gone and stops

        def client_gone() -> bool:
            transport = request.transport
            return transport is None or transport.is_closing()

        builder = Builder(eng, context, options, emit, client_gone)
        try:
            image_id = await builder.run(text)
        except BuildCancelled:
            log.info("build cancelled: the client went away")
            return response
        except ContextNeeded:
            return await _ask_for_context(request, response)
        except EngineError as exc:
            detail: dict[str, Any] = {"message": exc.message}
            if isinstance(exc, StepFailed):
                detail["code"] = exc.exit_code
            await response.write(json.dumps({"errorDetail": detail, "error": exc.message}).encode() + b"\r\n")
            await response.write_eof()
            return response
        except Exception as exc:  # the stream is open: the client gets the reason in it
            log.exception("build failed")
            message = str(exc) or type(exc).__name__
            await response.write(
                json.dumps({"errorDetail": {"message": message}, "error": message}).encode() + b"\r\n"
            )
            await response.write_eof()
            return response
        await response.write(json.dumps({"aux": {"ID": image_id}}).encode() + b"\r\n")
        if quiet:
            await response.write(json.dumps({"stream": image_id + "\n"}).encode() + b"\r\n")
        else:
            await emit({"stream": f"Successfully built {image_id[7:19]}\n"})
        for tag in options.tags:
            ref = reference.parse(tag)
            shown = await off_loop(eng.images.tag, image_id, ref.repository, ref.tag or "latest")
            await emit({"stream": f"Successfully tagged {shown}\n"})
        await response.write_eof()
        return response
    finally:
        await off_loop(ctx.remove_tree, build_dir)


async def _receive_context(request: web.Request, tar_path: Path) -> tuple[dict | None, bool]:
    """Spool the body to ``tar_path``, indexing and hashing it on the way; return the index (None:
    the tar is indexed from the file later) and whether it came by digest.

    Measured on a 20 MiB context: indexing and hashing on the event loop (about 0.1 ms per piece)
    beats a worker thread, whose hand-offs and GIL contention cost more than the hashing they would
    hide. Writing goes to a thread in batches: a write can wait for the disk.
    """
    content = request.content
    transport = request.transport
    if transport is not None and isinstance(getattr(transport, "max_size", None), int):
        # asyncio's socket transport reads 256 KiB at a time; with 1 MiB reads a 20 MiB context
        # arrived about 10 ms sooner here (later requests on the connection keep it: harmless)
        transport.max_size = max(transport.max_size, _READ_SIZE)  # type: ignore[attr-defined]
    stream = StreamIndexer()
    pending: list[bytes] = []
    pending_size = 0
    with open(tar_path, "wb") as spool:
        while chunk := await content.readany():
            # and what else has arrived already: one coroutine step per HTTP chunk (the docker
            # CLI sends 32 KiB ones) costs more than this
            for piece in (chunk, content.read_nowait()):
                if piece:
                    stream.feed(piece)
                    pending.append(piece)
                    pending_size += len(piece)
            if pending_size >= _WRITE_BATCH:
                await asyncio.to_thread(spool.writelines, pending)
                pending, pending_size = [], 0
        # The docker CLI's context for ``-f -`` ends without the padding of its last entry and
        # without the end-of-archive blocks (Go's reader accepts that): complete it.
        if stream.written:
            pending.append(b"\0" * (-stream.written % 512 + 1024))
        await asyncio.to_thread(spool.writelines, pending)
    return stream.finish(), stream.by_digest


async def _ask_for_context(request: web.Request, response: web.StreamResponse | None) -> web.StreamResponse:
    """Tell pyengine's CLI to send the context again, in full (nothing was built or tagged)."""
    if response is None:
        response = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
        await response.prepare(request)
    await response.write(json.dumps(CONTEXT_NEEDED).encode() + b"\r\n")
    await response.write_eof()
    return response


def add_routes(router: web.UrlDispatcher) -> None:
    add_route(router, "POST", "/build", build)
