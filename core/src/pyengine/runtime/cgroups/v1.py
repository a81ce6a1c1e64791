"""cgroup v1: one directory per controller hierarchy, runc's file names and units."""

from __future__ import annotations

import os
import time

from pyengine.runtime.cgroups import common


def device_rule_v1(rule: dict) -> tuple[str, str]:
    """An OCI device rule -> (``devices.allow`` or ``devices.deny``, ``"c 1:3 rwm"``)."""
    kind = rule.get("type") or "a"
    major = "*" if rule.get("major") in (None, -1) else str(rule["major"])
    minor = "*" if rule.get("minor") in (None, -1) else str(rule["minor"])
    access = rule.get("access") or "rwm"
    target = "devices.allow" if rule.get("allow") else "devices.deny"
    if kind == "a":
        return target, "a"
    return target, f"{kind} {major}:{minor} {access}"


def resource_files(resources: dict) -> list[tuple[str, str, str]]:
    """(controller, file, value) to write for OCI ``resources``, in the order they must be written.

    Memory+swap is written before the memory limit so that raising both never passes through a
    state where memsw < memory (which the kernel refuses); :meth:`CgroupV1.update` reorders when
    lowering.
    """
    out: list[tuple[str, str, str]] = []
    memory = resources.get("memory") or {}
    if memory.get("swap") not in (None, 0):
        out.append(("memory", "memory.memsw.limit_in_bytes", str(memory["swap"])))
    if memory.get("limit") not in (None, 0):
        out.append(("memory", "memory.limit_in_bytes", str(memory["limit"])))
    if memory.get("reservation"):
        out.append(("memory", "memory.soft_limit_in_bytes", str(memory["reservation"])))
    if memory.get("disableOOMKiller"):
        out.append(("memory", "memory.oom_control", "1"))
    if memory.get("swappiness") is not None and memory["swappiness"] >= 0:
        out.append(("memory", "memory.swappiness", str(memory["swappiness"])))
    cpu = resources.get("cpu") or {}
    if cpu.get("shares"):
        out.append(("cpu", "cpu.shares", str(cpu["shares"])))
    if cpu.get("period"):
        out.append(("cpu", "cpu.cfs_period_us", str(cpu["period"])))
    if cpu.get("quota") not in (None, 0):
        out.append(("cpu", "cpu.cfs_quota_us", str(cpu["quota"])))
    if cpu.get("cpus"):
        out.append(("cpuset", "cpuset.cpus", cpu["cpus"]))
    if cpu.get("mems"):
        out.append(("cpuset", "cpuset.mems", cpu["mems"]))
    pids = resources.get("pids") or {}
    if "limit" in pids:
        out.append(("pids", "pids.max", str(pids["limit"]) if pids["limit"] > 0 else "max"))
    block_io = resources.get("blockIO") or {}
    if block_io.get("weight"):
        out.append(("blkio", "blkio.weight", str(block_io["weight"])))
    for rule in resources.get("devices") or ():
        target, value = device_rule_v1(rule)
        out.append(("devices", target, value))
    return out


class CgroupV1:
    version = 1
    CONTROLLERS = ("cpu", "cpuacct", "cpuset", "memory", "pids", "blkio", "devices", "freezer")

    def __init__(self, mounts: dict[str, str]) -> None:
        self.mounts = dict(mounts)  # controller -> mountpoint

    def _dirs(self, path: str) -> dict[str, str]:
        return {name: os.path.join(mount, path.lstrip("/")) for name, mount in self.mounts.items()}

    def _mountpoints(self, path: str) -> list[str]:
        """One directory per distinct hierarchy (cpu and cpuacct may share one)."""
        return sorted(set(self._dirs(path).values()))

    def exists(self, path: str) -> bool:
        directory = self._dirs(path).get("memory") or next(iter(self._dirs(path).values()), "")
        return bool(directory) and os.path.isdir(directory)

    def create(self, path: str, resources: dict) -> list[str]:
        for directory in self._mountpoints(path):
            self._make(directory)
        return self.update(path, resources)

    def _make(self, directory: str) -> None:
        """mkdir -p; a new cpuset directory starts empty and must copy its parent's cpus and mems."""
        parent = os.path.dirname(directory)
        if not os.path.isdir(parent):
            self._make(parent)
        try:
            os.mkdir(directory, 0o755)
        except FileExistsError:
            return
        if os.path.exists(os.path.join(directory, "cpuset.cpus")):
            for name in ("cpuset.cpus", "cpuset.mems"):
                if not common.read(os.path.join(directory, name)):
                    common.write(os.path.join(directory, name), common.read(os.path.join(parent, name)))

    def update(self, path: str, resources: dict) -> list[str]:
        dirs = self._dirs(path)
        warnings = []
        writes = resource_files(resources)
        memory = resources.get("memory") or {}
        current = common.read_int(os.path.join(dirs.get("memory", ""), "memory.limit_in_bytes"))
        new_limit = memory.get("limit") or 0
        if 0 < new_limit < current:
            # Lowering the memory limit: it must go below memsw before memsw can follow it down.
            writes.sort(key=lambda item: item[1] != "memory.limit_in_bytes")
        for controller, name, value in writes:
            directory = dirs.get(controller)
            target = os.path.join(directory, name) if directory else ""
            if not directory or not os.path.exists(target):
                warnings.append(_missing_warning(name))
                continue
            common.write(target, value)
        return warnings

    def procs_files(self, path: str) -> list[str]:
        return [os.path.join(directory, "cgroup.procs") for directory in self._mountpoints(path)]

    def join(self, path: str, pid: int) -> None:
        for procs in self.procs_files(path):
            common.write(procs, str(pid))

    def pids(self, path: str) -> list[int]:
        directory = self._dirs(path).get("pids") or self._mountpoints(path)[0]
        return common.pids_in(os.path.join(directory, "cgroup.procs"))

    def freeze(self, path: str) -> None:
        self._set_freezer(path, "FROZEN")

    def thaw(self, path: str) -> None:
        self._set_freezer(path, "THAWED")

    def _set_freezer(self, path: str, state: str, timeout: float = 10.0) -> None:
        directory = self._dirs(path).get("freezer")
        if directory is None:
            raise OSError(0, "the freezer cgroup controller is not mounted")
        state_file = os.path.join(directory, "freezer.state")
        deadline = time.monotonic() + timeout
        while True:
            common.write(state_file, state)
            if common.read(state_file) == state:
                return
            if time.monotonic() > deadline:
                raise OSError(0, f"{state_file} stays {common.read(state_file)}, not {state}")
            time.sleep(0.01)

    def frozen(self, path: str) -> bool:
        directory = self._dirs(path).get("freezer", "")
        return common.read(os.path.join(directory, "freezer.state")) == "FROZEN"

    def oom_kills(self, path: str) -> int:
        directory = self._dirs(path).get("memory", "")
        control = common.read_keyed(os.path.join(directory, "memory.oom_control"))
        return control.get("oom_kill", 0)

    def remove(self, path: str) -> None:
        dirs = self._dirs(path)
        if "freezer" in dirs and self.frozen(path):
            self.thaw(path)  # frozen processes cannot die
        for directory in self._mountpoints(path):
            common.remove_dir(directory, os.path.join(directory, "cgroup.procs"))

    def stats(self, path: str) -> dict:
        dirs = self._dirs(path)
        cpuacct = dirs.get("cpuacct", "")
        per_cpu = [int(v) for v in common.read(os.path.join(cpuacct, "cpuacct.usage_percpu")).split()]
        ticks = common.read_keyed(os.path.join(cpuacct, "cpuacct.stat"))
        tick_ns = 1_000_000_000 // common.USER_HZ
        throttling = common.read_keyed(os.path.join(dirs.get("cpu", ""), "cpu.stat"))
        memory_dir = dirs.get("memory", "")
        memory_stat = common.read_keyed(os.path.join(memory_dir, "memory.stat"))
        limit = common.read_int(os.path.join(memory_dir, "memory.limit_in_bytes"))
        host_memory = common.host_memory()
        pids_dir = dirs.get("pids", "")
        blkio = dirs.get("blkio", "")
        return {
            "cpu_stats": {
                "cpu_usage": {
                    "total_usage": common.read_int(os.path.join(cpuacct, "cpuacct.usage")),
                    "percpu_usage": per_cpu,
                    "usage_in_kernelmode": ticks.get("system", 0) * tick_ns,
                    "usage_in_usermode": ticks.get("user", 0) * tick_ns,
                },
                "system_cpu_usage": common.system_cpu_usage(),
                "online_cpus": common.online_cpus(),
                "throttling_data": {
                    "periods": throttling.get("nr_periods", 0),
                    "throttled_periods": throttling.get("nr_throttled", 0),
                    "throttled_time": throttling.get("throttled_time", 0),
                },
            },
            "memory_stats": {
                "usage": common.read_int(os.path.join(memory_dir, "memory.usage_in_bytes")),
                "max_usage": common.read_int(os.path.join(memory_dir, "memory.max_usage_in_bytes")),
                "stats": memory_stat,
                "failcnt": common.read_int(os.path.join(memory_dir, "memory.failcnt")),
                "limit": min(limit, host_memory) if limit and host_memory else limit or host_memory,
            },
            "pids_stats": {
                "current": common.read_int(os.path.join(pids_dir, "pids.current")),
                **_pids_limit(os.path.join(pids_dir, "pids.max")),
            },
            "blkio_stats": {
                "io_service_bytes_recursive": _blkio(
                    os.path.join(blkio, "blkio.throttle.io_service_bytes_recursive")
                ),
                "io_serviced_recursive": _blkio(os.path.join(blkio, "blkio.throttle.io_serviced_recursive")),
                "io_queue_recursive": [],
                "io_service_time_recursive": [],
                "io_wait_time_recursive": [],
                "io_merged_recursive": [],
                "io_time_recursive": [],
                "sectors_recursive": [],
            },
        }


def _pids_limit(path: str) -> dict:
    text = common.read(path)
    return {"limit": int(text)} if text.isdigit() else {}


def _blkio(path: str) -> list[dict] | None:
    """``8:0 Read 4096`` lines -> Docker's BlkioStatEntry list (the device-less Total is dropped)."""
    entries = []
    for line in common.read(path).splitlines():
        fields = line.split()
        if len(fields) != 3 or ":" not in fields[0]:
            continue
        major, _, minor = fields[0].partition(":")
        entries.append({"major": int(major), "minor": int(minor), "op": fields[1], "value": int(fields[2])})
    return entries or None


def _missing_warning(name: str) -> str:
    if name == "blkio.weight":
        return "Your kernel does not support Block I/O weight or the cgroup is not mounted. Weight discarded."
    if name.startswith("memory.memsw"):
        return (
            "Your kernel does not support swap limit capabilities or the cgroup is not mounted. "
            "Memory limited without swap."
        )
    return f"Your kernel does not support {name}: discarded."
