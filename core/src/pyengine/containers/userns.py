"""A container's user namespace under ``--userns-remap``, Docker's way.

With remapping on, every container gets a user namespace with the daemon's id map (its root is the
first subordinate id of the remap user) unless it is created with ``--userns=host``
(``HostConfig.UsernsMode``). The root file system is an idmapped mount from the storage driver (the
IdMappedMount capability); named and anonymous volumes get their data directory owned by the
container's root, as Docker's do; bind mounts of host paths stay as they are.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pyengine.drivers.storage import IdMappedMount, StorageDriver
from pyengine.errors import InvalidArgument, NotSupported
from pyengine.runtime.idmap import IdMap


def mode_of(host_config: Any) -> str:
    return getattr(host_config, "UsernsMode", None) or ""


def check_create(remap: IdMap | None, host_config: Any, driver: StorageDriver) -> None:
    """At create: a bad ``UsernsMode`` or a combination Docker refuses is a 400; a driver that cannot
    idmap is NotSupported. Nothing is created before this runs."""
    mode = mode_of(host_config)
    if mode not in ("", "host"):
        raise InvalidArgument(f'--userns: invalid USER mode "{mode}": only "host" is supported')
    if remap is None or mode == "host":
        return
    if host_config.Privileged:
        raise InvalidArgument(
            "privileged mode is incompatible with user namespaces.  You must run the container in the "
            "host namespace when running privileged mode"
        )
    if host_config.NetworkMode == "host":
        raise InvalidArgument("cannot share the host's network namespace when user namespaces are enabled")
    if (getattr(host_config, "PidMode", None) or "") == "host":
        raise InvalidArgument("cannot share the host PID namespace when user namespaces are enabled")
    if not isinstance(driver, IdMappedMount):
        raise NotSupported(
            f"the {driver.name} storage driver cannot mount a root file system for a user namespace "
            "(it has no idmapped mounts); run the daemon without --userns-remap, use another storage "
            "driver (overlay, vfs, btrfs), or create the container with --userns=host"
        )


def container_idmap(remap: IdMap | None, host_config: Any) -> IdMap | None:
    """The id map the container runs with (None: the host's user namespace)."""
    if remap is None or mode_of(host_config) == "host":
        return None
    return remap


def mount_root(driver: StorageDriver, container_id: str, idmap: IdMap | None) -> Path:
    """The container's root file system: idmapped for a user namespace, else a plain mount."""
    if idmap is None:
        return driver.mount(container_id)
    if not isinstance(driver, IdMappedMount):  # the daemon's setting changed since create
        raise NotSupported(
            f"the {driver.name} storage driver cannot mount a root file system for a user namespace; "
            "recreate the container with --userns=host or run the daemon without --userns-remap"
        )
    return driver.mount_idmapped(container_id, idmap)


def add_to_spec(spec: dict[str, Any], idmap: IdMap | None) -> None:
    """A new user namespace with the map in the runtime spec (nothing without a map)."""
    if idmap is None:
        return
    linux = spec.setdefault("linux", {})
    linux["namespaces"] = [ns for ns in linux.get("namespaces", []) if ns.get("type") != "user"]
    linux["namespaces"].insert(0, {"type": "user"})
    linux.update(idmap.oci())


def own_container_files(paths: list[str], idmap: IdMap | None) -> None:
    """Give the container's root its /etc/hosts, /etc/hostname and /etc/resolv.conf (as Docker
    does: container root may edit them)."""
    if idmap is None:
        return
    for path in paths:
        try:
            if os.lstat(path).st_uid == 0:
                os.lchown(path, idmap.root_uid, idmap.root_gid)
        except OSError:
            continue


def own_volume_data(mount_points: list[Any], idmap: IdMap | None) -> None:
    """Give the container's root the data directory of each local volume that the host's root
    still owns (a new volume), and shift the owners of what was copied into it from the image."""
    if idmap is None:
        return
    for point in mount_points:
        if point.Type != "volume" or (getattr(point, "Driver", "") or "local") != "local" or not point.Source:
            continue
        try:
            info = os.lstat(point.Source)
        except OSError:
            continue
        if (info.st_uid, info.st_gid) != (0, 0):
            continue  # already given (or a volume someone chowned on purpose)
        for directory, subdirectories, files in os.walk(point.Source):
            for name in [*subdirectories, *files]:
                _shift(os.path.join(directory, name), idmap)
        _shift(point.Source, idmap)


def _shift(path: str, idmap: IdMap) -> None:
    info = os.lstat(path)
    try:
        uid, gid = idmap.host_uid(info.st_uid), idmap.host_gid(info.st_gid)
    except ValueError:
        return  # an id the map cannot express: leave it (it shows as nobody inside)
    os.lchown(path, uid, gid)
    if not os.path.islink(path) and info.st_mode & 0o6000:
        os.chmod(path, info.st_mode & 0o7777)  # chown clears set-id bits: put them back
