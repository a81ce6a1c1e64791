"""A layer's diff and changes for any storage driver: its native ones, else by comparing trees.

Every caller in the core (commit, ``docker diff``, build) goes through :func:`layer_diff` and
:func:`layer_changes`. A driver that declares :class:`~pyengine.drivers.storage.NativeDiff`
answers itself; for any other driver the layer and its parent are mounted (taking one reference
each, released after) and the two trees are compared with
:func:`pyengine.storage.archive.diff_directories` — what moby's NaiveDiffDriver does. That costs a
walk of the whole image, so drivers with a cheaper way declare NativeDiff.

Plain synchronous functions; call them off the event loop.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pyengine.drivers.storage import Change, NativeDiff, StorageDriver
from pyengine.storage.archive import diff_directories, naive_diff


@contextmanager
def _mounted_pair(driver: StorageDriver, layer_id: str) -> Iterator[tuple[Path | None, Path]]:
    """Mount the layer's parent (if any) and the layer; yield (parent path, layer path)."""
    parent_id = driver.parent(layer_id)  # NotFound for an unknown layer, before any mount
    parent_root = driver.mount(parent_id) if parent_id is not None else None
    try:
        layer_root = driver.mount(layer_id)
        try:
            yield parent_root, layer_root
        finally:
            driver.unmount(layer_id)
    finally:
        if parent_id is not None:
            driver.unmount(parent_id)


def generic_changes(driver: StorageDriver, layer_id: str) -> list[Change]:
    """The fallback: the layer's changes found by comparing its mounted tree with its parent's."""
    with _mounted_pair(driver, layer_id) as (parent_root, layer_root):
        return diff_directories(parent_root, layer_root)


def generic_diff(driver: StorageDriver, layer_id: str) -> Iterator[bytes]:
    """The fallback: yield a tar of the layer's changes against its parent, OCI whiteouts.

    Nothing is mounted until the iterator is first advanced; the mounts are released when it is
    exhausted or closed (a consumer that stops early should close it).
    """
    with _mounted_pair(driver, layer_id) as (parent_root, layer_root):
        yield from naive_diff(parent_root, layer_root)


def layer_changes(driver: StorageDriver, layer_id: str) -> list[Change]:
    """The paths the layer added, changed or deleted against its parent. Raises NotFound."""
    if isinstance(driver, NativeDiff):
        return driver.changes(layer_id)
    return generic_changes(driver, layer_id)


def layer_diff(driver: StorageDriver, layer_id: str) -> Iterator[bytes]:
    """An uncompressed tar of the layer's changes, OCI whiteouts. Raises NotFound (maybe lazily)."""
    if isinstance(driver, NativeDiff):
        return driver.diff(layer_id)
    return generic_diff(driver, layer_id)
