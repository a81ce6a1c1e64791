"""The local volume driver against the volume driver conformance suite."""

from pathlib import Path

from pyengine.testing.volume_suite import VolumeDriverSuite
from pyengine_volume_local.plugin import factory


class TestLocalConformance(VolumeDriverSuite):
    def make_driver(self, root: Path):
        return factory(root=root, options={})
