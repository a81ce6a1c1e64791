"""The aiohttp application: Docker's headers, API version prefixes, and error bodies in one place."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from pyengine import API_VERSION, MIN_API_VERSION, __version__
from pyengine.api.common import ENGINE_KEY
from pyengine.errors import EngineError

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
SERVER_HEADER = f"Docker/{__version__} (linux) pyengine/{__version__}"


def _version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in text.split(".") if p.isdigit())


def error_response(status: int, message: str) -> web.Response:
    """Docker's error body: exactly ``application/json`` with ``{"message": ...}``."""
    return web.Response(
        status=status,
        body=json.dumps({"message": message}).encode() + b"\n",
        headers={"Content-Type": "application/json"},
    )


@web.middleware
async def docker_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        response = await handler(request)
    except EngineError as exc:
        if exc.status == 304:
            response = web.Response(status=304)
        else:
            response = error_response(exc.status, exc.message)
    except web.HTTPNotFound:
        response = error_response(404, "page not found")
    except web.HTTPMethodNotAllowed:
        response = error_response(405, "method not allowed")
    except web.HTTPException:
        raise
    except Exception as exc:  # the daemon keeps serving; the client gets the reason
        log.exception("request %s %s failed", request.method, request.path)
        response = error_response(500, str(exc) or type(exc).__name__)
    if not response.prepared:
        _add_headers(response)
    return response


def _add_headers(response: web.StreamResponse) -> None:
    response.headers["Api-Version"] = API_VERSION
    response.headers["Ostype"] = "linux"
    response.headers["Docker-Experimental"] = "false"
    response.headers["Server"] = SERVER_HEADER


async def _on_prepare(request: web.Request, response: web.StreamResponse) -> None:
    _add_headers(response)


def add_route(router: web.UrlDispatcher, method: str, path: str, handler: Handler) -> None:
    """Serve a route both at ``/path`` and at ``/vX.Y/path``, as moby does."""
    router.add_route(method, path, handler)
    router.add_route(method, "/v{version:[0-9.]+}" + path, handler)


@web.middleware
async def version_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Refuse API versions this daemon does not speak (400 with moby's wording)."""
    version = request.match_info.get("version")
    if version is not None:
        wanted = _version_tuple(version)
        if wanted > _version_tuple(API_VERSION):
            return error_response(
                400, f"client version {version} is too new. Maximum supported API version is {API_VERSION}"
            )
        if wanted < _version_tuple(MIN_API_VERSION):
            return error_response(
                400,
                f"client version {version} is too old. Minimum supported API version is {MIN_API_VERSION}, "
                "please upgrade your client to a newer version",
            )
    return await handler(request)


def make_app(engine: object) -> web.Application:
    from pyengine.api import (
        build,
        container_files,
        containers,
        distribution,
        images,
        networks,
        resources,
        system,
        system_usage,
        volumes,
    )
    from pyengine.api import exec as exec_routes

    app = web.Application(middlewares=[docker_middleware, version_middleware], client_max_size=0)
    app[ENGINE_KEY] = engine
    app.on_response_prepare.append(_on_prepare)
    system.add_routes(app.router)
    containers.add_routes(app.router)
    images.add_routes(app.router)
    networks.add_routes(app.router)
    volumes.add_routes(app.router)
    build.add_routes(app.router)
    container_files.add_routes(app.router)
    exec_routes.add_routes(app.router)
    resources.add_routes(app.router)
    distribution.add_routes(app.router)
    system_usage.add_routes(app.router)
    return app
