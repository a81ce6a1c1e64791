"""User-namespace id maps: the mapping itself, a user namespace made for it, and idmapped mounts.

An :class:`IdMap` says which host ids a container's ids stand for (``0 100000 65536``: container
uid 0..65535 are host uids 100000..165535), in the shape of OCI's ``linux.uidMappings``.

Idmapped mounts (kernel 5.12+) let a file system appear with its owners shifted without chowning
anything: :func:`clone_idmapped` clones a directory's mount with ``open_tree(OPEN_TREE_CLONE)`` and
sets ``MOUNT_ATTR_IDMAP`` with a user namespace that carries the map. Through such a mount a file
owned by uid 0 on disk shows as the host uid 100000, and a file created by host uid 100000 lands
on disk as uid 0 -- so a container whose root is host uid 100000 sees its image owned by root, and
what it writes is stored as plain uid 0 (commits and diffs give normal images).

The kernel wants the user namespace as a file descriptor. The daemon is multi-threaded and must not
fork, so :func:`user_namespace_fd` spawns ``unshare --user`` (util-linux), writes the map into the
new namespace from here (we are root in the parent namespace), opens ``/proc/PID/ns/user`` and ends
the helper; the descriptor keeps the namespace alive. One per map, cached for the life of the process.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass

from pyengine.runtime import syscalls as sc

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long
_libc.capget.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
_libc.capset.argtypes = [ctypes.c_void_p, ctypes.c_void_p]

# The new mount API has the same numbers on every architecture (added after the tables unified).
_SYS_OPEN_TREE = 428
_SYS_MOVE_MOUNT = 429
_SYS_FSOPEN = 430
_SYS_FSCONFIG = 431
_SYS_FSMOUNT = 432
_SYS_MOUNT_SETATTR = 442
_SYS_SETFSUID = {"x86_64": 122, "aarch64": 151, "riscv64": 151}.get(os.uname().machine, 122)
_SYS_SETFSGID = {"x86_64": 123, "aarch64": 152, "riscv64": 152}.get(os.uname().machine, 123)

AT_FDCWD = -100
AT_EMPTY_PATH = 0x1000
OPEN_TREE_CLONE = 1
OPEN_TREE_CLOEXEC = os.O_CLOEXEC
MOVE_MOUNT_F_EMPTY_PATH = 0x4
MOUNT_ATTR_IDMAP = 0x00100000
FSOPEN_CLOEXEC = 1
FSMOUNT_CLOEXEC = 1
FSCONFIG_SET_STRING = 1
FSCONFIG_SET_FD = 5
FSCONFIG_CMD_CREATE = 6


@dataclass(frozen=True)
class IdRange:
    """``size`` ids from ``container_id`` in the namespace stand for ``host_id``.. on the host."""

    container_id: int
    host_id: int
    size: int


@dataclass(frozen=True)
class IdMap:
    """A container's uid and gid maps (each a tuple of ranges, as OCI's uidMappings/gidMappings)."""

    uids: tuple[IdRange, ...]
    gids: tuple[IdRange, ...]

    @classmethod
    def single(cls, host_uid: int, host_gid: int, size: int) -> IdMap:
        """Container ids 0..size-1 on host ids host_uid.. and host_gid.. (the remap daemons use)."""
        return cls((IdRange(0, host_uid, size),), (IdRange(0, host_gid, size),))

    @property
    def root_uid(self) -> int:
        """The host uid of the container's root."""
        return _to_host(self.uids, 0, "uid")

    @property
    def root_gid(self) -> int:
        return _to_host(self.gids, 0, "gid")

    def host_uid(self, uid: int) -> int:
        return _to_host(self.uids, uid, "uid")

    def host_gid(self, gid: int) -> int:
        return _to_host(self.gids, gid, "gid")

    def container_uid(self, host_uid: int) -> int:
        """The container uid that host uid ``host_uid`` stands for (ValueError if the map has none)."""
        return _to_container(self.uids, host_uid, "uid")

    def container_gid(self, host_gid: int) -> int:
        return _to_container(self.gids, host_gid, "gid")

    def oci(self) -> dict[str, list[dict[str, int]]]:
        """``{"uidMappings": [...], "gidMappings": [...]}`` for the runtime spec's ``linux``."""
        return {
            "uidMappings": [_oci_range(r) for r in self.uids],
            "gidMappings": [_oci_range(r) for r in self.gids],
        }

    @classmethod
    def from_oci(cls, linux: dict) -> IdMap:
        def ranges(key: str) -> tuple[IdRange, ...]:
            return tuple(
                IdRange(int(r["containerID"]), int(r["hostID"]), int(r["size"])) for r in linux.get(key) or ()
            )

        return cls(ranges("uidMappings"), ranges("gidMappings"))

    def uid_map_text(self) -> str:
        """What /proc/PID/uid_map takes."""
        return "".join(f"{r.container_id} {r.host_id} {r.size}\n" for r in self.uids)

    def gid_map_text(self) -> str:
        return "".join(f"{r.container_id} {r.host_id} {r.size}\n" for r in self.gids)


def _oci_range(r: IdRange) -> dict[str, int]:
    return {"containerID": r.container_id, "hostID": r.host_id, "size": r.size}


def _to_host(ranges: tuple[IdRange, ...], value: int, kind: str) -> int:
    for r in ranges:
        if r.container_id <= value < r.container_id + r.size:
            return r.host_id + value - r.container_id
    raise ValueError(f"container {kind} {value} is not mapped")


def _to_container(ranges: tuple[IdRange, ...], value: int, kind: str) -> int:
    for r in ranges:
        if r.host_id <= value < r.host_id + r.size:
            return r.container_id + value - r.host_id
    raise ValueError(f"host {kind} {value} is not mapped into the container")


def write_maps(pid: int, idmap: IdMap) -> None:
    """Write the uid and gid maps of the (fresh, unmapped) user namespace of process ``pid``.

    The writer is root in the parent namespace, so setgroups stays allowed in the new one.
    """
    with open(f"/proc/{pid}/uid_map", "w") as file:
        file.write(idmap.uid_map_text())
    with open(f"/proc/{pid}/gid_map", "w") as file:
        file.write(idmap.gid_map_text())


def make_user_namespace(idmap: IdMap) -> int:
    """A new user namespace carrying ``idmap``; returns an O_RDONLY|O_CLOEXEC fd the caller owns.

    Spawns (never forks) a short-lived ``unshare --user`` helper. Raises OSError on failure.
    """
    helper = subprocess.Popen(
        ["unshare", "--user", "--", "sh", "-c", "echo ready; read _"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        close_fds=True,
    )
    try:
        line = helper.stdout.readline()  # type: ignore[union-attr]
        if line != b"ready\n":
            error = helper.stderr.read().decode(errors="replace").strip()  # type: ignore[union-attr]
            raise OSError(f"unshare --user failed: {error or 'no output'}")
        write_maps(helper.pid, idmap)
        return os.open(f"/proc/{helper.pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
    finally:
        helper.stdin.close()  # type: ignore[union-attr]  # the helper's read ends, it exits
        helper.wait()
        helper.stdout.close()  # type: ignore[union-attr]
        helper.stderr.close()  # type: ignore[union-attr]


_namespaces: dict[IdMap, int] = {}
_namespaces_lock = threading.Lock()


def user_namespace_fd(idmap: IdMap) -> int:
    """The cached user namespace for ``idmap`` (made on first use); do not close the descriptor."""
    with _namespaces_lock:
        fd = _namespaces.get(idmap)
        if fd is None:
            fd = _namespaces[idmap] = make_user_namespace(idmap)
        return fd


# -- the new mount API ----------------------------------------------------------------------------


class _MountAttr(ctypes.Structure):
    _fields_ = [
        ("attr_set", ctypes.c_uint64),
        ("attr_clr", ctypes.c_uint64),
        ("propagation", ctypes.c_uint64),
        ("userns_fd", ctypes.c_uint64),
    ]


def _check(result: int, what: str) -> int:
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {sc.error_text(err)}")
    return result


def _bytes(value: str | None) -> bytes | None:
    return None if value is None else os.fsencode(value)


def clone_idmapped(path: str | os.PathLike, userns_fd: int) -> int:
    """A detached clone of the mount at ``path`` (just that directory, not its submounts), idmapped
    through ``userns_fd``. Returns the new mount's fd: attach it with :func:`attach` or pass it to
    overlayfs; closing it unmounts it if it is not attached."""
    fd = _check(
        _libc.syscall(
            ctypes.c_long(_SYS_OPEN_TREE),
            ctypes.c_int(AT_FDCWD),
            ctypes.c_char_p(os.fsencode(path)),
            ctypes.c_uint(OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC),
        ),
        f"open_tree {os.fspath(path)}",
    )
    attr = _MountAttr(attr_set=MOUNT_ATTR_IDMAP, userns_fd=userns_fd)
    try:
        _check(
            _libc.syscall(
                ctypes.c_long(_SYS_MOUNT_SETATTR),
                ctypes.c_int(fd),
                ctypes.c_char_p(b""),
                ctypes.c_uint(AT_EMPTY_PATH),
                ctypes.byref(attr),
                ctypes.c_size_t(ctypes.sizeof(attr)),
            ),
            f"idmapping the mount of {os.fspath(path)}",
        )
    except BaseException:
        os.close(fd)
        raise
    return fd


def attach(mount_fd: int, target: str | os.PathLike) -> None:
    """Attach a detached mount (from :func:`clone_idmapped` or fsmount) at ``target``."""
    _check(
        _libc.syscall(
            ctypes.c_long(_SYS_MOVE_MOUNT),
            ctypes.c_int(mount_fd),
            ctypes.c_char_p(b""),
            ctypes.c_int(AT_FDCWD),
            ctypes.c_char_p(os.fsencode(target)),
            ctypes.c_uint(MOVE_MOUNT_F_EMPTY_PATH),
        ),
        f"attaching a mount at {os.fspath(target)}",
    )


def mount_idmapped(source: str | os.PathLike, target: str | os.PathLike, userns_fd: int) -> None:
    """Bind ``source`` at ``target`` with its owners shifted through ``userns_fd``."""
    fd = clone_idmapped(source, userns_fd)
    try:
        attach(fd, target)
    finally:
        os.close(fd)


def _fsconfig(fs_fd: int, command: int, key: str | None, value: str | None, aux: int) -> None:
    _check(
        _libc.syscall(
            ctypes.c_long(_SYS_FSCONFIG),
            ctypes.c_int(fs_fd),
            ctypes.c_uint(command),
            ctypes.c_char_p(_bytes(key)),
            ctypes.c_char_p(_bytes(value)),
            ctypes.c_int(aux),
        ),
        f"overlay option {key}" if key else "creating the overlay file system",
    )


def mount_overlay_idmapped(
    lowers: list[str],
    upper_parent: str,
    target: str,
    idmap: IdMap,
    options: dict[str, str],
) -> None:
    """Mount overlayfs at ``target`` on idmapped layers: every lower directory (nearest first), and
    ``upper_parent``'s ``diff`` and ``work`` as upper and work directory.

    overlayfs cannot be idmapped itself, but takes idmapped layers (kernel 5.19+); layers are handed
    over as descriptors (``lowerdir+`` with FSCONFIG_SET_FD, kernel 6.13+), so nothing but the
    overlay is ever attached. overlayfs does its own work (work directory, copy-up) with the
    credentials of whoever created it, and a host uid the map cannot express cannot create anything
    on an idmapped mount (EOVERFLOW): so the superblock is created with this thread's file-system
    uid/gid set to the container root's host ids (capabilities kept), and what overlayfs writes is
    owned by uid 0 on disk.
    """
    userns_fd = user_namespace_fd(idmap)
    fds: list[int] = []
    try:
        fs_fd = _check(
            _libc.syscall(
                ctypes.c_long(_SYS_FSOPEN), ctypes.c_char_p(b"overlay"), ctypes.c_uint(FSOPEN_CLOEXEC)
            ),
            "fsopen overlay",
        )
        fds.append(fs_fd)
        for lower in lowers:
            fds.append(clone_idmapped(lower, userns_fd))
            _fsconfig(fs_fd, FSCONFIG_SET_FD, "lowerdir+", None, fds[-1])
        upper_mount = clone_idmapped(upper_parent, userns_fd)
        fds.append(upper_mount)
        for key, name in (("upperdir", "diff"), ("workdir", "work")):
            fds.append(os.open(name, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=upper_mount))
            _fsconfig(fs_fd, FSCONFIG_SET_FD, key, None, fds[-1])
        for key, value in options.items():
            _fsconfig(fs_fd, FSCONFIG_SET_STRING, key, value, 0)
        with filesystem_ids(idmap.root_uid, idmap.root_gid):
            _fsconfig(fs_fd, FSCONFIG_CMD_CREATE, None, None, 0)
        mount_fd = _check(
            _libc.syscall(
                ctypes.c_long(_SYS_FSMOUNT),
                ctypes.c_int(fs_fd),
                ctypes.c_uint(FSMOUNT_CLOEXEC),
                ctypes.c_uint(0),
            ),
            "fsmount overlay",
        )
        fds.append(mount_fd)
        attach(mount_fd, target)
    finally:
        for fd in fds:
            os.close(fd)


def _raise_effective_capabilities() -> None:
    """Make this thread's effective capabilities its permitted ones (setfsuid dropped the fs ones)."""
    _effective, permitted, inheritable = sc.capget()
    sc.capset(permitted, permitted, inheritable)


@contextlib.contextmanager
def filesystem_ids(uid: int, gid: int) -> Iterator[None]:
    """Run the block with this *thread's* fsuid/fsgid set (setfsuid is per thread), caps kept.

    What the block creates is owned by ``uid``/``gid`` (as mapped by the mount it is created on),
    and permission checks keep the thread's capabilities. Needed to write through an idmapped
    mount: host uid 0 is not in the map, so a file it creates could not be given an owner there
    (EOVERFLOW). Everything in the block must run on the calling thread (a thread started in it
    inherits the ids). Going back to fsuid 0 gives the file-system capabilities back by itself.
    """
    _libc.syscall(ctypes.c_long(_SYS_SETFSGID), ctypes.c_uint(gid))
    _libc.syscall(ctypes.c_long(_SYS_SETFSUID), ctypes.c_uint(uid))
    try:
        _raise_effective_capabilities()
        yield
    finally:
        _libc.syscall(ctypes.c_long(_SYS_SETFSUID), ctypes.c_uint(os.geteuid()))
        _libc.syscall(ctypes.c_long(_SYS_SETFSGID), ctypes.c_uint(os.getegid()))


def is_mount_point(path: str | os.PathLike) -> bool:
    """Whether something is mounted at ``path`` (from mountinfo: a bind on the same file system
    has the device of its parent, so comparing devices is not enough)."""
    wanted = os.path.realpath(path)
    with open("/proc/self/mountinfo") as mountinfo:
        for line in mountinfo:
            point = line.split()[4]
            if "\\" in point:
                point = point.encode().decode("unicode_escape")
            if point == wanted:
                return True
    return False


def detach(target: str | os.PathLike) -> None:
    """Lazily unmount ``target``; a path that is not mounted is fine."""
    try:
        sc.umount2(target, sc.MNT_DETACH)
    except OSError as exc:
        if exc.errno != 22:  # EINVAL: not a mount point
            raise
