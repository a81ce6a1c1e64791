"""Registration of the btrfs driver: the file-system check and the factory the core calls."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pyengine.errors import InvalidArgument, NotSupported

from pyengine_storage_btrfs import ioctl
from pyengine_storage_btrfs.driver import BtrfsDriver

#: beyond the required interface: copy-on-write snapshots (near-constant-time container roots)
CAPABILITIES = frozenset({"needs-no-mounts", "snapshots"})


def factory(root: Path, options: dict[str, Any] | None = None) -> BtrfsDriver:
    """Make the btrfs driver for ``root``; NotSupported unless ``root`` is on a btrfs file system."""
    if options:
        raise InvalidArgument(f"the btrfs driver takes no storage options, got: {', '.join(options)}")
    root = Path(root)
    probe = root
    while not probe.exists():  # the root may not exist yet: its nearest existing parent decides
        probe = probe.parent
    magic = ioctl.filesystem_magic(str(probe))
    if magic != ioctl.BTRFS_SUPER_MAGIC:
        raise NotSupported(f"{root} is not on a btrfs file system (statfs type {magic:#x})")
    root.mkdir(parents=True, exist_ok=True)
    return BtrfsDriver(root)
