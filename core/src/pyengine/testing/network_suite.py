"""The conformance suite every network driver runs (as root, on the real kernel).

A driver's test file subclasses :class:`NetworkDriverSuite`, implements :meth:`make_driver` (and
:meth:`destroy_driver` when it keeps host state beyond its networks), and sets the quirk flags::

    class TestMyDriver(NetworkDriverSuite):
        def make_driver(self, root):
            return factory(root, {})

Each test gets a fresh driver root, its own sandboxes (network namespaces under a temporary
directory) and subnets of 10.123.200-254.0/24 that no route of the host overlaps; everything is
deleted afterwards, also when the test fails. Traffic stays inside those namespaces and the host's
loopback.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import threading
from pathlib import Path
from typing import Any

import pytest

from pyengine.drivers.network import IPv4Data, NetworkDriver, PortBinding
from pyengine.errors import InvalidArgument, NotFound
from pyengine.networks import ipam, netns


def _free_subnets(count: int) -> list[ipaddress.IPv4Network]:
    routes = ipam.host_routes()
    out = []
    for third in range(200, 255):
        candidate = ipaddress.IPv4Network(f"10.123.{third}.0/24")
        if not any(candidate.overlaps(r) for r in routes):
            out.append(candidate)
        if len(out) == count:
            return out
    pytest.skip("no free 10.123.200-254.0/24 subnets on this host")


def _new_id(n: int, salt: str) -> str:
    import hashlib

    return hashlib.sha256(f"{salt}-{n}".encode()).hexdigest()


class Harness:
    """What a test made: the driver, its networks, sandboxes; removed by :meth:`close`."""

    def __init__(self, driver: NetworkDriver, tmp: Path, salt: str) -> None:
        self.driver = driver
        self.tmp = tmp
        self.salt = salt
        self.count = 0
        self.networks: list[str] = []
        self.sandboxes: list[Path] = []

    def ident(self) -> str:
        self.count += 1
        return _new_id(self.count, self.salt)

    def network(
        self, subnet: ipaddress.IPv4Network, options: dict[str, str] | None = None
    ) -> tuple[str, IPv4Data]:
        network_id = self.ident()
        data = IPv4Data(str(subnet), str(subnet.network_address + 1))
        self.driver.create_network(network_id, data, options or {})
        self.networks.append(network_id)
        return network_id, data

    def sandbox(self) -> str:
        path = self.tmp / f"sandbox-{len(self.sandboxes)}"
        netns.create(path)
        self.sandboxes.append(path)
        return str(path)

    def endpoint(
        self, network_id: str, data: IPv4Data, host: int, sandbox: str, ifname: str = "eth0"
    ) -> tuple[str, str]:
        subnet = ipaddress.IPv4Network(data.subnet)
        address = subnet.network_address + host
        endpoint_id = self.ident()
        self.driver.create_endpoint(
            network_id, endpoint_id, address=f"{address}/{subnet.prefixlen}", mac=ipam.mac_for(address)
        )
        self.driver.join(network_id, endpoint_id, sandbox, ifname=ifname, default_route=ifname == "eth0")
        return endpoint_id, str(address)

    def close(self) -> None:
        for network_id in reversed(self.networks):
            with contextlib.suppress(Exception):
                self.driver.delete_network(network_id)
        for path in self.sandboxes:
            with contextlib.suppress(OSError):
                netns.remove(path)


def listen_in(sandbox: str, port: int, proto: str = "tcp") -> socket.socket:
    """A listening socket inside the sandbox (made from this thread, which comes back)."""
    with netns.entered(sandbox):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("0.0.0.0", port))
    if proto == "tcp":
        sock.listen(8)
    return sock


def can_connect(address: str, port: int, sandbox: str | None = None, timeout: float = 2.0) -> bool:
    """Whether a TCP connection to address:port succeeds (from inside ``sandbox`` when given)."""
    if sandbox:
        with netns.entered(sandbox):
            sock = socket.socket()
    else:
        sock = socket.socket()
    sock.settimeout(timeout)
    try:
        sock.connect((address, port))
        return True
    except OSError:
        return False
    finally:
        sock.close()


def serve_once(listener: socket.socket, reply: bytes) -> threading.Thread:
    def run() -> None:
        listener.settimeout(10)
        with contextlib.suppress(OSError):
            conn, _ = listener.accept()
            with conn:
                conn.sendall(reply)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def interface_addresses(sandbox: str) -> dict[str, list[str]]:
    """Interface name -> its IPv4 address with prefix inside the sandbox, read with the classic
    SIOCGIFADDR/SIOCGIFNETMASK ioctls (independent of whatever netlink library the driver uses)."""
    import fcntl
    import struct

    out: dict[str, list[str]] = {}
    with netns.entered(sandbox):
        names = [line.split(":")[0].strip() for line in Path("/proc/net/dev").read_text().splitlines()[2:]]
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with sock:
        for name in names:
            try:
                packed = fcntl.ioctl(
                    sock.fileno(), 0x8915, struct.pack("256s", name.encode()[:15])
                )  # SIOCGIFADDR
                mask = fcntl.ioctl(
                    sock.fileno(), 0x891B, struct.pack("256s", name.encode()[:15])
                )  # SIOCGIFNETMASK
            except OSError:
                out[name] = []
                continue
            address = socket.inet_ntoa(packed[20:24])
            prefix = ipaddress.IPv4Network(f"0.0.0.0/{socket.inet_ntoa(mask[20:24])}").prefixlen
            out[name] = [f"{address}/{prefix}"]
    return out


class NetworkDriverSuite:
    """Subclass, implement :meth:`make_driver`, set the quirks."""

    #: the driver forwards published host ports to endpoints (PortBinding)
    supports_port_publishing = True
    #: endpoints on different networks cannot reach each other
    isolates_networks = True

    def make_driver(self, root: Path) -> NetworkDriver:
        raise NotImplementedError

    def destroy_driver(self, driver: NetworkDriver, root: Path) -> None:
        """Remove whatever host state the driver keeps beyond its networks (rules tables...)."""

    @pytest.fixture
    def harness(self, tmp_path: Path, request: Any):
        root = tmp_path / "driver"
        driver = self.make_driver(root)
        made = Harness(driver, tmp_path, request.node.name)
        try:
            yield made
        finally:
            made.close()
            with contextlib.suppress(Exception):
                driver.reconcile(set(), set())
            self.destroy_driver(driver, root)

    # ---- networks -----------------------------------------------------------------------------
    def test_create_network_is_idempotent_and_delete_removes_it(self, harness: Harness) -> None:
        (subnet,) = _free_subnets(1)
        network_id, data = harness.network(subnet)
        harness.driver.create_network(network_id, data, {})
        harness.driver.delete_network(network_id)
        harness.networks.remove(network_id)
        with pytest.raises(NotFound):
            harness.driver.delete_network(network_id)

    def test_unknown_option_is_invalid_and_creates_nothing(self, harness: Harness) -> None:
        (subnet,) = _free_subnets(1)
        before = Path("/proc/net/dev").read_text().count("\n")
        with pytest.raises(InvalidArgument):
            harness.driver.create_network(
                harness.ident(),
                IPv4Data(str(subnet), str(subnet.network_address + 1)),
                {"no.such.option": "1"},
            )
        assert Path("/proc/net/dev").read_text().count("\n") == before

    # ---- endpoints ----------------------------------------------------------------------------
    def test_join_puts_a_configured_interface_in_the_sandbox(self, harness: Harness) -> None:
        (subnet,) = _free_subnets(1)
        network_id, data = harness.network(subnet)
        sandbox = harness.sandbox()
        endpoint_id, address = harness.endpoint(network_id, data, 2, sandbox)
        assert interface_addresses(sandbox)["eth0"] == [f"{address}/{subnet.prefixlen}"]
        harness.driver.leave(network_id, endpoint_id)
        harness.driver.delete_endpoint(network_id, endpoint_id)
        assert "eth0" not in interface_addresses(sandbox)

    def test_two_endpoints_on_one_network_reach_each_other(self, harness: Harness) -> None:
        (subnet,) = _free_subnets(1)
        network_id, data = harness.network(subnet)
        server, client = harness.sandbox(), harness.sandbox()
        _, server_address = harness.endpoint(network_id, data, 2, server)
        harness.endpoint(network_id, data, 3, client)
        listener = listen_in(server, 8080)
        with listener:
            assert can_connect(server_address, 8080, sandbox=client)

    def test_join_of_an_unknown_endpoint_is_not_found(self, harness: Harness) -> None:
        (subnet,) = _free_subnets(1)
        network_id, _ = harness.network(subnet)
        with pytest.raises(NotFound):
            harness.driver.join(
                network_id, harness.ident(), harness.sandbox(), ifname="eth0", default_route=True
            )
        harness.driver.delete_endpoint(network_id, harness.ident())  # unknown: ignored

    def test_reconcile_removes_what_the_core_does_not_know(self, harness: Harness) -> None:
        (subnet,) = _free_subnets(1)
        network_id, data = harness.network(subnet)
        sandbox = harness.sandbox()
        kept, _ = harness.endpoint(network_id, data, 2, sandbox, "eth0")
        harness.endpoint(network_id, data, 3, sandbox, "eth1")
        harness.driver.reconcile({network_id}, {kept})
        assert set(interface_addresses(sandbox)) == {"lo", "eth0"}

    # ---- external connectivity ----------------------------------------------------------------
    def test_a_published_port_is_reachable_from_the_hosts_loopback(self, harness: Harness) -> None:
        if not self.supports_port_publishing:
            pytest.skip("the driver does not publish ports")
        (subnet,) = _free_subnets(1)
        network_id, data = harness.network(subnet)
        sandbox = harness.sandbox()
        endpoint_id, _ = harness.endpoint(network_id, data, 2, sandbox)
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        host_port = probe.getsockname()[1]
        probe.close()
        harness.driver.program_external_connectivity(
            network_id, endpoint_id, [PortBinding("tcp", 80, "", host_port)]
        )
        listener = listen_in(sandbox, 80)
        with listener:
            thread = serve_once(listener, b"hello")
            with socket.create_connection(("127.0.0.1", host_port), timeout=5) as conn:
                assert conn.recv(16) == b"hello"
            thread.join(5)
            harness.driver.revoke_external_connectivity(network_id, endpoint_id)
            assert not can_connect("127.0.0.1", host_port, timeout=1)

    def test_networks_are_isolated_from_each_other(self, harness: Harness) -> None:
        if not self.isolates_networks:
            pytest.skip("the driver does not isolate networks")
        first_subnet, second_subnet = _free_subnets(2)
        first, first_data = harness.network(first_subnet)
        second, second_data = harness.network(second_subnet)
        server, client = harness.sandbox(), harness.sandbox()
        _, server_address = harness.endpoint(first, first_data, 2, server)
        harness.endpoint(second, second_data, 2, client)
        listener = listen_in(server, 8080)
        with listener:
            assert not can_connect(server_address, 8080, sandbox=client, timeout=1)
