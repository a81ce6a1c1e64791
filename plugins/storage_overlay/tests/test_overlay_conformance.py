"""The overlay driver against the storage driver conformance suite."""

from pathlib import Path

from pyengine.testing.storage_suite import StorageDriverSuite
from pyengine_storage_overlay.plugin import factory


class TestOverlayConformance(StorageDriverSuite):
    def make_driver(self, root: Path):
        return factory(root, {})
