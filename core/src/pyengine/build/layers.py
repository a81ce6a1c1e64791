"""Making image layers during a build: from a container's changes (RUN) or from a tar written here
(COPY/ADD), stored as a blob and unpacked in the storage driver under its chain ID.

Kept apart from the executor so that ``commit`` can share it: :func:`store_layer` is the whole path
from "a layer tar" to "a layer of an image".
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
import tarfile
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from pyengine.drivers.storage import StorageDriver
from pyengine.errors import EngineError, InvalidArgument
from pyengine.images.image import MEDIA_LAYER_TAR, chain_ids, layer_key
from pyengine.runtime.inroot import openat2_in_root
from pyengine.state.blobs import BlobStore


@dataclass
class StoredLayer:
    diff_id: str
    layer: dict[str, Any]  # the image store's {digest, diff_id, size, mediaType}
    size: int


def store_layer(
    driver: StorageDriver,
    blobs: BlobStore,
    parent_diff_ids: list[str],
    chunks: Iterable[bytes],
    *,
    fixed_mtime: int | None = None,
) -> StoredLayer:
    """Store a layer tar on top of the layers ``parent_diff_ids``: the blob, and the unpacked layer.

    With ``fixed_mtime`` every entry's times are replaced (SOURCE_DATE_EPOCH) so that equal trees
    give equal bytes.
    """
    with tempfile.TemporaryFile(dir=blobs.root) as spool:
        if fixed_mtime is None:
            hasher = hashlib.sha256()
            for chunk in chunks:
                hasher.update(chunk)
                spool.write(chunk)
            digest = hasher.hexdigest()
        else:
            with tempfile.TemporaryFile(dir=blobs.root) as raw:
                for chunk in chunks:
                    raw.write(chunk)
                raw.seek(0)
                digest = _copy_normalized(raw, spool, fixed_mtime)
        return store_layer_file(driver, blobs, parent_diff_ids, spool, "sha256:" + digest)


def store_layer_file(
    driver: StorageDriver,
    blobs: BlobStore,
    parent_diff_ids: list[str],
    tar_file: BinaryIO,
    diff_id: str | None = None,
) -> StoredLayer:
    """Store the layer tar in the seekable ``tar_file`` (``diff_id`` its digest, computed if None)."""
    tar_file.flush()
    if diff_id is None:
        tar_file.seek(0)
        hasher = hashlib.sha256()
        while chunk := tar_file.read(1 << 20):
            hasher.update(chunk)
        diff_id = "sha256:" + hasher.hexdigest()
    chains = chain_ids([*parent_diff_ids, diff_id])
    key = layer_key(chains[-1])
    size = 0
    if not driver.exists(key):
        parent = layer_key(chains[-2]) if len(chains) > 1 else None
        driver.create(key, parent)
        tar_file.seek(0)
        try:
            size = driver.apply_diff(key, tar_file)
        except BaseException:
            try:
                driver.remove(key)
            except EngineError:
                pass
            raise
    tar_file.seek(0)
    blob = blobs.put_file(tar_file, expected=diff_id)
    blob_size = blobs.size(blob)
    return StoredLayer(
        diff_id,
        {"digest": blob, "diff_id": diff_id, "size": blob_size, "mediaType": MEDIA_LAYER_TAR},
        size or blob_size,
    )


def _copy_normalized(source: BinaryIO, target: BinaryIO, fixed_mtime: int | None) -> str:
    """Copy a tar to ``target`` (times fixed when asked) and return the sha256 hex of what was written."""
    hasher = hashlib.sha256()
    if fixed_mtime is None:
        while chunk := source.read(1 << 20):
            hasher.update(chunk)
            target.write(chunk)
    else:
        writer = _HashingWriter(target, hasher)
        with (
            tarfile.open(fileobj=source, mode="r|") as tar_in,
            tarfile.open(fileobj=writer, mode="w|", format=tarfile.PAX_FORMAT) as tar_out,
        ):
            for member in tar_in:
                member.mtime = fixed_mtime
                for key in ("mtime", "atime", "ctime"):
                    member.pax_headers.pop(key, None)
                data = tar_in.extractfile(member) if member.isreg() else None
                tar_out.addfile(member, data)
                tar_in.members.clear()
    target.flush()
    return hasher.hexdigest()


class _HashingWriter:
    def __init__(self, target: BinaryIO, hasher: Any) -> None:
        self.target = target
        self.hasher = hasher

    def write(self, data: bytes) -> int:
        self.hasher.update(data)
        return self.target.write(data)


# ---- COPY/ADD: a layer tar written from files --------------------------------------------------
@dataclass
class CopyEntry:
    """One entry of a COPY layer: ``name`` relative to the root ("app/main.sh")."""

    name: str
    source: str | None  # a file or symlink on the host, or None for a made directory / ``data``
    mode: int | None = None  # permission bits; None keeps the source's
    uid: int = 0
    gid: int = 0
    data: bytes | None = None  # heredoc content


def write_copy_tar(entries: list[CopyEntry], fixed_mtime: int | None, out: BinaryIO) -> None:
    """Write a tar of the entries to ``out``, sorted so that parents come first and equal input gives
    equal bytes (with ``fixed_mtime``, every entry gets that mtime)."""
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for entry in sorted(entries, key=lambda e: e.name.split("/")):
            info, data = _entry_info(entry, fixed_mtime)
            if data is None:
                tar.addfile(info)
            elif isinstance(data, bytes):
                tar.addfile(info, io.BytesIO(data))
            else:
                with open(data, "rb") as handle:
                    tar.addfile(info, handle)


def _entry_info(entry: CopyEntry, fixed_mtime: int | None) -> tuple[tarfile.TarInfo, Any]:
    info = tarfile.TarInfo(entry.name)
    info.uid, info.gid = entry.uid, entry.gid
    info.uname = info.gname = ""
    if entry.source is None:
        info.mtime = fixed_mtime or 0
        if entry.data is not None:
            info.type = tarfile.REGTYPE
            info.mode = 0o644 if entry.mode is None else entry.mode
            info.size = len(entry.data)
            return info, entry.data
        info.type = tarfile.DIRTYPE
        info.mode = 0o755 if entry.mode is None else entry.mode
        return info, None
    st = os.lstat(entry.source)
    info.mtime = fixed_mtime if fixed_mtime is not None else int(st.st_mtime)
    info.mode = stat.S_IMODE(st.st_mode) if entry.mode is None else entry.mode
    if stat.S_ISDIR(st.st_mode):
        info.type = tarfile.DIRTYPE
        return info, None
    if stat.S_ISLNK(st.st_mode):
        info.type = tarfile.SYMTYPE
        info.linkname = os.readlink(entry.source)
        return info, None
    if not stat.S_ISREG(st.st_mode):
        raise InvalidArgument(f"cannot copy {entry.source}: not a regular file, directory or symlink")
    info.type = tarfile.REGTYPE
    info.size = st.st_size
    return info, entry.source


def kind_in_root(rootfs: Path | None, path: str) -> str | None:
    """'dir', 'other' or None (missing) for ``path`` inside ``rootfs``, symlinks resolved inside it."""
    if rootfs is None:
        return None
    root_fd = os.open(rootfs, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fd = openat2_in_root(root_fd, path.lstrip("/") or ".", os.O_PATH)
    except OSError:
        return None
    finally:
        os.close(root_fd)
    try:
        return "dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "other"
    finally:
        os.close(fd)
