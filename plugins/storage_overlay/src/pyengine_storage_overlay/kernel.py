"""The kernel calls of the overlay driver: mounting overlayfs with short relative paths, unmounting.

overlayfs takes its layers as one ``lowerdir=a:b:c`` option, and all mount options must fit in one
page (4096 bytes). Absolute paths under a data root take ~80 bytes a layer, so like Docker's overlay2
the driver names each layer by a 26-character link (``l/ABC...``) and mounts with paths relative to
the driver's root: ~29 bytes a layer, enough for well over 128 layers. Relative paths are resolved
against the calling process's working directory, which is shared by every thread of the daemon, so
the mount is made by a short-lived forked child that changes directory first.
"""

from __future__ import annotations

import ctypes
import errno
import os

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]

MNT_DETACH = 2
#: the most mount option bytes the kernel reads (one page)
MAX_OPTIONS = 4095


def mount_overlay(workdir: str, target: str, options: str) -> None:
    """Mount overlayfs at ``target`` with ``options`` whose relative paths are under ``workdir``.

    Raises OSError with the kernel's errno (EINVAL for options the kernel refuses).
    """
    data = options.encode()
    if len(data) > MAX_OPTIONS:
        raise OSError(errno.E2BIG, f"overlay mount options are {len(data)} bytes, over one page")
    target_bytes = os.fsencode(os.path.abspath(target))
    pid = os.fork()
    if pid == 0:  # the child: no imports, no locks, only the two calls and _exit
        code = 0
        try:
            os.chdir(workdir)
            if _libc.mount(b"overlay", target_bytes, b"overlay", 0, data) != 0:
                code = ctypes.get_errno() or errno.EIO
        except BaseException:
            code = errno.EIO
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    if code:
        raise OSError(code, os.strerror(code), target)


def unmount(target: str) -> None:
    """Unmount ``target``; a path that is not a mount point is fine (already unmounted)."""
    if _libc.umount2(os.fsencode(target), 0) == 0:
        return
    err = ctypes.get_errno()
    if err == errno.EINVAL:
        return  # not mounted
    if err == errno.EBUSY:  # still open somewhere (a racing reader): detach it instead
        if _libc.umount2(os.fsencode(target), MNT_DETACH) == 0:
            return
        err = ctypes.get_errno()
    raise OSError(err, os.strerror(err), target)


def is_mounted(path: str) -> bool:
    """Whether ``path`` is a mount point (its device differs from its parent's)."""
    try:
        return os.path.ismount(path)
    except OSError:
        return False
