"""The driver itself: a plain class with explicit constructor arguments.

The contract of every method (what it returns, which pyengine.errors category it raises) is in
pyengine/drivers/storage.py. pyengine.storage.archive has the shared tar helpers (apply_layer
to unpack a layer safely). Diffs need nothing here: the core compares the mounted layer with its
mounted parent. Only if the driver can do that faster, also inherit
pyengine.drivers.storage.NativeDiff and write its diff() and changes(); likewise Quota only if
the file system really enforces a size limit.
"""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO

from pyengine.drivers.storage import StorageDriver

_TODO = "not written yet: see pyengine/drivers/storage.py for what this method must do"


class TemplateDriver(StorageDriver):
    name = "template"

    def __init__(self, root: Path) -> None:
        super().__init__(root)

    def create(self, layer_id: str, parent_id: str | None, *, writable: bool = False) -> None:
        raise NotImplementedError(_TODO)

    def remove(self, layer_id: str) -> None:
        raise NotImplementedError(_TODO)

    def exists(self, layer_id: str) -> bool:
        raise NotImplementedError(_TODO)

    def parent(self, layer_id: str) -> str | None:
        raise NotImplementedError(_TODO)

    def mount(self, layer_id: str) -> Path:
        raise NotImplementedError(_TODO)

    def unmount(self, layer_id: str) -> None:
        raise NotImplementedError(_TODO)

    def apply_diff(self, layer_id: str, stream: BinaryIO) -> int:
        raise NotImplementedError(_TODO)
