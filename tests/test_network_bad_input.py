"""Bad network input gets Docker's status code and a clear message, and leaves nothing half-made."""

from __future__ import annotations

import socket

import pytest
from network_helpers import WEB_CMD, Cleanup, free_port, free_subnet, links

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def made(cli):
    cleanup = Cleanup(cli)
    yield cleanup
    cleanup.close()


@pytest.fixture(scope="module")
def subnets() -> set[str]:
    return set(str(n) for n in [])


def network_names(api) -> set[str]:
    status, listed = api("GET", "/networks")
    assert status == 200
    return {n["Name"] for n in listed}


def test_overlapping_subnets_are_refused(api, made, subnets):
    subnet = free_subnet(subnets)
    made.network("bad-first")
    assert (
        api("POST", "/networks/create", {"Name": "bad-first", "IPAM": {"Config": [{"Subnet": subnet}]}})[0]
        == 201
    )
    bridges = links("pye-")
    status, reply = api(
        "POST", "/networks/create", {"Name": "bad-second", "IPAM": {"Config": [{"Subnet": subnet}]}}
    )
    assert status == 409 and "overlaps" in reply["message"]
    assert "bad-second" not in network_names(api)
    assert links("pye-") == bridges


@pytest.mark.parametrize(
    ("config", "status", "words"),
    [
        ({"Subnet": "10.123.300.0/24"}, 400, "invalid"),
        ({"Subnet": "10.123.70.0/24", "Gateway": "10.123.71.1"}, 400, "not a host address"),
        ({"Subnet": "10.123.70.0/24", "IPRange": "10.123.80.0/25"}, 400, "not within"),
    ],
)
def test_bad_ipam_config(api, config, status, words):
    bridges = links("pye-")
    code, reply = api("POST", "/networks/create", {"Name": "bad-ipam", "IPAM": {"Config": [config]}})
    assert code == status and words in reply["message"], reply
    assert "bad-ipam" not in network_names(api)
    assert links("pye-") == bridges


def test_unknown_driver_and_option(api, cli):
    bridges = links("pye-")
    status, reply = api("POST", "/networks/create", {"Name": "bad-driver", "Driver": "nosuchdriver"})
    assert status == 404 and "nosuchdriver" in reply["message"]
    status, reply = api("POST", "/networks/create", {"Name": "bad-opt", "Options": {"foo": "bar"}})
    assert status == 400 and "unknown option" in reply["message"] and "foo" in reply["message"]
    assert not {"bad-driver", "bad-opt"} & network_names(api)
    assert links("pye-") == bridges
    result = cli("network", "create", "-d", "nosuchdriver", "bad-driver")
    assert result.returncode == 1 and "Error response from daemon" in result.stderr


def test_duplicate_and_builtin_names(api, made, subnets):
    made.network("bad-dup")
    assert api("POST", "/networks/create", {"Name": "bad-dup"})[0] == 201
    status, reply = api("POST", "/networks/create", {"Name": "bad-dup"})
    assert status == 409 and "already exists" in reply["message"]
    assert api("DELETE", "/networks/bridge")[0] == 403
    assert api("DELETE", "/networks/nosuchnet") == (404, {"message": "network nosuchnet not found"})


def test_address_outside_the_subnet(cli, busybox, made, subnets):
    net = made.network("bad-ipnet")
    subnet = free_subnet(subnets)
    assert cli("network", "create", "--subnet", subnet, net).returncode == 0
    result = cli("run", "--rm", "--network", net, "--ip", "10.99.99.5", busybox, "true")
    assert result.returncode == 125
    assert "no configured subnet or ip-range contain the IP address 10.99.99.5" in result.stderr
    result = cli("run", "--rm", "--network-alias", "x", busybox, "true")
    assert result.returncode == 125 and "user defined networks" in result.stderr
    result = cli("run", "--rm", "--network", "nosuchnet", busybox, "true")
    assert result.returncode == 125 and "network nosuchnet not found" in result.stderr


def test_a_host_port_in_use_fails_the_start_and_leaves_nothing(cli, busybox, api):
    holder = socket.socket()
    holder.bind(("0.0.0.0", 0))
    holder.listen()
    port = holder.getsockname()[1]
    try:
        veths = links("pyv")
        result = cli("run", "--rm", "-p", f"{port}:80", busybox, "true")
        assert result.returncode == 125
        assert f"Bind for 0.0.0.0:{port} failed: port is already allocated" in result.stderr
        assert links("pyv") == veths
        status, listed = api("GET", "/containers/json?all=1")
        assert not [c for c in listed if c["Command"] == "true" and c["Ports"]]
    finally:
        holder.close()


@pytest.mark.parametrize("spec", ["80:abc", "1:2:3:4", "70000:80", "80/xyz"])
def test_bad_port_specs_are_refused_by_the_cli(cli, busybox, spec):
    result = cli("run", "--rm", "-p", spec, busybox, "true")
    assert result.returncode == 125 and result.stderr


def test_bad_port_bindings_are_refused_by_the_api(api, busybox):
    body = {
        "Image": busybox,
        "Cmd": ["true"],
        "HostConfig": {"PortBindings": {"80/tcp": [{"HostPort": "x"}]}},
    }
    status, reply = api("POST", "/containers/create", body)
    assert status == 400 and "invalid host port" in reply["message"]
    body["HostConfig"]["PortBindings"] = {"eighty/tcp": [{}]}
    status, reply = api("POST", "/containers/create", body)
    assert status == 400 and "invalid port specification" in reply["message"]


def test_removing_a_network_with_containers_attached(cli, busybox, made, subnets, api):
    net = made.network("bad-busy")
    assert cli("network", "create", "--subnet", free_subnet(subnets), net).returncode == 0
    user = made.container("bad-busy-user")
    assert cli("run", "-d", "--name", user, "--network", net, busybox, *WEB_CMD).returncode == 0
    status, reply = api("DELETE", f"/networks/{net}")
    assert status == 403 and "has active endpoints" in reply["message"]
    result = cli("network", "rm", net)
    assert result.returncode == 1 and "has active endpoints" in result.stderr
    assert cli("rm", "-f", user).returncode == 0
    bridges = links("pye-")
    assert cli("network", "rm", net).returncode == 0
    assert len(links("pye-")) == len(bridges) - 1


def test_port_of_an_unpublished_port(cli, busybox, made):
    name = made.container("bad-port-query")
    assert cli("run", "-d", "--name", name, "-p", f"{free_port()}:80", busybox, "sleep", "60").returncode == 0
    result = cli("port", name, "81")
    assert result.returncode == 1 and "No public port '81/tcp'" in result.stderr
