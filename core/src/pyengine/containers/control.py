"""What the daemon does with a running container's cgroup: pause, unpause, update, stats, top, and
releasing it after the exit (reading the OOM counter first).

Functions take the :class:`~pyengine.containers.service.ContainerService` and a container record;
kernel work runs off the event loop.
"""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
from typing import Any

from pyengine.containers import resources
from pyengine.errors import Conflict, InvalidArgument, StartFailed
from pyengine.model.base import ZERO_TIME, now_rfc3339
from pyengine.model.container import Container, ContainerStatus
from pyengine.runtime import cgroups

log = logging.getLogger(__name__)


def cgroup_path(container: Container) -> str:
    return cgroups.container_path(container.Id)


INIT_PATH = "/sbin/docker-init"
#: Where --init finds its reaping PID 1: Debian's static tini first (it needs no libraries from the
#: image), then a docker-init of an installed Docker.
INIT_CANDIDATES = ("/usr/bin/tini-static", "/usr/bin/docker-init", "/usr/libexec/docker/docker-init")


def find_init_binary() -> str | None:
    for candidate in INIT_CANDIDATES:
        if os.access(candidate, os.X_OK):
            return candidate
    return None


def add_to_bundle(bundle: dict[str, Any], container: Container) -> None:
    """Put the container's cgroup (path and resources) into its OCI config.json, and with --init,
    a static tini bound read-only at /sbin/docker-init in front of the command, as Docker does."""
    linux = bundle.setdefault("linux", {})
    linux["cgroupsPath"] = cgroup_path(container)
    linux["resources"] = resources.oci_resources(container.HostConfig)
    if container.HostConfig.Init:
        binary = find_init_binary()
        if binary is None:
            raise StartFailed(
                "--init needs a static init binary: install Debian's tini package (/usr/bin/tini-static)"
            )
        bundle.setdefault("mounts", []).append(
            {"destination": INIT_PATH, "type": "bind", "source": binary, "options": ["bind", "ro", "nosuid"]}
        )
        bundle["process"]["args"] = [INIT_PATH, "--", *bundle["process"]["args"]]


def release_cgroup(container: Container) -> bool:
    """After the exit: whether the OOM killer struck in the cgroup; then remove the cgroup."""
    path = cgroup_path(container)
    try:
        if not cgroups.exists(path):
            return False
        oom = cgroups.oom_kills(path) > 0
        cgroups.remove(path)
        return oom
    except OSError as exc:
        log.warning("could not remove the cgroup of %s: %s", container.Id, exc)
        return False


def _require_running(container: Container) -> None:
    if container.State.Status == ContainerStatus.RESTARTING:
        raise Conflict(f"Container {container.Id} is restarting, wait until the container is running")
    if not container.State.running:
        raise Conflict(f"Container {container.Id} is not running")


# ---- pause -----------------------------------------------------------------------------------------
async def pause(service: Any, container: Container) -> None:
    async with service._locks[container.Id]:
        _require_running(container)
        if container.State.Status == ContainerStatus.PAUSED:
            raise Conflict(f"Container {container.Id} is already paused")
        await asyncio.to_thread(cgroups.freeze, cgroup_path(container))
        container.State.move_to(ContainerStatus.PAUSED)
        service.save(container)
    service.hooks.call("pyengine_container_post_event", container=container, action="pause", attributes={})


async def unpause(service: Any, container: Container) -> None:
    async with service._locks[container.Id]:
        if container.State.Status != ContainerStatus.PAUSED:
            raise Conflict(f"Container {container.Id} is not paused")
        await asyncio.to_thread(cgroups.thaw, cgroup_path(container))
        container.State.move_to(ContainerStatus.RUNNING)
        service.save(container)
    service.hooks.call("pyengine_container_post_event", container=container, action="unpause", attributes={})


async def thaw_for_exit(service: Any, container: Container) -> None:
    """A paused container that is being stopped or killed must run again to die."""
    if container.State.Status == ContainerStatus.PAUSED:
        try:
            await asyncio.to_thread(cgroups.thaw, cgroup_path(container))
        except OSError as exc:
            log.warning("could not thaw %s: %s", container.Id, exc)
        if container.State.Status == ContainerStatus.PAUSED:  # the exit may have been recorded meanwhile
            container.State.move_to(ContainerStatus.RUNNING)
            service.save(container)


# ---- update ----------------------------------------------------------------------------------------
async def update(service: Any, container: Container, body: dict[str, Any]) -> list[str]:
    """``POST /containers/{id}/update``: new limits in the record, and in the cgroup when running."""
    if not isinstance(body, dict):
        raise InvalidArgument("invalid JSON: expected an object")
    async with service._locks[container.Id]:
        updated = resources.apply_update(container.HostConfig, body)
        warnings: list[str] = []
        if container.State.Status in (ContainerStatus.RUNNING, ContainerStatus.PAUSED):
            new = resources.oci_resources(updated, with_devices=False)
            old_pids = container.HostConfig.PidsLimit
            if updated.PidsLimit is None and old_pids is not None:
                new["pids"] = {"limit": -1}
            try:
                warnings = await asyncio.to_thread(cgroups.update, cgroup_path(container), new)
            except OSError as exc:
                raise InvalidArgument(
                    f"Cannot update container {container.Id}: {exc.strerror or exc}"
                ) from None
        container.HostConfig = updated
        service.save(container)
    service.hooks.call("pyengine_container_post_event", container=container, action="update", attributes={})
    return warnings


# ---- stats -----------------------------------------------------------------------------------------
def _zero_stats() -> dict[str, Any]:
    return {
        "cpu_stats": {
            "cpu_usage": {"total_usage": 0, "usage_in_kernelmode": 0, "usage_in_usermode": 0},
            "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0},
        },
        "memory_stats": {},
        "pids_stats": {},
        "blkio_stats": {
            key: None
            for key in (
                "io_service_bytes_recursive",
                "io_serviced_recursive",
                "io_queue_recursive",
                "io_service_time_recursive",
                "io_wait_time_recursive",
                "io_merged_recursive",
                "io_time_recursive",
                "sectors_recursive",
            )
        },
    }


def _networks(pid: int) -> dict[str, dict[str, int]]:
    """Per-interface counters of the container's network namespace (loopback left out, as Docker)."""
    out = {}
    try:
        with open(f"/proc/{pid}/net/dev") as file:
            lines = file.read().splitlines()[2:]
    except OSError:
        return {}
    for line in lines:
        name, _, counters = line.partition(":")
        name = name.strip()
        if name == "lo":
            continue
        values = [int(v) for v in counters.split()]
        out[name] = {
            "rx_bytes": values[0],
            "rx_packets": values[1],
            "rx_errors": values[2],
            "rx_dropped": values[3],
            "tx_bytes": values[8],
            "tx_packets": values[9],
            "tx_errors": values[10],
            "tx_dropped": values[11],
        }
    return out


def sample(container: Container) -> dict[str, Any]:
    """One reading of the container's counters (zeros when it does not run)."""
    running = container.State.Status in (ContainerStatus.RUNNING, ContainerStatus.PAUSED)
    path = cgroup_path(container)
    counters = cgroups.raw_stats(path) if running and cgroups.exists(path) else _zero_stats()
    reading = {"read": now_rfc3339() if running else ZERO_TIME, **counters}
    if running and container.State.Pid:
        networks = _networks(container.State.Pid)
        if networks:
            reading["networks"] = networks
    return reading


def stats_json(container: Container, current: dict[str, Any], previous: dict[str, Any] | None) -> dict:
    """Docker's ContainerStats shape: this reading, and the previous one as pre*."""
    previous = previous or _zero_stats() | {"read": ZERO_TIME}
    doc = {
        "read": current["read"],
        "preread": previous["read"],
        "pids_stats": current["pids_stats"],
        "blkio_stats": current["blkio_stats"],
        "num_procs": 0,
        "storage_stats": {},
        "cpu_stats": current["cpu_stats"],
        "precpu_stats": previous["cpu_stats"],
        "memory_stats": current["memory_stats"],
        "name": "/" + container.Name,
        "id": container.Id,
    }
    if "networks" in current:
        doc["networks"] = current["networks"]
    return doc


# ---- top -------------------------------------------------------------------------------------------
def top(container: Container, ps_args: str = "") -> dict[str, Any]:
    """``ps`` on the host, filtered to the container's processes (Docker does exactly this)."""
    _require_running(container)
    pids = set(cgroups.pids(cgroup_path(container)))
    args = ps_args.split() if ps_args else ["-ef"]
    try:
        result = subprocess.run(["ps", *args], capture_output=True, text=True, timeout=30, check=False)
    except OSError as exc:
        raise InvalidArgument(f"cannot run ps: {exc}") from None
    if result.returncode != 0:
        raise InvalidArgument(
            f"Error running ps: {result.stderr.strip() or 'exit status ' + str(result.returncode)}"
        )
    lines = result.stdout.splitlines()
    if not lines:
        raise InvalidArgument("ps printed nothing")
    titles = lines[0].split()
    if "PID" not in titles:
        raise InvalidArgument(f"Couldn't find PID field in ps output (ps {' '.join(args)})")
    column = titles.index("PID")
    processes = []
    for line in lines[1:]:
        fields = line.split(None, len(titles) - 1)
        if len(fields) > column and fields[column].isdigit() and int(fields[column]) in pids:
            processes.append(fields)
    return {"Titles": titles, "Processes": processes}


def host_pid_alive(pid: int) -> bool:
    return pid > 0 and os.path.exists(f"/proc/{pid}")
