"""The btrfs storage driver: every layer is a subvolume; a child layer starts as a snapshot of its
parent, so creating a container's root costs the same whatever the size of its image.

On disk, under the driver's root (which must be on btrfs)::

    subvolumes/<layer_id>     the layer's whole file system, a subvolume
    meta/<layer_id>.json      {"parent": ..., "writable": ...}, written atomically
    subvolumes/.tmp-*, .apply-*, .remove-*    work in progress; deleted at start-up

A layer exists once its metadata file *and* its subvolume are in place: creation snapshots under a
temporary name, renames into place, then writes the metadata; removal renames the subvolume away
first. No native diff: the core's generic diff (pyengine.storage.naive_diff) compares the layer's
subvolume with its parent's.
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import shutil
import threading
from pathlib import Path
from typing import BinaryIO

from pyengine.drivers.storage import StorageDriver
from pyengine.errors import AlreadyExists, Conflict, InvalidArgument, NotFound, Unavailable
from pyengine.storage.archive import apply_layer

from pyengine_storage_btrfs import ioctl

log = logging.getLogger(__name__)

_LAYER_ID = re.compile(r"[0-9a-zA-Z_-][0-9a-zA-Z_.-]*")
#: the inode number of every subvolume's root directory (BTRFS_FIRST_FREE_OBJECTID)
_SUBVOLUME_ROOT_INODE = 256


def is_subvolume(path: Path) -> bool:
    st = os.lstat(path)
    return st.st_ino == _SUBVOLUME_ROOT_INODE and os.path.isdir(path) and not os.path.islink(path)


class BtrfsDriver(StorageDriver):
    """Layers as btrfs subvolumes and snapshots. Make it with the plugin's factory (it checks the fs)."""

    name = "btrfs"

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.subvolumes_dir = self.root / "subvolumes"
        self.meta_dir = self.root / "meta"
        self.subvolumes_dir.mkdir(parents=True, exist_ok=True)
        self.meta_dir.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._mounts: dict[str, int] = {}
        self._creating: set[str] = set()
        self._busy: set[str] = set()
        self._parents: dict[str, str | None] = {}
        self._sweep_leftovers()

    # -- bookkeeping ----------------------------------------------------------------------

    def _layer_dir(self, layer_id: str) -> Path:
        return self.subvolumes_dir / layer_id

    def _meta_file(self, layer_id: str) -> Path:
        return self.meta_dir / f"{layer_id}.json"

    def _delete(self, path: Path) -> None:
        if is_subvolume(path):
            ioctl.delete_subvolume(str(path.parent), path.name)
        elif path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()

    def _sweep_leftovers(self) -> None:
        for meta in self.meta_dir.iterdir():
            if meta.name.startswith("."):
                meta.unlink()
                continue
            layer_id = meta.name.removesuffix(".json")
            if not self._layer_dir(layer_id).is_dir():
                log.warning("btrfs: layer %s lost its subvolume (crash in a write); dropping it", layer_id)
                meta.unlink()
                continue
            self._parents[layer_id] = json.loads(meta.read_text())["parent"]
        for entry in self.subvolumes_dir.iterdir():
            if entry.name not in self._parents:
                self._delete(entry)

    def _write_meta(self, layer_id: str, parent_id: str | None, writable: bool) -> None:
        temporary = self.meta_dir / f".{layer_id}.{secrets.token_hex(8)}"
        with open(temporary, "w") as file:
            json.dump({"parent": parent_id, "writable": writable}, file)
            file.flush()
            os.fsync(file.fileno())
        os.rename(temporary, self._meta_file(layer_id))

    def _check_id(self, layer_id: str) -> None:
        if not _LAYER_ID.fullmatch(layer_id):
            raise InvalidArgument(f"invalid layer id {layer_id!r}: use letters, digits, '_', '-' and '.'")

    def _require(self, layer_id: str) -> None:
        """Raise NotFound unless the layer exists. Call with the lock held."""
        if layer_id not in self._parents or layer_id in self._creating:
            raise NotFound(f"no such layer: {layer_id}")

    def _work_name(self, purpose: str, layer_id: str) -> str:
        return f".{purpose}-{layer_id}-{secrets.token_hex(4)}"

    def _make_subvolume(self, parent_id: str | None, name: str) -> None:
        if parent_id is None:
            ioctl.create_subvolume(str(self.subvolumes_dir), name)
            os.chmod(self.subvolumes_dir / name, 0o755)
        else:
            ioctl.snapshot(str(self._layer_dir(parent_id)), str(self.subvolumes_dir), name)

    # -- the interface --------------------------------------------------------------------

    def create(self, layer_id: str, parent_id: str | None, *, writable: bool = False) -> None:
        self._check_id(layer_id)
        with self._lock:
            if layer_id in self._parents:
                raise AlreadyExists(f"layer {layer_id} already exists")
            if parent_id is not None:
                self._require(parent_id)
            self._creating.add(layer_id)
            self._parents[layer_id] = parent_id
        work = self._work_name("tmp", layer_id)
        try:
            self._make_subvolume(parent_id, work)
            os.rename(self.subvolumes_dir / work, self._layer_dir(layer_id))
            self._write_meta(layer_id, parent_id, writable)
        except BaseException:
            for path in (self.subvolumes_dir / work, self._layer_dir(layer_id)):
                if path.exists():
                    self._delete(path)
            with self._lock:
                del self._parents[layer_id]
            raise
        finally:
            with self._lock:
                self._creating.discard(layer_id)

    def remove(self, layer_id: str) -> None:
        with self._lock:
            self._require(layer_id)
            if self._mounts.get(layer_id):
                raise Conflict(f"layer {layer_id} is in use (mounted {self._mounts[layer_id]} times)")
            if layer_id in self._busy:
                raise Conflict(f"layer {layer_id} is being written")
            children = sorted(child for child, parent in self._parents.items() if parent == layer_id)
            if children:
                raise Conflict(f"layer {layer_id} has child layers: {', '.join(children)}")
            self._busy.add(layer_id)
        try:
            doomed = self.subvolumes_dir / self._work_name("remove", layer_id)
            os.rename(self._layer_dir(layer_id), doomed)  # from here on the layer no longer exists
            self._meta_file(layer_id).unlink()
            with self._lock:
                del self._parents[layer_id]
            self._delete(doomed)
        finally:
            with self._lock:
                self._busy.discard(layer_id)

    def exists(self, layer_id: str) -> bool:
        with self._lock:
            if layer_id not in self._parents or layer_id in self._creating:
                return False
        return self._meta_file(layer_id).is_file() and self._layer_dir(layer_id).is_dir()

    def parent(self, layer_id: str) -> str | None:
        with self._lock:
            self._require(layer_id)
            return self._parents[layer_id]

    def mount(self, layer_id: str) -> Path:
        """A subvolume is a directory already: mounting only counts the reference."""
        with self._lock:
            self._require(layer_id)
            if layer_id in self._busy:
                raise Conflict(f"layer {layer_id} is being written and cannot be mounted yet")
            self._mounts[layer_id] = self._mounts.get(layer_id, 0) + 1
        return self._layer_dir(layer_id)

    def unmount(self, layer_id: str) -> None:
        with self._lock:
            self._require(layer_id)
            count = self._mounts.get(layer_id, 0)
            if count <= 1:
                self._mounts.pop(layer_id, None)
            else:
                self._mounts[layer_id] = count - 1

    def apply_diff(self, layer_id: str, stream: BinaryIO) -> int:
        with self._lock:
            self._require(layer_id)
            if self._mounts.get(layer_id) or layer_id in self._busy:
                raise Conflict(f"layer {layer_id} is in use; a diff is only applied to a fresh layer")
            self._busy.add(layer_id)
            parent_id = self._parents[layer_id]
        layer_dir = self._layer_dir(layer_id)
        work = self.subvolumes_dir / self._work_name("apply", layer_id)
        try:
            os.rename(layer_dir, work)  # a crash mid-way leaves no layer that looks whole
            try:
                size = apply_layer(stream, work)
            except BaseException as exc:
                # start the layer again from its parent: nothing of the tar stays applied
                self._delete(work)
                fresh = self._work_name("tmp", layer_id)
                self._make_subvolume(parent_id, fresh)
                os.rename(self.subvolumes_dir / fresh, layer_dir)
                if isinstance(exc, OSError) and exc.errno in (28, 122):  # ENOSPC, EDQUOT
                    raise Unavailable(
                        f"no space left under {self.root} to unpack layer {layer_id}: {exc.strerror}"
                    ) from exc
                raise
            os.rename(work, layer_dir)
            return size
        finally:
            with self._lock:
                self._busy.discard(layer_id)

    def status(self) -> list[tuple[str, str]]:
        with self._lock:
            count = len(self._parents)
        return [("Backing Filesystem", "btrfs"), ("Layers", str(count))]

    def cleanup(self) -> None:
        with self._lock:
            self._mounts.clear()
