"""A base for storage drivers whose layers are whole directories (vfs copies, btrfs snapshots).

Such a driver only says how a layer's directory is made from its parent's (:meth:`_populate`: a copy,
a snapshot) and how one is deleted (:meth:`_delete_tree`); the bookkeeping lives here, once:

    <layers_subdir>/<layer_id>     the layer's whole file system
    meta/<layer_id>.json           {"parent": ..., "writable": ...}, written atomically
    <layers_subdir>/.tmp-*, .apply-*, .remove-*    work in progress; removed at start-up

A layer exists once its metadata file *and* its directory are in place. Creation builds the
directory under a temporary name, renames it into place, then writes the metadata; removal renames
the directory away first. A crash at any point leaves no layer that :meth:`exists` reports half made,
and the next start-up removes the leftovers. Mounts are reference counts in memory (nothing is
mounted: the directory is the root file system).

The one exception is :meth:`mount_idmapped` (the IdMappedMount capability, for ``--userns-remap``):
an idmapped bind of the layer directory at ``idmapped/<layer_id>``, outside the layers directory.
It stays while a remapped container runs, also across a daemon restart, and goes with the last
unmount (or the layer's removal).
"""

from __future__ import annotations

import abc
import errno
import json
import logging
import os
import re
import secrets
import threading
from pathlib import Path
from typing import BinaryIO

from pyengine.drivers.storage import IdMappedMount, StorageDriver
from pyengine.errors import AlreadyExists, Conflict, InvalidArgument, NotFound, NotSupported, Unavailable
from pyengine.runtime import idmap as idmapping
from pyengine.storage.archive import apply_layer
from pyengine.storage.layer_checks import refuse_removal_if_in_use

log = logging.getLogger(__name__)

_LAYER_ID = re.compile(r"[0-9a-zA-Z_-][0-9a-zA-Z_.-]*")


class DirectoryLayerDriver(StorageDriver, IdMappedMount):
    """Layers as directories under ``root/<layers_subdir>``; see the module docstring."""

    def __init__(self, root: Path, layers_subdir: str) -> None:
        super().__init__(root)
        self.layers_dir = self.root / layers_subdir
        self.meta_dir = self.root / "meta"
        self.layers_dir.mkdir(parents=True, exist_ok=True)
        self.meta_dir.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._mounts: dict[str, int] = {}
        #: layers being created: reserved ids that do not exist yet
        self._creating: set[str] = set()
        #: layers being written or removed: neither mountable nor removable meanwhile
        self._busy: set[str] = set()
        self._parents: dict[str, str | None] = {}
        #: layers mounted through an id map: the map (a restarted daemon finds them in idmapped/)
        self._idmaps: dict[str, idmapping.IdMap | None] = {}
        self.idmapped_dir = self.root / "idmapped"
        self._sweep_leftovers()

    # -- what a concrete driver supplies ---------------------------------------------------------

    @abc.abstractmethod
    def _populate(self, parent_id: str | None, destination: Path) -> None:
        """Make ``destination`` (which does not exist) hold the parent layer's file system, or an
        empty 0755 directory for a base layer."""

    @abc.abstractmethod
    def _delete_tree(self, path: Path) -> None:
        """Delete a layer directory (or a leftover file) made by :meth:`_populate`."""

    # -- bookkeeping -----------------------------------------------------------------------------

    def _layer_dir(self, layer_id: str) -> Path:
        return self.layers_dir / layer_id

    def _meta_file(self, layer_id: str) -> Path:
        return self.meta_dir / f"{layer_id}.json"

    def _work_dir(self, purpose: str, layer_id: str) -> Path:
        return self.layers_dir / f".{purpose}-{layer_id}-{secrets.token_hex(4)}"

    def _sweep_leftovers(self) -> None:
        """Load the layers and remove what a crash left half made."""
        for meta in self.meta_dir.iterdir():
            if meta.name.startswith("."):
                meta.unlink()  # an unfinished atomic write
                continue
            layer_id = meta.name.removesuffix(".json")
            if not self._layer_dir(layer_id).is_dir():
                log.warning(
                    "%s: layer %s lost its directory (crash in a write); dropping it", self.name, layer_id
                )
                meta.unlink()
                continue
            self._parents[layer_id] = json.loads(meta.read_text())["parent"]
        for entry in self.layers_dir.iterdir():
            if entry.name not in self._parents:
                self._delete_tree(entry)
        if self.idmapped_dir.is_dir():
            for entry in self.idmapped_dir.iterdir():
                if idmapping.is_mount_point(entry) and entry.name in self._parents:
                    self._idmaps[entry.name] = None  # a running remapped container's: map unknown
                else:
                    self._release_idmapped(entry.name)

    def _write_meta(self, layer_id: str, parent_id: str | None, writable: bool) -> None:
        temporary = self.meta_dir / f".{layer_id}.{secrets.token_hex(8)}"
        with open(temporary, "w") as file:
            json.dump({"parent": parent_id, "writable": writable}, file)
            file.flush()
            os.fsync(file.fileno())
        os.rename(temporary, self._meta_file(layer_id))

    def _require(self, layer_id: str) -> None:
        """Raise NotFound unless the layer exists. Call with the lock held."""
        if layer_id not in self._parents or layer_id in self._creating:
            raise NotFound(f"no such layer: {layer_id}")

    def _delete_quietly(self, path: Path) -> None:
        try:
            if path.exists() or path.is_symlink():
                self._delete_tree(path)
        except OSError:
            log.warning("%s: could not delete %s", self.name, path, exc_info=True)

    # -- the interface ---------------------------------------------------------------------------

    def create(self, layer_id: str, parent_id: str | None, *, writable: bool = False) -> None:
        if not _LAYER_ID.fullmatch(layer_id):
            raise InvalidArgument(f"invalid layer id {layer_id!r}: use letters, digits, '_', '-' and '.'")
        with self._lock:
            if layer_id in self._parents:
                raise AlreadyExists(f"layer {layer_id} already exists")
            if parent_id is not None:
                self._require(parent_id)
            self._creating.add(layer_id)
            self._parents[layer_id] = parent_id  # reserves the id and keeps the parent from removal
        work = self._work_dir("tmp", layer_id)
        try:
            self._populate(parent_id, work)
            os.rename(work, self._layer_dir(layer_id))
            self._write_meta(layer_id, parent_id, writable)
        except BaseException:
            self._delete_quietly(work)
            self._delete_quietly(self._layer_dir(layer_id))
            with self._lock:
                del self._parents[layer_id]
            raise
        finally:
            with self._lock:
                self._creating.discard(layer_id)

    def remove(self, layer_id: str) -> None:
        with self._lock:
            self._require(layer_id)
            refuse_removal_if_in_use(layer_id, self._mounts, self._busy, self._parents)
            self._busy.add(layer_id)
        try:
            if layer_id in self._idmaps or os.path.lexists(self.idmapped_dir / layer_id):
                self._release_idmapped(layer_id)  # left by a container that ended while we were down
            doomed = self._work_dir("remove", layer_id)
            os.rename(self._layer_dir(layer_id), doomed)  # from here on the layer no longer exists
            self._meta_file(layer_id).unlink()
            with self._lock:
                del self._parents[layer_id]
            self._delete_tree(doomed)
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
        """The layer's directory is its root file system already: mounting only counts a reference.

        Also while the layer is mounted idmapped: the directory shows the ids stored on disk, which
        is what a diff, a commit or a copy wants.
        """
        with self._lock:
            self._require(layer_id)
            if layer_id in self._busy:
                raise Conflict(f"layer {layer_id} is being written and cannot be mounted yet")
            self._mounts[layer_id] = self._mounts.get(layer_id, 0) + 1
        return self._layer_dir(layer_id)

    def mount_idmapped(self, layer_id: str, idmap: idmapping.IdMap) -> Path:
        """An idmapped bind of the layer's directory at ``idmapped/<layer_id>`` (reference counted)."""
        target = self.idmapped_dir / layer_id
        with self._lock:
            self._require(layer_id)
            if layer_id in self._busy:
                raise Conflict(f"layer {layer_id} is being written and cannot be mounted yet")
            if layer_id in self._idmaps:
                known = self._idmaps[layer_id]
                if known is not None and known != idmap:
                    raise Conflict(f"layer {layer_id} is mounted through another id map")
                self._idmaps[layer_id] = idmap
            else:
                if self._mounts.get(layer_id):
                    raise Conflict(f"layer {layer_id} is in use without an id map")
                self.idmapped_dir.mkdir(mode=0o711, exist_ok=True)
                target.mkdir(mode=0o700, exist_ok=True)
                try:
                    idmapping.mount_idmapped(
                        self._layer_dir(layer_id), target, idmapping.user_namespace_fd(idmap)
                    )
                except OSError as exc:
                    target.rmdir()
                    raise NotSupported(
                        f"{self.name}: cannot make an idmapped mount of layer {layer_id} under {self.root} "
                        f"(needs kernel 5.12+ and a file system that supports idmapping): {exc.strerror}"
                    ) from exc
                self._idmaps[layer_id] = idmap
            self._mounts[layer_id] = self._mounts.get(layer_id, 0) + 1
        return target

    def _release_idmapped(self, layer_id: str) -> None:
        """Detach and delete ``idmapped/<layer_id>`` if it is there."""
        target = self.idmapped_dir / layer_id
        self._idmaps.pop(layer_id, None)
        if not os.path.lexists(target):
            return
        idmapping.detach(target)
        target.rmdir()

    def unmount(self, layer_id: str) -> None:
        """Release one mount reference; a layer not mounted (e.g. after a restart) is left alone,
        but for an idmapped mount, which goes with the last reference."""
        with self._lock:
            self._require(layer_id)
            count = self._mounts.get(layer_id, 0)
            if count <= 1:
                self._mounts.pop(layer_id, None)
                if layer_id in self._idmaps:
                    self._release_idmapped(layer_id)
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
        work = self._work_dir("apply", layer_id)
        try:
            os.rename(layer_dir, work)  # a crash mid-way leaves no layer that looks whole
            try:
                size = apply_layer(stream, work)
            except BaseException as exc:
                # start the layer again from its parent: nothing of the tar stays applied
                self._delete_quietly(work)
                fresh = self._work_dir("tmp", layer_id)
                self._populate(parent_id, fresh)
                os.rename(fresh, layer_dir)
                if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
                    raise Unavailable(
                        f"no space left under {self.root} to unpack layer {layer_id}: {exc.strerror}"
                    ) from exc
                raise
            os.rename(work, layer_dir)
            return size
        finally:
            with self._lock:
                self._busy.discard(layer_id)

    def layer_count(self) -> int:
        with self._lock:
            return len(self._parents)

    def cleanup(self) -> None:
        with self._lock:
            self._mounts.clear()
