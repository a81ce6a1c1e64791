"""Paths resolved INSIDE a container's root file system, never outside it.

An image is untrusted: its ``/etc`` may be a symlink to the host's ``/etc`` or ``/var/lib/x`` may
point at ``../../../../root``. Every path we mount on, create or read inside a root file system is
therefore resolved here component by component, with symlinks interpreted as if the root file
system were ``/`` (the semantics of ``chroot``; Docker's "secure join"). The walk starts from a
directory descriptor of the root and each step is opened with ``openat2`` under
``RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS``, so a component swapped for a symlink during the walk
makes the open fail instead of escaping.

Callers then act on the result through ``/proc/self/fd/N`` (mount) or ``dir_fd=`` (mkdir, mknod).
"""

from __future__ import annotations

import errno
import os
import stat

from pyengine.runtime import syscalls

_MAX_SYMLINKS = 40
_STRICT = syscalls.RESOLVE_BENEATH | syscalls.RESOLVE_NO_SYMLINKS | syscalls.RESOLVE_NO_MAGICLINKS


def open_beneath(root_fd: int, relative: str, flags: int = os.O_PATH, mode: int = 0) -> int:
    """Open ``relative`` (already resolved: no symlinks, no ``..``) beneath ``root_fd``."""
    return syscalls.openat2(root_fd, relative or ".", flags, _STRICT, mode)


def openat2_in_root(root_fd: int, path: str, flags: int) -> int:
    """Open ``path`` with the kernel resolving it as if ``root_fd`` were ``/`` (RESOLVE_IN_ROOT).

    One syscall instead of :func:`resolve`'s walk, for callers that need no ``create`` and accept
    symlinks being followed (inside the root) in every component, the last one included.
    Raises OSError (ENOSYS on kernels before 5.6); EAGAIN from a racing rename is retried.
    """
    for _ in range(16):
        try:
            return syscalls.openat2(
                root_fd, path, flags, syscalls.RESOLVE_IN_ROOT | syscalls.RESOLVE_NO_MAGICLINKS
            )
        except OSError as exc:
            if exc.errno != errno.EAGAIN:
                raise
    raise OSError(errno.EAGAIN, os.strerror(errno.EAGAIN), path)


def resolve(root_fd: int, path: str, *, create: str | None = None, mode: int = 0o755) -> str:
    """Resolve ``path`` inside the root ``root_fd`` and return it relative to the root, symlink-free.

    ``create`` may be ``"dir"`` (create missing directories, like ``mkdir -p``) or ``"file"``
    (missing parents become directories, a missing last component an empty file); with ``None``
    a missing component raises :class:`FileNotFoundError`. A missing last component is
    returned as-is when nothing is created. Symlinks, absolute or relative, are followed as if
    the root were ``/`` and ``..`` never climbs above the root.
    """
    pending = [part for part in path.split("/") if part not in ("", ".")]
    pending.reverse()  # a stack: the next component is at the end
    resolved: list[str] = []
    links_followed = 0
    while pending:
        part = pending.pop()
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        is_last = not pending
        parent_fd = open_beneath(root_fd, "/".join(resolved), os.O_PATH | os.O_DIRECTORY)
        try:
            try:
                info = os.stat(part, dir_fd=parent_fd, follow_symlinks=False)
            except FileNotFoundError:
                if create is None:
                    if is_last:
                        resolved.append(part)
                        return "/".join(resolved)
                    raise FileNotFoundError(
                        errno.ENOENT, f"{'/' + '/'.join([*resolved, part])}: no such file or directory"
                    ) from None
                if create == "file" and is_last:
                    fd = os.open(
                        part,
                        os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_WRONLY,
                        mode,
                        dir_fd=parent_fd,
                    )
                    os.close(fd)
                else:
                    os.mkdir(part, mode, dir_fd=parent_fd)
                resolved.append(part)
                continue
            if stat.S_ISLNK(info.st_mode):
                links_followed += 1
                if links_followed > _MAX_SYMLINKS:
                    raise OSError(
                        errno.ELOOP, f"/{'/'.join(resolved)}/{part}: too many levels of symbolic links"
                    )
                target = os.readlink(part, dir_fd=parent_fd)
                if target.startswith("/"):
                    resolved = []
                pending.extend(reversed([p for p in target.split("/") if p not in ("", ".")]))
                continue
            if not stat.S_ISDIR(info.st_mode) and not is_last:
                raise NotADirectoryError(errno.ENOTDIR, f"/{'/'.join([*resolved, part])}: not a directory")
            resolved.append(part)
        finally:
            os.close(parent_fd)
    return "/".join(resolved)


def open_in_root(root_fd: int, path: str, flags: int = os.O_PATH, *, create: str | None = None) -> int:
    """Resolve ``path`` inside the root (see :func:`resolve`) and open it."""
    return open_beneath(root_fd, resolve(root_fd, path, create=create), flags)


def read_file_in_root(rootfs: str | os.PathLike, path: str) -> bytes | None:
    """The contents of the regular file ``path`` inside ``rootfs``, or None if it does not exist."""
    root_fd = os.open(rootfs, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        try:
            fd = open_in_root(root_fd, path, os.O_RDONLY | os.O_NOCTTY | os.O_NONBLOCK)
        except OSError as exc:
            if exc.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):
                return None
            raise
        with open(fd, "rb") as file:
            if not stat.S_ISREG(os.fstat(file.fileno()).st_mode):
                return None
            return file.read()
    finally:
        os.close(root_fd)
