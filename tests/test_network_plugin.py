"""A Docker network plugin on a socket in /run/docker/plugins used as a driver by our daemon."""

from __future__ import annotations

import secrets
import sys
from pathlib import Path

import pytest
from network_helpers import Cleanup, free_subnet, links

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "plugins" / "net_remote" / "tests"))
pytest.importorskip("pyengine_net_remote")
from fake_plugin import FakeNetworkPlugin  # noqa: E402

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def plugin():
    name = "pyetest" + secrets.token_hex(3)
    fake = FakeNetworkPlugin(f"/run/docker/plugins/{name}.sock")
    fake.name = name
    yield fake
    fake.close()


def test_a_container_on_a_plugins_network(cli, busybox, plugin):
    made = Cleanup(cli)
    try:
        net = made.network("plugin-net")
        subnet = free_subnet(set(), range(230, 250))
        created = cli("network", "create", "-d", plugin.name, "--subnet", subnet, net)
        assert created.returncode == 0, created.stderr
        assert "NetworkDriver.CreateNetwork" in plugin.calls
        bridge = plugin.networks[created.stdout.strip()]
        assert bridge in links("pytb")
        box = made.container("plugin-box")
        run = cli("run", "-d", "--name", box, "--network", net, busybox, "sleep", "300")
        assert run.returncode == 0, run.stderr
        address = cli("inspect", "--format", "{{.NetworkSettings.IPAddress}}", box).stdout.strip()
        assert address.startswith(subnet.rsplit(".", 1)[0] + ".")
        shown = cli(
            "run", "--rm", "--network", f"container:{box}", busybox, "ip", "-o", "-4", "addr", "show", "eth0"
        )
        assert f"inet {address}/24" in shown.stdout
        gateway = subnet.rsplit(".", 1)[0] + ".1"
        ping = cli("run", "--rm", "--network", f"container:{box}", busybox, "ping", "-c1", "-W2", gateway)
        assert ping.returncode == 0, ping.stdout
        assert cli("rm", "-f", box).returncode == 0
        assert "NetworkDriver.Leave" in plugin.calls and "NetworkDriver.DeleteEndpoint" in plugin.calls
        assert cli("network", "rm", net).returncode == 0
        assert bridge not in links("pytb")
        bad = cli("network", "create", "-d", plugin.name, "-o", "x=1", "plugin-bad")
        assert bad.returncode == 1 and "unknown option: x" in bad.stderr
    finally:
        made.close()


def test_a_driver_that_is_neither_installed_nor_a_plugin(api):
    status, reply = api("POST", "/networks/create", {"Name": "plugin-none", "Driver": "pyetest-nothing-here"})
    assert status == 404 and "pyetest-nothing-here" in reply["message"]
