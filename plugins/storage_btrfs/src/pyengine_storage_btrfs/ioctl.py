"""The btrfs ioctls the driver needs, through ctypes: make a subvolume, snapshot one, delete one.

Layouts from linux/btrfs.h: ``btrfs_ioctl_vol_args`` is {s64 fd; char name[4088]} and
``btrfs_ioctl_vol_args_v2`` is {s64 fd; u64 transid; u64 flags; u64 unused[4]; char name[4040]};
both are 4096 bytes, so every request number is ``_IOW(0x94, nr, 4096)``.
"""

from __future__ import annotations

import ctypes
import fcntl
import os

BTRFS_SUPER_MAGIC = 0x9123683E
_BTRFS_IOCTL_MAGIC = 0x94
_PATH_NAME_MAX = 4087
_SUBVOL_NAME_MAX = 4039


def _iow(number: int, size: int) -> int:
    return (1 << 30) | (size << 16) | (_BTRFS_IOCTL_MAGIC << 8) | number


class _VolArgs(ctypes.Structure):
    _fields_ = [("fd", ctypes.c_int64), ("name", ctypes.c_char * (_PATH_NAME_MAX + 1))]


class _VolArgsV2(ctypes.Structure):
    _fields_ = [
        ("fd", ctypes.c_int64),
        ("transid", ctypes.c_uint64),
        ("flags", ctypes.c_uint64),
        ("unused", ctypes.c_uint64 * 4),
        ("name", ctypes.c_char * (_SUBVOL_NAME_MAX + 1)),
    ]


assert ctypes.sizeof(_VolArgs) == 4096 and ctypes.sizeof(_VolArgsV2) == 4096

BTRFS_IOC_SUBVOL_CREATE = _iow(14, 4096)
BTRFS_IOC_SNAP_DESTROY = _iow(15, 4096)
BTRFS_IOC_SNAP_CREATE_V2 = _iow(23, 4096)


def _open_dir(path: str) -> int:
    return os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)


def _name(name: str) -> bytes:
    encoded = os.fsencode(name)
    if not encoded or b"/" in encoded or len(encoded) > _SUBVOL_NAME_MAX:
        raise ValueError(f"invalid subvolume name {name!r}")
    return encoded


def create_subvolume(parent_dir: str, name: str) -> None:
    """Make an empty subvolume ``parent_dir/name``."""
    args = _VolArgs(0, _name(name))
    fd = _open_dir(parent_dir)
    try:
        fcntl.ioctl(fd, BTRFS_IOC_SUBVOL_CREATE, args)
    finally:
        os.close(fd)


def snapshot(source: str, parent_dir: str, name: str) -> None:
    """Make ``parent_dir/name`` a writable snapshot of the subvolume ``source`` (copy on write)."""
    source_fd = _open_dir(source)
    try:
        args = _VolArgsV2(source_fd, 0, 0, (ctypes.c_uint64 * 4)(), _name(name))
        fd = _open_dir(parent_dir)
        try:
            fcntl.ioctl(fd, BTRFS_IOC_SNAP_CREATE_V2, args)
        finally:
            os.close(fd)
    finally:
        os.close(source_fd)


def delete_subvolume(parent_dir: str, name: str) -> None:
    """Delete the subvolume ``parent_dir/name`` with everything in it."""
    args = _VolArgs(0, _name(name))
    fd = _open_dir(parent_dir)
    try:
        fcntl.ioctl(fd, BTRFS_IOC_SNAP_DESTROY, args)
    finally:
        os.close(fd)


class _Statfs(ctypes.Structure):
    _fields_ = [
        ("f_type", ctypes.c_long),
        ("f_bsize", ctypes.c_long),
        ("f_blocks", ctypes.c_ulong),
        ("f_bfree", ctypes.c_ulong),
        ("f_bavail", ctypes.c_ulong),
        ("f_files", ctypes.c_ulong),
        ("f_ffree", ctypes.c_ulong),
        ("f_fsid", ctypes.c_int * 2),
        ("f_namelen", ctypes.c_long),
        ("f_frsize", ctypes.c_long),
        ("f_flags", ctypes.c_long),
        ("f_spare", ctypes.c_long * 4),
    ]


_libc = ctypes.CDLL(None, use_errno=True)


def filesystem_magic(path: str) -> int:
    """statfs(2)'s f_type of the file system ``path`` is on."""
    buffer = _Statfs()
    if _libc.statfs(os.fsencode(path), ctypes.byref(buffer)) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), path)
    return buffer.f_type & 0xFFFFFFFF
