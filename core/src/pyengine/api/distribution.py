"""Distribution routes: pull (``POST /images/create?fromImage=``), push, ``/auth``, save
(``/images/get``), load, prune — with Docker's JSON progress stream and ``X-Registry-Auth``."""

from __future__ import annotations

import asyncio
import json
import tempfile
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from pyengine.api.app import add_route
from pyengine.api.common import engine, json_body, json_response, off_loop
from pyengine.containers.views import parse_filters
from pyengine.distribution import archive, manifests, progress
from pyengine.distribution import pull as pulling
from pyengine.distribution import push as pushing
from pyengine.distribution.auth import Credentials, decode_registry_auth
from pyengine.distribution.registry import RegistryClient
from pyengine.errors import EngineError, InvalidArgument, NotFound
from pyengine.images import reference
from pyengine.images.prune import prune as prune_images

Operation = Callable[[progress.ProgressSink], Awaitable[Any]]


async def stream_progress(request: web.Request, operation: Operation) -> web.StreamResponse:
    """Run ``operation`` and stream its progress messages.

    An error before the first message is an ordinary HTTP error (as dockerd answers a pull whose
    registry does not answer); after it, an ``errorDetail`` line ends the 200 stream.
    """
    sink = progress.ProgressSink()

    async def run() -> Any:
        try:
            return await operation(sink)
        finally:
            sink.close()

    task = asyncio.ensure_future(run())
    first = await sink.queue.get()
    if first is None:
        await asyncio.gather(task, return_exceptions=True)
        task.result()  # an early failure raises here: the middleware answers with its status
    response = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
    try:
        await response.prepare(request)
        message = first
        while message is not None:
            await response.write(progress.encode(message))
            message = await sink.queue.get()
        await asyncio.gather(task, return_exceptions=True)
        if task.exception() is not None:
            exc = task.exception()
            text = exc.message if isinstance(exc, EngineError) else (str(exc) or type(exc).__name__)
            await response.write(progress.encode(progress.error(text)))
        await response.write_eof()
    except (ConnectionResetError, asyncio.CancelledError):
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        raise
    return response


def _credentials(request: web.Request) -> Credentials:
    return decode_registry_auth(request.headers.get("X-Registry-Auth"))


def _pull_reference(request: web.Request) -> reference.Reference:
    name = request.query["fromImage"]
    tag = request.query.get("tag", "")
    if tag:
        name = f"{name}@{tag}" if ":" in tag else f"{name}:{tag}"
    return reference.parse(name)


async def pull(request: web.Request) -> web.StreamResponse:
    """``POST /images/create?fromImage=&tag=&platform=``."""
    eng = engine(request)
    ref = _pull_reference(request)
    if request.query.get("fromSrc"):
        raise InvalidArgument("fromImage and fromSrc cannot be used together")
    wanted = manifests.parse_platform(request.query.get("platform"))
    creds = _credentials(request)

    async def operation(sink: progress.ProgressSink) -> None:
        image, resolved, fresh = await pulling.pull(eng.images, ref, creds, wanted, sink)
        sink.emit(progress.status(f"Digest: {resolved.digest}"))
        shown = ref.familiar()
        if fresh:
            sink.emit(progress.status(f"Status: Downloaded newer image for {shown}"))
        else:
            sink.emit(progress.status(f"Status: Image is up to date for {shown}"))

    return await stream_progress(request, operation)


async def push(request: web.Request) -> web.StreamResponse:
    """``POST /images/{name}/push?tag=``; without any tag, every tag of the repository (as dockerd)."""
    eng = engine(request)
    name = request.match_info["name"]
    tag = request.query.get("tag", "")
    ref = reference.parse(f"{name}:{tag}" if tag else name, default_tag=None)
    if ref.digest:
        raise InvalidArgument("cannot push a digest reference")
    if ref.tag:
        refs = [ref]
    else:
        images = await off_loop(eng.images.list)
        tagged = sorted(t for image in images for t in image.tags)
        refs = [r for r in map(reference.parse, tagged) if r.repository == ref.repository and not r.digest]
    try:
        if not refs:
            raise NotFound(ref.normalized())
        await off_loop(eng.images.resolve, refs[0].normalized())
    except NotFound as exc:
        raise NotFound(f"An image does not exist locally with the tag: {ref.familiar_repository()}") from exc
    creds = _credentials(request)

    async def operation(sink: progress.ProgressSink) -> None:
        for one in refs:
            await pushing.push(eng.images, one, creds, sink)

    return await stream_progress(request, operation)


def registry_of(server: str) -> str:
    """``https://127.0.0.1:5000/v2/`` or ``127.0.0.1:5000`` -> ``127.0.0.1:5000``; Hub's URL -> docker.io."""
    host = server.removeprefix("https://").removeprefix("http://").split("/", 1)[0]
    if host in ("", "index.docker.io", "registry-1.docker.io"):
        return "docker.io"
    return host


async def auth(request: web.Request) -> web.Response:
    """``POST /auth``: check credentials against the registry (nothing is stored)."""
    body = await json_body(request)
    if not isinstance(body, dict):
        raise InvalidArgument("invalid JSON: expected an object")
    creds = Credentials(
        username=str(body.get("username") or ""),
        password=str(body.get("password") or ""),
        identity_token=str(body.get("identitytoken") or ""),
    )
    registry = registry_of(str(body.get("serveraddress") or ""))
    async with RegistryClient(registry, "", creds) as client:
        client.scopes = []
        await client.login()
    return json_response({"Status": "Login Succeeded", "IdentityToken": ""})


class _LoopWriter:
    """A file object for a worker thread that writes into an aiohttp response on the loop."""

    def __init__(self, response: web.StreamResponse, loop: asyncio.AbstractEventLoop) -> None:
        self._response = response
        self._loop = loop

    def write(self, data: bytes) -> int:
        if data:
            asyncio.run_coroutine_threadsafe(self._response.write(bytes(data)), self._loop).result()
        return len(data)

    def flush(self) -> None:
        pass


async def save(request: web.Request) -> web.StreamResponse:
    """``GET /images/get?names=`` and ``GET /images/{name}/get``: a docker-save / OCI-layout tar."""
    eng = engine(request)
    names = (
        [request.match_info["name"]] if "name" in request.match_info else request.query.getall("names", [])
    )
    if not names:
        raise InvalidArgument("no image names given")
    for name in names:
        await off_loop(eng.images.resolve, name)  # 404 before the 200
    response = web.StreamResponse(status=200, headers={"Content-Type": "application/x-tar"})
    await response.prepare(request)
    await off_loop(archive.save, eng.images, names, _LoopWriter(response, asyncio.get_running_loop()))
    await response.write_eof()
    return response


async def load(request: web.Request) -> web.StreamResponse:
    """``POST /images/load``: a docker-save or OCI-layout tar (maybe compressed) in the body."""
    eng = engine(request)
    lines: list[str] = []
    with tempfile.TemporaryFile(dir=eng.blobs.root) as spool:
        while chunk := await request.content.read(1 << 20):
            await asyncio.to_thread(spool.write, chunk)
        spool.seek(0)
        await off_loop(archive.load, eng.images, spool, lines.append)
    response = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
    await response.prepare(request)
    for line in lines:
        await response.write(json.dumps({"stream": line}).encode() + b"\r\n")
    await response.write_eof()
    return response


async def prune(request: web.Request) -> web.Response:
    """``POST /images/prune?filters=``."""
    eng = engine(request)
    filters = parse_filters(request.query.get("filters"))
    users = eng.containers.images_in_use()
    return json_response(await off_loop(prune_images, eng.images, filters, users))


def add_routes(router: web.UrlDispatcher) -> None:
    add_route(router, "POST", "/images/{name:.+}/push", push)
    add_route(router, "POST", "/auth", auth)
    add_route(router, "GET", "/images/get", save)
    add_route(router, "GET", "/images/{name:.+}/get", save)
    add_route(router, "POST", "/images/load", load)
    add_route(router, "POST", "/images/prune", prune)
