"""The driver against pyengine's storage driver conformance suite (run as root)."""

from pathlib import Path

from pyengine.testing.storage_suite import StorageDriverSuite
from pyengine_storage_template.plugin import factory


class TestTemplateConformance(StorageDriverSuite):
    # Quirk flags, only with a reason, e.g.:
    # keeps_sparse_files = False  # the backing store has no holes

    def make_driver(self, root: Path):
        return factory(root, {})
