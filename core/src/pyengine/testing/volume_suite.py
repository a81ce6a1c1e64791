"""The conformance suite every volume driver runs.

A driver package's whole test is about ten lines::

    from pyengine.testing.volume_suite import VolumeDriverSuite
    from my_driver.plugin import factory

    class TestMyDriver(VolumeDriverSuite):
        def make_driver(self, root):
            return factory(root=root, options={})

Each test gets a fresh driver on a fresh directory (real files, real kernel; run as root). The class
attributes below are quirk flags a driver may change, with a reason in its test file. The suite
checks error *categories* (NotFound, AlreadyExists, Conflict, InvalidArgument), not only "an error".
Everything a test mounts is unmounted and removed by the ``driver`` fixture, also when it fails.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pyengine.drivers.volume import VolumeDriver, VolumeInfo
from pyengine.errors import AlreadyExists, Conflict, EngineError, InvalidArgument, NotFound
from pyengine.testing.storage_suite import _detach, mounts_under

__all__ = ["MOUNT_IDS", "VolumeDriverSuite", "mounts_under"]

#: the mount IDs the suite uses (the fixture releases them all at the end)
MOUNT_IDS = ("c1", "c2")


class VolumeDriverSuite:
    #: the error category of removing a mounted volume (a plugin may only say "error")
    remove_while_mounted_error: type[EngineError] = Conflict
    #: options the driver refuses with InvalidArgument (None: the driver accepts any option)
    rejected_options: dict[str, str] | None = {"no-such-option": "1"}
    #: the error category of refused options
    rejected_options_error: type[EngineError] = InvalidArgument
    #: the error category of creating a volume twice (Docker's plugins often answer "exists")
    create_twice_error: type[EngineError] | None = AlreadyExists

    def make_driver(self, root: Path) -> VolumeDriver:
        """Return the driver under test, owning the empty directory ``root``."""
        raise NotImplementedError("a driver's test class overrides make_driver(root)")

    # -- fixtures -----------------------------------------------------------------------------

    @pytest.fixture
    def driver_root(self, tmp_path: Path) -> Path:
        root = tmp_path / "driver-root"
        root.mkdir()
        return root

    @pytest.fixture
    def driver(self, driver_root: Path):
        driver = self.make_driver(driver_root)
        try:
            yield driver
        finally:
            for info in _safe_list(driver):
                for mount_id in MOUNT_IDS:
                    try:
                        driver.unmount(info.name, mount_id)
                    except EngineError:
                        pass
                try:
                    driver.remove(info.name)
                except EngineError:
                    pass
            driver.cleanup()
            leftover = mounts_under(driver_root)
            for point in reversed(leftover):
                _detach(point)
        assert not leftover, f"the driver left mounts behind: {leftover}"

    # -- create, get, list, remove --------------------------------------------------------------

    def test_create_then_get_and_list(self, driver: VolumeDriver) -> None:
        driver.create("data", {})
        info = driver.get("data")
        assert isinstance(info, VolumeInfo)
        assert info.name == "data"
        assert "data" in [v.name for v in driver.list()]

    def test_create_twice(self, driver: VolumeDriver) -> None:
        driver.create("data", {})
        if self.create_twice_error is None:
            driver.create("data", {})
        else:
            with pytest.raises(self.create_twice_error):
                driver.create("data", {})
        assert [v.name for v in driver.list()].count("data") == 1

    def test_unknown_volumes_are_not_found(self, driver: VolumeDriver) -> None:
        with pytest.raises(NotFound):
            driver.get("missing")
        with pytest.raises(NotFound):
            driver.remove("missing")
        with pytest.raises(NotFound):
            driver.mount("missing", "c1")

    def test_remove_deletes_the_volume_and_its_data(self, driver: VolumeDriver) -> None:
        driver.create("data", {})
        path = driver.mount("data", "c1")
        (path / "file").write_text("x")
        driver.unmount("data", "c1")
        driver.remove("data")
        with pytest.raises(NotFound):
            driver.get("data")
        assert "data" not in [v.name for v in driver.list()]
        driver.create("data", {})  # the name is free again, and the new volume is empty
        assert list(driver.mount("data", "c1").iterdir()) == []

    def test_refused_options_leave_nothing(self, driver: VolumeDriver) -> None:
        if self.rejected_options is None:
            pytest.skip("the driver accepts any option")
        with pytest.raises(self.rejected_options_error):
            driver.create("data", dict(self.rejected_options))
        assert "data" not in [v.name for v in driver.list()]
        with pytest.raises(NotFound):
            driver.get("data")

    # -- mounting -----------------------------------------------------------------------------

    def test_mount_gives_a_writable_directory_whose_data_stays(self, driver: VolumeDriver) -> None:
        driver.create("data", {})
        path = driver.mount("data", "c1")
        assert path.is_absolute() and path.is_dir()
        (path / "kept").write_text("hello")
        driver.unmount("data", "c1")
        again = driver.mount("data", "c2")
        assert (again / "kept").read_text() == "hello"
        driver.unmount("data", "c2")

    def test_two_users_share_one_path(self, driver: VolumeDriver) -> None:
        driver.create("data", {})
        first = driver.mount("data", "c1")
        second = driver.mount("data", "c2")
        assert first == second
        (first / "shared").write_text("1")
        driver.unmount("data", "c1")
        assert (second / "shared").read_text() == "1"  # still available to the other user
        driver.unmount("data", "c2")

    def test_remove_while_mounted_is_refused(self, driver: VolumeDriver) -> None:
        driver.create("data", {})
        path = driver.mount("data", "c1")
        (path / "file").write_text("x")
        with pytest.raises(self.remove_while_mounted_error):
            driver.remove("data")
        assert driver.get("data").name == "data"
        driver.unmount("data", "c1")
        driver.remove("data")

    def test_unmount_of_an_unknown_mount_id_is_harmless(self, driver: VolumeDriver) -> None:
        driver.create("data", {})
        path = driver.mount("data", "c1")
        driver.unmount("data", "c2")
        (path / "still").write_text("there")
        driver.unmount("data", "c1")

    def test_capabilities_name_a_scope(self, driver: VolumeDriver) -> None:
        assert driver.capabilities().get("Scope") in ("local", "global")


def _safe_list(driver: VolumeDriver) -> list[VolumeInfo]:
    try:
        return driver.list()
    except EngineError:
        return []
