"""Registration of the vfs driver: its options, what it can do, and the factory the core calls."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError
from pyengine.errors import InvalidArgument, NotSupported

from pyengine_storage_vfs.copy import reflinks_supported
from pyengine_storage_vfs.driver import VfsDriver

#: What the driver offers beyond the required interface. vfs has no native diff (the core's
#: generic diff compares directories), no quotas, and needs no kernel mounts, so it also works
#: without privileges.
CAPABILITIES = frozenset({"needs-no-mounts"})


class VfsOptions(BaseModel):
    """``--storage-opt`` options of vfs (``vfs.reflink=never``; the ``vfs.`` prefix is optional)."""

    model_config = ConfigDict(extra="forbid")

    #: ``auto`` clones files where the file system can, ``always`` requires it, ``never`` copies
    reflink: Literal["auto", "always", "never"] = "auto"


def factory(root: Path, options: dict[str, Any] | None = None) -> VfsDriver:
    """Make the vfs driver for ``root``; NotSupported if ``reflink=always`` cannot be honoured."""
    raw = {key.removeprefix("vfs."): value for key, value in (options or {}).items()}
    try:
        config = VfsOptions.model_validate(raw)
    except ValidationError as exc:
        raise InvalidArgument(f"invalid vfs storage options: {exc}") from exc
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    use_reflinks: bool | None = None
    if config.reflink == "never":
        use_reflinks = False
    elif config.reflink == "always":
        if not reflinks_supported(root):
            raise NotSupported(f"vfs.reflink=always: the file system of {root} cannot clone files")
        use_reflinks = True
    return VfsDriver(root, use_reflinks=use_reflinks)
