"""The btrfs driver against the storage driver conformance suite, on its own loop-backed btrfs."""

from pathlib import Path

import pytest
from pyengine.testing.storage_suite import StorageDriverSuite
from pyengine_storage_btrfs.plugin import factory


class TestBtrfsConformance(StorageDriverSuite):
    @pytest.fixture
    def driver_root(self, btrfs_mount: Path) -> Path:
        root = btrfs_mount / "driver-root"
        root.mkdir()
        return root

    def make_driver(self, root: Path):
        return factory(root, {})
