"""Copying a layer's directory tree with everything a layer holds.

Regular files are cloned with the FICLONE ioctl where the file system shares extents (btrfs,
XFS with reflink=1): the copy then costs no space and almost no time. Elsewhere data is copied
in the kernel with copy_file_range, region by region so that holes stay holes. Hard links,
owners, modes (setuid too), xattrs, devices, fifos, sockets and nanosecond times are kept.
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat
import tempfile
from pathlib import Path

FICLONE = 0x40049409  # _IOW(0x94, 9, int)

# copy_file_range cannot work between these (or at all): fall back to read/write
_NO_COPY_RANGE = {errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.EBADF}
_NO_CLONE = {errno.EOPNOTSUPP, errno.ENOTTY, errno.EXDEV, errno.EINVAL, errno.ENOSYS}


def reflinks_supported(directory: Path) -> bool:
    """Whether files in ``directory`` can be cloned with FICLONE."""
    with tempfile.TemporaryFile(dir=directory) as source, tempfile.TemporaryFile(dir=directory) as clone:
        source.write(b"x" * 4096)
        source.flush()
        try:
            fcntl.ioctl(clone.fileno(), FICLONE, source.fileno())
        except OSError as exc:
            if exc.errno in _NO_CLONE:
                return False
            raise
    return True


def _copy_range(src_fd: int, dst_fd: int, offset: int, length: int) -> None:
    end = offset + length
    try:
        while offset < end:
            copied = os.copy_file_range(src_fd, dst_fd, end - offset, offset, offset)
            if copied == 0:
                raise OSError(errno.EIO, "source file shrank while being copied")
            offset += copied
    except OSError as exc:
        if exc.errno not in _NO_COPY_RANGE:
            raise
        while offset < end:
            chunk = os.pread(src_fd, min(1 << 20, end - offset), offset)
            if not chunk:
                raise OSError(errno.EIO, "source file shrank while being copied") from exc
            offset += os.pwrite(dst_fd, chunk, offset)


def _copy_data(src_fd: int, dst_fd: int, size: int, blocks: int, reflink: bool) -> None:
    if size == 0:
        return
    if reflink:
        try:
            fcntl.ioctl(dst_fd, FICLONE, src_fd)
            return
        except OSError as exc:
            if exc.errno not in _NO_CLONE:
                raise
    if blocks * 512 >= size:  # no holes: one range
        _copy_range(src_fd, dst_fd, 0, size)
        return
    offset = 0
    while offset < size:
        try:
            start = os.lseek(src_fd, offset, os.SEEK_DATA)
        except OSError as exc:
            if exc.errno == errno.ENXIO:
                break
            raise
        end = min(os.lseek(src_fd, start, os.SEEK_HOLE), size)
        _copy_range(src_fd, dst_fd, start, end - start)
        offset = end
    os.ftruncate(dst_fd, size)


def _copy_xattrs(src: str, dst: int | str, follow_symlinks: bool = True) -> None:
    for name in os.listxattr(src, follow_symlinks=False):
        os.setxattr(dst, name, os.getxattr(src, name, follow_symlinks=False), follow_symlinks=follow_symlinks)


class _TreeCopier:
    def __init__(self, reflink: bool) -> None:
        self.reflink = reflink
        self.copied_inodes: dict[tuple[int, int], str] = {}

    def copy_dir(self, src: str, dst: str, st: os.stat_result) -> None:
        os.mkdir(dst, 0o700)
        with os.scandir(src) as entries:
            for item in entries:
                self.copy_entry(item.path, os.path.join(dst, item.name), item.stat(follow_symlinks=False))
        self.set_metadata(src, dst, st)

    def copy_entry(self, src: str, dst: str, st: os.stat_result) -> None:
        mode = st.st_mode
        if stat.S_ISDIR(mode):
            self.copy_dir(src, dst, st)
            return
        if st.st_nlink > 1:
            first = self.copied_inodes.get((st.st_dev, st.st_ino))
            if first is not None:
                os.link(first, dst, follow_symlinks=False)
                return
            self.copied_inodes[(st.st_dev, st.st_ino)] = dst
        if stat.S_ISREG(mode):
            src_fd = os.open(src, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
            try:
                dst_fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
                try:
                    _copy_data(src_fd, dst_fd, st.st_size, st.st_blocks, self.reflink)
                    os.fchown(dst_fd, st.st_uid, st.st_gid)
                    os.fchmod(dst_fd, stat.S_IMODE(mode))  # after chown, which clears setuid
                    _copy_xattrs(src, dst_fd)
                    os.utime(dst_fd, ns=(st.st_atime_ns, st.st_mtime_ns))
                finally:
                    os.close(dst_fd)
            finally:
                os.close(src_fd)
        elif stat.S_ISLNK(mode):
            os.symlink(os.readlink(src), dst)
            os.lchown(dst, st.st_uid, st.st_gid)
            _copy_xattrs(src, dst, follow_symlinks=False)
            os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)
        else:  # devices, fifos, sockets
            os.mknod(dst, stat.S_IFMT(mode) | 0o600, st.st_rdev)
            self.set_metadata(src, dst, st)

    @staticmethod
    def set_metadata(src: str, dst: str, st: os.stat_result) -> None:
        os.chown(dst, st.st_uid, st.st_gid)
        os.chmod(dst, stat.S_IMODE(st.st_mode))
        _copy_xattrs(src, dst)
        os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns))


def copy_tree(src: Path, dst: Path, *, reflink: bool) -> None:
    """Copy directory ``src`` to ``dst`` (which must not exist), keeping everything a layer holds.

    Both trees belong to the driver: symlinks are copied as links and never followed.
    """
    source = os.fspath(src)
    _TreeCopier(reflink).copy_dir(source, os.fspath(dst), os.lstat(source))
