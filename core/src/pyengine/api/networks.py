"""Network routes: create, list, inspect, connect, disconnect, remove, prune (Docker's shapes)."""

from __future__ import annotations

from aiohttp import web

from pyengine.api.app import add_route
from pyengine.api.common import engine, json_body, json_response, no_content, off_loop
from pyengine.containers.views import parse_filters
from pyengine.errors import InvalidArgument
from pyengine.model.network import NetworkCreateRequest

NETWORK_FILTERS = ("name", "id", "driver", "label", "type", "scope", "dangling")


def _matches(network, doc: dict, filters: dict[str, list[str]]) -> bool:
    for key, values in filters.items():
        if key not in NETWORK_FILTERS:
            raise InvalidArgument(f"invalid filter '{key}'")
        if not values:
            continue
        if key == "name" and not any(v in network.Name for v in values):
            return False
        if key == "id" and not any(network.Id.startswith(v) for v in values):
            return False
        if key == "driver" and network.Driver not in values:
            return False
        if key == "scope" and "local" not in values:
            return False
        if key == "type":
            kind = "builtin" if network.Name in ("bridge", "host", "none") else "custom"
            if kind not in values:
                return False
        if key == "dangling":
            dangling = network.Name not in ("bridge", "host", "none") and not doc["Containers"]
            if str(dangling).lower() not in [v.lower() for v in values] and "1" not in values:
                return False
        if key == "label":
            for wanted in values:
                name, sep, value = wanted.partition("=")
                if name not in network.Labels or (sep and network.Labels[name] != value):
                    return False
    return True


async def list_networks(request: web.Request) -> web.Response:
    service = engine(request).networks
    filters = parse_filters(request.query.get("filters"))
    out = []
    for network in sorted(service.all(), key=lambda n: n.Created):
        doc = service.inspect_json(network)
        if _matches(network, doc, filters):
            out.append(doc)
    return json_response(out)


async def inspect(request: web.Request) -> web.Response:
    service = engine(request).networks
    return json_response(service.inspect_json(service.get(request.match_info["name"])))


async def create(request: web.Request) -> web.Response:
    body = await json_body(request, NetworkCreateRequest)
    network = await off_loop(engine(request).networks.create, body)
    return json_response({"Id": network.Id, "Warning": ""}, status=201)


async def remove(request: web.Request) -> web.Response:
    await off_loop(engine(request).networks.remove, request.match_info["name"])
    return no_content()


async def prune(request: web.Request) -> web.Response:
    names = await off_loop(engine(request).networks.prune)
    return json_response({"NetworksDeleted": names})


async def connect(request: web.Request) -> web.Response:
    eng = engine(request)
    network = eng.networks.get(request.match_info["name"])
    body = await json_body(request)
    container = eng.containers.get(str(body.get("Container") or ""))
    await off_loop(eng.networks.connect, network, container, body.get("EndpointConfig"))
    eng.containers.save(container)
    return web.Response(status=200)


async def disconnect(request: web.Request) -> web.Response:
    eng = engine(request)
    network = eng.networks.get(request.match_info["name"])
    body = await json_body(request)
    container = eng.containers.get(str(body.get("Container") or ""))
    await off_loop(eng.networks.disconnect, network, container, bool(body.get("Force")))
    eng.containers.save(container)
    return web.Response(status=200)


def add_routes(router: web.UrlDispatcher) -> None:
    add_route(router, "GET", "/networks", list_networks)
    add_route(router, "POST", "/networks/create", create)
    add_route(router, "POST", "/networks/prune", prune)
    add_route(router, "GET", "/networks/{name}", inspect)
    add_route(router, "DELETE", "/networks/{name}", remove)
    add_route(router, "POST", "/networks/{name}/connect", connect)
    add_route(router, "POST", "/networks/{name}/disconnect", disconnect)
