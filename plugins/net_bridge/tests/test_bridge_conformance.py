"""The bridge driver against the network driver conformance suite (root, real kernel)."""

from pathlib import Path

from pyengine.testing.network_suite import NetworkDriverSuite
from pyengine_net_bridge.plugin import factory, remove_all


class TestBridgeConformance(NetworkDriverSuite):
    def make_driver(self, root: Path):
        return factory(root, {})

    def destroy_driver(self, driver, root: Path) -> None:
        remove_all(root)
