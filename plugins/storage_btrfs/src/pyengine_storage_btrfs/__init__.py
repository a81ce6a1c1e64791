"""The btrfs storage driver for pyengine: each layer a subvolume, each child a snapshot of its parent."""

from pyengine_storage_btrfs.driver import BtrfsDriver

__all__ = ["BtrfsDriver"]
