"""Sample file trees and tars for storage tests: every kind of entry a layer can hold.

Used by the storage driver conformance suite and the archive tests; needs root (devices, owners).
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
import tarfile
from pathlib import Path

from pyengine.storage.archive import read_xattrs

SPARSE_SIZE = 8 << 20
LONG_NAME = "usr/share/" + "long-directory-name-" * 4 + "/" + "a-file-name-well-past-one-hundred-bytes-" * 3
UNICODE_NAME = "usr/share/ünïcode-名前.txt"


def _set_mtime(path: Path, ns: int) -> None:
    os.utime(path, ns=(ns, ns), follow_symlinks=False)


def make_sample_tree(root: Path) -> None:
    """Fill ``root`` with files, directories, symlinks, hard links, devices, a fifo, setuid and
    setgid files, a sticky directory, foreign owners, user xattrs, nanosecond mtimes and a
    sparse file."""
    for directory in ("bin", "dev", "etc", "home/user", "run", "tmp", "usr/bin", "var", "empty"):
        (root / directory).mkdir(parents=True, exist_ok=True)
    (root / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    os.setxattr(root / "etc/passwd", "user.note", b"hello")
    os.setxattr(root / "etc/passwd", "user.binary", b"\xff\x00\x01")
    (root / "etc/hostname").write_text("sample\n")
    (root / "etc/empty-file").write_bytes(b"")
    (root / "bin/busybox").write_bytes(b"\x7fELF" + bytes(range(256)) * 64)
    os.chmod(root / "bin/busybox", 0o755)
    os.link(root / "bin/busybox", root / "bin/ls")
    os.symlink("busybox", root / "bin/sh")
    os.symlink("/proc/mounts", root / "etc/mtab")  # absolute and dangling: kept as text
    os.lchown(root / "etc/mtab", 1000, 1000)
    (root / "bin/su").write_bytes(b"su")
    os.chmod(root / "bin/su", 0o4755)
    (root / "usr/bin/wall").write_bytes(b"wall")
    os.chown(root / "usr/bin/wall", 0, 5)
    os.chmod(root / "usr/bin/wall", 0o2755)
    os.chmod(root / "tmp", 0o1777)
    os.chown(root / "home/user", 1000, 1000)
    os.chmod(root / "home/user", 0o750)
    (root / "home/user/.profile").write_text("export PS1='$ '\n")
    os.chown(root / "home/user/.profile", 1000, 1000)
    os.setxattr(root / "home", "user.dir", b"d")
    os.mknod(root / "dev/null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    os.chmod(root / "dev/null", 0o666)
    os.mknod(root / "dev/loop0", stat.S_IFBLK | 0o660, os.makedev(7, 0))
    os.mknod(root / "dev/wide", stat.S_IFCHR | 0o600, os.makedev(300, 70000))
    os.mkfifo(root / "run/fifo", 0o600)
    with open(root / "var/sparse.img", "wb") as sparse:
        sparse.write(b"head" * 1024)
        sparse.seek(SPARSE_SIZE // 2)
        sparse.write(b"middle")
        sparse.truncate(SPARSE_SIZE)
    for name in (LONG_NAME, UNICODE_NAME):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(name)
    # mtimes last, deepest first, so that making entries does not change them again
    stamp = 1_600_000_000_123_456_789
    for index, path in enumerate(sorted(root.rglob("*"), key=lambda p: -len(p.parts))):
        _set_mtime(path, stamp + index * 1_000_000_007)


def snapshot_tree(root: Path, *, hard_links: bool = True) -> dict[str, tuple]:
    """Everything about the entries under ``root`` (not root itself) a layer must keep."""
    entries: dict[str, tuple] = {}
    inodes: dict[tuple[int, int], list[str]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, root)
            st = os.lstat(path)
            content = None
            if stat.S_ISREG(st.st_mode):
                with open(path, "rb") as file:
                    content = hashlib.sha256(file.read()).hexdigest()
                if st.st_nlink > 1:
                    inodes.setdefault((st.st_dev, st.st_ino), []).append(rel)
            link = os.readlink(path) if stat.S_ISLNK(st.st_mode) else None
            entries[rel] = (
                stat.filemode(st.st_mode),
                st.st_uid,
                st.st_gid,
                st.st_mtime_ns,
                st.st_size if not stat.S_ISDIR(st.st_mode) else None,
                content,
                link,
                st.st_rdev,
                read_xattrs(path),
            )
    if hard_links:
        entries["<hard links>"] = tuple(sorted(tuple(sorted(group)) for group in inodes.values()))
    return entries


def build_tar(*entries: tuple[tarfile.TarInfo, bytes | None]) -> bytes:
    """A tar of hand-made entries, written as given (even names tarfile would never write)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in entries:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buffer.getvalue()


def entry(
    name: str,
    kind: bytes = tarfile.REGTYPE,
    *,
    data: bytes | None = None,
    linkname: str = "",
    mode: int = 0o644,
    devmajor: int = 0,
    devminor: int = 0,
) -> tuple[tarfile.TarInfo, bytes | None]:
    """One entry for :func:`build_tar`; regular files get ``data`` (default: empty)."""
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.linkname = linkname
    info.mtime = 1_600_000_000
    info.devmajor, info.devminor = devmajor, devminor
    if kind in (tarfile.REGTYPE, tarfile.AREGTYPE) and data is None:
        data = b""
    return info, data
