"""cgroup v2: one unified tree; runc's conversions from the OCI (v1-flavoured) resource values.

Device rules have no file on v2: ``resources["devices"]`` becomes an eBPF program attached to the
container's directory (:mod:`pyengine.runtime.cgroups.devices_bpf`). Everything else maps to a file.
"""

from __future__ import annotations

import os
import time

from pyengine.runtime.cgroups import common, devices_bpf


def cpu_weight(shares: int) -> int:
    """v1 cpu.shares [2, 262144] -> v2 cpu.weight [1, 10000] (runc's formula)."""
    if shares <= 0:
        return 0
    return 1 + ((shares - 2) * 9999) // 262142


def io_weight(blkio_weight: int) -> int:
    """v1 blkio.weight [10, 1000] -> v2 io.weight [1, 10000] (runc's formula)."""
    if blkio_weight <= 0:
        return 0
    return 1 + ((blkio_weight - 10) * 9999) // 990


def resource_files(resources: dict) -> list[tuple[str, str]]:
    """(file, value) to write for OCI ``resources`` on v2, in order."""
    out: list[tuple[str, str]] = []
    memory = resources.get("memory") or {}
    limit = memory.get("limit") or 0
    if limit:
        out.append(("memory.max", "max" if limit < 0 else str(limit)))
    swap = memory.get("swap") or 0
    if swap:
        # OCI swap is memory+swap; v2's memory.swap.max is the swap alone.
        if swap < 0:
            out.append(("memory.swap.max", "max"))
        elif limit > 0:
            out.append(("memory.swap.max", str(max(swap - limit, 0))))
    if memory.get("reservation"):
        out.append(("memory.low", str(memory["reservation"])))
    cpu = resources.get("cpu") or {}
    if cpu.get("shares"):
        out.append(("cpu.weight", str(cpu_weight(cpu["shares"]))))
    if cpu.get("quota") or cpu.get("period"):
        quota = cpu.get("quota") or 0
        period = cpu.get("period") or 100_000
        out.append(("cpu.max", f"{quota if quota > 0 else 'max'} {period}"))
    if cpu.get("cpus"):
        out.append(("cpuset.cpus", cpu["cpus"]))
    if cpu.get("mems"):
        out.append(("cpuset.mems", cpu["mems"]))
    pids = resources.get("pids") or {}
    if "limit" in pids:
        out.append(("pids.max", str(pids["limit"]) if pids["limit"] > 0 else "max"))
    block_io = resources.get("blockIO") or {}
    if block_io.get("weight"):
        out.append(("io.weight", f"default {io_weight(block_io['weight'])}"))
    return out


class CgroupV2:
    version = 2

    def __init__(self, root: str) -> None:
        self.root = root

    def _dir(self, path: str) -> str:
        return os.path.join(self.root, path.lstrip("/"))

    def exists(self, path: str) -> bool:
        return os.path.isdir(self._dir(path))

    def create(self, path: str, resources: dict) -> list[str]:
        """Make the directory and apply ``resources``; a directory this call made is removed again
        when they cannot be applied. Bad device rules raise InvalidArgument before anything is made."""
        if resources.get("devices") is not None:
            devices_bpf.compile_device_rules(resources["devices"])
        directory = self._dir(path)
        existed = os.path.isdir(directory)
        self._make(directory)
        try:
            return self.update(path, resources)
        except BaseException:
            if not existed:
                try:
                    os.rmdir(directory)
                except OSError:
                    pass
            raise

    def _make(self, directory: str) -> None:
        """mkdir -p, enabling in each parent the controllers its parent offers (subtree_control)."""
        parent = os.path.dirname(directory)
        if parent != self.root and not os.path.isdir(parent):
            self._make(parent)
        available = common.read(os.path.join(parent, "cgroup.controllers")).split()
        enabled = common.read(os.path.join(parent, "cgroup.subtree_control")).split()
        wanted = [c for c in ("cpu", "cpuset", "memory", "pids", "io") if c in available and c not in enabled]
        if wanted:
            common.write(os.path.join(parent, "cgroup.subtree_control"), " ".join(f"+{c}" for c in wanted))
        try:
            os.mkdir(directory, 0o755)
        except FileExistsError:
            pass

    def update(self, path: str, resources: dict) -> list[str]:
        directory = self._dir(path)
        warnings = []
        for name, value in resource_files(resources):
            target = os.path.join(directory, name)
            if not os.path.exists(target):
                warnings.append(f"Your kernel does not support {name} (cgroup v2): discarded.")
                continue
            common.write(target, value)
        if resources.get("devices") is not None:
            warnings += self._apply_devices(directory, resources["devices"])
        return warnings

    def _apply_devices(self, directory: str, rules: list[dict]) -> list[str]:
        """Attach the program for ``rules``, replacing the one of an earlier create/update.

        Where cgroup BPF is unavailable (a user namespace, an old kernel) a rule set that allows
        every device is not worth failing for, as runc judges too; any other one is.
        """
        try:
            devices_bpf.apply_device_rules(directory, rules)
        except OSError as exc:
            default_allow, exceptions = devices_bpf.reduce_device_rules(rules)
            if default_allow and not exceptions:
                return [f"Device rules not applied (cgroup v2 device program): {exc.strerror or exc}"]
            raise
        return []

    def procs_files(self, path: str) -> list[str]:
        return [os.path.join(self._dir(path), "cgroup.procs")]

    def join(self, path: str, pid: int) -> None:
        common.write(os.path.join(self._dir(path), "cgroup.procs"), str(pid))

    def pids(self, path: str) -> list[int]:
        return common.pids_in(os.path.join(self._dir(path), "cgroup.procs"))

    def freeze(self, path: str) -> None:
        self._set_frozen(path, True)

    def thaw(self, path: str) -> None:
        self._set_frozen(path, False)

    def _set_frozen(self, path: str, frozen: bool, timeout: float = 10.0) -> None:
        directory = self._dir(path)
        common.write(os.path.join(directory, "cgroup.freeze"), "1" if frozen else "0")
        deadline = time.monotonic() + timeout
        wanted = 1 if frozen else 0
        while common.read_keyed(os.path.join(directory, "cgroup.events")).get("frozen", wanted) != wanted:
            if time.monotonic() > deadline:
                raise OSError(0, f"{directory} did not {'freeze' if frozen else 'thaw'}")
            time.sleep(0.01)

    def frozen(self, path: str) -> bool:
        return common.read_keyed(os.path.join(self._dir(path), "cgroup.events")).get("frozen") == 1

    def oom_kills(self, path: str) -> int:
        return common.read_keyed(os.path.join(self._dir(path), "memory.events")).get("oom_kill", 0)

    def remove(self, path: str) -> None:
        directory = self._dir(path)
        if not os.path.isdir(directory):
            return
        kill_file = os.path.join(directory, "cgroup.kill")
        if os.path.exists(kill_file) and common.pids_in(os.path.join(directory, "cgroup.procs")):
            common.write(kill_file, "1")  # kills even frozen processes, and new forks in flight
        elif self.frozen(path):
            self.thaw(path)
        common.remove_dir(directory, os.path.join(directory, "cgroup.procs"))

    def stats(self, path: str) -> dict:
        directory = self._dir(path)
        cpu = common.read_keyed(os.path.join(directory, "cpu.stat"))
        memory_stat = common.read_keyed(os.path.join(directory, "memory.stat"))
        limit = common.read_int(os.path.join(directory, "memory.max"))
        host_memory = common.host_memory()
        pids_max = common.read(os.path.join(directory, "pids.max"))
        return {
            "cpu_stats": {
                "cpu_usage": {
                    "total_usage": cpu.get("usage_usec", 0) * 1000,
                    "usage_in_kernelmode": cpu.get("system_usec", 0) * 1000,
                    "usage_in_usermode": cpu.get("user_usec", 0) * 1000,
                },
                "system_cpu_usage": common.system_cpu_usage(),
                "online_cpus": common.online_cpus(),
                "throttling_data": {
                    "periods": cpu.get("nr_periods", 0),
                    "throttled_periods": cpu.get("nr_throttled", 0),
                    "throttled_time": cpu.get("throttled_usec", 0) * 1000,
                },
            },
            "memory_stats": {
                "usage": common.read_int(os.path.join(directory, "memory.current")),
                "stats": memory_stat,
                "limit": min(limit, host_memory) if limit and host_memory else limit or host_memory,
            },
            "pids_stats": {
                "current": common.read_int(os.path.join(directory, "pids.current")),
                **({"limit": int(pids_max)} if pids_max.isdigit() else {}),
            },
            "blkio_stats": {
                "io_service_bytes_recursive": _io_stat(os.path.join(directory, "io.stat")),
                "io_serviced_recursive": None,
                "io_queue_recursive": None,
                "io_service_time_recursive": None,
                "io_wait_time_recursive": None,
                "io_merged_recursive": None,
                "io_time_recursive": None,
                "sectors_recursive": None,
            },
        }


def _io_stat(path: str) -> list[dict] | None:
    """``8:0 rbytes=1 wbytes=2 ...`` -> read/write byte entries, as Docker reports them on v2."""
    entries = []
    for line in common.read(path).splitlines():
        device, *pairs = line.split()
        major, _, minor = device.partition(":")
        values = dict(pair.split("=", 1) for pair in pairs if "=" in pair)
        for key, op in (("rbytes", "read"), ("wbytes", "write")):
            if key in values:
                entries.append(
                    {"major": int(major), "minor": int(minor), "op": op, "value": int(values[key])}
                )
    return entries or None
