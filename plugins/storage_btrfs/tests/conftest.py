"""A loop-backed btrfs file system for the btrfs driver's tests, detached even when they fail."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


def _mounts_under(path: Path) -> list[str]:
    prefix = str(path.resolve())
    with open("/proc/self/mountinfo") as mountinfo:
        points = [line.split()[4] for line in mountinfo]
    return [p for p in points if p == prefix or p.startswith(prefix + "/")]


@pytest.fixture
def btrfs_mount(tmp_path: Path) -> Iterator[Path]:
    """An empty, freshly made 256 MiB btrfs file system mounted under tmp_path."""
    if shutil.which("mkfs.btrfs") is None:
        pytest.skip("mkfs.btrfs (btrfs-progs) is not installed")
    image, point = tmp_path / "btrfs.img", tmp_path / "mnt"
    point.mkdir()
    with open(image, "wb") as file:
        file.truncate(256 << 20)
    subprocess.run(["mkfs.btrfs", "-q", str(image)], check=True, capture_output=True)
    device = subprocess.run(
        ["losetup", "--find", "--show", str(image)], check=True, capture_output=True, text=True
    ).stdout.strip()
    try:
        subprocess.run(["mount", "-t", "btrfs", device, str(point)], check=True)
        try:
            yield point
        finally:
            for mount_point in reversed(_mounts_under(point)):
                subprocess.run(["umount", "-l", mount_point], check=False)
    finally:
        subprocess.run(["losetup", "-d", device], check=False)
