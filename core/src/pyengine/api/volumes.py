"""Volume routes: ``/volumes`` create, list, inspect, remove, prune (Docker's shapes and messages)."""

from __future__ import annotations

from aiohttp import web

from pyengine.api.app import add_route
from pyengine.api.common import engine, json_body, json_response, no_content, off_loop, query_bool
from pyengine.containers.views import parse_filters
from pyengine.errors import InvalidArgument


def _docker_json(volume) -> dict:
    doc = volume.model_dump(mode="json")
    if doc.get("Status") is None:
        doc.pop("Status", None)
    return doc


def _string_map(value: object, field: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidArgument(f"invalid value for {field}: expected an object")
    return {str(k): str(v) for k, v in value.items()}


async def create(request: web.Request) -> web.Response:
    body = await json_body(request)
    if not isinstance(body, dict):
        raise InvalidArgument("invalid JSON: expected an object")
    name = body.get("Name") or ""
    if not isinstance(name, str):
        raise InvalidArgument("invalid value for Name: expected a string")
    volume, _new = await off_loop(
        engine(request).volumes.create,
        name,
        body.get("Driver") or "local",
        _string_map(body.get("DriverOpts"), "DriverOpts"),
        _string_map(body.get("Labels"), "Labels"),
    )
    return json_response(_docker_json(volume), status=201)


async def list_volumes(request: web.Request) -> web.Response:
    filters = parse_filters(request.query.get("filters"))
    volumes = await off_loop(engine(request).volumes.list, filters)
    return json_response({"Volumes": [_docker_json(v) for v in volumes], "Warnings": None})


async def inspect(request: web.Request) -> web.Response:
    volume = await off_loop(engine(request).volumes.get, request.match_info["name"])
    return json_response(_docker_json(volume))


async def remove(request: web.Request) -> web.Response:
    await off_loop(
        engine(request).volumes.remove, request.match_info["name"], force=query_bool(request, "force")
    )
    return no_content()


async def prune(request: web.Request) -> web.Response:
    filters = parse_filters(request.query.get("filters"))
    deleted, reclaimed = await off_loop(engine(request).volumes.prune, filters)
    return json_response({"VolumesDeleted": deleted or None, "SpaceReclaimed": reclaimed})


def add_routes(router: web.UrlDispatcher) -> None:
    add_route(router, "POST", "/volumes/create", create)
    add_route(router, "GET", "/volumes", list_volumes)
    add_route(router, "POST", "/volumes/prune", prune)
    add_route(router, "GET", "/volumes/{name}", inspect)
    add_route(router, "DELETE", "/volumes/{name}", remove)
