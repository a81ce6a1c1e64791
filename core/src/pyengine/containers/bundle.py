"""What a container needs on disk, as plain functions for worker threads: its directory and writable
layer (at create), its mounted root file system, volumes and OCI runtime bundle (at start), and
undoing each. :class:`~pyengine.containers.service.ContainerService` decides when.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any

from pyengine.containers import control, files, security, spec, userns
from pyengine.drivers.storage import StorageDriver
from pyengine.errors import EngineError
from pyengine.model.container import Container
from pyengine.volumes import attach as volume_mounts

log = logging.getLogger(__name__)


def prepare_filesystem(driver: StorageDriver, container: Container, top_layer: str | None) -> None:
    """At create: the container's directory, its writable layer on the image's top layer, and its
    hostname, hosts and resolv.conf files. On failure nothing of it is left."""
    directory = Path(container.BundlePath)
    directory.mkdir(parents=True)
    try:
        driver.create(container.Id, top_layer, writable=True)
        files.write_hostname(directory, container.Config.Hostname)
        files.write_hosts(directory, container.Config.Hostname, extra=container.HostConfig.ExtraHosts)
        hc = container.HostConfig
        files.write_resolv_conf(directory, hc.Dns, hc.DnsSearch, hc.DnsOptions)
    except BaseException:
        release_filesystem(driver, container)
        raise


def release_filesystem(driver: StorageDriver, container: Container) -> None:
    """Undo :func:`prepare_filesystem` (at remove, or a failed create)."""
    if driver.exists(container.Id):
        try:
            driver.remove(container.Id)
        except EngineError:
            log.warning("could not remove the layer of %s", container.Id, exc_info=True)
    shutil.rmtree(container.BundlePath, ignore_errors=True)


def write_bundle(
    driver: StorageDriver,
    volumes: Any,
    userns_remap: Any,
    container: Container,
    network_ns: dict[str, Any] | None,
) -> dict[str, Any]:
    """At start: mount the root file system and the volumes, then write the OCI runtime spec
    (config.json) into the container's directory and return it. On failure all is unmounted."""
    from pyengine.runtime.users import resolve_groups, resolve_user

    idmap = userns.container_idmap(userns_remap, container.HostConfig)
    rootfs = userns.mount_root(driver, container.Id, idmap)
    volumes_mounted = False
    try:
        uid, gid, groups = resolve_user(Path(rootfs), container.Config.User or "")
        hc = container.HostConfig
        console = tuple(hc.ConsoleSize) if hc.ConsoleSize and len(hc.ConsoleSize) == 2 else None
        directory = Path(container.BundlePath)
        extra_mounts = volume_mounts.mount_all(volumes, container, str(rootfs))
        volumes_mounted = True
        userns.own_volume_data(container.MountPoints, idmap)
        userns.own_container_files(
            [container.ResolvConfPath, container.HostnamePath, container.HostsPath], idmap
        )
        bundle = spec.runtime_spec(
            args=[container.Path, *container.Args],
            env=list(container.Config.Env or []),
            cwd=container.Config.WorkingDir or "/",
            uid=uid,
            gid=gid,
            additional_gids=groups,
            rootfs=str(rootfs),
            readonly_rootfs=hc.ReadonlyRootfs,
            hostname=container.Config.Hostname,
            tty=container.Config.Tty,
            console_size=console,  # type: ignore[arg-type]
            files={
                "/etc/resolv.conf": container.ResolvConfPath,
                "/etc/hostname": container.HostnamePath,
                "/etc/hosts": container.HostsPath,
            },
            shm_size=hc.ShmSize,
            privileged=hc.Privileged,
            extra_mounts=extra_mounts,
            network_namespace=network_ns,
        )
        control.add_to_bundle(bundle, container)
        extra_gids = resolve_groups(Path(rootfs), security.check_group_add(getattr(hc, "GroupAdd", None)))
        security.apply_to_spec(bundle, hc, extra_gids)
        userns.add_to_spec(bundle, idmap)
        _write_json_atomically(directory / "config.json", bundle)
        container.RootfsPath = str(rootfs)
        return bundle
    except BaseException:
        if volumes_mounted:
            volume_mounts.unmount_all(volumes, container)
        driver.unmount(container.Id)
        raise


def unmount_rootfs(driver: StorageDriver, volumes: Any, container: Container) -> None:
    """Unmount what :func:`write_bundle` mounted (after an exit, a failed start, at remove)."""
    if container.RootfsPath:
        container.RootfsPath = ""
        volume_mounts.unmount_all(volumes, container)
        try:
            driver.unmount(container.Id)
        except EngineError:
            log.warning("could not unmount the root of %s", container.Id, exc_info=True)


def _write_json_atomically(path: Path, doc: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(doc))
    os.replace(tmp, path)
