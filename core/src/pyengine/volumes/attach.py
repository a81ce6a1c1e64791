"""A container's mounts through its life: planned at create, mounted at start, released at exit,
anonymous volumes removed with the container. Called by the container service
(:mod:`pyengine.containers.service`); plain synchronous functions run off the event loop."""

from __future__ import annotations

import logging
from typing import Any

from pyengine.errors import EngineError
from pyengine.model.container import Container, ContainerCreateRequest
from pyengine.volumes import mounts as planning
from pyengine.volumes.copyup import copy_image_data
from pyengine.volumes.service import VolumeService

log = logging.getLogger(__name__)


def plan(
    volumes: VolumeService | None,
    request: ContainerCreateRequest,
    image_volumes: dict[str, Any] | None,
    container_id: str = "",
) -> tuple[list, list[str]]:
    """Validate the request's mounts and create what they need; (mount points, volumes created).

    The volumes count as used by ``container_id`` from now on: call :func:`settle` once the
    container is recorded, or :func:`abandon` if its creation fails."""
    hc = request.HostConfig
    points, create_options = planning.plan_mounts(
        hc.Binds, hc.Mounts, hc.Tmpfs, request.Volumes, image_volumes, hc.VolumeDriver
    )
    if volumes is None:
        return [p for p in points if p.Type != "volume"], []
    created = volumes.prepare(points, create_options, container_id)
    return points, created


def settle(volumes: VolumeService | None, container_id: str) -> None:
    if volumes is not None:
        volumes.settle(container_id)


def abandon(volumes: VolumeService | None, container_id: str, created: list[str]) -> None:
    """The container was not created: forget its claim and remove the volumes made for it."""
    if volumes is not None:
        volumes.rollback(created, container_id)


def mount_all(volumes: VolumeService | None, container: Container, rootfs: str) -> list[dict[str, Any]]:
    """Mount the container's volumes (copying the image's content into new empty ones) and return
    the runtime spec's entries for all its mounts, parents first. On failure nothing stays mounted."""
    entries: list[dict[str, Any]] = []
    mounted = []
    try:
        for point in planning.mount_order(container.MountPoints):
            source = point.Source
            if point.Type == "volume" and volumes is not None:
                path = volumes.mount(point, container.Id)
                mounted.append(point)
                source = point.Source = str(path)
                if point.CopyImageData:
                    copy_image_data(rootfs, point.Destination, path)
                    point.CopyImageData = False
            entries.append(planning.spec_mount(point, source))
    except BaseException:
        for point in mounted:
            volumes.unmount(point, container.Id)  # type: ignore[union-attr]
        raise
    return entries


def unmount_all(volumes: VolumeService | None, container: Container) -> None:
    """Release the container's volumes after it stopped (errors are logged: the exit is recorded)."""
    if volumes is None:
        return
    for point in container.MountPoints:
        if point.Type == "volume":
            volumes.unmount(point, container.Id)


def retake_all(volumes: VolumeService | None, container: Container) -> None:
    """After a daemon restart: take the mounts of a container that kept running again."""
    if volumes is None:
        return
    for point in container.MountPoints:
        if point.Type == "volume":
            try:
                volumes.mount(point, container.Id)
            except EngineError as exc:
                log.warning("volume %s of running container %s: %s", point.Name, container.Id, exc)


def remove_anonymous(volumes: VolumeService | None, container: Container) -> None:
    """``docker rm -v`` and ``--rm``: delete the container's anonymous volumes (named ones stay)."""
    if volumes is None:
        return
    for point in container.MountPoints:
        if point.Type == "volume" and point.Anonymous:
            try:
                volumes.remove(point.Name, force=True)
            except EngineError as exc:  # still used by another container (--volumes-from)
                log.info("anonymous volume %s kept: %s", point.Name, exc)
