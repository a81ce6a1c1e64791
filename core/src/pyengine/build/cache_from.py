"""``--cache-from IMAGE`` for any image, pulled or loaded ones too, as Docker's classic builder does.

The given images are trusted cache sources. A step matches a source when the source's history
continues the current parent's exactly (the parent's history entries and layer diff IDs are a prefix
of the source's) and the source's next history entry was created by the text this step would record
(``created_by``: the RUN command with its build args, the metadata instruction, or COPY/ADD with the
hash of its sources). The step's image is then made from the parent plus that entry and, for a
file-system step, the source's layer (already in the store); when the entry is the source's last one,
the step's image is the source itself. After a first match only that source is followed.
"""

from __future__ import annotations

from typing import Any

from pyengine.images.image import Image
from pyengine.images.lineage import set_parent
from pyengine.images.store import ImageStore
from pyengine.model.image import ImageConfig


class CacheSources:
    def __init__(self, images: list[Image]) -> None:
        self.images = [image for image in images if image.config.history]

    def __bool__(self) -> bool:
        return bool(self.images)

    def match(self, parent: Image | None, created_by: str) -> tuple[Image, int] | None:
        """(source, index of its history entry for this step), or None."""
        history = parent.config.history if parent is not None else []
        diff_ids = parent.config.rootfs.diff_ids if parent is not None else []
        index = len(history)
        for source in self.images:
            if not _continues(source, history, diff_ids):
                continue
            if source.config.history[index].created_by == created_by:
                return source, index
        return None

    def restore(
        self,
        store: ImageStore,
        parent: Image | None,
        config: ImageConfig,
        source: Image,
        index: int,
    ) -> Image:
        """The image of a matched step: ``config`` is what the step would set (Env, Cmd...)."""
        self.images = [source]  # go on with this source only, as Docker does
        entry = source.config.history[index]
        if index == len(source.config.history) - 1:
            if parent is not None and not source.parent:
                set_parent(store.db, source.id, parent.id)
            return store.resolve(source.id)
        new = config.model_copy(deep=True)
        new.history = [*(parent.config.history if parent else []), entry]
        new.created = entry.created
        new.architecture, new.os = source.config.architecture, source.config.os
        diff_ids = list(parent.config.rootfs.diff_ids) if parent else []
        layers = [dict(x) for x in parent.layers] if parent else []
        if not entry.empty_layer:
            layer_index = sum(1 for e in source.config.history[:index] if not e.empty_layer)
            if layer_index >= len(source.layers):
                raise LookupError("the cache source has fewer layers than its history says")
            diff_ids.append(source.config.rootfs.diff_ids[layer_index])
            layers.append(dict(source.layers[layer_index]))
        new.rootfs.diff_ids = diff_ids
        return store.add_image(new, layers, 0, [], parent.id if parent else "")


def _continues(source: Image, history: list[Any], diff_ids: list[str]) -> bool:
    """Whether ``source`` goes on from a parent with this history and these layers."""
    own = source.config.history
    if len(own) <= len(history) or len(source.config.rootfs.diff_ids) < len(diff_ids):
        return False
    if any(a.model_dump() != b.model_dump() for a, b in zip(history, own, strict=False)):
        return False
    return source.config.rootfs.diff_ids[: len(diff_ids)] == list(diff_ids)
