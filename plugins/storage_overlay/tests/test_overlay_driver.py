"""What overlay does beyond the conformance suite: deep stacks, live restore, host checks, full disks.

Run as root: the tests mount overlayfs and tmpfs and undo every mount even when they fail.
"""

from __future__ import annotations

import io
import os
import subprocess
from pathlib import Path

import pytest
from pyengine.drivers.storage import ENTRY_POINT_NAMESPACE, Change
from pyengine.errors import InvalidArgument, NotSupported, Unavailable
from pyengine.testing.storage_suite import mounts_under
from pyengine.testing.trees import build_tar, entry
from pyengine_storage_overlay import kernel
from pyengine_storage_overlay.plugin import factory


def _unmount_all(root: Path) -> None:
    for point in reversed(mounts_under(root)):
        subprocess.run(["umount", "-l", point], check=False)


@pytest.fixture
def root(tmp_path: Path):
    yield tmp_path / "overlay"
    _unmount_all(tmp_path)


def test_a_stack_of_130_layers_mounts_with_short_links(root: Path) -> None:
    driver = factory(root, {})
    parent = None
    for index in range(130):
        layer_id = f"{index:064x}"  # as long as the chain IDs the core uses
        driver.create(layer_id, parent)
        driver.apply_diff(layer_id, io.BytesIO(build_tar(entry(f"file{index}", data=str(index).encode()))))
        parent = layer_id
    driver.create("c" * 64, parent, writable=True)
    rootfs = driver.mount("c" * 64)
    try:
        assert len(os.listdir(rootfs)) == 130
        assert (rootfs / "file0").read_text() == "0" and (rootfs / "file129").read_text() == "129"
        (rootfs / "file7").write_text("changed")
        assert driver.changes("c" * 64) == [Change("C", "/file7")]
    finally:
        driver.unmount("c" * 64)
    assert mounts_under(root) == []
    assert all(len(link.name) == 26 for link in (root / "l").iterdir())


def test_mounts_of_running_containers_survive_cleanup_and_a_new_instance(root: Path) -> None:
    driver = factory(root, {})
    driver.create("image", None)
    driver.apply_diff("image", io.BytesIO(build_tar(entry("etc/os-release", data=b"ID=t\n"))))
    driver.create("running", "image", writable=True)
    driver.create("stopped", "image", writable=True)
    rootfs = driver.mount("running")
    driver.mount("running")  # two references, e.g. the container and a `cp` into it
    (rootfs / "state").write_text("written while running")
    driver.mount("stopped")
    driver.unmount("stopped")
    driver.cleanup()  # daemon shutdown: the running container keeps its root
    assert kernel.is_mounted(str(rootfs)) and (rootfs / "state").exists()

    restarted = factory(root, {})  # the daemon starts again; the container still runs
    assert restarted.mount("running") == rootfs  # a third reference, no second mount
    assert mounts_under(root) == [str(rootfs)]
    restarted.unmount("running")
    restarted.unmount("running")
    assert kernel.is_mounted(str(rootfs))
    restarted.unmount("running")  # the container exited: the last reference goes
    assert mounts_under(root) == []
    restarted.remove("running")


def test_a_count_that_outlived_its_mount_is_dropped(root: Path) -> None:
    driver = factory(root, {})
    driver.create("image", None)
    driver.apply_diff("image", io.BytesIO(build_tar(entry("hello", data=b"world"))))
    driver.create("container", "image", writable=True)
    rootfs = driver.mount("container")
    kernel.unmount(str(rootfs))  # as after a reboot: the count is on disk, the mount is gone
    assert (driver.mount("container") / "hello").read_bytes() == b"world"  # mounted again
    driver.unmount("container")
    kernel.unmount(str(rootfs))
    again = factory(root, {})  # a daemon starting after the reboot
    again.remove("container")  # not "in use"
    assert not (root / "container").exists()


def test_overlay_on_overlay_is_not_supported(tmp_path: Path) -> None:
    parts = {name: tmp_path / name for name in ("lower", "upper", "work", "merged")}
    for path in parts.values():
        path.mkdir()
    kernel.mount_overlay(
        str(tmp_path),
        str(parts["merged"]),
        f"lowerdir={parts['lower']},upperdir={parts['upper']},workdir={parts['work']}",
    )
    try:
        with pytest.raises(NotSupported, match="overlay cannot be mounted on the overlay file system"):
            factory(parts["merged"] / "storage", {})
        assert not (parts["merged"] / "storage").exists()  # no state that would pin the choice
    finally:
        kernel.unmount(str(parts["merged"]))


def test_options_are_refused(root: Path) -> None:
    with pytest.raises(InvalidArgument, match="no storage options"):
        factory(root, {"size": "10G"})


def test_registered_under_the_storage_entry_point() -> None:
    from importlib.metadata import entry_points

    (found,) = [ep for ep in entry_points(group=ENTRY_POINT_NAMESPACE) if ep.name == "overlay"]
    assert found.load() is factory


def test_start_up_sweeps_away_what_a_crash_left(root: Path) -> None:
    driver = factory(root, {})
    driver.create("whole", None)
    (root / ".tmp-half-1234/diff").mkdir(parents=True)
    (root / "no-meta/diff").mkdir(parents=True)
    os.symlink("../no-meta/diff", root / "l/DANGLINGLINKDANGLINGLINKAB")
    (root / "whole/.apply-abcd/file").parent.mkdir()
    again = factory(root, {})
    assert again.exists("whole") and not again.exists("no-meta")
    assert sorted(os.listdir(root)) == ["l", "whole"]
    assert len(os.listdir(root / "l")) == 1
    assert not (root / "whole/.apply-abcd").exists()


@pytest.fixture
def small_root(tmp_path: Path):
    """A 4 MiB tmpfs as the data root: a layer bigger than that fills the disk."""
    point = tmp_path / "small"
    point.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", point], check=True)
    try:
        yield point
    finally:
        _unmount_all(point)


def test_a_full_disk_during_apply_leaves_no_partial_layer(small_root: Path) -> None:
    driver = factory(small_root / "overlay", {})
    driver.create("base", None)
    driver.apply_diff("base", io.BytesIO(build_tar(entry("small", data=b"fits"))))
    driver.create("big", "base")
    too_big = build_tar(entry("first", data=b"x" * 1024), entry("huge", data=os.urandom(8 << 20)))
    with pytest.raises(Unavailable, match="no space left"):
        driver.apply_diff("big", io.BytesIO(too_big))
    assert driver.exists("big")
    assert os.listdir(small_root / "overlay/big/diff") == []
    assert not list((small_root / "overlay/big").glob(".apply-*"))
    # the driver still works: the space came back
    driver.apply_diff("big", io.BytesIO(build_tar(entry("now-it-fits", data=b"y"))))
    rootfs = driver.mount("big")
    assert sorted(os.listdir(rootfs)) == ["now-it-fits", "small"]
    driver.unmount("big")
