"""Networks through the real docker CLI and the docker SDK against our daemon, and after a daemon
crash: running containers keep their network, what belonged to nobody is removed."""

from __future__ import annotations

import json
import os
import subprocess
import time

import pytest
from network_helpers import WEB_CMD, Cleanup, fetch, free_port, free_subnet, links

pytestmark = pytest.mark.timeout(180)


@pytest.fixture
def made(cli):
    cleanup = Cleanup(cli)
    yield cleanup
    cleanup.close()


@pytest.fixture(scope="module")
def subnets() -> set[str]:
    return set()


def test_docker_cli_network_lifecycle(docker, busybox, made, subnets):
    net = made.network("dk-net")
    subnet = free_subnet(subnets)
    created = docker("network", "create", "--subnet", subnet, net)
    assert created.returncode == 0, created.stderr
    listed = docker("network", "ls", "--format", "{{.Name}} {{.Driver}}").stdout.splitlines()
    assert {"bridge bridge", "host host", "none null", f"{net} bridge"} <= set(listed)
    info = json.loads(docker("network", "inspect", net).stdout)[0]
    assert info["IPAM"]["Config"][0]["Subnet"] == subnet
    web = made.container("dk-web")
    port = free_port()
    run = docker(
        "run",
        "-d",
        "--name",
        web,
        "--network",
        net,
        "--network-alias",
        "site",
        "-p",
        f"{port}:80",
        busybox,
        *WEB_CMD,
    )
    assert run.returncode == 0, run.stderr
    assert fetch(f"http://127.0.0.1:{port}/").startswith("hi-from-")
    assert docker("port", web).stdout.startswith(f"80/tcp -> 0.0.0.0:{port}")
    probe = docker("run", "--rm", "--network", net, busybox, "ping", "-c1", "-W2", "site")
    assert probe.returncode == 0, probe.stdout + probe.stderr
    busy = docker("network", "rm", net)
    assert busy.returncode != 0 and "active endpoints" in busy.stderr
    assert docker("rm", "-f", web).returncode == 0
    assert docker("network", "rm", net).returncode == 0
    assert docker("network", "inspect", net).returncode != 0


def test_docker_cli_connect_disconnect_and_prune(docker, busybox, made, subnets):
    net = made.network("dk-conn")
    assert docker("network", "create", "--subnet", free_subnet(subnets), net).returncode == 0
    box = made.container("dk-box")
    assert docker("run", "-d", "--name", box, busybox, "sleep", "300").returncode == 0
    assert docker("network", "connect", net, box).returncode == 0
    nets = json.loads(docker("inspect", "--format", "{{json .NetworkSettings.Networks}}", box).stdout)
    assert set(nets) == {"bridge", net} and nets[net]["IPAddress"]
    assert docker("network", "disconnect", net, box).returncode == 0
    unused = made.network("dk-unused")
    assert docker("network", "create", "--subnet", free_subnet(subnets), unused).returncode == 0
    pruned = docker("network", "prune", "-f")
    assert pruned.returncode == 0 and unused in pruned.stdout and net in pruned.stdout
    listed = docker("network", "ls", "--format", "{{.Name}}").stdout.split()
    assert unused not in listed and "bridge" in listed


def test_docker_sdk_networks(sdk, busybox, made, subnets):
    docker_sdk = pytest.importorskip("docker")
    subnet = free_subnet(subnets)
    pool = docker_sdk.types.IPAMPool(subnet=subnet)
    network = sdk.networks.create(
        made.network("sdk-net"), driver="bridge", ipam=docker_sdk.types.IPAMConfig(pool_configs=[pool])
    )
    assert network.attrs["IPAM"]["Config"][0]["Subnet"] == subnet
    port = free_port()
    container = sdk.containers.run(
        busybox,
        WEB_CMD,
        detach=True,
        name=made.container("sdk-web"),
        ports={"80/tcp": port},
        network=network.name,
    )
    assert fetch(f"http://127.0.0.1:{port}/").startswith("hi-from-")
    network.reload()
    assert container.id in network.attrs["Containers"]
    container.reload()
    assert container.ports == {"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": str(port)}]}
    other = sdk.containers.run(busybox, ["sleep", "300"], detach=True, name=made.container("sdk-other"))
    network.connect(other, aliases=["buddy"])
    # run() raises ContainerError when ping exits non-zero (the name did not resolve or answer)
    sdk.containers.run(busybox, ["ping", "-c1", "-W2", "buddy"], network=network.name, remove=True)
    with pytest.raises(docker_sdk.errors.ContainerError):
        sdk.containers.run(busybox, ["ping", "-c1", "-W2", "buddy"], remove=True)
    network.disconnect(other)
    container.remove(force=True)
    other.remove(force=True)
    network.remove()
    assert network.name not in [n.name for n in sdk.networks.list()]


def test_a_daemon_crash_keeps_running_containers_networked_and_removes_the_rest(daemon, cli, busybox, made):
    port = free_port()
    web = made.container("crash-web")
    assert cli("run", "-d", "--name", web, "-p", f"{port}:80", busybox, *WEB_CMD).returncode == 0
    assert fetch(f"http://127.0.0.1:{port}/").startswith("hi-from-")
    # what a crashed daemon could leave: a veth recorded for an endpoint nobody has, a namespace file
    state_path = daemon.data_path / "network" / "bridge" / "state.json"
    state = json.loads(state_path.read_text())
    ghost_endpoint = "f" * 64
    network_id = next(iter(state["networks"]))
    state["endpoints"][ghost_endpoint] = {
        "network": network_id,
        "address": "10.0.0.9/24",
        "mac": "02:42:0a:00:00:09",
        "ports": [],
    }
    ghost_link = "pyv" + ghost_endpoint[:12]
    subprocess.run(
        ["ip", "link", "add", ghost_link, "type", "veth", "peer", "name", "pyvghostpeer0"], check=True
    )
    try:
        daemon.process.kill()
        daemon.process.wait(30)
        state_path.write_text(json.dumps(state))
        from pyengine.networks import netns

        ghost_ns = os.path.join(daemon.exec_root, "netns", "0" * 64)
        netns.create(ghost_ns)
        daemon.start()
        assert ghost_link not in links("pyv")
        assert not os.path.exists(ghost_ns)
        assert fetch(f"http://127.0.0.1:{port}/").startswith("hi-from-")
        assert cli("rm", "-f", web).returncode == 0
        assert not [n for n in os.listdir(os.path.join(daemon.exec_root, "netns"))]
    finally:
        subprocess.run(["ip", "link", "del", ghost_link], capture_output=True)


def test_events_show_network_connect_and_disconnect_around_a_run(api, cli, busybox):
    since = str(int(time.time()) - 1)
    result = cli("run", "--rm", "--name", "ev-net", busybox, "true")
    assert result.returncode == 0, result.stderr
    until = str(int(time.time()) + 1)
    status, text = api("GET", f"/events?since={since}&until={until}")
    assert status == 200
    lines = text if isinstance(text, list) else [text] if isinstance(text, dict) else text.splitlines()
    events = [e if isinstance(e, dict) else json.loads(e) for e in lines if e]
    mine = [
        (e["Type"], e["Action"])
        for e in events
        if e["Actor"]["Attributes"].get("name") == "ev-net"
        or e["Actor"]["Attributes"].get("container", "x")
        in {c["Actor"]["ID"] for c in events if c["Actor"]["Attributes"].get("name") == "ev-net"}
    ]
    assert mine.index(("network", "connect")) < mine.index(("container", "start"))
    # Docker's order on exit: die, then disconnect, then (for --rm) destroy.
    assert (
        mine.index(("container", "start"))
        < mine.index(("container", "die"))
        < mine.index(("network", "disconnect"))
        < mine.index(("container", "destroy"))
    )
