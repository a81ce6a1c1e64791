"""The classic builder's cache as ``docker builder prune`` and ``docker system df`` see it.

The cache is the ``build_cache`` index (:mod:`pyengine.build.cache`) and the hidden intermediate
images its rows name. An entry is *kept alive* while its image is, or leads to, an image a user
holds: one with a tag or a digest reference, one a container uses, or one no build step recorded
(an imported or pulled image). ``prune`` removes the images of the other entries (leaves first,
each only once nothing is built on it) and their rows; ``all`` also forgets every other row, so no
later build hits the cache, while images that still hold up a kept image stay. Sizes are the bytes
of the layer blobs no remaining image shares, measured before and after. A build's untagged result that
nothing holds is such an entry too: ``builder prune`` removes it with its steps, while ``system df``
counts it once, as a (dangling) image. Plain synchronous functions.
"""

from __future__ import annotations

import logging
from typing import Any

from pyengine.build.cache import SCRATCH, BuildCache
from pyengine.errors import EngineError, InvalidArgument
from pyengine.filters import label_matches, until_timestamp
from pyengine.images.image import Image, chain_ids
from pyengine.images.lineage import has_children
from pyengine.images.store import ImageStore
from pyengine.model.base import parse_rfc3339

log = logging.getLogger(__name__)


def layer_sizes(images: list[Image]) -> dict[str, int]:
    """chain ID -> the bytes of the layer's blob (its tar; as pulled, for a pulled layer).

    One measure for every layer: the store's image sizes mix unpacked bytes (import) with blob
    sums (build steps, commits of empty layers), so differences between them are not a layer's size.
    """
    sizes: dict[str, int] = {}
    for image in images:
        for chain, layer in zip(chain_ids(image.config.rootfs.diff_ids), image.layers, strict=False):
            # the same layer may be kept as a tar by one image and gzipped by another: the tar counts
            sizes[chain] = max(sizes.get(chain, 0), int(layer.get("size", 0)))
    return sizes


def _rows(cache: BuildCache) -> list[tuple[str, str, str]]:
    return list(cache.db.query("SELECT parent, key, image_id FROM build_cache"))


def _kept_alive(images: dict[str, Image], cached: set[str], users: dict[str, list[str]]) -> set[str]:
    """Images a user holds and everything they were built from."""
    roots = [i for i in images.values() if i.tags or i.repo_digests or users.get(i.id) or i.id not in cached]
    alive: set[str] = set()
    for image in roots:
        current: Image | None = image
        while current is not None and current.id not in alive:
            alive.add(current.id)
            current = images.get(current.parent) if current.parent else None
    return alive


def _own_chains(image: Image, images: dict[str, Image]) -> list[str]:
    """The chain IDs of the layers a build step added to its parent's."""
    parent = images.get(image.parent) if image.parent else None
    below = len(parent.config.rootfs.diff_ids) if parent else 0
    return chain_ids(image.config.rootfs.diff_ids)[below:]


def _own_size(image: Image, images: dict[str, Image], sizes: dict[str, int]) -> int:
    """The bytes of the layers a build step added to its parent's."""
    return sum(sizes.get(chain, 0) for chain in _own_chains(image, images))


def cache_entries(store: ImageStore, users: dict[str, list[str]]) -> list[dict[str, Any]]:
    """Docker's ``BuildCache`` items of ``GET /system/df``: one per hidden intermediate image (one a
    build step made and another step built on), the same images ``docker images`` leaves out."""
    cache = BuildCache(store.db)
    images = {i.id: i for i in store.list()}
    cached = {image_id for _p, _k, image_id in _rows(cache) if image_id in images}
    # chains of the images ``docker images`` lists: a step whose layers are among them is Shared,
    # its bytes counted with the images (Docker's CLI sums only the cache that is not shared)
    sizes = layer_sizes(list(images.values()))
    listed_chains = {
        chain
        for i in images.values()
        if i.tags or i.repo_digests or not has_children(store.db, i.id)
        for chain in chain_ids(i.config.rootfs.diff_ids)
    }
    entries = []
    for image_id in sorted(cached):
        image = images[image_id]
        if image.tags or image.repo_digests or not has_children(store.db, image_id):
            continue  # a build's result (tagged or dangling) is an image, counted with the images
        history = image.config.history or []
        entries.append(
            {
                "ID": image_id.removeprefix("sha256:")[:25],
                "Parent": image.parent,
                "Parents": [image.parent] if image.parent else None,
                "Type": "regular",
                "Description": (history[-1].created_by if history else "") or "",
                "InUse": bool(users.get(image_id)),
                "Shared": set(_own_chains(image, images)) <= listed_chains,
                "Size": _own_size(image, images, sizes),
                "CreatedAt": image.created,
                "LastUsedAt": None,
                "UsageCount": 0,
            }
        )
    return entries


def _check_filters(filters: dict[str, list[str]]) -> None:
    for key in filters:
        if key not in ("until", "id", "label", "label!"):
            raise InvalidArgument(f"invalid filter '{key}'")


def _selected(image: Image, filters: dict[str, list[str]]) -> bool:
    created = parse_rfc3339(image.created)
    if filters.get("until") and not all(created < until_timestamp(v) for v in filters["until"]):
        return False
    ids = filters.get("id")
    if ids and not any(image.id.removeprefix("sha256:").startswith(v.removeprefix("sha256:")) for v in ids):
        return False
    labels = image.config.config.Labels or {}
    if not all(label_matches(labels, v) for v in filters.get("label", [])):
        return False
    return not any(label_matches(labels, v) for v in filters.get("label!", []))


def prune_build_cache(
    store: ImageStore,
    users: dict[str, list[str]],
    *,
    all_: bool = False,
    keep_storage: int = 0,
    filters: dict[str, list[str]] | None = None,
) -> dict[str, Any]:
    """``POST /build/prune``: Docker's ``{"CachesDeleted": [...], "SpaceReclaimed": n}``.

    ``keep_storage`` keeps the newest prunable entries whose own bytes fit in it.
    """
    filters = dict(filters or {})
    _check_filters(filters)
    cache = BuildCache(store.db)
    images = {i.id: i for i in store.list()}
    before = layer_sizes(list(images.values()))
    rows = _rows(cache)
    deleted: list[str] = []
    # rows that can never hit again (their image or their parent image is gone) hold no bytes and
    # are no entry anyone sees: they go whatever the filters, unreported
    stale = [
        (parent, key, image_id)
        for parent, key, image_id in rows
        if image_id not in images or (parent != SCRATCH and parent not in images)
    ]
    cached = {image_id for _p, _k, image_id in rows if image_id in images}
    alive = _kept_alive(images, cached, users)
    prunable = sorted(
        (images[i] for i in cached - alive if _selected(images[i], filters)),
        key=lambda image: image.created,
        reverse=True,
    )
    if keep_storage > 0:
        kept_bytes = 0
        while prunable and kept_bytes + _own_size(prunable[0], images, before) <= keep_storage:
            kept_bytes += _own_size(prunable.pop(0), images, before)
    doomed = {image.id for image in prunable}
    progress = True
    while doomed and progress:  # leaves first: an image goes once nothing is built on it
        progress = False
        for image_id in sorted(doomed):
            if has_children(store.db, image_id):
                continue
            doomed.discard(image_id)
            progress = True
            try:
                store.remove(image_id, force=False, users=users)
            except EngineError as exc:
                log.info("build prune kept %s: %s", image_id, exc)
                continue
            deleted.append(image_id)
    forget = set(deleted)
    if all_:
        forget |= {i for i in cached if _selected(images[i], filters)}
    with store.db.transaction() as cur:
        for parent, key, _image_id in stale:
            cur.execute("DELETE FROM build_cache WHERE parent=? AND key=?", (parent, key))
        for image_id in forget:
            cur.execute("DELETE FROM build_cache WHERE image_id=?", (image_id,))
    after = layer_sizes(store.list())
    reclaimed = sum(size for chain, size in before.items() if chain not in after)
    return {
        "CachesDeleted": [i.removeprefix("sha256:")[:25] for i in sorted(forget)] or None,
        "SpaceReclaimed": reclaimed,
    }
