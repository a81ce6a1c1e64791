"""Exec routes: ``POST /containers/{name}/exec``, ``POST /exec/{id}/start|resize``,
``GET /exec/{id}/json``."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import socket
import struct
import termios
import weakref

from aiohttp import web

from pyengine.api.app import add_route
from pyengine.api.common import engine, json_body, json_response, query_int
from pyengine.api.hijack import forward_input, hijack
from pyengine.containers.exec import ExecService
from pyengine.errors import Conflict, InvalidArgument, StartFailed
from pyengine.supervisor.protocol import encode_frame

_services: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_background: set[asyncio.Task] = set()


def _service(request: web.Request) -> ExecService:
    """The exec service of this engine, made on first use."""
    eng = engine(request)
    service = _services.get(eng)
    if service is None:
        service = _services[eng] = ExecService(eng.containers, eng.supervisor)
    return service


async def create(request: web.Request) -> web.Response:
    container = engine(request).containers.get(request.match_info["name"])
    body = await json_body(request)
    if not isinstance(body, dict):
        raise InvalidArgument("invalid JSON: expected an object")
    instance = _service(request).create(container, body)
    return json_response({"Id": instance.id}, status=201)


async def inspect(request: web.Request) -> web.Response:
    return json_response(_service(request).get(request.match_info["id"]).docker_json())


async def resize(request: web.Request) -> web.Response:
    service = _service(request)
    instance = service.get(request.match_info["id"])
    await service.resize(instance, query_int(request, "h", 0) or 0, query_int(request, "w", 0) or 0)
    return web.Response(status=200)


async def start(request: web.Request) -> web.StreamResponse:
    service = _service(request)
    instance = service.get(request.match_info["id"])
    body = await json_body(request, optional=True)
    if not isinstance(body, dict):
        raise InvalidArgument("invalid JSON: expected an object")
    tty = instance.tty
    if body.get("Detach"):
        reader, writer = await service.start(instance, body.get("ConsoleSize"))
        writer.write_eof()  # a detached exec has no stdin
        task = asyncio.ensure_future(_drain(service, instance, reader, writer))
        _background.add(task)
        task.add_done_callback(_background.discard)
        return web.Response(status=200)
    # The 101 goes out before the process starts, as Docker's does: a client that reads the
    # response headers through a buffer (docker-py) would otherwise swallow the first output
    # with them and then read the raw socket past it.
    service.check_startable(instance)  # a Conflict is still a plain 409 here
    response, client = await hijack(request, multiplexed=not tty)
    await _until_client_read_headers(request)
    try:
        reader, writer = await service.start(instance, body.get("ConsoleSize"))
    except (StartFailed, Conflict) as exc:
        # the stream carries the reason; the exit code (126/127) is in GET /exec/{id}/json
        text = (exc.message + "\r\n").encode()
        await client.write(text if tty else encode_frame(1, text))
        client.close()
        return response

    async def deliver(stream: int, payload: bytes) -> bool:
        return await client.write(payload if tty else encode_frame(stream, payload))

    stdin_task = asyncio.ensure_future(
        forward_input(client, writer, keep=bool(instance.config.get("AttachStdin")))
    )
    try:
        await service.pump(instance, reader, deliver)
    finally:
        stdin_task.cancel()
        writer.close()
        client.close()
    return response


async def _until_client_read_headers(request: web.Request, timeout: float = 2.0) -> None:
    """Wait until the client has taken the 101 response out of its socket.

    docker-py reads the response headers through a buffer and then reads the raw socket past it:
    output that arrived together with the headers would sit in that buffer, lost. On a unix
    socket, SIOCOUTQ counts what we sent that the peer has not read yet; when it is 0 the headers
    have been read and the output that follows stays in the socket for the client's next read.
    """
    transport = request.transport
    sock = transport.get_extra_info("socket") if transport is not None else None
    if sock is None or sock.family != socket.AF_UNIX:
        return
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        if transport.is_closing():
            return
        try:
            unread = struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0" * 4))[0]
        except OSError:
            return
        if unread == 0 and transport.get_write_buffer_size() == 0:
            return
        await asyncio.sleep(0.001)


async def _drain(service: ExecService, instance, reader, writer) -> None:
    try:
        await service.pump(instance, reader, None)
    finally:
        with contextlib.suppress(Exception):
            writer.close()


def add_routes(router: web.UrlDispatcher) -> None:
    add_route(router, "POST", "/containers/{name}/exec", create)
    add_route(router, "POST", "/exec/{id}/start", start)
    add_route(router, "POST", "/exec/{id}/resize", resize)
    add_route(router, "GET", "/exec/{id}/json", inspect)
