"""``docker commit``: a container's changes as a new image layer on top of its image.

The new layer is the storage driver's diff of the container's writable layer. It is stored as a
blob (so the image can be saved or pushed without re-packing) and unpacked in the driver under its
chain ID on the image's top layer, so containers made from the new image start without copying.
"""

from __future__ import annotations

from typing import Any

from pyengine.drivers.storage import StorageDriver
from pyengine.errors import InvalidArgument
from pyengine.images import reference
from pyengine.images.changes import apply_changes
from pyengine.images.image import Image, chain_ids
from pyengine.images.store import ImageStore
from pyengine.model.base import now_rfc3339
from pyengine.model.container import Container
from pyengine.model.image import HistoryEntry, ImageConfig, ImageRunConfig, RootFS
from pyengine.storage.naive_diff import layer_diff

#: the container Config fields that become the image's run config
_RUN_FIELDS = tuple(ImageRunConfig.model_fields)


def run_config_of(container: Container, overrides: dict[str, Any] | None = None) -> ImageRunConfig:
    """The image run config a commit records: the container's, with ``overrides`` (the request body)."""
    doc = container.Config.model_dump()
    values = {name: doc.get(name) for name in _RUN_FIELDS if doc.get(name) is not None}
    # HOSTNAME (and TERM for a tty) are added for each container at create time, not configured
    hostname_entry = f"HOSTNAME={container.Config.Hostname}"
    values["Env"] = [item for item in values.get("Env") or [] if item != hostname_entry] or None
    for name, value in (overrides or {}).items():
        if name in _RUN_FIELDS and value not in (None, "", [], {}):
            values[name] = value
    return ImageRunConfig.model_validate(values)


def commit_container(
    images: ImageStore,
    driver: StorageDriver,
    container: Container,
    *,
    repo: str = "",
    tag: str = "",
    comment: str = "",
    author: str = "",
    changes: list[str] | None = None,
    config: dict[str, Any] | None = None,
) -> Image:
    """Make an image of the container's file system and configuration; plain synchronous work.

    Raises InvalidArgument for a bad reference or change line before anything is written, and
    Unavailable when the disk fills (then neither the layer nor its blob stays).
    """
    target = reference.parse(f"{repo}:{tag}" if tag else repo) if repo else None
    if target is not None and target.digest:
        raise InvalidArgument("refusing to create a tag with a digest reference")
    run_config = apply_changes(run_config_of(container, config), list(changes or []))
    parent = images.resolve(container.Image)
    parent_chains = chain_ids(parent.config.rootfs.diff_ids)
    top_chain = parent_chains[-1] if parent_chains else None
    layer, size = images.commit_layer(layer_diff(driver, container.Id), top_chain)
    created = now_rfc3339()
    command = " ".join([container.Path, *container.Args])
    image_config = ImageConfig(
        created=created,
        author=author or None,
        architecture=parent.config.architecture,
        os=parent.config.os,
        config=run_config,
        rootfs=RootFS(diff_ids=[*parent.config.rootfs.diff_ids, layer["diff_id"]]),
        history=[
            *parent.config.history,
            HistoryEntry(created=created, created_by=command, author=author or None, comment=comment or None),
        ],
    )
    tags = [target.normalized()] if target is not None else []
    return images.add_image(image_config, [*parent.layers, layer], parent.size + size, tags)


