"""System routes: _ping, version, info, events."""

from __future__ import annotations

import asyncio
import json
import time

from aiohttp import web

from pyengine import API_VERSION
from pyengine.api.app import add_route
from pyengine.api.common import engine, json_response
from pyengine.containers.views import parse_filters
from pyengine.filters import label_matches

_PING_HEADERS = {
    "Api-Version": API_VERSION,
    "Builder-Version": "1",
    "Cache-Control": "no-cache, no-store, must-revalidate",
    "Pragma": "no-cache",
    "Docker-Experimental": "false",
    "Swarm": "inactive",
}


async def ping(request: web.Request) -> web.Response:
    if request.method == "HEAD":
        return web.Response(
            status=200,
            headers={**_PING_HEADERS, "Content-Type": "text/plain; charset=utf-8", "Content-Length": "0"},
        )
    return web.Response(status=200, text="OK", headers=_PING_HEADERS)


async def version(request: web.Request) -> web.Response:
    return json_response(engine(request).version_json())


async def info(request: web.Request) -> web.Response:
    return json_response(await asyncio.to_thread(engine(request).info_json))


def _timestamp(text: str | None) -> float | None:
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        from pyengine.model.base import parse_rfc3339

        return parse_rfc3339(text)


def _event_matches(event: dict, filters: dict[str, list[str]]) -> bool:
    actor = event.get("Actor", {})
    attributes = actor.get("Attributes", {})
    for key, values in filters.items():
        if not values:
            continue
        if key == "type" and event.get("Type") not in values:
            return False
        if key == "event" and event.get("Action") not in values:
            return False
        if key == "container" and (
            event.get("Type") != "container"
            or not any(actor.get("ID", "").startswith(v) or attributes.get("name") == v for v in values)
        ):
            return False
        if key == "image" and not any(
            attributes.get("image") == v or attributes.get("name") == v for v in values
        ):
            return False
        if key == "label":
            if not all(label_matches(attributes, wanted) for wanted in values):
                return False
    return True


async def events(request: web.Request) -> web.StreamResponse:
    """``GET /events``: past events since ``since``, then live ones until ``until`` or disconnect."""
    broadcaster = engine(request).events
    since = _timestamp(request.query.get("since"))
    until = _timestamp(request.query.get("until"))
    filters = parse_filters(request.query.get("filters"))
    queue, past = broadcaster.subscribe()
    response = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
    response.enable_chunked_encoding()
    try:
        await response.prepare(request)
        for event in past:
            if (
                since is not None
                and event["timeNano"] / 1e9 >= since
                and (until is None or event["timeNano"] / 1e9 <= until)
            ):
                if _event_matches(event, filters):
                    await response.write(json.dumps(event).encode() + b"\n")
        while True:
            timeout = None if until is None else max(0.0, until - time.time())
            if timeout == 0.0:
                break
            try:
                event = await asyncio.wait_for(queue.get(), timeout)
            except TimeoutError:
                break
            if _event_matches(event, filters):
                await response.write(json.dumps(event).encode() + b"\n")
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    finally:
        broadcaster.unsubscribe(queue)
    return response


def add_routes(router: web.UrlDispatcher) -> None:
    add_route(router, "GET", "/_ping", ping)
    add_route(router, "HEAD", "/_ping", ping)
    add_route(router, "GET", "/version", version)
    add_route(router, "GET", "/info", info)
    add_route(router, "GET", "/events", events)
