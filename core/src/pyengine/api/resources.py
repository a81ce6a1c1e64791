"""Routes for a container's cgroup: pause, unpause, update, stats, top."""

from __future__ import annotations

import asyncio
import json

from aiohttp import web

from pyengine.api.app import add_route
from pyengine.api.common import engine, json_body, json_response, no_content, off_loop, query_bool
from pyengine.containers import control

STATS_INTERVAL = 1.0


def _container(request: web.Request):
    return engine(request).containers.get(request.match_info["name"])


async def pause(request: web.Request) -> web.Response:
    await control.pause(engine(request).containers, _container(request))
    return no_content()


async def unpause(request: web.Request) -> web.Response:
    await control.unpause(engine(request).containers, _container(request))
    return no_content()


async def update(request: web.Request) -> web.Response:
    container = _container(request)
    body = await json_body(request)
    warnings = await control.update(engine(request).containers, container, body)
    return json_response({"Warnings": warnings})


async def stats(request: web.Request) -> web.StreamResponse:
    """Docker's stats: a JSON document per second (``stream=false``: one, with a real precpu)."""
    container = _container(request)
    stream = query_bool(request, "stream", True)
    one_shot = query_bool(request, "one-shot", False)
    previous = None
    if not stream:
        current = await off_loop(control.sample, container)
        if not one_shot and container.State.running:
            await asyncio.sleep(STATS_INTERVAL)
            previous, current = current, await off_loop(control.sample, container)
        return json_response(control.stats_json(container, current, previous))
    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    await response.prepare(request)
    while True:
        current = await off_loop(control.sample, container)
        doc = control.stats_json(container, current, previous)
        try:
            await response.write(json.dumps(doc, separators=(",", ":")).encode() + b"\n")
        except (ConnectionResetError, RuntimeError):
            break
        if not container.State.running:
            break  # Docker ends the stream of a container that is not running after one zero reading
        previous = current
        await asyncio.sleep(STATS_INTERVAL)
    await response.write_eof()
    return response


async def top(request: web.Request) -> web.Response:
    container = _container(request)
    return json_response(await off_loop(control.top, container, request.query.get("ps_args", "")))


def add_routes(router: web.UrlDispatcher) -> None:
    add_route(router, "POST", "/containers/{name}/pause", pause)
    add_route(router, "POST", "/containers/{name}/unpause", unpause)
    add_route(router, "POST", "/containers/{name}/update", update)
    add_route(router, "GET", "/containers/{name}/stats", stats)
    add_route(router, "GET", "/containers/{name}/top", top)
