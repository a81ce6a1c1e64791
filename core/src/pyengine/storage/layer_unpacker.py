"""Unpacking an OCI layer tar into a directory without ever writing outside it.

Every path in the tar is resolved *inside* the target directory: parent directories are opened
with ``openat2(RESOLVE_IN_ROOT)``, so a symlink already in the target (or made earlier by the
same tar) is followed the way it would be inside the container - an absolute ``/x`` or ``../../x``
stays under the target, as with Docker's chroot'ed unpacking. The last component of an entry is
never followed: it is replaced. On kernels without openat2 the parents are walked one component
at a time with ``O_NOFOLLOW``, which refuses symlinked parents outright.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import stat
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from pyengine.errors import InvalidArgument
from pyengine.runtime.inroot import openat2_in_root

log = logging.getLogger(__name__)

WHITEOUT_PREFIX = ".wh."
WHITEOUT_META_PREFIX = ".wh..wh."
WHITEOUT_OPAQUE = ".wh..wh..opq"
OVERLAY_OPAQUE_XATTR = "trusted.overlay.opaque"

# The kernel's dev_t: 12 bits of major, 20 bits of minor.
_MAX_DEV_MAJOR = (1 << 12) - 1
_MAX_DEV_MINOR = (1 << 20) - 1
# (uid_t)-1 means "leave unchanged" to chown, so it is no valid owner either.
_MAX_ID = (1 << 32) - 2

_COPY_CHUNK = 1 << 20
# Errors that mean "this entry cannot be made here", i.e. the tar is at fault, not the host.
_ENTRY_ERRNOS = {errno.ENOTDIR, errno.EEXIST, errno.ENOENT, errno.ELOOP, errno.EISDIR, errno.EXDEV}
# Set once openat2 turned out to be missing (ENOSYS): the component-by-component walk is used instead.
_openat2_missing = False


def is_overlay_opaque(path: str) -> bool:
    """Whether the directory ``path`` carries overlayfs's opaque marker (``trusted.overlay.opaque=y``)."""
    try:
        return os.getxattr(path, OVERLAY_OPAQUE_XATTR, follow_symlinks=False) == b"y"
    except OSError as exc:
        if exc.errno in (errno.ENODATA, errno.ENOTSUP):
            return False
        raise


def clean_entry_name(name: str) -> str:
    """Return a tar entry name as a plain relative path ('' for the root), refusing escapes."""
    if name.startswith("/"):
        raise InvalidArgument(
            f"layer tar entry {name!r} has an absolute path; layer entries must be relative"
        )
    parts = [part for part in name.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise InvalidArgument(f"layer tar entry {name!r} contains '..' and would leave the layer")
    return "/".join(parts)


def _pax_time_ns(value: str) -> int:
    """A PAX decimal time ("1700000000.123456789") as exact integer nanoseconds."""
    negative = value.startswith("-")
    seconds, _, fraction = value.lstrip("-").partition(".")
    ns = int(seconds or "0") * 1_000_000_000 + int((fraction + "000000000")[:9])
    return -ns if negative else ns


def _entry_times_ns(member: tarfile.TarInfo) -> tuple[int, int]:
    pax = member.pax_headers
    mtime = _pax_time_ns(pax["mtime"]) if "mtime" in pax else int(member.mtime) * 1_000_000_000
    atime = _pax_time_ns(pax["atime"]) if "atime" in pax else mtime
    return atime, mtime


def _remove_entry(parent_fd: int, name: str) -> None:
    """Remove ``name`` in ``parent_fd`` whatever it is, without following symlinks."""
    try:
        st = os.stat(name, dir_fd=parent_fd, follow_symlinks=False)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        shutil.rmtree(name, dir_fd=parent_fd)  # fd-based walk: never follows symlinks
    else:
        os.unlink(name, dir_fd=parent_fd)


class LayerUnpacker:
    """Writes tar members into one target directory (a path, or a directory fd that is dup'ed).

    Call :meth:`apply` for each member of an open tarfile, then :meth:`finish` (directory times are
    set last, once nothing more is written into them), then :meth:`close`. ``whiteouts`` is
    ``"delete"``, ``"overlay"`` (see :func:`pyengine.storage.unpack.apply_layer`) or ``"keep"``
    (``.wh.`` names are ordinary files: ``docker cp``); ``prefix`` puts every entry below that
    directory of the target; ``owner`` (uid, gid) replaces the tar's ownership; ``owner_to_target``
    turns an owner as the tar names it (after ``owner``) into the ids to give the file where it is
    written (a target seen through an idmapped mount shows other ids than the tar's; see
    :class:`pyengine.containers.filesystem.ContainerRoot`), raising ValueError for an id it
    cannot express; ``size`` counts the bytes of file content written.
    """

    def __init__(
        self,
        target: Path | int,
        whiteouts: str,
        *,
        prefix: str = "",
        no_overwrite_dir_non_dir: bool = False,
        owner: tuple[int, int] | None = None,
        owner_to_target: Callable[[int, int], tuple[int, int]] | None = None,
    ) -> None:
        if isinstance(target, int):
            self.root_fd = os.dup(target)
        else:
            self.root_fd = os.open(target, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        self.whiteouts = whiteouts
        #: where in the root the tar's entries go ("" for the root itself)
        self.prefix = prefix.strip("/")
        self.no_overwrite_dir_non_dir = no_overwrite_dir_non_dir
        self.owner_override = owner
        self.owner_to_target = owner_to_target
        #: paths this tar created, which its own whiteouts must leave alone (OCI image spec)
        self.created: set[str] = set()
        self.dir_times: dict[str, tuple[int, int]] = {}
        self.size = 0

    def close(self) -> None:
        os.close(self.root_fd)

    # -- finding directories inside the target ------------------------------------------------

    def _resolve_dir(self, path: str) -> int:
        global _openat2_missing
        flags = os.O_RDONLY | os.O_DIRECTORY
        if not _openat2_missing:
            try:
                return openat2_in_root(self.root_fd, path, flags)
            except OSError as exc:
                if exc.errno != errno.ENOSYS:
                    raise
                _openat2_missing = True
        fd = os.dup(self.root_fd)
        try:
            for part in path.split("/"):
                next_fd = os.open(part, flags | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
                os.close(fd)
                fd = next_fd
        except BaseException:
            os.close(fd)
            raise
        return fd

    def open_dir(self, path: str, *, create: bool, entry: str) -> int | None:
        """An fd of directory ``path`` (relative, resolved in the target), made if ``create``.

        Returns None when it does not exist and ``create`` is false.
        """
        if path == "":
            return os.dup(self.root_fd)
        try:
            return self._resolve_dir(path)
        except FileNotFoundError:
            if not create:
                return None
        except OSError as exc:
            if exc.errno in (errno.ENOTDIR, errno.ELOOP):
                raise InvalidArgument(
                    f"layer tar entry {entry!r}: {path!r} is not a directory inside the layer"
                ) from exc
            raise
        # Implied parent directories are made like Docker makes them: 0755, owned by root.
        parent, _, name = path.rpartition("/")
        parent_fd = self.open_dir(parent, create=True, entry=entry)
        try:
            os.mkdir(name, 0o755, dir_fd=parent_fd)
            os.chmod(name, 0o755, dir_fd=parent_fd, follow_symlinks=False)  # whatever the umask
        except FileExistsError:
            pass  # e.g. a dangling symlink: the retry below reports it
        finally:
            os.close(parent_fd)
        try:
            return self._resolve_dir(path)
        except OSError as exc:
            raise InvalidArgument(
                f"layer tar entry {entry!r}: {path!r} does not lead to a directory inside the layer"
            ) from exc

    # -- entries ------------------------------------------------------------------------------

    def _in_prefix(self, path: str) -> str:
        return f"{self.prefix}/{path}" if self.prefix else path

    def apply(self, tar: tarfile.TarFile, member: tarfile.TarInfo) -> None:
        path = clean_entry_name(member.name)
        if path == "":
            return  # the layer root itself: its owner and mode belong to the driver
        path = self._in_prefix(path)
        parent, _, name = path.rpartition("/")
        if name.startswith(WHITEOUT_PREFIX) and self.whiteouts != "keep":
            self.apply_whiteout(parent, name, member)
            return
        parent_fd = self.open_dir(parent, create=True, entry=member.name)
        assert parent_fd is not None
        try:
            self.create_entry(tar, member, parent_fd, name, path)
        except OSError as exc:
            if exc.errno in _ENTRY_ERRNOS:
                raise InvalidArgument(
                    f"cannot unpack layer tar entry {member.name!r}: {exc.strerror}"
                ) from exc
            raise
        finally:
            os.close(parent_fd)
        self.mark_created(path)

    def mark_created(self, path: str) -> None:
        # with its parents: an opaque marker must not prune a directory holding this layer's entries
        while path and path not in self.created:
            self.created.add(path)
            path = path.rpartition("/")[0]

    def create_entry(
        self, tar: tarfile.TarFile, member: tarfile.TarInfo, parent_fd: int, name: str, path: str
    ) -> None:
        if self.owner_to_target is not None and not member.islnk():  # (a link takes its target's owner)
            self.owner(member)  # an owner the map cannot give is refused before anything is replaced
        try:
            existing = os.stat(name, dir_fd=parent_fd, follow_symlinks=False)
        except FileNotFoundError:
            existing = None
        if existing is not None and self.no_overwrite_dir_non_dir:
            if member.isdir() and not stat.S_ISDIR(existing.st_mode):
                raise InvalidArgument(
                    f"cannot overwrite non-directory {path!r} with directory {member.name!r}"
                )
            if not member.isdir() and stat.S_ISDIR(existing.st_mode):
                raise InvalidArgument(
                    f"cannot overwrite directory {path!r} with non-directory {member.name!r}"
                )
        if existing is not None and not (member.isdir() and stat.S_ISDIR(existing.st_mode)):
            _remove_entry(parent_fd, name)
            existing = None

        if member.isdir():
            if existing is None:
                os.mkdir(name, 0o700, dir_fd=parent_fd)
            fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent_fd)
            try:
                self.set_metadata(fd, member, set_times=False)
            finally:
                os.close(fd)
            # a directory's mtime changes with every entry made in it: set it at the very end
            self.dir_times[path] = _entry_times_ns(member)
        elif member.isreg():
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
            fd = os.open(name, flags, 0o600, dir_fd=parent_fd)
            try:
                self.write_content(tar, member, fd)
                self.set_metadata(fd, member)
            finally:
                os.close(fd)
            self.size += member.size
        elif member.issym():
            os.symlink(member.linkname, name, dir_fd=parent_fd)
            os.chown(name, *self.owner(member), dir_fd=parent_fd, follow_symlinks=False)
            self.set_xattrs(f"/proc/self/fd/{parent_fd}/{name}", member, follow_symlinks=False)
            os.utime(name, ns=_entry_times_ns(member), dir_fd=parent_fd, follow_symlinks=False)
        elif member.islnk():
            self.make_hard_link(member, parent_fd, name)
        elif member.ischr() or member.isblk() or member.isfifo():
            if member.isfifo():
                os.mkfifo(name, 0o600, dir_fd=parent_fd)
            else:
                if not (0 <= member.devmajor <= _MAX_DEV_MAJOR and 0 <= member.devminor <= _MAX_DEV_MINOR):
                    raise InvalidArgument(
                        f"layer tar entry {member.name!r}: device number "
                        f"{member.devmajor}:{member.devminor} is out of range"
                    )
                kind = stat.S_IFCHR if member.ischr() else stat.S_IFBLK
                os.mknod(name, kind | 0o600, os.makedev(member.devmajor, member.devminor), dir_fd=parent_fd)
            # O_PATH: opening a fifo or a device for real would block or touch the device
            fd = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent_fd)
            try:
                self.set_metadata(f"/proc/self/fd/{fd}", member)
            finally:
                os.close(fd)
        else:
            raise InvalidArgument(f"layer tar entry {member.name!r} has an unsupported type {member.type!r}")

    def write_content(self, tar: tarfile.TarFile, member: tarfile.TarInfo, fd: int) -> None:
        source = tar.extractfile(member)
        assert source is not None
        if member.sparse:
            # only the data regions are in the tar; leave the holes as holes. The unbuffered
            # reader seeks only forward here, which a stream allows.
            raw = source.raw  # type: ignore[attr-defined]
            for offset, length in member.sparse:
                raw.seek(offset)
                self.copy_bytes(raw, fd, offset, length)
            os.ftruncate(fd, member.size)
        else:
            self.copy_bytes(source, fd, 0, member.size)

    @staticmethod
    def copy_bytes(source: BinaryIO, fd: int, offset: int, length: int) -> None:
        while length > 0:
            chunk = source.read(min(length, _COPY_CHUNK))
            if not chunk:
                raise InvalidArgument("layer tar ends in the middle of a file")
            view = memoryview(chunk)
            while view:
                written = os.pwrite(fd, view, offset)
                view = view[written:]
                offset += written
            length -= len(chunk)

    def make_hard_link(self, member: tarfile.TarInfo, parent_fd: int, name: str) -> None:
        try:
            target = clean_entry_name(member.linkname)
            target = self._in_prefix(target) if target else target
        except InvalidArgument as exc:
            raise InvalidArgument(
                f"layer tar entry {member.name!r} is a hard link to {member.linkname!r}, outside the layer"
            ) from exc
        target_parent, _, target_name = target.rpartition("/")
        if target_name == "":
            raise InvalidArgument(f"layer tar entry {member.name!r} is a hard link to the layer root")
        target_fd = self.open_dir(target_parent, create=False, entry=member.name)
        if target_fd is None:
            raise InvalidArgument(
                f"layer tar entry {member.name!r} links to {member.linkname!r}, which is not in the layer"
            )
        try:
            os.link(target_name, name, src_dir_fd=target_fd, dst_dir_fd=parent_fd, follow_symlinks=False)
        except FileNotFoundError as exc:
            raise InvalidArgument(
                f"layer tar entry {member.name!r} links to {member.linkname!r}, which is not in the layer"
            ) from exc
        except PermissionError as exc:  # linkat refuses directories with EPERM
            raise InvalidArgument(
                f"layer tar entry {member.name!r} links to {member.linkname!r}, which cannot be hard linked"
            ) from exc
        finally:
            os.close(target_fd)

    def owner(self, member: tarfile.TarInfo) -> tuple[int, int]:
        """The ids to chown ``member`` to in the target."""
        if self.owner_override is not None:
            uid, gid = self.owner_override
        else:
            uid, gid = member.uid, member.gid
            if not (0 <= uid <= _MAX_ID and 0 <= gid <= _MAX_ID):
                raise InvalidArgument(f"layer tar entry {member.name!r} has an invalid owner {uid}:{gid}")
        if self.owner_to_target is None:
            return uid, gid
        try:
            return self.owner_to_target(uid, gid)
        except ValueError as exc:
            raise InvalidArgument(
                f"tar entry {member.name!r}: owner {uid}:{gid} cannot be kept: {exc}"
            ) from exc

    def set_metadata(self, target: int | str, member: tarfile.TarInfo, *, set_times: bool = True) -> None:
        """Owner, mode, xattrs and times of a fresh non-symlink entry, given an fd or /proc path."""
        os.chown(target, *self.owner(member))
        os.chmod(target, member.mode & 0o7777)  # after chown, which clears setuid/setgid
        self.set_xattrs(target, member)  # after chown, which drops security.capability
        if set_times:
            os.utime(target, ns=_entry_times_ns(member))

    @staticmethod
    def set_xattrs(target: int | str, member: tarfile.TarInfo, *, follow_symlinks: bool = True) -> None:
        for key, value in member.pax_headers.items():
            if not key.startswith("SCHILY.xattr."):
                continue
            attr = key[len("SCHILY.xattr.") :]
            raw = value.encode("utf-8", "surrogateescape")
            try:
                os.setxattr(target, attr, raw, follow_symlinks=follow_symlinks)
            except OSError as exc:
                # like Docker: a file system without (this kind of) xattrs is no reason to fail
                if exc.errno not in (errno.ENOTSUP, errno.EPERM):
                    raise
                log.warning("layer entry %s: xattr %s not kept: %s", member.name, attr, exc.strerror)

    # -- whiteouts ----------------------------------------------------------------------------

    def apply_whiteout(self, parent: str, name: str, member: tarfile.TarInfo) -> None:
        if name == WHITEOUT_OPAQUE:
            self.apply_opaque(parent, member)
            return
        if name.startswith(WHITEOUT_META_PREFIX):
            return  # other AUFS bookkeeping (.wh..wh.plnk, .wh..wh.aufs): not content
        hidden = name[len(WHITEOUT_PREFIX) :]
        if hidden in ("", ".", ".."):
            raise InvalidArgument(
                f"layer tar entry {member.name!r} is a whiteout of {hidden!r}, which is invalid"
            )
        hidden_path = f"{parent}/{hidden}" if parent else hidden
        if hidden_path in self.created:
            return  # a whiteout only hides what the parents have, never its own layer's entries
        if self.whiteouts == "overlay":
            parent_fd = self.open_dir(parent, create=True, entry=member.name)
            assert parent_fd is not None
            try:
                _remove_entry(parent_fd, hidden)
                os.mknod(hidden, stat.S_IFCHR | 0o000, os.makedev(0, 0), dir_fd=parent_fd)
            finally:
                os.close(parent_fd)
            return
        parent_fd = self.open_dir(parent, create=False, entry=member.name)
        if parent_fd is None:
            return
        try:
            _remove_entry(parent_fd, hidden)
        finally:
            os.close(parent_fd)

    def apply_opaque(self, parent: str, member: tarfile.TarInfo) -> None:
        parent_fd = self.open_dir(parent, create=self.whiteouts == "overlay", entry=member.name)
        if parent_fd is None:
            return
        try:
            if self.whiteouts == "overlay":
                os.setxattr(f"/proc/self/fd/{parent_fd}", OVERLAY_OPAQUE_XATTR, b"y")
            else:
                self.prune(parent_fd, parent)
        finally:
            os.close(parent_fd)

    def prune(self, dir_fd: int, path: str) -> None:
        """Remove everything under ``path`` that this tar did not create itself."""
        for name in os.listdir(dir_fd):
            child = f"{path}/{name}" if path else name
            if child not in self.created:
                _remove_entry(dir_fd, name)
                continue
            try:
                child_fd = os.open(
                    name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd
                )
            except OSError:
                continue  # not a directory: nothing beneath it
            try:
                self.prune(child_fd, child)
            finally:
                os.close(child_fd)

    def finish(self) -> None:
        for path, times in self.dir_times.items():
            parent, _, name = path.rpartition("/")
            try:
                parent_fd = self.open_dir(parent, create=False, entry=path)
            except InvalidArgument:
                continue  # replaced by a non-directory later in the tar
            if parent_fd is None:
                continue
            try:
                fd = os.open(
                    name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent_fd
                )
            except OSError:
                continue  # deleted or replaced later in the tar
            finally:
                os.close(parent_fd)
            try:
                os.utime(fd, ns=times)
            finally:
                os.close(fd)
