"""Container routes: create, start, attach, wait, logs, list, inspect, stop, kill, restart, resize,
rename, remove."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import struct
from pathlib import Path

from aiohttp import web

from pyengine.api.app import add_route
from pyengine.api.common import engine, json_body, json_response, no_content, query_bool, query_int
from pyengine.api.hijack import forward_input, hijack
from pyengine.containers import logs as logfile
from pyengine.containers import views
from pyengine.errors import Conflict, InvalidArgument
from pyengine.model.base import parse_rfc3339
from pyengine.model.container import ContainerCreateRequest

log = logging.getLogger(__name__)


def _container(request: web.Request):
    return engine(request).containers.get(request.match_info["name"])


async def create(request: web.Request) -> web.Response:
    body = await json_body(request, ContainerCreateRequest)
    container = await engine(request).containers.create(body, request.query.get("name") or None)
    return json_response({"Id": container.Id, "Warnings": []}, status=201)


async def start(request: web.Request) -> web.Response:
    await engine(request).containers.start(_container(request))
    return no_content()


async def stop(request: web.Request) -> web.Response:
    await engine(request).containers.stop(_container(request), query_int(request, "t"))
    return no_content()


async def restart(request: web.Request) -> web.Response:
    await engine(request).containers.restart(_container(request), query_int(request, "t"))
    return no_content()


async def kill(request: web.Request) -> web.Response:
    await engine(request).containers.kill(_container(request), request.query.get("signal") or None)
    return no_content()


async def resize(request: web.Request) -> web.Response:
    height, width = query_int(request, "h", 0), query_int(request, "w", 0)
    await engine(request).containers.resize(_container(request), height or 0, width or 0)
    return web.Response(status=200)


async def rename(request: web.Request) -> web.Response:
    engine(request).containers.rename(_container(request), request.query.get("name", ""))
    return no_content()


async def remove(request: web.Request) -> web.Response:
    await engine(request).containers.remove(
        _container(request), force=query_bool(request, "force"), volumes=query_bool(request, "v")
    )
    return no_content()


async def inspect(request: web.Request) -> web.Response:
    return json_response(views.inspect_json(_container(request)))


async def list_containers(request: web.Request) -> web.Response:
    eng = engine(request)
    filters = views.parse_filters(request.query.get("filters"))
    show_all = query_bool(request, "all")
    limit = query_int(request, "limit", -1)
    ancestors: dict[str, str] = {}
    for name in filters.get("ancestor", []):
        with contextlib.suppress(Exception):
            ancestors[name] = eng.images.resolve(name).id
    items = []
    for container in sorted(eng.containers.all(), key=lambda c: c.Created, reverse=True):
        if (
            not show_all
            and not container.State.running
            and "status" not in filters
            and "exited" not in filters
        ):
            continue
        if views.matches(container, filters, ancestors):
            items.append(views.summary_json(container))
    if limit is not None and limit > 0:
        items = items[:limit]
    return json_response(items)


async def wait(request: web.Request) -> web.StreamResponse:
    """``POST /containers/{id}/wait``: headers at once (the CLI waits for them before it starts the
    container), the body when the condition is met."""
    container = _container(request)
    condition = request.query.get("condition") or "not-running"
    future = engine(request).containers.waiter(container, condition)
    response = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
    response.enable_chunked_encoding()
    await response.prepare(request)
    status_code, _error = await future
    await response.write(json.dumps({"Error": None, "StatusCode": status_code}).encode() + b"\n")
    await response.write_eof()
    return response


async def attach(request: web.Request) -> web.StreamResponse:
    eng = engine(request)
    container = _container(request)
    want_stdin = query_bool(request, "stdin")
    want_stdout = query_bool(request, "stdout")
    want_stderr = query_bool(request, "stderr")
    if container.State.Status.value == "paused":
        raise Conflict(f"You cannot attach to a paused container {container.Id}")
    tty = container.Config.Tty
    # Subscribe before answering so that not a byte of output is lost to this client.
    reader, writer = await eng.supervisor.attach(
        container.Id,
        stdin=want_stdin and container.Config.OpenStdin,
        stdout=want_stdout,
        stderr=want_stderr,
        wait_start=not container.State.running,  # `docker start -a` attaches before it starts
    )
    response, client = await hijack(request, multiplexed=False)
    eng.hooks.call("pyengine_container_post_event", container=container, action="attach", attributes={})

    async def output() -> None:
        try:
            while True:
                header = await reader.readexactly(8)
                stream_id, length = struct.unpack(">BxxxL", header)
                payload = await reader.readexactly(length)
                if not await client.write(payload if tty else header + payload):
                    return
        except (asyncio.IncompleteReadError, ConnectionError):
            return

    out_task = asyncio.ensure_future(output())
    in_task = asyncio.ensure_future(forward_input(client, writer, keep=want_stdin))
    try:
        done, _ = await asyncio.wait(
            {out_task, asyncio.ensure_future(client.closed.wait())}, return_when=asyncio.FIRST_COMPLETED
        )
    finally:
        in_task.cancel()
        out_task.cancel()
        writer.close()
        client.close()
    return response


async def logs(request: web.Request) -> web.StreamResponse:
    eng = engine(request)
    container = _container(request)
    stdout, stderr = query_bool(request, "stdout"), query_bool(request, "stderr")
    if not (stdout or stderr):
        raise InvalidArgument("Bad parameters: you must choose at least one stream")
    follow = query_bool(request, "follow")
    timestamps = query_bool(request, "timestamps")
    tail_text = request.query.get("tail", "all")
    tail = None if tail_text in ("", "all") else _int_or_400(tail_text, "tail")
    since = _time_or_400(request.query.get("since"))
    until = _time_or_400(request.query.get("until"))
    tty = container.Config.Tty
    reader = logfile.LogReader(
        Path(container.LogPath), stdout=stdout, stderr=stderr, since=since, until=until
    )
    try:
        records = logfile.tail(await asyncio.to_thread(reader.read_new), tail)
        response = web.StreamResponse(status=200)
        response.enable_chunked_encoding()
        await response.prepare(request)
        if records:
            await response.write(b"".join(logfile.render(r, timestamps=timestamps, tty=tty) for r in records))
        while follow:
            running = container.State.running and eng.containers.index.by_id(container.Id) is not None
            records = await asyncio.to_thread(reader.read_new)
            if records:
                await response.write(
                    b"".join(logfile.render(r, timestamps=timestamps, tty=tty) for r in records)
                )
            if not running:
                break  # read once more after the exit: the supervisor logs all output before it reports it
            await asyncio.sleep(0.1)
        await response.write_eof()
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    finally:
        reader.close()
    return response


def _int_or_400(text: str, name: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise InvalidArgument(f"invalid value for {name}: {text!r}") from None


def _time_or_400(text: str | None) -> float:
    if not text:
        return 0.0
    try:
        return float(text)
    except ValueError:
        try:
            return parse_rfc3339(text)
        except ValueError:
            raise InvalidArgument(f"invalid time value: {text!r}") from None


def add_routes(router: web.UrlDispatcher) -> None:
    add_route(router, "POST", "/containers/create", create)
    add_route(router, "GET", "/containers/json", list_containers)
    add_route(router, "GET", "/containers/{name}/json", inspect)
    add_route(router, "POST", "/containers/{name}/start", start)
    add_route(router, "POST", "/containers/{name}/stop", stop)
    add_route(router, "POST", "/containers/{name}/restart", restart)
    add_route(router, "POST", "/containers/{name}/kill", kill)
    add_route(router, "POST", "/containers/{name}/resize", resize)
    add_route(router, "POST", "/containers/{name}/rename", rename)
    add_route(router, "POST", "/containers/{name}/wait", wait)
    add_route(router, "POST", "/containers/{name}/attach", attach)
    add_route(router, "GET", "/containers/{name}/logs", logs)
    add_route(router, "DELETE", "/containers/{name}", remove)
