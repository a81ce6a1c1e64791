"""The container's root file system: the spec's mounts, /dev, pivot_root, masked and read-only paths.

Runs inside the container's init, in its new mount namespace, before the process is exec'd.
Every mount destination is resolved inside the root file system (:mod:`pyengine.runtime.inroot`)
and mounted through ``/proc/self/fd/N``, so a symlink in the image cannot redirect a mount to the
host. A descriptor opened *before* a mount names the covered directory, not the new mount, so
every operation on a fresh mount (remount, propagation) reopens the path first.
"""

from __future__ import annotations

import errno
import os
import stat

from pyengine.runtime import syscalls as sc
from pyengine.runtime.inroot import open_beneath, resolve

# option -> (set it?, flag). Anything else in ``options`` is passed as file-system data.
_FLAG_OPTIONS = {
    "ro": (True, sc.MS_RDONLY),
    "rw": (False, sc.MS_RDONLY),
    "nosuid": (True, sc.MS_NOSUID),
    "suid": (False, sc.MS_NOSUID),
    "nodev": (True, sc.MS_NODEV),
    "dev": (False, sc.MS_NODEV),
    "noexec": (True, sc.MS_NOEXEC),
    "exec": (False, sc.MS_NOEXEC),
    "sync": (True, sc.MS_SYNCHRONOUS),
    "async": (False, sc.MS_SYNCHRONOUS),
    "dirsync": (True, sc.MS_DIRSYNC),
    "mand": (True, sc.MS_MANDLOCK),
    "nomand": (False, sc.MS_MANDLOCK),
    "noatime": (True, sc.MS_NOATIME),
    "atime": (False, sc.MS_NOATIME),
    "nodiratime": (True, sc.MS_NODIRATIME),
    "diratime": (False, sc.MS_NODIRATIME),
    "relatime": (True, sc.MS_RELATIME),
    "norelatime": (False, sc.MS_RELATIME),
    "strictatime": (True, sc.MS_STRICTATIME),
    "nostrictatime": (False, sc.MS_STRICTATIME),
    "nosymfollow": (True, sc.MS_NOSYMFOLLOW),
    "symfollow": (False, sc.MS_NOSYMFOLLOW),
    "bind": (True, sc.MS_BIND),
    "rbind": (True, sc.MS_BIND | sc.MS_REC),
    "remount": (True, sc.MS_REMOUNT),
    "defaults": (False, 0),
}
PROPAGATION_OPTIONS = {
    "private": sc.MS_PRIVATE,
    "rprivate": sc.MS_PRIVATE | sc.MS_REC,
    "shared": sc.MS_SHARED,
    "rshared": sc.MS_SHARED | sc.MS_REC,
    "slave": sc.MS_SLAVE,
    "rslave": sc.MS_SLAVE | sc.MS_REC,
    "unbindable": sc.MS_UNBINDABLE,
    "runbindable": sc.MS_UNBINDABLE | sc.MS_REC,
}
# Flags a read-only remount must carry over, or the kernel would clear them (statvfs reports them
# with the same values as the MS_ flags).
_KEPT_ON_REMOUNT = (
    sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC | sc.MS_NOATIME | sc.MS_NODIRATIME | sc.MS_RELATIME
)

# Docker's default device nodes: (name, major, minor), all character devices with mode 0666.
_DEFAULT_DEVICES = (
    ("null", 1, 3),
    ("zero", 1, 5),
    ("full", 1, 7),
    ("random", 1, 8),
    ("urandom", 1, 9),
    ("tty", 5, 0),
)
_DEV_SYMLINKS = (
    ("fd", "/proc/self/fd"),
    ("stdin", "/proc/self/fd/0"),
    ("stdout", "/proc/self/fd/1"),
    ("stderr", "/proc/self/fd/2"),
)


def parse_options(options: list[str] | None) -> tuple[int, int, str]:
    """Split mount options into (flags, propagation flags, file-system data)."""
    flags = propagation = 0
    data = []
    for option in options or ():
        if option in _FLAG_OPTIONS:
            set_it, flag = _FLAG_OPTIONS[option]
            flags = flags | flag if set_it else flags & ~flag
        elif option in PROPAGATION_OPTIONS:
            propagation |= PROPAGATION_OPTIONS[option]
        else:
            data.append(option)
    return flags, propagation, ",".join(data)


def _fd_path(fd: int) -> str:
    return f"/proc/self/fd/{fd}"


def remount_readonly(target: str, extra_flags: int = 0) -> None:
    """Make the bind mount at ``target`` read-only, keeping its nosuid/nodev/noexec/atime flags."""
    kept = os.statvfs(target).f_flag & _KEPT_ON_REMOUNT
    sc.mount(None, target, None, sc.MS_BIND | sc.MS_REMOUNT | sc.MS_RDONLY | kept | extra_flags)


def prepare_root(rootfs: str, propagation: int | None) -> None:
    """Cut propagation to the host and make ``rootfs`` a mount point of its own (for pivot_root)."""
    sc.mount(None, "/", None, propagation or (sc.MS_SLAVE | sc.MS_REC))
    if propagation and propagation & sc.MS_SHARED:
        _make_parent_mount_private(rootfs)
    sc.mount(rootfs, rootfs, "bind", sc.MS_BIND | sc.MS_REC)


def _make_parent_mount_private(rootfs: str) -> None:
    # pivot_root refuses a new root whose parent mount is shared.
    best, shared = "", False
    with open("/proc/self/mountinfo") as file:
        for line in file:
            fields = line.split()
            mount_point = fields[4]
            inside = rootfs == mount_point or rootfs.startswith(mount_point.rstrip("/") + "/")
            if inside and len(mount_point) >= len(best):
                best, shared = (
                    mount_point,
                    any(f.startswith("shared:") for f in fields[6 : fields.index("-")]),
                )
    if shared:
        sc.mount(None, best, None, sc.MS_PRIVATE)


def open_bind_sources(entries: list[dict]) -> dict[int, int]:
    """Open the source of every bind mount in ``entries`` (O_PATH): {index in entries: fd}.

    For a user namespace's init, while it can still walk host directories (see :mod:`.init`); a
    source that cannot be opened is left out, and mounting it by path reports the error.
    """
    fds: dict[int, int] = {}
    for index, entry in enumerate(entries):
        flags, _, _ = parse_options(entry.get("options"))
        if (flags & sc.MS_BIND or entry.get("type") == "bind") and entry.get("source"):
            try:
                fds[index] = os.open(entry["source"], os.O_PATH | os.O_CLOEXEC)
            except OSError:
                continue
    return fds


def mount_entry(root_fd: int, entry: dict, source_fd: int | None = None) -> None:
    """Mount one entry of the spec's ``mounts`` inside the root ``root_fd``.

    ``source_fd``: the bind source opened beforehand (:func:`open_bind_sources`), used instead of
    its path. A sysfs the kernel refuses (a user namespace that does not own the network
    namespace) becomes a bind of the host's /sys, as runc does.
    """
    destination = entry.get("destination", "")
    if not destination.startswith("/"):
        raise ValueError(f"mount destination {destination!r} is not an absolute path")
    fstype = entry.get("type") or None
    source = entry.get("source")
    flags, propagation, data = parse_options(entry.get("options"))
    is_bind = bool(flags & sc.MS_BIND) or fstype == "bind"
    if fstype == "cgroup":
        return  # cgroup file systems come with the cgroup work (another issue)
    create = "dir"
    if is_bind:
        if not source:
            raise ValueError(f"bind mount on {destination} has no source")
        if source_fd is not None:
            source = _fd_path(source_fd)
        if not stat.S_ISDIR(os.stat(source).st_mode):
            create = "file"
    relative = resolve(root_fd, destination, create=create)
    if not relative:
        raise ValueError("cannot mount over the container's root directory")
    target_fd = open_beneath(root_fd, relative)
    try:
        if is_bind:
            sc.mount(source, _fd_path(target_fd), None, sc.MS_BIND | (flags & sc.MS_REC))
        else:
            try:
                sc.mount(source or fstype, _fd_path(target_fd), fstype, flags & ~sc.MS_BIND, data or None)
            except PermissionError:
                if fstype != "sysfs":
                    raise
                sc.mount("/sys", _fd_path(target_fd), None, sc.MS_BIND | sc.MS_REC)
                is_bind = True  # read-only and the other flags: by the remount below
                _hide_host_cgroups(root_fd, relative)
    finally:
        os.close(target_fd)
    remount_flags = flags & ~(sc.MS_BIND | sc.MS_REC | sc.MS_REMOUNT)
    if is_bind and remount_flags or propagation:
        mounted_fd = open_beneath(root_fd, relative)  # now names the new mount's root
        try:
            if is_bind and remount_flags & sc.MS_RDONLY:
                remount_readonly(_fd_path(mounted_fd), remount_flags & ~sc.MS_RDONLY)
            elif is_bind and remount_flags:
                sc.mount(None, _fd_path(mounted_fd), None, sc.MS_BIND | sc.MS_REMOUNT | remount_flags)
            if propagation:
                sc.mount(None, _fd_path(mounted_fd), None, propagation)
        finally:
            os.close(mounted_fd)


def _hide_host_cgroups(root_fd: int, relative: str) -> None:
    """Cover fs/cgroup of a /sys bound from the host with an empty read-only tmpfs: a fresh sysfs
    has nothing there either, and the host's cgroup tree is none of the container's business."""
    sys_fd = open_beneath(root_fd, relative)  # opened after the bind: the host's /sys
    try:
        try:
            cgroup_fd = os.open("fs/cgroup", os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=sys_fd)
        except FileNotFoundError:
            return
        try:
            flags = sc.MS_RDONLY | sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC
            sc.mount("tmpfs", _fd_path(cgroup_fd), "tmpfs", flags, "mode=755,size=0")
        finally:
            os.close(cgroup_fd)
    finally:
        os.close(sys_fd)


def needs_dev_setup(mounts: list[dict]) -> bool:
    """Whether we populate /dev ourselves: always, unless /dev is bind-mounted from elsewhere."""
    for entry in mounts:
        if os.path.normpath(entry.get("destination", "")) == "/dev":
            flags, _, _ = parse_options(entry.get("options"))
            if flags & sc.MS_BIND or entry.get("type") == "bind":
                return False
    return True


def _make_device(
    root_fd: int, path: str, kind: str, major: int, minor: int, mode: int, uid: int, gid: int
) -> None:
    parent, _, name = path.rstrip("/").rpartition("/")
    parent_fd = open_beneath(root_fd, resolve(root_fd, parent, create="dir"), os.O_PATH | os.O_DIRECTORY)
    try:
        file_type = {"c": stat.S_IFCHR, "u": stat.S_IFCHR, "b": stat.S_IFBLK, "p": stat.S_IFIFO}[kind]
        try:
            os.mknod(name, file_type | (mode & 0o7777), os.makedev(major, minor), dir_fd=parent_fd)
        except FileExistsError:
            return  # a mount in the spec (or the image's own /dev) already provides it
        except PermissionError:
            # mknod is refused (e.g. a user namespace): bind the host's node over an empty file.
            source = _host_node(path, file_type, os.makedev(major, minor))
            if source is None:
                raise PermissionError(
                    errno.EPERM,
                    f"mknod {path} is refused and the host has no {kind} {major}:{minor} node "
                    "under /dev to bind in its place",
                ) from None
            os.close(
                os.open(name, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_CLOEXEC, 0o600, dir_fd=parent_fd)
            )
            node_fd = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent_fd)
            try:
                sc.mount(source, _fd_path(node_fd), None, sc.MS_BIND)
            finally:
                os.close(node_fd)
            return
        os.chown(name, uid, gid, dir_fd=parent_fd, follow_symlinks=False)
    finally:
        os.close(parent_fd)


def _host_node(path: str, file_type: int, rdev: int) -> str | None:
    """The host's node for a device: ``path`` itself when it is that device (the usual case), else
    one found under the host's /dev (``--device /dev/sda:/dev/xvda``); None if there is none."""

    def is_it(candidate: str) -> bool:
        try:
            info = os.lstat(candidate)
        except OSError:
            return False
        return stat.S_IFMT(info.st_mode) == file_type and (file_type == stat.S_IFIFO or info.st_rdev == rdev)

    if is_it(path):
        return path
    if file_type == stat.S_IFIFO:
        return None
    for directory, subdirectories, names in os.walk("/dev"):
        subdirectories[:] = sorted(d for d in subdirectories if d not in ("pts", "shm", "mqueue", "fd"))
        for name in sorted(names):
            if is_it(os.path.join(directory, name)):
                return os.path.join(directory, name)
    return None


def setup_dev(root_fd: int, devices: list[dict] | None) -> None:
    """Create ``linux.devices`` plus Docker's default device nodes, and the /dev symlinks.

    The spec's devices come first: one on a default node's path (``--device /dev/x:/dev/null``)
    takes its place, as with runc.
    """
    for device in devices or ():
        path = os.path.normpath(device["path"])
        if not path.startswith("/") or path == "/":
            raise ValueError(f"device path {device['path']!r} is not an absolute path")
        _make_device(
            root_fd,
            path,
            device.get("type", "c"),
            device.get("major", 0),
            device.get("minor", 0),
            device.get("fileMode", 0o666),
            device.get("uid", 0),
            device.get("gid", 0),
        )
    for name, major, minor in _DEFAULT_DEVICES:
        _make_device(root_fd, f"/dev/{name}", "c", major, minor, 0o666, 0, 0)
    dev_fd = open_beneath(root_fd, resolve(root_fd, "/dev", create="dir"), os.O_PATH | os.O_DIRECTORY)
    try:
        links = list(_DEV_SYMLINKS)
        if os.path.exists("/proc/kcore"):
            links.append(("core", "/proc/kcore"))
        for name, target in links:
            try:
                os.symlink(target, name, dir_fd=dev_fd)
            except FileExistsError:
                pass
        # Each container has its own devpts instance (newinstance): /dev/ptmx must lead to it.
        try:
            os.unlink("ptmx", dir_fd=dev_fd)
        except FileNotFoundError:
            pass
        os.symlink("pts/ptmx", "ptmx", dir_fd=dev_fd)
    finally:
        os.close(dev_fd)


def pivot_to(rootfs: str, rootfs_fd: int | None = None) -> None:
    """Make ``rootfs`` the root and detach the old root entirely.

    ``rootfs_fd``: the root already open (e.g. O_PATH), for a caller that may not walk to it by path.
    """
    old_root = os.open("/", os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
    if rootfs_fd is not None:
        new_root = os.dup(rootfs_fd)
    else:
        new_root = os.open(rootfs, os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fchdir(new_root)
        # pivot_root(".", ".") stacks the old root on top of the new one; unmounting "." then
        # removes it, with no directory needed inside the image to hold it.
        sc.pivot_root(".", ".")
        os.fchdir(old_root)
        # Make sure the lazy unmount below does not propagate to the host's mounts.
        sc.mount(None, ".", None, sc.MS_SLAVE | sc.MS_REC)
        sc.umount2(".", sc.MNT_DETACH)
        os.chdir("/")
    finally:
        os.close(old_root)
        os.close(new_root)


def mask_path(path: str) -> None:
    """Hide ``path`` (after pivot_root): /dev/null over a file, an empty read-only tmpfs over a directory."""
    try:
        sc.mount("/dev/null", path, None, sc.MS_BIND)
    except FileNotFoundError:
        pass
    except NotADirectoryError:
        sc.mount("tmpfs", path, "tmpfs", sc.MS_RDONLY)


def readonly_path(path: str) -> None:
    """Make ``path`` (and what is mounted below it) read-only."""
    try:
        sc.mount(path, path, None, sc.MS_BIND | sc.MS_REC)
    except FileNotFoundError:
        return
    remount_readonly(path, sc.MS_REC)
