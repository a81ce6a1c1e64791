"""The vfs driver against the storage driver conformance suite."""

from pathlib import Path

from pyengine.testing.storage_suite import StorageDriverSuite
from pyengine_storage_vfs.plugin import factory


class TestVfsConformance(StorageDriverSuite):
    def make_driver(self, root: Path):
        return factory(root, {})
