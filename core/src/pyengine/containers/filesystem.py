"""Reading and writing a container's files from the host: ``docker cp``, ``export``, path stats.

Every path a client names is resolved *inside* the container's root file system with
``openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)`` on a directory fd of that root: ``..`` stops
at the root and symlinks (absolute or relative) are followed the way the container itself sees
them, so a container that swaps a directory for a symlink to a host path mid-copy can at worst
redirect the copy to another place inside itself. After that first resolution nothing is looked
up by path string again: the tar writer walks directory fds with ``O_NOFOLLOW`` and the extractor
resolves every entry in the root once more (see :mod:`pyengine.storage.unpack`). Nothing from the
container's files is ever loaded or run; they are only read and written as data.

A container in a user namespace (``--userns-remap``) has its root seen through an idmapped mount:
a file stored as uid 0 shows as the container root's host uid (100000), and the host's root has
no id there at all. A :class:`ContainerRoot` given the map works on that view with Docker's
semantics all the same: tars carry the ids the container sees (uid 0 for its root) both ways,
and writes run with the container root's host ids as file-system ids (what they create is then
stored as uid 0) and are chowned to the host ids that stand for the tar's.
"""

from __future__ import annotations

import errno
import os
import stat
import tarfile
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any, BinaryIO

from pyengine.errors import InvalidArgument, NotFound
from pyengine.runtime.idmap import IdMap, filesystem_ids
from pyengine.runtime.inroot import openat2_in_root
from pyengine.storage.changes import HOST_XATTR_PREFIXES
from pyengine.storage.unpack import extract_archive

_BLOCK = tarfile.BLOCKSIZE
_READ_CHUNK = 1 << 20

# Go's os.FileMode type bits, as Docker's path stat reports them
_GO_MODE_DIR = 1 << 31
_GO_MODE_SYMLINK = 1 << 27
_GO_MODE_DEVICE = 1 << 26
_GO_MODE_NAMED_PIPE = 1 << 25
_GO_MODE_SOCKET = 1 << 24
_GO_MODE_SETUID = 1 << 23
_GO_MODE_SETGID = 1 << 22
_GO_MODE_CHAR_DEVICE = 1 << 21
_GO_MODE_STICKY = 1 << 20


def go_file_mode(st_mode: int) -> int:
    """A stat mode as Go's ``os.FileMode`` (what the docker CLI decodes from a path stat)."""
    mode = st_mode & 0o777
    if stat.S_ISDIR(st_mode):
        mode |= _GO_MODE_DIR
    elif stat.S_ISLNK(st_mode):
        mode |= _GO_MODE_SYMLINK
    elif stat.S_ISFIFO(st_mode):
        mode |= _GO_MODE_NAMED_PIPE
    elif stat.S_ISSOCK(st_mode):
        mode |= _GO_MODE_SOCKET
    elif stat.S_ISCHR(st_mode):
        mode |= _GO_MODE_DEVICE | _GO_MODE_CHAR_DEVICE
    elif stat.S_ISBLK(st_mode):
        mode |= _GO_MODE_DEVICE
    if st_mode & stat.S_ISUID:
        mode |= _GO_MODE_SETUID
    if st_mode & stat.S_ISGID:
        mode |= _GO_MODE_SETGID
    if st_mode & stat.S_ISVTX:
        mode |= _GO_MODE_STICKY
    return mode


def _rfc3339_nano(ns: int) -> str:
    seconds, fraction = divmod(ns, 1_000_000_000)
    text = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    if fraction:
        text += "." + f"{fraction:09d}".rstrip("0")
    return text + "Z"


def _clean(path: str) -> str:
    """A container path as a relative path inside the root ("" for the root)."""
    return "/".join(part for part in path.split("/") if part not in ("", "."))


class ContainerRoot:
    """A directory fd of a container's root file system; every lookup stays inside it.

    ``idmap``: the root is seen through an idmapped mount with this map (owners show as host
    ids); archives then give container ids, and extraction writes as the container's root.
    """

    def __init__(self, rootfs: str, idmap: IdMap | None = None) -> None:
        self.rootfs = os.path.realpath(rootfs)
        self.idmap = idmap
        self.fd = os.open(self.rootfs, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)

    def close(self) -> None:
        os.close(self.fd)

    def __enter__(self) -> ContainerRoot:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def open_dir(self, path: str, *, shown: str) -> int:
        """A readable fd of directory ``path`` (symlinks followed inside the root)."""
        rel = _clean(path)
        if rel == "":
            return os.dup(self.fd)
        try:
            return openat2_in_root(self.fd, rel, os.O_RDONLY | os.O_DIRECTORY)
        except FileNotFoundError:
            raise NotFound(f"Could not find the file {shown} in container") from None
        except OSError as exc:
            if exc.errno in (errno.ENOTDIR, errno.ELOOP):
                raise InvalidArgument(f"{shown}: not a directory") from exc
            raise

    def _parent_and_name(self, path: str) -> tuple[int, str]:
        """The parent directory's fd and the last component, which is not followed.

        A path ending in "/" or "/." names the directory itself (followed), as Docker reads it.
        """
        rel = _clean(path)
        if rel == "" or path.endswith(("/", "/.")):
            return self.open_dir(path, shown=path), "."
        parent, _, name = rel.rpartition("/")
        return self.open_dir(parent, shown=path), name

    def _in_root(self, fd: int) -> str:
        """The container path of an fd opened inside the root."""
        real = os.readlink(f"/proc/self/fd/{fd}")
        if real == self.rootfs:
            return "/"
        return "/" + os.path.relpath(real, self.rootfs)

    def stat(self, path: str) -> dict[str, Any]:
        """Docker's ``ContainerPathStat`` of ``path``: name, size, mode (Go bits), mtime, linkTarget."""
        parent_fd, name = self._parent_and_name(path)
        try:
            try:
                st = os.stat(name, dir_fd=parent_fd, follow_symlinks=False)
            except FileNotFoundError:
                raise NotFound(f"Could not find the file {path} in container") from None
            link_target = ""
            if stat.S_ISLNK(st.st_mode):
                link_target = self._resolve_link(parent_fd, name)
        finally:
            os.close(parent_fd)
        base = _clean(path).rpartition("/")[2] or "/"
        return {
            "name": base,
            "size": st.st_size,
            "mode": go_file_mode(st.st_mode),
            "mtime": _rfc3339_nano(st.st_mtime_ns),
            "linkTarget": link_target,
        }

    def _resolve_link(self, parent_fd: int, name: str) -> str:
        parent_path = self._in_root(parent_fd)
        joined = _clean(f"{parent_path}/{name}")
        try:
            fd = openat2_in_root(self.fd, joined, os.O_PATH)
        except OSError:  # dangling: the target as the container would name it
            target = os.readlink(name, dir_fd=parent_fd)
            base = "" if target.startswith("/") else parent_path
            return "/" + _clean(os.path.normpath(f"/{base}/{target}"))
        try:
            return self._in_root(fd)
        finally:
            os.close(fd)

    def archive(self, path: str) -> Iterator[bytes]:
        """A tar of ``path`` named by its last component (a directory with all it holds)."""
        parent_fd, name = self._parent_and_name(path)
        try:
            st = os.stat(name, dir_fd=parent_fd, follow_symlinks=False)
        except FileNotFoundError:
            os.close(parent_fd)
            raise NotFound(f"Could not find the file {path} in container") from None
        rel = _clean(path)
        top = "." if path.endswith("/.") or rel == "" else rel.rpartition("/")[2]
        return _archive(parent_fd, name, st, top, self._owner_in_container())

    def _owner_in_container(self) -> Callable[[int, int], tuple[int, int]] | None:
        """How an owner seen here becomes the one the container sees (None: the same)."""
        idmap = self.idmap
        if idmap is None:
            return None

        def shown_inside(uid: int, gid: int) -> tuple[int, int]:
            # An id outside the map is one the kernel already shows as the overflow id (65534,
            # nobody), as the container itself sees it: kept as it is.
            try:
                uid = idmap.container_uid(uid)
            except ValueError:
                pass
            try:
                gid = idmap.container_gid(gid)
            except ValueError:
                pass
            return uid, gid

        return shown_inside

    def extract(
        self,
        path: str,
        stream: BinaryIO,
        *,
        no_overwrite_dir_non_dir: bool = False,
        owner: tuple[int, int] | None = None,
    ) -> None:
        """Unpack a tar into directory ``path`` (``PUT /containers/{id}/archive``).

        ``owner`` (container ids, like the tar's) replaces the tar's owners (``cp -a``).
        """
        dir_fd = self.open_dir(path, shown=path)
        try:
            destination = self._in_root(dir_fd)
        finally:
            os.close(dir_fd)
        idmap = self.idmap
        if idmap is None:
            extract_archive(
                stream, self.fd, destination, no_overwrite_dir_non_dir=no_overwrite_dir_non_dir, owner=owner
            )
            return

        def on_the_view(uid: int, gid: int) -> tuple[int, int]:
            return idmap.host_uid(uid), idmap.host_gid(gid)

        # The host's root has no id through the idmapped mount: what it created could not be
        # owned by anyone there (EOVERFLOW). As the container's root (capabilities kept) it can.
        with filesystem_ids(idmap.root_uid, idmap.root_gid):
            extract_archive(
                stream,
                self.fd,
                destination,
                no_overwrite_dir_non_dir=no_overwrite_dir_non_dir,
                owner=owner,
                owner_to_target=on_the_view,
            )


def _archive(
    parent_fd: int,
    name: str,
    st: os.stat_result,
    top: str,
    owner_in_tar: Callable[[int, int], tuple[int, int]] | None,
) -> Iterator[bytes]:
    writer = _FdTarWriter(owner_in_tar)
    try:
        yield from writer.entry(parent_fd, name, st, top)
        yield b"\0" * (2 * _BLOCK)
    finally:
        os.close(parent_fd)


class _FdTarWriter:
    """Writes a tar of entries found by directory fd and name, never by a path string.

    ``owner_in_tar`` turns the owner a file shows into the one the tar gives it (None: the same).
    """

    def __init__(self, owner_in_tar: Callable[[int, int], tuple[int, int]] | None = None) -> None:
        self.first_names: dict[tuple[int, int], str] = {}
        self.owner_in_tar = owner_in_tar

    def entry(self, parent_fd: int, name: str, st: os.stat_result, arcname: str) -> Iterator[bytes]:
        if stat.S_ISSOCK(st.st_mode):
            return
        info = tarfile.TarInfo(arcname)
        info.mode = stat.S_IMODE(st.st_mode)
        info.uid, info.gid = st.st_uid, st.st_gid
        if self.owner_in_tar is not None:
            info.uid, info.gid = self.owner_in_tar(st.st_uid, st.st_gid)
        info.uname = info.gname = ""
        info.mtime = st.st_mtime_ns // 1_000_000_000
        if not stat.S_ISDIR(st.st_mode) and st.st_nlink > 1:
            first = self.first_names.setdefault((st.st_dev, st.st_ino), arcname)
            if first != arcname:
                info.type, info.linkname = tarfile.LNKTYPE, first
                yield _header(info)
                return
        if stat.S_ISREG(st.st_mode):
            yield from self.regular_file(parent_fd, name, st, info)
        elif stat.S_ISDIR(st.st_mode):
            yield from self.directory(parent_fd, name, st, info)
        elif stat.S_ISLNK(st.st_mode):
            info.type = tarfile.SYMTYPE
            info.linkname = os.readlink(name, dir_fd=parent_fd)
            yield _header(info)
        else:
            if stat.S_ISFIFO(st.st_mode):
                info.type = tarfile.FIFOTYPE
            else:
                info.type = tarfile.CHRTYPE if stat.S_ISCHR(st.st_mode) else tarfile.BLKTYPE
                info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
            yield _header(info)

    def regular_file(
        self, parent_fd: int, name: str, st: os.stat_result, info: tarfile.TarInfo
    ) -> Iterator[bytes]:
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
        try:
            fd = os.open(name, flags, dir_fd=parent_fd)
        except OSError:
            return  # replaced meanwhile (by a symlink: O_NOFOLLOW) or removed: skip it
        try:
            opened = os.fstat(fd)
            if not stat.S_ISREG(opened.st_mode):
                return
            _add_xattrs(info, fd)
            size = opened.st_size
            info.size = size
            yield _header(info)
            offset = 0
            while offset < size:
                chunk = os.pread(fd, min(_READ_CHUNK, size - offset), offset)
                if not chunk:  # shrank while being read: pad to the size the header promised
                    chunk = b"\0" * min(_READ_CHUNK, size - offset)
                yield chunk
                offset += len(chunk)
            yield b"\0" * (-size % _BLOCK)
        finally:
            os.close(fd)

    def directory(
        self, parent_fd: int, name: str, st: os.stat_result, info: tarfile.TarInfo
    ) -> Iterator[bytes]:
        try:
            fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent_fd)
        except OSError:
            return  # swapped for a symlink or removed meanwhile: not followed
        try:
            info.type = tarfile.DIRTYPE
            if info.name != ".":
                info.name += "/"
            _add_xattrs(info, fd)
            if info.name != ".":  # the root of an export or of "dir/.": only its entries
                yield _header(info)
            prefix = "" if info.name == "." else info.name
            for child in sorted(os.listdir(fd)):
                try:
                    child_st = os.stat(child, dir_fd=fd, follow_symlinks=False)
                except FileNotFoundError:
                    continue
                yield from self.entry(fd, child, child_st, prefix + child)
        finally:
            os.close(fd)


def _add_xattrs(info: tarfile.TarInfo, fd: int) -> None:
    try:
        names = os.listxattr(fd)
    except OSError:
        return
    for key in sorted(names):
        if key.startswith(HOST_XATTR_PREFIXES):
            continue
        try:
            value = os.getxattr(fd, key)
        except OSError:
            continue
        info.pax_headers["SCHILY.xattr." + key] = value.decode("utf-8", "surrogateescape")


def _header(info: tarfile.TarInfo) -> bytes:
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")
