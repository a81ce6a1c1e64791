"""Containers on bridge networks through our CLI: published ports from the host's loopback, names on
user networks, isolation between networks, host/none/container: modes, and nothing left behind."""

from __future__ import annotations

import json

import pytest
from network_helpers import WEB_CMD, Cleanup, fetch, free_port, free_subnet, links

pytestmark = pytest.mark.timeout(180)

#: fetch a page from inside a container, retrying while the server starts
RETRY_WGET = "for i in $(seq 50); do wget -qO- {url} && exit 0; sleep 0.2; done; exit 1"


@pytest.fixture
def made(cli):
    cleanup = Cleanup(cli)
    yield cleanup
    cleanup.close()


@pytest.fixture(scope="module")
def subnets() -> set[str]:
    return set()


def inspect(cli, name: str, template: str = "{{json .}}"):
    result = cli("inspect", "--format", template, name)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_a_published_port_answers_on_the_hosts_loopback(cli, busybox, made):
    port = free_port()
    name = made.container("net-web")
    result = cli("run", "-d", "--name", name, "-p", f"{port}:80", busybox, *WEB_CMD)
    assert result.returncode == 0, result.stderr
    assert fetch(f"http://127.0.0.1:{port}/").startswith("hi-from-")
    ports = inspect(cli, name, "{{json .NetworkSettings.Ports}}")
    assert ports == {"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": str(port)}]}
    assert cli("port", name).stdout == f"80/tcp -> 0.0.0.0:{port}\n"
    assert f"0.0.0.0:{port}->80/tcp" in cli("ps").stdout
    settings = inspect(cli, name, "{{json .NetworkSettings}}")
    assert settings["IPAddress"] and settings["Gateway"] and settings["MacAddress"].startswith("02:42:")
    assert settings["Networks"]["bridge"]["IPAddress"] == settings["IPAddress"]
    veth = "pyv" + settings["EndpointID"][:12]
    assert veth in links("pyv")

    assert cli("rm", "-f", name).returncode == 0
    assert veth not in links("pyv")
    # the port is free again: a new container can publish it
    again = made.container("net-web2")
    assert cli("run", "-d", "--name", again, "-p", f"127.0.0.1:{port}:80", busybox, *WEB_CMD).returncode == 0
    assert fetch(f"http://127.0.0.1:{port}/").startswith("hi-from-")


def test_a_container_knows_its_own_address_in_etc_hosts(cli, busybox):
    result = cli(
        "run", "--rm", "-h", "myhost", busybox, "sh", "-c", "grep myhost /etc/hosts; ip -o -4 addr show eth0"
    )
    assert result.returncode == 0, result.stderr
    hosts_line, addr_line = result.stdout.splitlines()[:2]
    address = hosts_line.split()[0]
    assert f"inet {address}/" in addr_line


def test_two_containers_on_a_user_network_reach_each_other_by_name(cli, busybox, made, subnets):
    net = made.network("net-backend")
    subnet = free_subnet(subnets)
    assert cli("network", "create", "--subnet", subnet, net).returncode == 0
    db = made.container("net-db")
    result = cli(
        "run", "-d", "--name", db, "--network", net, "--network-alias", "database", busybox, *WEB_CMD
    )
    assert result.returncode == 0, result.stderr
    address = inspect(cli, db, "{{json .NetworkSettings.Networks}}")[net]["IPAddress"]
    assert address.startswith(subnet.rsplit(".", 1)[0] + ".")
    probe = cli(
        "run",
        "--rm",
        "--network",
        net,
        busybox,
        "sh",
        "-c",
        "cat /etc/resolv.conf; ping -c1 -W2 net-db && "
        + RETRY_WGET.format(url="http://database/")
        + " && nslookup net-db 127.0.0.11",
    )
    assert probe.returncode == 0, probe.stdout + probe.stderr
    assert "nameserver 127.0.0.11" in probe.stdout
    assert "hi-from-" in probe.stdout
    assert address in probe.stdout
    # a name no container has is answered inside the machine: not found
    missing = cli("run", "--rm", "--network", net, busybox, "nslookup", "no-such-container", "127.0.0.11")
    assert missing.returncode != 0
    info = json.loads(cli("network", "inspect", net).stdout)[0]
    assert info["IPAM"]["Config"] == [{"Subnet": subnet, "Gateway": subnet.rsplit(".", 1)[0] + ".1"}]
    assert [c["Name"] for c in info["Containers"].values()] == [db]


def test_two_networks_cannot_reach_each_other(cli, busybox, made, subnets):
    first, second = made.network("net-iso-a"), made.network("net-iso-b")
    assert cli("network", "create", "--subnet", free_subnet(subnets), first).returncode == 0
    assert cli("network", "create", "--subnet", free_subnet(subnets), second).returncode == 0
    server = made.container("net-iso-server")
    assert cli("run", "-d", "--name", server, "--network", first, busybox, *WEB_CMD).returncode == 0
    address = inspect(cli, server, "{{json .NetworkSettings.Networks}}")[first]["IPAddress"]
    same = cli(
        "run", "--rm", "--network", first, busybox, "sh", "-c", RETRY_WGET.format(url=f"http://{address}/")
    )
    assert same.returncode == 0 and "hi-from-" in same.stdout, same.stderr
    # busybox wget -T crashes on a refused connection; timeout(1) bounds the dropped one instead,
    # under sh so that wget is not PID 1 (which ignores timeout's SIGTERM)
    other = cli(
        "run",
        "--rm",
        "--network",
        second,
        busybox,
        "sh",
        "-c",
        f"timeout 3 wget -qO- http://{address}/; exit $?",
    )
    assert other.returncode != 0
    assert "hi-from-" not in other.stdout
    # connecting the client to the first network makes it reachable
    client = made.container("net-iso-client")
    assert cli("run", "-d", "--name", client, "--network", second, busybox, "sleep", "300").returncode == 0
    assert cli("network", "connect", first, client).returncode == 0
    nets = inspect(cli, client, "{{json .NetworkSettings.Networks}}")
    assert set(nets) == {first, second} and nets[first]["IPAddress"]
    assert cli("network", "disconnect", first, client).returncode == 0
    assert set(inspect(cli, client, "{{json .NetworkSettings.Networks}}")) == {second}


def test_host_none_and_container_modes(cli, busybox, made):
    host = cli("run", "--rm", "--network", "host", busybox, "cat", "/proc/net/dev")
    with open("/proc/net/dev") as f:
        mine = {line.split(":")[0].strip() for line in f if ":" in line}
    assert host.returncode == 0
    assert {line.split(":")[0].strip() for line in host.stdout.splitlines() if ":" in line} == mine
    none = cli("run", "--rm", "--network", "none", busybox, "cat", "/proc/net/dev")
    assert none.returncode == 0
    assert {line.split(":")[0].strip() for line in none.stdout.splitlines() if ":" in line} == {"lo"}
    owner = made.container("net-owner")
    assert cli("run", "-d", "--name", owner, busybox, "sleep", "300").returncode == 0
    owner_ip = cli("inspect", "--format", "{{.NetworkSettings.IPAddress}}", owner).stdout.strip()
    joined = cli("run", "--rm", "--network", f"container:{owner}", busybox, "ip", "-o", "-4", "addr")
    assert joined.returncode == 0 and f"inet {owner_ip}/" in joined.stdout


def test_publish_all_exposed_ports(api, cli, busybox, made):
    name = made.container("net-publish-all")
    body = {
        "Image": busybox,
        "Cmd": WEB_CMD,
        "ExposedPorts": {"80/tcp": {}},
        "HostConfig": {"PublishAllPorts": True},
    }
    status, reply = api("POST", f"/containers/create?name={name}", body)
    assert status == 201, reply
    assert api("POST", f"/containers/{name}/start")[0] == 204
    ports = inspect(cli, name, "{{json .NetworkSettings.Ports}}")
    host_port = int(ports["80/tcp"][0]["HostPort"])
    assert host_port >= 32768
    assert fetch(f"http://127.0.0.1:{host_port}/").startswith("hi-from-")


def test_stop_releases_the_network_and_start_makes_it_again(cli, busybox, made, daemon):
    name = made.container("net-restart")
    port = free_port()
    assert cli("run", "-d", "--name", name, "-p", f"{port}:80", busybox, *WEB_CMD).returncode == 0
    first = inspect(cli, name, "{{json .NetworkSettings}}")
    assert fetch(f"http://127.0.0.1:{port}/").startswith("hi-from-")
    assert cli("stop", "-t", "1", name).returncode == 0
    stopped = inspect(cli, name, "{{json .NetworkSettings}}")
    assert stopped["IPAddress"] == "" and stopped["SandboxKey"] == "" and "bridge" in stopped["Networks"]
    assert "pyv" + first["EndpointID"][:12] not in links("pyv")
    assert not (daemon.data_path.parent / "exec" / "netns" / inspect(cli, name, '"{{.Id}}"')).exists()
    assert cli("start", name).returncode == 0
    assert fetch(f"http://127.0.0.1:{port}/").startswith("hi-from-")
    assert inspect(cli, name, "{{json .NetworkSettings.Ports}}") == first["Ports"]


def test_an_internal_network_has_no_way_out(cli, busybox, made, subnets):
    net = made.network("net-internal")
    assert cli("network", "create", "--internal", "--subnet", free_subnet(subnets), net).returncode == 0
    routes = cli("run", "--rm", "--network", net, busybox, "ip", "route")
    assert routes.returncode == 0 and "default" not in routes.stdout and "eth0" in routes.stdout
    info = json.loads(cli("network", "inspect", net).stdout)[0]
    assert info["Internal"] is True


def test_udp_ports_are_forwarded_by_a_rule_of_our_own_table(cli, busybox, made, daemon, api):
    from pyengine_net_bridge.firewall import Nftables
    from pyengine_net_bridge.plugin import table_name

    table = Nftables(table_name(daemon.data_path / "network" / "bridge"))
    port = free_port()
    name = made.container("net-udp")
    published = f"127.0.0.1:{port}:53/udp"
    assert cli("run", "-d", "--name", name, "-p", published, busybox, "sleep", "300").returncode == 0
    address = inspect(cli, name, "{{json .NetworkSettings.IPAddress}}")
    assert f"ip daddr 127.0.0.1 udp dport {port} dnat to {address}:53" in table.list_table()
    assert cli("port", name, "53/udp").stdout == f"127.0.0.1:{port}\n"
    assert cli("rm", "-f", name).returncode == 0
    assert f"udp dport {port}" not in table.list_table()
    status, info = api("GET", "/info")
    assert status == 200 and {"bridge", "host", "null"} <= set(info["Plugins"]["Network"])


def test_host_mode_uses_the_hosts_names_and_container_mode_its_targets(cli, busybox, made):
    host = cli("run", "--rm", "--network", "host", busybox, "cat", "/etc/resolv.conf")
    with open("/etc/resolv.conf") as f:
        assert host.returncode == 0 and host.stdout == f.read()
    owner = made.container("net-names-owner")
    assert cli("run", "-d", "--name", owner, "-h", "ownerhost", busybox, "sleep", "300").returncode == 0
    joined = cli("run", "--rm", "--network", f"container:{owner}", busybox, "cat", "/etc/hosts")
    assert joined.returncode == 0 and "ownerhost" in joined.stdout
