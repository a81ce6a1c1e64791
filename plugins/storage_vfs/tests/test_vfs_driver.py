"""What vfs does beyond the conformance suite: crash recovery, options, reflinks. Run as root."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from pyengine.drivers.storage import ENTRY_POINT_NAMESPACE
from pyengine.errors import InvalidArgument, NotSupported
from pyengine_storage_vfs.copy import copy_tree
from pyengine_storage_vfs.plugin import factory


def test_start_up_sweeps_away_what_a_crash_left(tmp_path: Path) -> None:
    driver = factory(tmp_path, {})
    driver.create("whole", None)
    driver.cleanup()
    # a crash during create (before the metadata), during apply_diff (directory renamed away)
    # and during an atomic metadata write
    (tmp_path / "dir/.tmp-half-1234").mkdir()
    (tmp_path / "dir/unrecorded").mkdir()
    (tmp_path / "meta/lost-dir.json").write_text(json.dumps({"parent": None, "writable": False}))
    (tmp_path / "dir/.apply-lost-dir-5678").mkdir()
    (tmp_path / "meta/.whole.abcd").write_text("{")

    again = factory(tmp_path, {})
    assert again.exists("whole")
    assert not again.exists("unrecorded") and not again.exists("lost-dir")
    assert sorted(os.listdir(tmp_path / "dir")) == ["whole"]
    assert sorted(os.listdir(tmp_path / "meta")) == ["whole.json"]
    again.create("unrecorded", None)  # the ids are usable again


def test_options_are_checked(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match="reflink"):
        factory(tmp_path, {"vfs.reflink": "sometimes"})
    with pytest.raises(InvalidArgument):
        factory(tmp_path, {"size": "10G"})
    assert factory(tmp_path, {"vfs.reflink": "never"}).use_reflinks is False


def test_layer_ids_cannot_name_work_directories(tmp_path: Path) -> None:
    driver = factory(tmp_path, {})
    for bad in (".tmp-x", "..", "a/b", ""):
        with pytest.raises(InvalidArgument):
            driver.create(bad, None)


def test_registered_under_the_storage_entry_point() -> None:
    from importlib.metadata import entry_points

    (found,) = [ep for ep in entry_points(group=ENTRY_POINT_NAMESPACE) if ep.name == "vfs"]
    assert found.load() is factory


def test_status_names_the_backing_file_system(tmp_path: Path) -> None:
    status = dict(factory(tmp_path, {}).status())
    assert status["Backing Filesystem"] not in ("", "unknown")
    assert status["Layers"] == "0"


@pytest.fixture
def btrfs(tmp_path: Path):
    if shutil.which("mkfs.btrfs") is None:
        pytest.skip("mkfs.btrfs (btrfs-progs) is not installed")
    image, mount_point = tmp_path / "btrfs.img", tmp_path / "btrfs"
    mount_point.mkdir()
    with open(image, "wb") as file:
        file.truncate(256 << 20)
    subprocess.run(["mkfs.btrfs", "-q", image], check=True, capture_output=True)
    subprocess.run(["mount", "-o", "loop", image, mount_point], check=True)
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", mount_point], check=True)


def test_copies_share_extents_where_the_file_system_can(btrfs: Path) -> None:
    driver = factory(btrfs / "vfs", {"vfs.reflink": "always"})
    assert driver.use_reflinks
    driver.create("image", None)
    (btrfs / "vfs/dir/image/big").write_bytes(os.urandom(64 << 20))
    os.sync()
    driver.create("container", "image", writable=True)
    os.sync()
    report = subprocess.run(
        ["filefrag", "-v", btrfs / "vfs/dir/container/big"], capture_output=True, text=True, check=True
    ).stdout
    assert "shared" in report
    assert (btrfs / "vfs/dir/container/big").read_bytes() == (btrfs / "vfs/dir/image/big").read_bytes()


def test_reflink_always_is_refused_where_files_cannot_be_cloned(tmp_path: Path) -> None:
    probe = tmp_path / "probe"
    probe.mkdir()
    from pyengine_storage_vfs.copy import reflinks_supported

    if reflinks_supported(probe):
        pytest.skip(f"{tmp_path} can clone files")
    with pytest.raises(NotSupported, match="clone"):
        factory(tmp_path / "vfs", {"reflink": "always"})


def test_copy_keeps_hard_links_across_directories(tmp_path: Path) -> None:
    source = tmp_path / "source"
    (source / "a").mkdir(parents=True)
    (source / "b").mkdir()
    (source / "a/one").write_text("linked")
    os.link(source / "a/one", source / "b/two")
    copy_tree(source, tmp_path / "copy", reflink=False)
    assert os.stat(tmp_path / "copy/a/one").st_ino == os.stat(tmp_path / "copy/b/two").st_ino
    assert os.stat(tmp_path / "copy/a/one").st_ino != os.stat(source / "a/one").st_ino
