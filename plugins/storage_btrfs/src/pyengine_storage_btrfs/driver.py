"""The btrfs storage driver: every layer is a subvolume; a child layer starts as a snapshot of its
parent, so creating a container's root costs the same whatever the size of its image.

On disk, under the driver's root (which must be on btrfs)::

    subvolumes/<layer_id>     the layer's whole file system, a subvolume
    meta/<layer_id>.json      {"parent": ..., "writable": ...}, written atomically
    subvolumes/.tmp-*, .apply-*, .remove-*    work in progress; deleted at start-up

The layer bookkeeping (atomic creation and removal, metadata, reference counts, crash sweep) is
pyengine.storage.directory_driver's; this driver only makes and deletes subvolumes. No native diff:
the core's generic diff (pyengine.storage.naive_diff) compares the layer's subvolume with its
parent's.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from pyengine.storage.directory_driver import DirectoryLayerDriver

from pyengine_storage_btrfs import ioctl

#: the inode number of every subvolume's root directory (BTRFS_FIRST_FREE_OBJECTID)
_SUBVOLUME_ROOT_INODE = 256


def is_subvolume(path: Path) -> bool:
    st = os.lstat(path)
    return st.st_ino == _SUBVOLUME_ROOT_INODE and os.path.isdir(path) and not os.path.islink(path)


class BtrfsDriver(DirectoryLayerDriver):
    """Layers as btrfs subvolumes and snapshots. Make it with the plugin's factory (it checks the fs)."""

    name = "btrfs"

    def __init__(self, root: Path) -> None:
        super().__init__(root, "subvolumes")

    @property
    def subvolumes_dir(self) -> Path:
        return self.layers_dir

    def _populate(self, parent_id: str | None, destination: Path) -> None:
        if parent_id is None:
            ioctl.create_subvolume(str(destination.parent), destination.name)
            os.chmod(destination, 0o755)
        else:
            ioctl.snapshot(str(self._layer_dir(parent_id)), str(destination.parent), destination.name)

    def _delete_tree(self, path: Path) -> None:
        if is_subvolume(path):
            ioctl.delete_subvolume(str(path.parent), path.name)
        elif path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()

    def status(self) -> list[tuple[str, str]]:
        return [("Backing Filesystem", "btrfs"), ("Layers", str(self.layer_count()))]
