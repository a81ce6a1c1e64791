"""Writing layer tars: a whole directory (export, base layers) or a list of changes (diff, commit).

Output is a PAX tar streamed as bytes: entries in tree order, numeric owners only, mtimes to the
nanosecond, xattrs as ``SCHILY.xattr.*``, hard links within the tar kept as links, sparse files as
GNU sparse 1.0 (holes are not written out), deletions as ``.wh.NAME`` whiteouts. The same tree
always gives the same bytes.
"""

from __future__ import annotations

import errno
import os
import stat
import tarfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from pyengine.drivers.storage import Change
from pyengine.storage.changes import change_sort_key, diff_directories, read_xattrs
from pyengine.storage.layer_unpacker import (
    WHITEOUT_OPAQUE,
    WHITEOUT_PREFIX,
    is_overlay_opaque,
)

_BLOCK = tarfile.BLOCKSIZE
_READ_CHUNK = 1 << 20


def _pax_time(ns: int) -> str:
    seconds, fraction = divmod(ns, 1_000_000_000)
    return f"{seconds}.{fraction:09d}".rstrip("0").rstrip(".")


def _header(info: tarfile.TarInfo) -> bytes:
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


def _padding(size: int) -> bytes:
    return b"\0" * (-size % _BLOCK)


def _data_segments(fd: int, size: int) -> list[tuple[int, int]]:
    """The (offset, length) regions of a file that hold data; holes lie between them."""
    segments = []
    offset = 0
    while offset < size:
        try:
            start = os.lseek(fd, offset, os.SEEK_DATA)
        except OSError as exc:
            if exc.errno == errno.ENXIO:  # only a hole is left
                break
            raise
        end = min(os.lseek(fd, start, os.SEEK_HOLE), size)
        segments.append((start, end - start))
        offset = end
    return segments


def _copy_region(fd: int, offset: int, length: int) -> Iterator[bytes]:
    end = offset + length
    while offset < end:
        chunk = os.pread(fd, min(_READ_CHUNK, end - offset), offset)
        if not chunk:
            raise OSError(errno.EIO, "file shrank while being archived")
        yield chunk
        offset += len(chunk)


class _TarWriter:
    def __init__(self, root: Path, fixed_mtime: int | None, whiteouts: str) -> None:
        self.root = os.fspath(root)
        self.fixed_mtime = fixed_mtime
        self.overlay_whiteouts = whiteouts == "overlay"
        self.first_names: dict[tuple[int, int], str] = {}  # inode -> name it was first written as

    def entry(self, rel: str) -> Iterator[bytes]:
        """The tar bytes for ``rel`` (a path relative to the root) alone, not its directory entries."""
        path = os.path.join(self.root, rel)
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return  # deleted since the changes were listed (a running container): nothing to add
        if stat.S_ISSOCK(st.st_mode):
            return  # sockets cannot be archived; they are made again by whoever listens
        if self.overlay_whiteouts and stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
            yield self.whiteout(rel)
            return
        info = tarfile.TarInfo(rel + "/" if stat.S_ISDIR(st.st_mode) else rel)
        info.mode = stat.S_IMODE(st.st_mode)
        info.uid, info.gid = st.st_uid, st.st_gid
        info.uname = info.gname = ""
        if self.fixed_mtime is not None:
            info.mtime = self.fixed_mtime
        else:
            info.mtime = st.st_mtime_ns // 1_000_000_000
            if st.st_mtime_ns % 1_000_000_000:
                info.pax_headers["mtime"] = _pax_time(st.st_mtime_ns)
        for name, value in read_xattrs(path).items():
            info.pax_headers["SCHILY.xattr." + name] = value.decode("utf-8", "surrogateescape")

        if not stat.S_ISDIR(st.st_mode) and st.st_nlink > 1:
            first = self.first_names.setdefault((st.st_dev, st.st_ino), rel)
            if first != rel:
                info.type = tarfile.LNKTYPE
                info.linkname = first
                yield _header(info)
                return
        if stat.S_ISREG(st.st_mode):
            yield from self.regular_file(path, st, info)
            return
        if stat.S_ISDIR(st.st_mode):
            info.type = tarfile.DIRTYPE
        elif stat.S_ISLNK(st.st_mode):
            info.type = tarfile.SYMTYPE
            info.linkname = os.readlink(path)
        elif stat.S_ISFIFO(st.st_mode):
            info.type = tarfile.FIFOTYPE
        else:
            info.type = tarfile.CHRTYPE if stat.S_ISCHR(st.st_mode) else tarfile.BLKTYPE
            info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
        yield _header(info)
        if self.overlay_whiteouts and stat.S_ISDIR(st.st_mode) and is_overlay_opaque(path):
            yield self.whiteout(f"{rel}/{WHITEOUT_OPAQUE[len(WHITEOUT_PREFIX) :]}")

    def regular_file(self, path: str, st: os.stat_result, info: tarfile.TarInfo) -> Iterator[bytes]:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            segments = [(0, st.st_size)]
            if st.st_blocks * 512 < st.st_size:  # fewer blocks than bytes: there are holes
                segments = _data_segments(fd, st.st_size)
            if segments == [(0, st.st_size)]:
                info.size = st.st_size
                yield _header(info)
                for offset, length in segments:
                    yield from _copy_region(fd, offset, length)
                yield _padding(st.st_size)
                return
            # GNU sparse 1.0: the map goes first in the data, then the data regions only. GNU tar
            # takes the file's size from the map's end, so a trailing hole gets an empty region.
            if not segments or sum(segments[-1]) < st.st_size:
                segments.append((st.st_size, 0))
            sparse_map = f"{len(segments)}\n" + "".join(f"{off}\n{length}\n" for off, length in segments)
            map_bytes = sparse_map.encode() + _padding(len(sparse_map))
            info.pax_headers.update(
                {
                    "GNU.sparse.major": "1",
                    "GNU.sparse.minor": "0",
                    "GNU.sparse.name": info.name,
                    "GNU.sparse.realsize": str(st.st_size),
                }
            )
            head, _, tail = info.name.rpartition("/")
            info.name = f"{head}/GNUSparseFile.0/{tail}" if head else f"GNUSparseFile.0/{tail}"
            info.size = len(map_bytes) + sum(length for _, length in segments)
            yield _header(info)
            yield map_bytes
            for offset, length in segments:
                yield from _copy_region(fd, offset, length)
            yield _padding(info.size)
        finally:
            os.close(fd)

    def whiteout(self, rel: str) -> bytes:
        parent, _, name = rel.rpartition("/")
        info = tarfile.TarInfo(f"{parent}/{WHITEOUT_PREFIX}{name}" if parent else WHITEOUT_PREFIX + name)
        info.mode = 0o644
        info.mtime = self.fixed_mtime or 0  # the same bytes every time
        info.uname = info.gname = ""
        return _header(info)

    def tree(self, rel: str) -> Iterator[bytes]:
        """Every entry below ``rel`` ('' for the root) in tree order."""
        directory = os.path.join(self.root, rel)
        for name in sorted(os.listdir(directory)):
            child = f"{rel}/{name}" if rel else name
            yield from self.entry(child)
            if os.path.isdir(os.path.join(directory, name)) and not os.path.islink(
                os.path.join(directory, name)
            ):
                yield from self.tree(child)


def write_layer(
    root: Path,
    changes: Iterable[Change] | None = None,
    *,
    fixed_mtime: int | None = None,
    whiteouts: str = "oci",
) -> Iterator[bytes]:
    """Yield a layer tar of directory ``root``: all of it, or only the ``changes`` listed.

    For a change list (paths like "/etc/passwd", as :func:`diff_directories` gives), 'A' and 'C'
    write the entry itself from ``root`` (a directory without its entries: they are listed on their
    own) and 'D' writes a whiteout. ``fixed_mtime`` (seconds, SOURCE_DATE_EPOCH style) replaces
    every entry's mtime for reproducible output. ``whiteouts="overlay"`` reads ``root`` as an
    overlayfs upper directory: its 0/0 character devices and ``trusted.overlay.opaque=y``
    directories become OCI whiteouts - a native diff for overlay drivers.
    """
    if whiteouts not in ("oci", "overlay"):
        raise ValueError(f"whiteouts must be 'oci' or 'overlay', not {whiteouts!r}")
    writer = _TarWriter(root, fixed_mtime, whiteouts)
    if changes is None:
        yield from writer.tree("")
    else:
        for change in sorted(changes, key=change_sort_key):
            rel = change.path.strip("/")
            if change.kind == "D":
                yield writer.whiteout(rel)
            else:
                yield from writer.entry(rel)
    yield b"\0" * (2 * _BLOCK)  # end-of-archive marker; tarfile.open("r|") reads up to here


def tar_directory(root: Path) -> Iterator[bytes]:
    """Yield a tar of everything under ``root`` (``docker export``, a base layer)."""
    return write_layer(root)


def naive_diff(parent_root: Path | None, layer_root: Path) -> Iterator[bytes]:
    """Yield the tar of what ``layer_root`` changed against ``parent_root`` (None: empty).

    The generic diff for drivers that keep each layer's full tree (vfs) or can mount parent and
    layer side by side; drivers with a native diff do better.
    """
    return write_layer(layer_root, diff_directories(parent_root, layer_root))
