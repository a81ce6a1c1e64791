"""Clean-up and disk usage routes: ``POST /containers/prune``, ``GET /system/df``,
``POST /build/prune`` (Docker's shapes; images/networks/volumes prune live with their areas)."""

from __future__ import annotations

import os
from collections import Counter
from typing import Any

from aiohttp import web

from pyengine.api.app import add_route
from pyengine.api.common import engine, json_response, off_loop, query_bool, query_int
from pyengine.build.prune import cache_entries, layer_sizes, prune_build_cache
from pyengine.containers import views
from pyengine.containers.prune import prune_containers, writable_layer_size
from pyengine.errors import InvalidArgument
from pyengine.images.image import chain_ids
from pyengine.images.lineage import has_children

_DF_TYPES = ("container", "image", "volume", "build-cache")


async def containers_prune(request: web.Request) -> web.Response:
    """``POST /containers/prune?filters=``."""
    filters = views.parse_filters(request.query.get("filters"))
    return json_response(await prune_containers(engine(request).containers, filters))


async def build_prune(request: web.Request) -> web.Response:
    """``POST /build/prune?all=&keep-storage=&filters=``."""
    eng = engine(request)
    filters = views.parse_filters(request.query.get("filters"))
    keep = query_int(request, "keep-storage", 0) or 0
    if keep < 0:
        raise InvalidArgument("invalid value for keep-storage: must not be negative")
    users = eng.containers.images_in_use()
    report = await off_loop(
        prune_build_cache,
        eng.images,
        users,
        all_=query_bool(request, "all"),
        keep_storage=keep,
        filters=filters,
    )
    return json_response(report)


def _tree_size(path: str) -> int:
    """Bytes of the regular files under ``path`` (each inode once), as ``du --apparent-size``."""
    total, seen = 0, set()
    for directory, _dirs, files in os.walk(path):
        for name in files:
            try:
                info = os.lstat(os.path.join(directory, name))
            except OSError:
                continue
            if (info.st_dev, info.st_ino) not in seen:
                seen.add((info.st_dev, info.st_ino))
                total += info.st_size
    return total


def _images_usage(eng: Any, users: dict[str, list[str]]) -> tuple[int, list[dict[str, Any]]]:
    """(LayersSize, Images) for the images ``docker images`` lists (hidden build steps are cache)."""
    every = eng.images.list()
    listed = [i for i in every if i.tags or i.repo_digests or not has_children(eng.images.db, i.id)]
    sizes = layer_sizes(every)
    holders = Counter(chain for i in listed for chain in set(chain_ids(i.config.rootfs.diff_ids)))
    items = []
    for image in listed:
        doc = image.summary_json()
        chains = set(chain_ids(image.config.rootfs.diff_ids))
        # the same measure as LayersSize (layer blobs), so that SharedSize and the sums agree
        doc["Size"] = doc["VirtualSize"] = sum(sizes.get(c, 0) for c in chains)
        doc["SharedSize"] = sum(sizes.get(c, 0) for c in chains if holders[c] > 1)
        doc["Containers"] = len(users.get(image.id, []))
        items.append(doc)
    return sum(sizes[chain] for chain in holders), items


def _containers_usage(eng: Any) -> list[dict[str, Any]]:
    sizes = layer_sizes(eng.images.list())
    items = []
    for container in sorted(eng.containers.all(), key=lambda c: c.Created, reverse=True):
        doc = views.summary_json(container)
        doc["SizeRw"] = writable_layer_size(eng.containers.driver, container.Id)
        try:
            image = eng.images.resolve(container.Image)
            image_size = sum(sizes.get(c, 0) for c in set(chain_ids(image.config.rootfs.diff_ids)))
        except Exception:  # noqa: BLE001 - an image removed under a container counts as empty
            image_size = 0
        doc["SizeRootFs"] = doc["SizeRw"] + image_size
        items.append(doc)
    return items


def _volumes_usage(eng: Any) -> list[dict[str, Any]]:
    items = []
    for volume in eng.volumes.list():
        doc = volume.model_dump(mode="json")
        if doc.get("Status") is None:
            doc.pop("Status", None)
        size = _tree_size(volume.Mountpoint) if volume.Driver == "local" and volume.Mountpoint else -1
        doc["UsageData"] = {"Size": size, "RefCount": len(eng.volumes.users_of(volume.Name))}
        items.append(doc)
    return items


def disk_usage(eng: Any, kinds: set[str]) -> dict[str, Any]:
    """Docker's ``SystemDataUsageResponse`` for the ``kinds`` asked (all when empty)."""
    kinds = kinds or set(_DF_TYPES)
    users = eng.containers.images_in_use()
    doc: dict[str, Any] = {}
    if "image" in kinds:
        doc["LayersSize"], doc["Images"] = _images_usage(eng, users)
    if "container" in kinds:
        doc["Containers"] = _containers_usage(eng)
    if "volume" in kinds:
        doc["Volumes"] = _volumes_usage(eng)
    if "build-cache" in kinds:
        doc["BuildCache"] = cache_entries(eng.images, users)
    return doc


async def system_df(request: web.Request) -> web.Response:
    """``GET /system/df[?type=container|image|volume|build-cache]``."""
    kinds = set(request.query.getall("type", []))
    for kind in kinds:
        if kind not in _DF_TYPES:
            raise InvalidArgument(f"unknown object type: {kind}")
    return json_response(await off_loop(disk_usage, engine(request), kinds))


def add_routes(router: web.UrlDispatcher) -> None:
    add_route(router, "POST", "/containers/prune", containers_prune)
    add_route(router, "GET", "/system/df", system_df)
    add_route(router, "POST", "/build/prune", build_prune)
