"""Registration of the overlay driver: the host check (a real trial mount) and the factory."""

from __future__ import annotations

import os
import secrets
import shutil
import stat
from pathlib import Path
from typing import Any

from pyengine.errors import InvalidArgument, NotSupported

from pyengine_storage_overlay import kernel
from pyengine_storage_overlay.driver import MOUNT_FLAGS, OverlayDriver, backing_filesystem

#: beyond the required interface: a diff read from the upper directory, not a tree comparison
CAPABILITIES = frozenset({"native-diff"})


def check_overlay(root: Path) -> None:
    """Mount a two-layer overlay with an upper directory under ``root`` and delete through it.

    Raises NotSupported with the kernel's reason when overlayfs cannot work there (no overlay in
    the kernel, an upper file system without d_type, xattrs or whiteouts, overlay on overlay).
    """
    probe = root / f".tmp-probe-{secrets.token_hex(4)}"
    parts = {name: probe / name for name in ("lower1", "lower2", "upper", "work", "merged")}
    try:
        for path in parts.values():
            path.mkdir(parents=True)
        (parts["lower1"] / "file").write_text("lower")
        options = (
            f"lowerdir={parts['lower2']}:{parts['lower1']},upperdir={parts['upper']},"
            f"workdir={parts['work']},{MOUNT_FLAGS}"
        )
        try:
            kernel.mount_overlay(str(probe), str(parts["merged"]), options)
        except OSError as exc:
            raise NotSupported(
                f"overlay cannot be mounted on the {backing_filesystem(root)} file system of {root}: "
                f"{exc.strerror}"
            ) from exc
        try:
            os.unlink(parts["merged"] / "file")
        finally:
            kernel.unmount(str(parts["merged"]))
        whiteout = os.lstat(parts["upper"] / "file")
        if not (stat.S_ISCHR(whiteout.st_mode) and whiteout.st_rdev == 0):
            raise NotSupported(f"overlay on {root} does not record deletions as whiteouts")
    finally:
        shutil.rmtree(probe, ignore_errors=True)


def factory(root: Path, options: dict[str, Any] | None = None) -> OverlayDriver:
    """Make the overlay driver for ``root``; NotSupported where overlayfs cannot work on it."""
    if options:
        raise InvalidArgument(f"the overlay driver takes no storage options, got: {', '.join(options)}")
    root = Path(root)
    made = not root.exists()
    root.mkdir(parents=True, exist_ok=True)
    try:
        check_overlay(root)
    except BaseException:
        if made:
            shutil.rmtree(root, ignore_errors=True)  # leave no state that would make it "in use"
        raise
    return OverlayDriver(root)
