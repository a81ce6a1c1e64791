"""The driver itself: a plain class with explicit constructor arguments.

The contract of every method (what it returns, which pyengine.errors category it raises) is in
pyengine/drivers/storage.py. pyengine.storage.archive has the shared tar helpers: apply_layer
to unpack a layer safely, naive_diff/diff_directories when the driver has no native diff.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from pyengine.drivers.storage import Change, StorageDriver

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

    def mount(self, layer_id: str) -> Path:
        raise NotImplementedError(_TODO)

    def unmount(self, layer_id: str) -> None:
        raise NotImplementedError(_TODO)

    def apply_diff(self, layer_id: str, stream: BinaryIO) -> int:
        raise NotImplementedError(_TODO)

    def diff(self, layer_id: str) -> Iterator[bytes]:
        raise NotImplementedError(_TODO)

    def changes(self, layer_id: str) -> list[Change]:
        raise NotImplementedError(_TODO)
