"""The vfs storage driver: every layer is a full copy of its parent plus its own diff.

Works on any file system and needs no kernel mounts, at the cost of one full copy per layer
(cheap where the file system has reflinks). On disk, under the driver's root::

    dir/<layer_id>/          the layer's whole file system
    meta/<layer_id>.json     {"parent": ..., "writable": ...}, written atomically
    dir/.tmp-*, .apply-*, .remove-*    work in progress; swept away at start-up

The layer bookkeeping (atomic creation and removal, metadata, reference counts, crash sweep) is
pyengine.storage.directory_driver's; this driver only copies a parent's directory.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from pyengine.storage.directory_driver import DirectoryLayerDriver

from pyengine_storage_vfs.copy import copy_tree, reflinks_supported


def _backing_filesystem(path: Path) -> str:
    """The type of the file system ``path`` is on, from the longest mount point above it."""
    best, fstype = "", "unknown"
    target = os.path.realpath(path)
    with open("/proc/self/mountinfo") as mountinfo:
        for line in mountinfo:
            fields = line.split()
            mount_point = fields[4].replace("\\040", " ")
            fs = fields[fields.index("-") + 1]
            inside = target == mount_point or target.startswith(mount_point.rstrip("/") + "/")
            if inside and len(mount_point) >= len(best):
                best, fstype = mount_point, fs
    return fstype


class VfsDriver(DirectoryLayerDriver):
    """Layers as plain directory copies. ``use_reflinks``: None probes the file system."""

    name = "vfs"

    def __init__(self, root: Path, *, use_reflinks: bool | None = None) -> None:
        root = Path(root)
        root.mkdir(parents=True, exist_ok=True)
        self.use_reflinks = reflinks_supported(root) if use_reflinks is None else use_reflinks
        super().__init__(root, "dir")

    def _populate(self, parent_id: str | None, destination: Path) -> None:
        if parent_id is None:
            destination.mkdir(0o755)
        else:
            copy_tree(self._layer_dir(parent_id), destination, reflink=self.use_reflinks)

    def _delete_tree(self, path: Path) -> None:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()

    def status(self) -> list[tuple[str, str]]:
        return [
            ("Backing Filesystem", _backing_filesystem(self.root)),
            ("Reflinks", "yes" if self.use_reflinks else "no"),
            ("Layers", str(self.layer_count())),
        ]
