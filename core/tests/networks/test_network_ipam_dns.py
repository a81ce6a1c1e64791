"""IPAM (pools, overlaps, allocation) and the embedded DNS message codec, without a daemon."""

from __future__ import annotations

import struct
from ipaddress import IPv4Address, IPv4Network

import pytest
from pyengine.errors import Conflict, InvalidArgument, Unavailable
from pyengine.networks import dns, ipam
from pyengine.networks.ports import parse_port_key, requested_bindings


def test_default_pool_skips_host_routes_and_networks_in_use():
    routes = [IPv4Network("172.17.0.0/16"), IPv4Network("172.16.0.0/12")]
    assert ipam.choose_subnet([], routes=[IPv4Network("172.17.0.0/16")]) == IPv4Network("172.18.0.0/16")
    assert ipam.choose_subnet([IPv4Network("192.168.0.0/20")], routes=routes) == IPv4Network(
        "192.168.16.0/20"
    )
    every = list(ipam.default_pools())
    with pytest.raises(Unavailable):
        ipam.choose_subnet(every, routes=[])


def test_host_routes_are_read_from_proc(tmp_path):
    table = tmp_path / "route"
    table.write_text(
        "Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\n"
        "eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\n"
        "eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\n"
    )
    assert ipam.host_routes(str(table)) == [IPv4Network("192.0.2.0/24")]


def test_overlapping_subnets_conflict():
    with pytest.raises(Conflict, match="overlaps"):
        ipam.check_overlap(IPv4Network("10.123.0.0/16"), {"a": IPv4Network("10.123.5.0/24")})
    ipam.check_overlap(IPv4Network("10.124.0.0/16"), {"a": IPv4Network("10.123.5.0/24")})


@pytest.mark.parametrize("text", ["10.123.0.1/24", "nonsense", "10.123.0.0/31", "fd00::/64"])
def test_bad_subnets(text):
    with pytest.raises(InvalidArgument):
        ipam.parse_subnet(text)


def test_allocation_skips_gateway_and_used_and_honours_range_and_wanted():
    subnet = IPv4Network("10.123.9.0/29")
    gateway = IPv4Address("10.123.9.1")
    assert ipam.allocate(subnet, gateway, set()) == IPv4Address("10.123.9.2")
    assert ipam.allocate(subnet, gateway, {IPv4Address("10.123.9.2")}) == IPv4Address("10.123.9.3")
    assert ipam.allocate(subnet, gateway, set(), ip_range=IPv4Network("10.123.9.4/30")) == IPv4Address(
        "10.123.9.5"
    )
    assert ipam.allocate(subnet, gateway, set(), wanted=IPv4Address("10.123.9.6")) == IPv4Address(
        "10.123.9.6"
    )
    with pytest.raises(InvalidArgument, match="contain the IP address"):
        ipam.allocate(subnet, gateway, set(), wanted=IPv4Address("10.123.10.6"))
    with pytest.raises(Conflict):
        ipam.allocate(subnet, gateway, {IPv4Address("10.123.9.6")}, wanted=IPv4Address("10.123.9.6"))
    full = {IPv4Address(f"10.123.9.{n}") for n in range(2, 7)}
    with pytest.raises(Unavailable):
        ipam.allocate(subnet, gateway, full)
    assert ipam.mac_for(IPv4Address("172.17.0.2")) == "02:42:ac:11:00:02"


def test_port_bindings_are_validated():
    assert requested_bindings({"80/tcp": [{"HostIp": "", "HostPort": "8080"}]}, None, False) == [
        ("tcp", 80, "", 8080, 8080)
    ]
    assert requested_bindings(None, {"53/udp": {}}, True) == [("udp", 53, "", 0, 0)]
    assert requested_bindings({"80/tcp": [{"HostPort": "8000-8010"}]}, None, False) == [
        ("tcp", 80, "", 8000, 8010)
    ]
    for bad in (
        {"80/tcp": [{"HostPort": "x"}]},
        {"80/tcp": [{"HostIp": "nope", "HostPort": "1"}]},
        {"80/xyz": [{}]},
    ):
        with pytest.raises(InvalidArgument):
            requested_bindings(bad, None, False)
    assert parse_port_key("53/UDP") == (53, "udp")


def _query(name: str, qtype: int = 1, ident: int = 0x1234) -> bytes:
    labels = b"".join(bytes([len(p)]) + p.encode() for p in name.split("."))
    return struct.pack("!HHHHHH", ident, 0x0100, 1, 0, 0, 0) + labels + b"\0" + struct.pack("!HH", qtype, 1)


def test_dns_question_and_answers():
    packet = _query("Web.Example")
    ident, name, qtype, qclass, end = dns.parse_question(packet)
    assert (ident, name, qtype, qclass, end) == (0x1234, "web.example", 1, 1, len(packet))
    reply = dns.answer(packet, end, ["10.123.0.2", "10.123.0.3"], qtype)
    rid, flags, qd, an = struct.unpack("!HHHH", reply[:8])
    assert (rid, qd, an) == (0x1234, 1, 2) and flags & 0x8000 and not flags & 0x000F
    assert reply.endswith(bytes([10, 123, 0, 3]))
    aaaa = dns.answer(packet, end, ["10.123.0.2"], 28)
    assert struct.unpack("!H", aaaa[6:8])[0] == 0  # no AAAA records: an empty answer
    missing = dns.not_found(packet, end)
    assert struct.unpack("!H", missing[2:4])[0] & 0x000F == 3  # NXDOMAIN
    assert dns.parse_question(b"\0" * 5) is None
    assert dns.parse_question(reply) is None  # a response, not a query
