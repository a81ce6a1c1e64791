"""Finding and ending what a daemon left on the host: processes, mounts, cgroups, directories.

Shared by the Docker and pyengine harnesses (and the test fixtures built on them). Everything here
works from /proc and plain syscalls, so it still works when the daemon that made the mess is dead.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import shutil
import signal
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

_MNT_DETACH = 2
_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]


@dataclass(frozen=True)
class ProcessInfo:
    pid: int
    ppid: int
    start_time: int  # clock ticks since boot; tells a pid apart from a later reuse of it
    state: str
    cmdline: tuple[str, ...]


def read_process(pid: int) -> ProcessInfo | None:
    """The process's /proc entry, or None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read().decode(errors="replace")
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            raw_cmdline = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # comm may contain spaces and parentheses: the fields we want follow the last ")".
    fields = stat[stat.rindex(")") + 2 :].split()
    cmdline = tuple(part.decode(errors="replace") for part in raw_cmdline.split(b"\0") if part)
    return ProcessInfo(
        pid=pid, ppid=int(fields[1]), start_time=int(fields[19]), state=fields[0], cmdline=cmdline
    )


def start_time_seconds(info: ProcessInfo) -> float:
    """When the process started, in seconds since the epoch (to about a second: btime is whole)."""
    with open("/proc/stat") as f:
        boot_time = next(int(line.split()[1]) for line in f if line.startswith("btime "))
    return boot_time + info.start_time / os.sysconf("SC_CLK_TCK")


def process_table() -> dict[int, ProcessInfo]:
    table = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            info = read_process(int(entry))
            if info is not None:
                table[info.pid] = info
    return table


def descendants(roots: Iterable[int], table: dict[int, ProcessInfo] | None = None) -> list[ProcessInfo]:
    """Every living descendant of the given pids (not the pids themselves), deepest first."""
    table = process_table() if table is None else table
    children: dict[int, list[int]] = {}
    for info in table.values():
        children.setdefault(info.ppid, []).append(info.pid)
    roots = set(roots)
    found: dict[int, ProcessInfo] = {}
    frontier = list(roots)
    while frontier:
        pid = frontier.pop()
        for child in children.get(pid, ()):
            if child not in found and child not in roots:
                found[child] = table[child]
                frontier.append(child)
    return deepest_first(found.values(), table)


def deepest_first(processes: Iterable[ProcessInfo], table: dict[int, ProcessInfo]) -> list[ProcessInfo]:
    """Order processes so that children come before their parents (to kill containers first)."""

    def depth(info: ProcessInfo) -> int:
        level, pid = 0, info.pid
        while pid in table and table[pid].ppid > 0 and level < 1000:
            pid, level = table[pid].ppid, level + 1
        return level

    return sorted(processes, key=depth, reverse=True)


def processes_referencing(roots: Iterable[str | os.PathLike]) -> list[ProcessInfo]:
    """Processes tied to a directory tree, with all their descendants, deepest first.

    A process is tied to it when its command line names a path at or below one of roots (a daemon,
    its helpers, containerd shims), or when it lives in another mount namespace whose root mount
    names such a path (a container whose root file system comes from there, even one whose
    supervisor died and left it to init). Init, this process and its ancestors are never included.
    """
    prefixes = [os.path.realpath(root).rstrip("/") for root in roots]

    def names_a_root(text: str) -> bool:
        return any(
            p + "/" in text or text.endswith(p) or p + " " in text or p + "," in text for p in prefixes
        )

    own_mount_ns = os.stat("/proc/self/ns/mnt").st_ino
    table = process_table()
    protected = {1, os.getpid()}  # never this process, init or this process's ancestors
    pid = os.getpid()
    while pid in table and table[pid].ppid not in protected and table[pid].ppid > 0:
        pid = table[pid].ppid
        protected.add(pid)
    tied = []
    for info in table.values():
        if info.pid in protected:
            continue
        if any(names_a_root(arg) for arg in info.cmdline):
            tied.append(info)
            continue
        try:
            if os.stat(f"/proc/{info.pid}/ns/mnt").st_ino == own_mount_ns:
                continue  # it sees our mounts, which name the roots; that ties it to nothing
            with open(f"/proc/{info.pid}/mountinfo") as f:
                root_mounts = [line for line in f if line.split()[4] == "/"]
            # Only its own root counts: a host process in another namespace may see our mounts
            # through propagation, but its root is not ours. After pivot_root the root is a mount
            # that names where it came from; after a plain chroot, /proc/<pid>/root names it.
            if any(names_a_root(line) for line in root_mounts) or names_a_root(
                os.readlink(f"/proc/{info.pid}/root")
            ):
                tied.append(info)
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
    tied_pids = {info.pid for info in tied}
    below = [info for info in descendants(tied_pids, table) if info.pid not in tied_pids]
    return deepest_first(below + tied, table)


def read_pid_file(path: str | os.PathLike) -> int | None:
    try:
        text = Path(path).read_text().strip()
    except (FileNotFoundError, NotADirectoryError):
        return None
    return int(text) if text.isdigit() else None


def _is_same_living_process(info: ProcessInfo) -> bool:
    now = read_process(info.pid)
    return now is not None and now.start_time == info.start_time and now.state != "Z"


def signal_processes(processes: Iterable[ProcessInfo], sig: int) -> None:
    """Send sig to each process that is still the one recorded (a reused pid is left alone)."""
    for info in processes:
        if _is_same_living_process(info):
            try:
                os.kill(info.pid, sig)
            except ProcessLookupError:
                pass


def wait_gone(processes: Iterable[ProcessInfo], timeout: float) -> list[ProcessInfo]:
    """Wait until the processes have exited (zombies count as gone); return those still alive."""
    pending = list(processes)
    deadline = time.monotonic() + timeout
    while pending:
        pending = [info for info in pending if _is_same_living_process(info)]
        if not pending or time.monotonic() >= deadline:
            break
        time.sleep(0.02)
    return pending


def stop_processes(
    processes: Iterable[ProcessInfo], *, term_timeout: float = 0.0, kill_timeout: float = 5.0
) -> list[ProcessInfo]:
    """SIGTERM then SIGKILL after term_timeout (SIGKILL at once when it is 0); return survivors."""
    processes = list(processes)
    if term_timeout > 0:
        signal_processes(processes, signal.SIGTERM)
        processes = wait_gone(processes, term_timeout)
    signal_processes(processes, signal.SIGKILL)
    return wait_gone(processes, kill_timeout)


def _unescape_mountinfo(field: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as \ooo octal.
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and i + 3 < len(field) and field[i + 1 : i + 4].isdigit():
            out.append(chr(int(field[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def mounts_under(roots: Iterable[str | os.PathLike]) -> list[str]:
    """Mount points at or below any of roots in this mount namespace, in mount order."""
    real_roots = [os.path.realpath(root) for root in roots]
    found = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            mount_point = _unescape_mountinfo(line.split()[4])
            for root in real_roots:
                if mount_point == root or mount_point.startswith(root.rstrip("/") + "/"):
                    found.append(mount_point)
                    break
    return found


def unmount_under(roots: Iterable[str | os.PathLike], *, attempts: int = 5) -> list[str]:
    """Lazily unmount every mount at or below roots, deepest and newest first; return what remains."""
    roots = list(roots)
    for _ in range(attempts):
        mounts = mounts_under(roots)
        if not mounts:
            return []
        # Newest first keeps stacked mounts right; depth first keeps children before parents.
        ordered = sorted(enumerate(mounts), key=lambda item: (item[1].count("/"), item[0]), reverse=True)
        for _, mount_point in ordered:
            _libc.umount2(os.fsencode(mount_point), _MNT_DETACH)
    return mounts_under(roots)


def cgroup_directories(path: str) -> list[str]:
    """The directory of cgroup path in every mounted hierarchy (existing or not).

    An absolute path is taken from each hierarchy's root; a relative one from this process's own
    cgroup in that hierarchy, as runc does with a relative cgroups path (dockerd's --cgroup-parent
    without a leading slash).
    """
    own: dict[str, str] = {}  # controller set ("memory", "cpu,cpuacct", "name=systemd", "") -> path
    with open("/proc/self/cgroup") as f:
        for line in f:
            _id, controllers, cgroup_path = line.rstrip("\n").split(":", 2)
            own[controllers] = cgroup_path
    directories = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            separator = fields.index("-")
            fs_type, super_options = fields[separator + 1], fields[separator + 3]
            if fs_type == "cgroup2":
                controllers = ""
            elif fs_type == "cgroup":
                names = [o for o in super_options.split(",") if o not in ("rw", "ro") and "=" not in o]
                names += [o for o in super_options.split(",") if o.startswith("name=")]
                controllers = ",".join(names)
            else:
                continue
            mount_root, mount_point = _unescape_mountinfo(fields[3]), _unescape_mountinfo(fields[4])
            if path.startswith("/"):
                target = path
            elif controllers in own:
                target = os.path.join(own[controllers], path)
            else:
                continue
            inside = os.path.relpath(target, mount_root)
            if inside.startswith(".."):
                continue  # this mount shows a subtree that does not hold the cgroup
            directories.append(os.path.normpath(os.path.join(mount_point, inside)))
    return directories


def remove_cgroup(path: str) -> list[str]:
    """rmdir the cgroup (and the cgroups below it) in every mounted hierarchy; return what remains.

    path is absolute or relative as in cgroup_directories(). A cgroup with processes in it cannot
    be removed: end the processes first.
    """
    if not path.strip("/"):
        raise ValueError("refusing to remove a root cgroup")
    remaining = []
    for top in cgroup_directories(path):
        if not os.path.isdir(top):
            continue
        for dirpath, _dirnames, _files in sorted(os.walk(top), key=lambda item: -item[0].count("/")):
            try:
                os.rmdir(dirpath)
            except OSError:
                remaining.append(dirpath)
    return remaining


def remove_tree(path: str | os.PathLike) -> None:
    """Delete a directory tree, refusing when something is still mounted inside it.

    rmtree would otherwise descend into the mount and delete files that are not ours.
    """
    if not os.path.lexists(path):
        return
    left = mounts_under([path])
    if left:
        raise RuntimeError(f"not removing {path}: still mounted inside it: {', '.join(left)}")
    shutil.rmtree(path)
