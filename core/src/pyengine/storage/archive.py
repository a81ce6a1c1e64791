"""Layer tar handling shared by every storage driver.

- :func:`apply_layer` unpacks a layer tar into a directory, never writing outside it
  (:mod:`pyengine.storage.unpack`);
- :func:`diff_directories` lists what a layer changed against its parent
  (:mod:`pyengine.storage.changes`);
- :func:`write_layer`, :func:`naive_diff` and :func:`tar_directory` write layer tars
  (:mod:`pyengine.storage.pack`).

All are plain synchronous functions; call them off the event loop.
"""

from __future__ import annotations

from pyengine.storage.changes import diff_directories, read_xattrs
from pyengine.storage.layer_unpacker import (
    OVERLAY_OPAQUE_XATTR,
    WHITEOUT_OPAQUE,
    WHITEOUT_PREFIX,
    clean_entry_name,
    is_overlay_opaque,
)
from pyengine.storage.pack import naive_diff, tar_directory, write_layer
from pyengine.storage.unpack import apply_layer

__all__ = [
    "OVERLAY_OPAQUE_XATTR",
    "WHITEOUT_OPAQUE",
    "WHITEOUT_PREFIX",
    "apply_layer",
    "clean_entry_name",
    "is_overlay_opaque",
    "diff_directories",
    "naive_diff",
    "read_xattrs",
    "tar_directory",
    "write_layer",
]
