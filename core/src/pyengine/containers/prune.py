"""``docker container prune`` and the container half of ``docker system df``: which containers are
stopped, and how many bytes a container's writable layer holds.

The size of a writable layer is measured as Docker does it (ChangesSize): the layer's changes
against its image, each added or changed non-directory counted once by inode at its ``st_size``.
No storage driver here reports layer sizes itself, so this is the one measure for all of them.
Plain synchronous functions except :func:`prune_containers`; call the others off the event loop.
"""

from __future__ import annotations

import logging
import os
import stat
from typing import Any

from pyengine.drivers.storage import StorageDriver
from pyengine.errors import EngineError, InvalidArgument
from pyengine.filters import label_matches, until_timestamp
from pyengine.model.base import parse_rfc3339
from pyengine.model.container import Container, ContainerStatus
from pyengine.storage.naive_diff import layer_changes

log = logging.getLogger(__name__)

#: the states ``container prune`` removes (Docker: not running, not paused, not restarting)
STOPPED = {ContainerStatus.CREATED, ContainerStatus.EXITED, ContainerStatus.DEAD}


def writable_layer_size(driver: StorageDriver, layer_id: str) -> int:
    """Bytes of the files the layer added or changed against its parent (0 when it cannot be read)."""
    if not driver.exists(layer_id):
        return 0
    try:
        changes = layer_changes(driver, layer_id)
        root = driver.mount(layer_id)
    except (EngineError, OSError) as exc:  # e.g. mounted idmapped by a running remapped container
        log.info("cannot measure layer %s: %s", layer_id, exc)
        return 0
    try:
        seen: set[tuple[int, int]] = set()
        total = 0
        for change in changes:
            if change.kind == "D":
                continue
            try:
                info = os.lstat(os.path.join(root, change.path.lstrip("/")))
            except OSError:
                continue
            if stat.S_ISDIR(info.st_mode) or (info.st_dev, info.st_ino) in seen:
                continue
            seen.add((info.st_dev, info.st_ino))
            total += info.st_size
        return total
    finally:
        driver.unmount(layer_id)


def stopped_matching(containers: list[Container], filters: dict[str, list[str]]) -> list[Container]:
    """The stopped containers ``filters`` (``until``, ``label``, ``label!``) select."""
    for key in filters:
        if key not in ("until", "label", "label!"):
            raise InvalidArgument(f"invalid filter '{key}'")
    limits = [until_timestamp(v) for v in filters.get("until", [])]
    chosen = []
    for container in containers:
        if container.State.Status not in STOPPED or container.State.running:
            continue
        if limits and not all(parse_rfc3339(container.Created) < limit for limit in limits):
            continue
        labels = container.Config.Labels or {}
        if not all(label_matches(labels, v) for v in filters.get("label", [])):
            continue
        if any(label_matches(labels, v) for v in filters.get("label!", [])):
            continue
        chosen.append(container)
    return chosen


async def prune_containers(service: Any, filters: dict[str, list[str]]) -> dict[str, Any]:
    """Remove the stopped containers ``filters`` select; Docker's
    ``{"ContainersDeleted": [...], "SpaceReclaimed": n}`` (bytes of their writable layers)."""
    import asyncio

    deleted: list[str] = []
    reclaimed = 0
    for container in stopped_matching(service.all(), filters):
        size = await asyncio.to_thread(writable_layer_size, service.driver, container.Id)
        try:
            await service.remove(container)
        except EngineError as exc:  # one that cannot go (started meanwhile) does not stop the prune
            log.info("prune kept container %s: %s", container.Id, exc)
            continue
        deleted.append(container.Id)
        reclaimed += size
    return {"ContainersDeleted": deleted or None, "SpaceReclaimed": reclaimed}
