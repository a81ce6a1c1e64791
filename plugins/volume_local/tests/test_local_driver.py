"""What the local driver does beyond the conformance suite: its type/device/o options (a tmpfs, a
bind), Docker's layout and messages, crash leftovers. Run as root; every mount is undone."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pyengine.errors import InvalidArgument
from pyengine.testing.volume_suite import mounts_under
from pyengine_volume_local.driver import LocalVolumeDriver, MountFailed
from pyengine_volume_local.plugin import factory


@pytest.fixture
def driver(tmp_path: Path):
    root = tmp_path / "volumes"
    driver = factory(root=root, options={})
    try:
        yield driver
    finally:
        for point in reversed(mounts_under(root)):
            os.system(f"umount -l '{point}'")
    assert not mounts_under(root)


def test_a_volume_is_a_directory_named_as_docker_names_it(driver: LocalVolumeDriver) -> None:
    driver.create("data", {})
    assert driver.get("data").mountpoint == str(driver.root / "data" / "_data")
    assert driver.mount("data", "c1") == driver.root / "data" / "_data"
    driver.unmount("data", "c1")


def test_a_tmpfs_volume_is_mounted_while_used_and_enforces_its_size(driver: LocalVolumeDriver) -> None:
    driver.create("scratch", {"type": "tmpfs", "device": "tmpfs", "o": "size=1m"})
    path = driver.mount("scratch", "c1")
    assert mounts_under(path) == [str(path)]
    with pytest.raises(OSError, match="No space left"):
        (path / "big").write_bytes(b"x" * (2 * 1024 * 1024))
    driver.mount("scratch", "c2")
    driver.unmount("scratch", "c1")
    assert mounts_under(path) == [str(path)]  # c2 still uses it
    driver.unmount("scratch", "c2")
    assert mounts_under(path) == []
    assert driver.options_of("scratch") == {"type": "tmpfs", "device": "tmpfs", "o": "size=1m"}


def test_a_bind_volume_shows_its_device_directory(driver: LocalVolumeDriver, tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "index.html").write_text("page")
    driver.create("site", {"type": "none", "o": "bind", "device": str(site)})
    path = driver.mount("site", "c1")
    assert (path / "index.html").read_text() == "page"
    (path / "new").write_text("from the volume")
    assert (site / "new").read_text() == "from the volume"
    driver.unmount("site", "c1")
    assert mounts_under(path) == []
    driver.remove("site")
    assert (site / "index.html").exists()  # removing a bind volume keeps the bound directory


def test_a_bind_volume_on_a_missing_device_fails_to_mount(driver: LocalVolumeDriver, tmp_path: Path) -> None:
    driver.create("gone", {"type": "none", "o": "bind", "device": str(tmp_path / "nope")})
    with pytest.raises(MountFailed, match="no such file or directory"):
        driver.mount("gone", "c1")
    driver.remove("gone")  # nothing was left mounted or counted


@pytest.mark.parametrize(
    "options, message",
    [
        ({"foo": "1"}, 'invalid option: "foo"'),
        ({"type": "tmpfs"}, 'missing required option: "device"'),
        ({"o": "size=1m"}, 'missing required option: "device"'),
        ({"device": "tmpfs"}, 'missing required option: "type"'),
    ],
)
def test_bad_options_are_refused_as_docker_words_it(driver: LocalVolumeDriver, options, message) -> None:
    with pytest.raises(InvalidArgument, match=message):
        driver.create("bad", options)
    assert not (driver.root / "bad").exists()
    assert [p.name for p in driver.root.iterdir()] == []


def test_names_that_would_leave_the_root_are_refused(driver: LocalVolumeDriver) -> None:
    for name in ("../x", ".hidden", "a/b", ""):
        with pytest.raises(InvalidArgument):
            driver.create(name, {})


def test_a_half_made_volume_from_a_crash_is_swept_away(tmp_path: Path) -> None:
    root = tmp_path / "volumes"
    LocalVolumeDriver(root).create("whole", {})
    (root / ".tmp-half-1-2" / "_data").mkdir(parents=True)
    again = LocalVolumeDriver(root)
    assert [v.name for v in again.list()] == ["whole"]
    assert sorted(p.name for p in root.iterdir()) == ["whole"]
