"""Registration of the local volume driver: the factory the core calls."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pyengine.errors import InvalidArgument

from pyengine_volume_local.driver import LocalVolumeDriver

#: What the driver offers: per-volume file systems (tmpfs, devices, binds) through ``type``/``device``/``o``.
CAPABILITIES = frozenset({"mount-options"})


def factory(root: Path, options: dict[str, Any] | None = None) -> LocalVolumeDriver:
    """Make the local driver keeping its volumes under ``root`` (the data root's ``volumes/``)."""
    if options:
        raise InvalidArgument(f"the local volume driver takes no daemon options: {sorted(options)}")
    return LocalVolumeDriver(Path(root))
