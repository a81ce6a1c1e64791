"""Control groups: one per container, v1 or v2, whichever the host runs.

Vocabulary:

- a **cgroup path** is the OCI ``linux.cgroupsPath``, absolute from the root of each hierarchy:
  ``/pyengine/<container id>``. On cgroup v1 it names one directory per controller
  (``/sys/fs/cgroup/memory/pyengine/<id>``, ``/sys/fs/cgroup/pids/pyengine/<id>``...); on v2 one
  directory under the unified root.
- **resources** are the OCI ``linux.resources`` object (``memory``, ``cpu``, ``pids``, ``blockIO``,
  ``devices``), in runc's units: memory.swap is memory+swap, cpu.shares is v1 shares. Device rules
  go to ``devices.allow``/``devices.deny`` on v1 and become an eBPF program attached to the
  container's directory on v2 (:mod:`pyengine.runtime.cgroups.devices_bpf`); an update without
  ``devices`` leaves them as they are.

Flows:

- starting: the runtime calls :func:`create` with the spec's path and resources before it forks the
  container; the container's init opens :func:`procs_files` before pivot_root and writes ``0`` to each
  just before execve, so the first instruction of the user's program already runs limited (and the
  Python setup code before it is charged to the supervisor, not to a 6 MB limit).
- exec (and anything else that must join a running container): :func:`join` with the pid.
- exit: the daemon reads :func:`oom_kills` and then :func:`remove`.

Detection happens once per process (:func:`host`); a v2 host is one whose /sys/fs/cgroup is a cgroup2
mount with ``cgroup.controllers``; a hybrid host (cgroup2 at /sys/fs/cgroup/unified with no
controllers, v1 controllers beside it) is treated as v1.
"""

from __future__ import annotations

import functools
import os

from pyengine.runtime.cgroups.v1 import CgroupV1
from pyengine.runtime.cgroups.v2 import CgroupV2

PARENT = "pyengine"
CGROUP_ROOT = "/sys/fs/cgroup"

Hierarchy = CgroupV1 | CgroupV2


def container_path(container_id: str) -> str:
    """The cgroup path of a container: ``/pyengine/<id>``."""
    return f"/{PARENT}/{container_id}"


def detect(mounts_file: str = "/proc/self/mounts", root: str = CGROUP_ROOT) -> Hierarchy:
    """The cgroup hierarchy this host uses for containers (see the module docstring)."""
    v1_mounts: dict[str, str] = {}
    unified_root = None
    with open(mounts_file) as file:
        for line in file:
            fields = line.split()
            if len(fields) < 4:
                continue
            mountpoint, fstype, options = fields[1].replace("\\040", " "), fields[2], fields[3].split(",")
            if fstype == "cgroup2" and mountpoint == root:
                unified_root = mountpoint
            elif fstype == "cgroup":
                for option in options:
                    if option in CgroupV1.CONTROLLERS:
                        v1_mounts.setdefault(option, mountpoint)
    if unified_root and os.path.exists(os.path.join(unified_root, "cgroup.controllers")):
        return CgroupV2(unified_root)
    return CgroupV1(v1_mounts)


@functools.cache
def host() -> Hierarchy:
    """The detected hierarchy, cached for the life of the process."""
    return detect()


def create(path: str, resources: dict | None) -> list[str]:
    """Create the container's cgroup(s) and apply ``resources``; returns warnings (limits the kernel
    lacks, e.g. blkio weight). Raises OSError when the kernel refuses a value."""
    return host().create(path, resources or {})


def update(path: str, resources: dict) -> list[str]:
    return host().update(path, resources)


def procs_files(path: str) -> list[str]:
    """The ``cgroup.procs`` files a process writes to in order to join the cgroup."""
    return host().procs_files(path)


def join(path: str, pid: int) -> None:
    """Move ``pid`` (a host pid; 0 for the caller) into the cgroup."""
    host().join(path, pid)


def join_container(container_id: str, pid: int) -> None:
    """Move ``pid`` into a container's cgroup (exec processes: call before the process execs)."""
    join(container_path(container_id), pid)


def pids(path: str) -> list[int]:
    return host().pids(path)


def freeze(path: str) -> None:
    host().freeze(path)


def thaw(path: str) -> None:
    host().thaw(path)


def oom_kills(path: str) -> int:
    """How many processes the kernel's OOM killer killed in the cgroup (0 if it is gone)."""
    return host().oom_kills(path)


def remove(path: str) -> None:
    """Kill whatever is left in the cgroup and remove it; no error if it does not exist."""
    host().remove(path)


def exists(path: str) -> bool:
    return host().exists(path)


def raw_stats(path: str) -> dict:
    """Counters in Docker's stats shape (cpu_stats, memory_stats, pids_stats, blkio_stats)."""
    return host().stats(path)


def supported_limits() -> dict[str, bool]:
    """Which limits this host can apply (``docker info``'s MemoryLimit, SwapLimit, ... flags)."""
    hierarchy = host()
    if isinstance(hierarchy, CgroupV2):
        controllers = set(_read_words(os.path.join(hierarchy.root, "cgroup.controllers")))
        return {
            "memory": "memory" in controllers,
            "swap": "memory" in controllers,
            "cpu_cfs": "cpu" in controllers,
            "cpu_shares": "cpu" in controllers,
            "cpuset": "cpuset" in controllers,
            "pids": "pids" in controllers,
        }
    mounts = hierarchy.mounts
    return {
        "memory": "memory" in mounts,
        "swap": "memory" in mounts
        and os.path.exists(os.path.join(mounts["memory"], "memory.memsw.limit_in_bytes")),
        "cpu_cfs": "cpu" in mounts and os.path.exists(os.path.join(mounts["cpu"], "cpu.cfs_quota_us")),
        "cpu_shares": "cpu" in mounts,
        "cpuset": "cpuset" in mounts,
        "pids": "pids" in mounts,
    }


def _read_words(path: str) -> list[str]:
    try:
        with open(path) as file:
            return file.read().split()
    except OSError:
        return []
