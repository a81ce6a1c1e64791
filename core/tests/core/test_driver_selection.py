"""The core picks the storage driver: configured, else the one with state on disk, else the priority
list, skipping drivers that are not supported on this host (and saying why)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pyengine.drivers.registry import installed_factories, select_driver
from pyengine.errors import InvalidArgument, NotSupported

NS = "pyengine.storage.v1"


class _Driver:
    def __init__(self, name: str, root: Path) -> None:
        self.name = name
        self.root = root


def _factory(name: str, supported: bool = True):
    def make(root: Path, options: dict) -> _Driver:
        if not supported:
            raise NotSupported(f"{name} needs a file system this host does not have")
        root.mkdir(parents=True, exist_ok=True)
        return _Driver(name, root)

    return make


def test_installed_vfs_is_found_through_its_entry_point():
    factories = installed_factories(NS)
    assert "vfs" in factories and callable(factories["vfs"])


def test_priority_list_skips_unsupported_drivers_and_says_why(tmp_path):
    factories = {"overlay": _factory("overlay", supported=False), "vfs": _factory("vfs")}
    selection = select_driver(NS, tmp_path, factories=factories)
    assert selection.name == "vfs"
    reports = {r.name: r.status for r in selection.reports}
    assert reports["vfs"] == "active"
    assert reports["overlay"].startswith("not supported: overlay needs a file system")


def test_driver_with_state_on_disk_wins_over_priority(tmp_path):
    (tmp_path / "vfs" / "dir").mkdir(parents=True)
    factories = {"overlay": _factory("overlay"), "vfs": _factory("vfs")}
    assert select_driver(NS, tmp_path, factories=factories).name == "vfs"
    assert select_driver(NS, tmp_path / "fresh", factories=factories).name == "overlay"


def test_configured_driver_fails_loudly(tmp_path):
    factories = {"overlay": _factory("overlay", supported=False), "vfs": _factory("vfs")}
    with pytest.raises(NotSupported, match="needs a file system"):
        select_driver(NS, tmp_path, configured="overlay", factories=factories)
    with pytest.raises(InvalidArgument, match="unknown driver 'zfs'"):
        select_driver(NS, tmp_path, configured="zfs", factories=factories)


def test_nothing_usable_is_an_error_listing_reasons(tmp_path):
    factories = {"overlay": _factory("overlay", supported=False), "broken": ImportError("no module x")}
    with pytest.raises(NotSupported) as info:
        select_driver(NS, tmp_path, factories=factories)
    assert "overlay: not supported" in str(info.value) and "broken: failed to load" in str(info.value)
