"""The vfs storage driver for pyengine: layers as full directory copies, on any file system."""

from pyengine_storage_vfs.driver import VfsDriver

__all__ = ["VfsDriver"]
