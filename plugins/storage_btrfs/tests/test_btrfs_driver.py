"""What btrfs does beyond the conformance suite: the file-system check, snapshots, crash leftovers,
a full disk. Run as root; each test makes its own loop-backed btrfs (see conftest.py)."""

from __future__ import annotations

import io
import os
import subprocess
import tarfile
from pathlib import Path

import pytest
from pyengine.drivers.storage import ENTRY_POINT_NAMESPACE
from pyengine.errors import InvalidArgument, NotSupported, Unavailable
from pyengine.testing.trees import build_tar, entry
from pyengine_storage_btrfs.driver import is_subvolume
from pyengine_storage_btrfs.plugin import factory


def test_any_other_file_system_is_not_supported(tmp_path: Path) -> None:
    with pytest.raises(NotSupported, match="not on a btrfs file system"):
        factory(tmp_path / "btrfs", {})
    assert not (tmp_path / "btrfs").exists()


def test_tmpfs_is_not_supported(tmp_path: Path) -> None:
    point = tmp_path / "tmpfs"
    point.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", point], check=True)
    try:
        with pytest.raises(NotSupported, match="0x1021994"):
            factory(point / "btrfs", {})
    finally:
        subprocess.run(["umount", point], check=True)


def test_options_are_refused(btrfs_mount: Path) -> None:
    with pytest.raises(InvalidArgument):
        factory(btrfs_mount / "btrfs", {"size": "1G"})


def test_registered_under_the_storage_entry_point() -> None:
    from importlib.metadata import entry_points

    (found,) = [ep for ep in entry_points(group=ENTRY_POINT_NAMESPACE) if ep.name == "btrfs"]
    assert found.load() is factory


def test_layers_are_subvolumes_and_children_snapshots_sharing_extents(btrfs_mount: Path) -> None:
    driver = factory(btrfs_mount / "btrfs", {})
    driver.create("image", None)
    driver.apply_diff("image", io.BytesIO(build_tar(entry("big", data=os.urandom(8 << 20)))))
    driver.create("container", "image", writable=True)
    rootfs = driver.mount("container")
    try:
        assert is_subvolume(rootfs) and is_subvolume(btrfs_mount / "btrfs/subvolumes/image")
        os.sync()
        report = subprocess.run(
            ["filefrag", "-v", rootfs / "big"], capture_output=True, text=True, check=True
        )
        assert "shared" in report.stdout  # a snapshot: no data was copied
    finally:
        driver.unmount("container")


def test_start_up_deletes_what_a_crash_left(btrfs_mount: Path) -> None:
    root = btrfs_mount / "btrfs"
    driver = factory(root, {})
    driver.create("whole", None)
    driver.create("half", "whole")
    (root / "meta/half.json").unlink()  # a crash between the snapshot's rename and the metadata
    driver._populate("whole", root / "subvolumes" / ".apply-x-1234")  # and one during apply_diff
    again = factory(root, {})
    assert again.exists("whole") and not again.exists("half")
    assert sorted(os.listdir(root / "subvolumes")) == ["whole"]


class _HugeTar(io.RawIOBase):
    """A layer tar of one ``size``-byte file of zeros, produced as it is read."""

    def __init__(self, size: int) -> None:
        info = tarfile.TarInfo("huge")
        info.size = size
        self.parts = [info.tobuf(tarfile.PAX_FORMAT)]
        self.zeros_left = size
        self.tail = b"\0" * (-size % 512) + b"\0" * 1024

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[no-untyped-def]
        if self.parts:
            data = self.parts.pop(0)
        elif self.zeros_left:
            data = b"\0" * min(len(buffer), self.zeros_left, 1 << 20)
            self.zeros_left -= len(data)
        else:
            data, self.tail = self.tail[: len(buffer)], self.tail[len(buffer) :]
        buffer[: len(data)] = data
        return len(data)


def test_a_full_disk_during_apply_leaves_no_partial_layer(btrfs_mount: Path) -> None:
    driver = factory(btrfs_mount / "btrfs", {})
    driver.create("base", None)
    driver.apply_diff("base", io.BytesIO(build_tar(entry("small", data=b"fits"))))
    driver.create("big", "base")
    with pytest.raises(Unavailable, match="no space left"):
        driver.apply_diff("big", io.BufferedReader(_HugeTar(300 << 20)))
    assert driver.exists("big")
    assert sorted(os.listdir(driver.mount("big"))) == ["small"]
    driver.unmount("big")
    assert sorted(os.listdir(btrfs_mount / "btrfs/subvolumes")) == ["base", "big"]
    # btrfs frees a deleted subvolume's space in the background: wait for it, then it fits again
    subprocess.run(["btrfs", "subvolume", "sync", str(btrfs_mount)], check=True)
    driver.apply_diff("big", io.BytesIO(build_tar(entry("now-it-fits", data=b"y"))))
    assert sorted(os.listdir(driver.mount("big"))) == ["now-it-fits", "small"]
    driver.unmount("big")
