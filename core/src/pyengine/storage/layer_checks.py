"""Checks every storage driver that keeps its layers' bookkeeping in memory makes alike."""

from __future__ import annotations

from collections.abc import Container, Mapping

from pyengine.errors import Conflict


def refuse_removal_if_in_use(
    layer_id: str, mounts: Mapping[str, int], busy: Container[str], parents: Mapping[str, str | None]
) -> None:
    """Conflict if ``layer_id`` is mounted, being written or removed, or the parent of another layer.

    ``mounts``: mount reference counts by layer; ``busy``: layers being written or removed;
    ``parents``: every layer's parent. Call it holding the driver's lock.
    """
    if mounts.get(layer_id):
        raise Conflict(f"layer {layer_id} is in use (mounted {mounts[layer_id]} times)")
    if layer_id in busy:
        raise Conflict(f"layer {layer_id} is being written")
    children = sorted(child for child, parent in parents.items() if parent == layer_id)
    if children:
        raise Conflict(f"layer {layer_id} has child layers: {', '.join(children)}")
