"""File helpers shared by the v1 and v2 hierarchies, and the counters both report the same way."""

from __future__ import annotations

import errno
import os
import signal
import time

# Docker's default device rules (moby oci/defaults.go): mknod of anything, and read/write/mknod of
# the standard nodes only: null, zero, full, random, urandom, tty, console, ptmx, the ptys, tun.
DEFAULT_DEVICE_RULES: list[dict] = [
    {"allow": False, "access": "rwm"},
    {"allow": True, "type": "c", "access": "m"},
    {"allow": True, "type": "b", "access": "m"},
    {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
    {"allow": True, "type": "c", "major": 1, "minor": 5, "access": "rwm"},
    {"allow": True, "type": "c", "major": 1, "minor": 7, "access": "rwm"},
    {"allow": True, "type": "c", "major": 1, "minor": 8, "access": "rwm"},
    {"allow": True, "type": "c", "major": 1, "minor": 9, "access": "rwm"},
    {"allow": True, "type": "c", "major": 5, "minor": 0, "access": "rwm"},
    {"allow": True, "type": "c", "major": 5, "minor": 1, "access": "rwm"},
    {"allow": True, "type": "c", "major": 5, "minor": 2, "access": "rwm"},
    {"allow": True, "type": "c", "major": 136, "access": "rwm"},
    {"allow": True, "type": "c", "major": 10, "minor": 200, "access": "rwm"},
]

USER_HZ = os.sysconf("SC_CLK_TCK")


def write(path: str, value: str) -> None:
    """Write one value to a cgroup file; OSError names the file and the value."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise OSError(exc.errno, f"opening {path}: {os.strerror(exc.errno)}") from None
    try:
        os.write(fd, value.encode())
    except OSError as exc:
        raise OSError(exc.errno, f"writing {value!r} to {path}: {os.strerror(exc.errno)}") from None
    finally:
        os.close(fd)


def read(path: str, default: str = "") -> str:
    try:
        with open(path) as file:
            return file.read().strip()
    except OSError:
        return default


def read_int(path: str, default: int = 0) -> int:
    text = read(path)
    if text == "max":
        return 0
    try:
        return int(text)
    except ValueError:
        return default


def read_keyed(path: str) -> dict[str, int]:
    """A flat keyed file (``key value`` per line: memory.stat, cpu.stat) as a dict of ints."""
    out: dict[str, int] = {}
    for line in read(path).splitlines():
        key, _, value = line.partition(" ")
        try:
            out[key] = int(value)
        except ValueError:
            continue
    return out


def pids_in(procs_file: str) -> list[int]:
    return [int(pid) for pid in read(procs_file).split() if pid.isdigit()]


def remove_dir(path: str, procs_file: str, timeout: float = 5.0) -> None:
    """rmdir a cgroup directory, SIGKILLing what is left in it first; the dying take a moment."""
    deadline = time.monotonic() + timeout
    while True:
        for pid in pids_in(procs_file):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            os.rmdir(path)
            return
        except FileNotFoundError:
            return
        except OSError as exc:
            if exc.errno != errno.EBUSY or time.monotonic() > deadline:
                raise OSError(exc.errno, f"removing cgroup {path}: {os.strerror(exc.errno)}") from None
        time.sleep(0.01)


def system_cpu_usage() -> int:
    """The host's total CPU time in nanoseconds, from /proc/stat, as Docker's stats report it."""
    for line in read("/proc/stat").splitlines():
        if line.startswith("cpu "):
            ticks = sum(int(field) for field in line.split()[1:8])
            return ticks * 1_000_000_000 // USER_HZ
    return 0


def online_cpus() -> int:
    return len(os.sched_getaffinity(0)) or os.cpu_count() or 1


def host_memory() -> int:
    for line in read("/proc/meminfo").splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024
    return 0
