"""The overlay storage driver: each layer is a directory of its own changes, stacked by overlayfs.

On disk, under the driver's root (the layout of Docker's overlay2)::

    l/<LINK>                -> ../<layer_id>/diff   short names that keep mount options small
    <layer_id>/meta.json    {"parent": ..., "writable": ...}
    <layer_id>/link         the layer's LINK name
    <layer_id>/lower        its parents' links, nearest first: "l/AAA:l/BBB" (absent for a base)
    <layer_id>/diff/        the layer's own content (an overlayfs upper directory)
    <layer_id>/work/        overlayfs's work directory
    <layer_id>/merged/      where the stacked file system is mounted
    <layer_id>/mounts       the mount reference count, while it is above zero
    <layer_id>/idmap        the id map of an idmapped mount (``--userns-remap``), while mounted
    .tmp-*, .remove-*, <layer_id>/.apply-*   work in progress, swept away at start-up

A layer is created under a temporary name and renamed into place whole. The reference count of a
mount is kept on disk so that a daemon restarted while containers run still knows their mounts:
neither a restart nor :meth:`cleanup` unmounts the root file system of a running container.

Idmapped mounts (:meth:`OverlayDriver.mount_idmapped`): overlayfs cannot be idmapped itself, but
its layers can; every lower directory and the upper/work pair are handed to it as idmapped mounts
(see :func:`pyengine.runtime.idmap.mount_overlay_idmapped`), so the container's root sees the image
as its own, and its writes are stored as uid 0 in ``diff/``.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import re
import secrets
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from pyengine.drivers.storage import Change, IdMappedMount, NativeDiff, StorageDriver
from pyengine.errors import AlreadyExists, Conflict, InvalidArgument, NotFound, NotSupported, Unavailable
from pyengine.runtime import idmap as idmapping
from pyengine.storage.archive import apply_layer, write_layer
from pyengine.storage.layer_checks import refuse_removal_if_in_use

from pyengine_storage_overlay import kernel
from pyengine_storage_overlay.upper import upper_changes

log = logging.getLogger(__name__)

_LAYER_ID = re.compile(r"[0-9a-zA-Z_-][0-9a-zA-Z_.-]*")
_LINK_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
_LINK_LENGTH = 26
#: ``index`` and ``redirect_dir`` off keep the upper directory a plain diff (renamed directories
#: are copied, not redirected); ``metacopy=off`` keeps data in every copied-up file.
MOUNT_FLAGS = "index=off,redirect_dir=off,metacopy=off"


def backing_filesystem(path: Path) -> str:
    """The type of the file system ``path`` is on, from the longest mount point above it."""
    best, fstype = "", "unknown"
    target = os.path.realpath(path)
    with open("/proc/self/mountinfo") as mountinfo:
        for line in mountinfo:
            fields = line.split()
            mount_point = fields[4].replace("\\040", " ")
            inside = target == mount_point or target.startswith(mount_point.rstrip("/") + "/")
            if inside and len(mount_point) >= len(best):
                best, fstype = mount_point, fields[fields.index("-") + 1]
    return fstype


class OverlayDriver(StorageDriver, NativeDiff, IdMappedMount):
    """Layers as overlayfs diff directories. Make it with the plugin's factory (it checks the host)."""

    name = "overlay"

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.links_dir = self.root / "l"
        self.links_dir.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._parents: dict[str, str | None] = {}
        self._writable: dict[str, bool] = {}
        self._mounts: dict[str, int] = {}
        self._creating: set[str] = set()
        self._busy: set[str] = set()
        self._load()

    # -- bookkeeping ----------------------------------------------------------------------

    def _dir(self, layer_id: str) -> Path:
        return self.root / layer_id

    def _load(self) -> None:
        """Read the layers and their mount counts; remove what a crash left half made."""
        for entry in self.root.iterdir():
            if entry.name == "l":
                continue
            if entry.name.startswith((".tmp-", ".remove-")):
                shutil.rmtree(entry, ignore_errors=True)
                continue
            meta_file = entry / "meta.json"
            if not meta_file.is_file():
                log.warning("overlay: %s is no whole layer (crash during create); removing it", entry)
                self._unmount_quietly(entry / "merged")
                shutil.rmtree(entry, ignore_errors=True)
                continue
            meta = json.loads(meta_file.read_text())
            self._parents[entry.name] = meta["parent"]
            self._writable[entry.name] = bool(meta["writable"])
            for leftover in entry.glob(".apply-*"):
                shutil.rmtree(leftover, ignore_errors=True)
            try:
                count = int((entry / "mounts").read_text())
            except (FileNotFoundError, ValueError):
                count = 0
            mapped = (entry / "idmap").exists()
            if (
                count > 0
                and ((entry / "lower").exists() or mapped)
                and not kernel.is_mounted(str(entry / "merged"))
            ):
                # the mount is gone (the host rebooted): nobody holds it any more
                (entry / "mounts").unlink(missing_ok=True)
                count = 0
            if mapped and count == 0:
                (entry / "idmap").unlink()
            if count > 0:
                self._mounts[entry.name] = count
        for link in self.links_dir.iterdir():
            if not link.exists():  # dangling: its layer was never finished or is gone
                link.unlink()

    def _unmount_quietly(self, merged: Path) -> None:
        try:
            kernel.unmount(str(merged))
        except OSError as exc:
            log.warning("overlay: could not unmount %s: %s", merged, exc)

    def _check_id(self, layer_id: str) -> None:
        if not _LAYER_ID.fullmatch(layer_id) or layer_id == "l":
            raise InvalidArgument(f"invalid layer id {layer_id!r}: use letters, digits, '_', '-' and '.'")

    def _require(self, layer_id: str) -> None:
        """Raise NotFound unless the layer exists. Call with the lock held."""
        if layer_id not in self._parents or layer_id in self._creating:
            raise NotFound(f"no such layer: {layer_id}")

    def _save_mount_count(self, layer_id: str, count: int) -> None:
        path = self._dir(layer_id) / "mounts"
        if count <= 0:
            self._mounts.pop(layer_id, None)
            path.unlink(missing_ok=True)
            return
        self._mounts[layer_id] = count
        temporary = path.with_name(f".mounts-{secrets.token_hex(4)}")
        temporary.write_text(str(count))
        os.rename(temporary, path)

    def _lowers(self, layer_id: str) -> list[str]:
        """The link paths ("l/ABC") of the layer's parents, nearest first."""
        try:
            text = (self._dir(layer_id) / "lower").read_text()
        except FileNotFoundError:
            return []
        return [part for part in text.split(":") if part]

    def _lower_diff_dirs(self, layer_id: str) -> list[str]:
        return [os.path.realpath(self.root / link) for link in self._lowers(layer_id)]

    # -- the interface --------------------------------------------------------------------

    def create(self, layer_id: str, parent_id: str | None, *, writable: bool = False) -> None:
        self._check_id(layer_id)
        with self._lock:
            if layer_id in self._parents:
                raise AlreadyExists(f"layer {layer_id} already exists")
            if parent_id is not None:
                self._require(parent_id)
            self._creating.add(layer_id)
            self._parents[layer_id] = parent_id  # reserves the id and keeps the parent from removal
            self._writable[layer_id] = writable
        work = self.root / f".tmp-{layer_id}-{secrets.token_hex(4)}"
        link = None
        try:
            work.mkdir(0o700)
            for name in ("diff", "work", "merged"):
                (work / name).mkdir(0o755)
                os.chmod(work / name, 0o755)
            link = self._new_link()
            (work / "link").write_text(link)
            if parent_id is not None:
                lowers = [f"l/{(self._dir(parent_id) / 'link').read_text()}", *self._lowers(parent_id)]
                (work / "lower").write_text(":".join(lowers))
            (work / "meta.json").write_text(json.dumps({"parent": parent_id, "writable": writable}))
            os.symlink(f"../{layer_id}/diff", self.links_dir / link)
            os.rename(work, self._dir(layer_id))
        except BaseException:
            shutil.rmtree(work, ignore_errors=True)
            if link is not None:
                (self.links_dir / link).unlink(missing_ok=True)
            with self._lock:
                del self._parents[layer_id]
                self._writable.pop(layer_id, None)
            raise
        finally:
            with self._lock:
                self._creating.discard(layer_id)

    def _new_link(self) -> str:
        while True:
            link = "".join(secrets.choice(_LINK_ALPHABET) for _ in range(_LINK_LENGTH))
            if not os.path.lexists(self.links_dir / link):
                return link

    def remove(self, layer_id: str) -> None:
        with self._lock:
            self._require(layer_id)
            refuse_removal_if_in_use(layer_id, self._mounts, self._busy, self._parents)
            self._busy.add(layer_id)
        try:
            layer_dir = self._dir(layer_id)
            kernel.unmount(str(layer_dir / "merged"))  # a stale mount from before a crash
            link = (layer_dir / "link").read_text()
            doomed = self.root / f".remove-{layer_id}-{secrets.token_hex(4)}"
            os.rename(layer_dir, doomed)  # from here on the layer no longer exists
            with self._lock:
                del self._parents[layer_id]
                self._writable.pop(layer_id, None)
            (self.links_dir / link).unlink(missing_ok=True)
            shutil.rmtree(doomed)
        finally:
            with self._lock:
                self._busy.discard(layer_id)

    def exists(self, layer_id: str) -> bool:
        with self._lock:
            if layer_id not in self._parents or layer_id in self._creating:
                return False
        return (self._dir(layer_id) / "meta.json").is_file()

    def parent(self, layer_id: str) -> str | None:
        with self._lock:
            self._require(layer_id)
            return self._parents[layer_id]

    def mount(self, layer_id: str) -> Path:
        with self._lock:
            self._require(layer_id)
            if layer_id in self._busy:
                raise Conflict(f"layer {layer_id} is being written and cannot be mounted yet")
            layer_dir = self._dir(layer_id)
            lowers = self._lowers(layer_id)
            if (layer_dir / "idmap").exists() and kernel.is_mounted(str(layer_dir / "merged")):
                path = layer_dir / "merged"  # in use by a remapped container: share its mount
            elif not lowers:
                path = layer_dir / "diff"  # a base layer is its own diff: nothing to stack
            else:
                path = layer_dir / "merged"
                # checked even with a count: after a reboot the count on disk outlived the mount
                if not kernel.is_mounted(str(path)):
                    self._mount(layer_id, lowers)
            self._save_mount_count(layer_id, self._mounts.get(layer_id, 0) + 1)
            return path

    def _mount(self, layer_id: str, lowers: list[str]) -> None:
        own = f"l/{(self._dir(layer_id) / 'link').read_text()}"
        if self._writable[layer_id]:
            options = (
                f"lowerdir={':'.join(lowers)},upperdir={layer_id}/diff,workdir={layer_id}/work,{MOUNT_FLAGS}"
            )
        else:  # an image layer: read-only, its own diff on top of its parents'
            options = f"lowerdir={':'.join([own, *lowers])},{MOUNT_FLAGS}"
        try:
            kernel.mount_overlay(str(self.root), str(self._dir(layer_id) / "merged"), options)
        except OSError as exc:
            if exc.errno == errno.E2BIG:
                raise InvalidArgument(
                    f"layer {layer_id} has too many parents ({len(lowers)}) for one overlay mount"
                ) from exc
            raise Unavailable(f"cannot mount overlay for layer {layer_id}: {exc.strerror}") from exc

    def mount_idmapped(self, layer_id: str, idmap: idmapping.IdMap) -> Path:
        """A container's writable layer stacked on idmapped layers at ``merged/`` (reference counted)."""
        with self._lock:
            self._require(layer_id)
            if layer_id in self._busy:
                raise Conflict(f"layer {layer_id} is being written and cannot be mounted yet")
            if not self._writable[layer_id]:
                raise InvalidArgument(f"layer {layer_id} is an image layer: only a container's is idmapped")
            layer_dir = self._dir(layer_id)
            merged, marker = layer_dir / "merged", layer_dir / "idmap"
            wanted = json.dumps(idmap.oci(), sort_keys=True)
            if kernel.is_mounted(str(merged)) and self._mounts.get(layer_id, 0) > 0:
                if not marker.exists():
                    raise Conflict(f"layer {layer_id} is in use without an id map")
                if marker.read_text() != wanted:
                    raise Conflict(f"layer {layer_id} is mounted through another id map")
            else:
                if kernel.is_mounted(str(merged)):
                    kernel.unmount(str(merged))  # stale, from before a crash
                lowers = self._lower_diff_dirs(layer_id)
                if not lowers:  # a base layer: overlay wants a lower, an empty one will do
                    (layer_dir / "empty").mkdir(mode=0o755, exist_ok=True)
                    lowers = [str(layer_dir / "empty")]
                options = dict(option.split("=", 1) for option in MOUNT_FLAGS.split(","))
                try:
                    idmapping.mount_overlay_idmapped(lowers, str(layer_dir), str(merged), idmap, options)
                except OSError as exc:
                    raise NotSupported(
                        f"overlay: cannot mount layer {layer_id} on idmapped layers (needs kernel 6.13+ "
                        f"and a backing file system that supports idmapping): {exc.strerror or exc}"
                    ) from exc
                marker.write_text(wanted)
            self._save_mount_count(layer_id, self._mounts.get(layer_id, 0) + 1)
            return merged

    def unmount(self, layer_id: str) -> None:
        """Release one mount reference; the last one unmounts. An unmounted layer is left alone."""
        with self._lock:
            self._require(layer_id)
            count = self._mounts.get(layer_id, 0)
            if count <= 1:
                merged = self._dir(layer_id) / "merged"
                if kernel.is_mounted(str(merged)):
                    kernel.unmount(str(merged))
                (self._dir(layer_id) / "idmap").unlink(missing_ok=True)
            self._save_mount_count(layer_id, count - 1)

    def apply_diff(self, layer_id: str, stream: BinaryIO) -> int:
        with self._lock:
            self._require(layer_id)
            if self._mounts.get(layer_id) or layer_id in self._busy:
                raise Conflict(f"layer {layer_id} is in use; a diff is only applied to a fresh layer")
            self._busy.add(layer_id)
        layer_dir = self._dir(layer_id)
        try:
            if any((layer_dir / "diff").iterdir()):
                raise Conflict(f"layer {layer_id} already has content; diffs go only into fresh layers")
            # unpacked aside and renamed over the empty diff: a failure leaves the layer as it was
            work = layer_dir / f".apply-{secrets.token_hex(4)}"
            work.mkdir(0o755)
            os.chmod(work, 0o755)
            try:
                size = apply_layer(stream, work, whiteouts="overlay")
                os.rename(work, layer_dir / "diff")
            except BaseException as exc:
                shutil.rmtree(work, ignore_errors=True)
                if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
                    raise Unavailable(
                        f"no space left under {self.root} to unpack layer {layer_id}: {exc.strerror}"
                    ) from exc
                raise
            return size
        finally:
            with self._lock:
                self._busy.discard(layer_id)

    def _upper_and_lowers(self, layer_id: str) -> tuple[str, list[str]]:
        with self._lock:
            self._require(layer_id)
        return str(self._dir(layer_id) / "diff"), self._lower_diff_dirs(layer_id)

    def diff(self, layer_id: str) -> Iterator[bytes]:
        upper, lowers = self._upper_and_lowers(layer_id)
        if not lowers:
            return write_layer(Path(upper), whiteouts="overlay")
        return write_layer(Path(upper), upper_changes(upper, lowers, for_tar=True), whiteouts="overlay")

    def changes(self, layer_id: str) -> list[Change]:
        upper, lowers = self._upper_and_lowers(layer_id)
        return upper_changes(upper, lowers)

    def status(self) -> list[tuple[str, str]]:
        with self._lock:
            count = len(self._parents)
        return [
            ("Backing Filesystem", backing_filesystem(self.root)),
            ("Supports d_type", "true"),
            ("Native Overlay Diff", "true"),
            ("Layers", str(count)),
        ]

    def cleanup(self) -> None:
        """Unmount layers nobody holds; keep the mounts of running containers (live restore)."""
        with self._lock:
            for layer_id in self._parents:
                if self._mounts.get(layer_id, 0) > 0:
                    continue
                merged = self._dir(layer_id) / "merged"
                if kernel.is_mounted(str(merged)):
                    self._unmount_quietly(merged)
