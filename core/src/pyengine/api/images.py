"""Image routes: list, inspect, create (import; pull is in api/distribution.py), tag, remove,
history."""

from __future__ import annotations

import asyncio
import json
import tempfile

from aiohttp import web

from pyengine.api.app import add_route
from pyengine.api.common import engine, json_response, off_loop, query_bool
from pyengine.containers.views import parse_filters
from pyengine.errors import InvalidArgument
from pyengine.images import reference
from pyengine.images.lineage import remove_image


def _name(request: web.Request) -> str:
    return request.match_info["name"]


async def list_images(request: web.Request) -> web.Response:
    eng = engine(request)
    filters = parse_filters(request.query.get("filters"))
    images = await off_loop(eng.images.list)
    parents = set() if query_bool(request, "all") else {i.parent for i in images if i.parent}
    items = []
    for image in sorted(images, key=lambda i: i.created, reverse=True):
        if image.id in parents and not image.tags:
            continue  # an intermediate image of a build, as Docker hides them
        if not _image_matches(image, filters):
            continue
        items.append(image.summary_json())
    return json_response(items)


def _image_matches(image, filters: dict[str, list[str]]) -> bool:
    for key, values in filters.items():
        if not values:
            continue
        if key == "dangling":
            dangling = not image.tags
            if (values[0].lower() in ("true", "1")) != dangling:
                return False
        elif key == "reference":
            import fnmatch

            names = [reference.familiar(t) for t in image.tags]
            if not any(
                fnmatch.fnmatch(n, v) or fnmatch.fnmatch(n.rsplit(":", 1)[0], v)
                for n in names
                for v in values
            ):
                return False
        elif key == "label":
            labels = image.config.config.Labels or {}
            for wanted in values:
                k, sep, v = wanted.partition("=")
                if k not in labels or (sep and labels[k] != v):
                    return False
        elif key not in ("before", "since"):
            raise InvalidArgument(f"invalid filter '{key}'")
    return True


async def inspect(request: web.Request) -> web.Response:
    eng = engine(request)
    image = await off_loop(eng.images.resolve, _name(request))
    return json_response(image.inspect_json(eng.storage_name))


async def history(request: web.Request) -> web.Response:
    return json_response(await off_loop(engine(request).images.history, _name(request)))


async def tag(request: web.Request) -> web.Response:
    repo = request.query.get("repo", "")
    if not repo:
        raise InvalidArgument("repository name must have at least one component")
    await off_loop(engine(request).images.tag, _name(request), repo, request.query.get("tag", ""))
    return web.Response(status=201)


async def remove(request: web.Request) -> web.Response:
    eng = engine(request)
    users = eng.containers.images_in_use()
    report = await off_loop(
        remove_image,
        eng.images,
        _name(request),
        force=query_bool(request, "force"),
        users=users,
        prune=not query_bool(request, "noprune"),
    )
    return json_response(report)


async def create(request: web.Request) -> web.StreamResponse:
    """``POST /images/create``: ``fromSrc=-`` imports the request body; ``fromImage`` pulls."""
    eng = engine(request)
    if request.query.get("fromImage"):
        from pyengine.api import distribution

        return await distribution.pull(request)
    source = request.query.get("fromSrc")
    if source != "-":
        raise InvalidArgument(
            "fromSrc must be '-' (the image tarball in the request body)"
            if source
            else "one of fromImage or fromSrc is required"
        )
    repo, tag_ = request.query.get("repo", ""), request.query.get("tag", "")
    if repo:
        reference.parse(f"{repo}:{tag_}" if tag_ else repo)  # 400 before reading a byte
    changes = request.query.getall("changes", [])
    message = request.query.get("message", "")
    with tempfile.TemporaryFile(dir=eng.blobs.root) as spool:
        while chunk := await request.content.read(1 << 20):
            await asyncio.to_thread(spool.write, chunk)
        spool.seek(0)
        image = await off_loop(
            eng.images.import_tarball, spool, repo=repo, tag=tag_, changes=changes, message=message
        )
    response = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
    await response.prepare(request)
    await response.write(json.dumps({"status": image.id}).encode() + b"\r\n")
    await response.write_eof()
    return response


def add_routes(router: web.UrlDispatcher) -> None:
    add_route(router, "GET", "/images/json", list_images)
    add_route(router, "POST", "/images/create", create)
    add_route(router, "GET", "/images/{name:.+}/json", inspect)
    add_route(router, "GET", "/images/{name:.+}/history", history)
    add_route(router, "POST", "/images/{name:.+}/tag", tag)
    add_route(router, "DELETE", "/images/{name:.+}", remove)
