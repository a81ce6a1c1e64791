"""A Docker network plugin (speaking the remote protocol on a socket) through our adapter: the network
driver conformance suite, and an unknown plugin."""

from __future__ import annotations

import secrets
import sys
from pathlib import Path

import pytest
from pyengine.errors import NotFound
from pyengine.testing.network_suite import NetworkDriverSuite
from pyengine_net_remote.plugin import factory

sys.path.insert(0, str(Path(__file__).parent))
from fake_plugin import FakeNetworkPlugin  # noqa: E402


class TestRemoteConformance(NetworkDriverSuite):
    supports_port_publishing = False  # the fake plugin does not publish ports
    isolates_networks = False  # nor isolate its bridges

    @pytest.fixture(autouse=True)
    def plugin(self, tmp_path: Path):
        self.plugin_dir = tmp_path / "plugins"
        self.plugin_name = "pyetest" + secrets.token_hex(3)
        fake = FakeNetworkPlugin(str(self.plugin_dir / f"{self.plugin_name}.sock"))
        yield fake
        fake.close()

    def make_driver(self, root: Path):
        return factory(root, {"plugin": self.plugin_name, "dirs": [str(self.plugin_dir)]})

    def test_the_plugin_saw_the_protocol(self, harness, plugin) -> None:
        assert plugin.calls[:2] == ["Plugin.Activate", "NetworkDriver.GetCapabilities"]


def test_an_unknown_plugin_is_not_found(tmp_path: Path):
    with pytest.raises(NotFound, match="no-such-plugin"):
        factory(tmp_path, {"plugin": "no-such-plugin", "dirs": [str(tmp_path)]})
