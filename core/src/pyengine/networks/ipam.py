"""IPv4 address management: choosing subnets, gateways and container addresses.

Default pools are Docker's (172.17-31.0.0/16, then 192.168.0-240.0/20); a pool is skipped when it
overlaps a route of the host (read from /proc/net/route: the host's own networks, VPNs...) or a
network pyengine already has, so a new bridge never shadows an address the host can reach.
"""

from __future__ import annotations

import ipaddress
import socket
import struct
from collections.abc import Iterable
from ipaddress import IPv4Address, IPv4Network

from pyengine.errors import Conflict, InvalidArgument, Unavailable


def default_pools() -> Iterable[IPv4Network]:
    for second in range(17, 32):
        yield IPv4Network(f"172.{second}.0.0/16")
    for third in range(0, 256, 16):
        yield IPv4Network(f"192.168.{third}.0/20")


def host_routes(path: str = "/proc/net/route") -> list[IPv4Network]:
    """The destinations of the host's IPv4 routes, except the default route."""
    routes = []
    try:
        with open(path) as handle:
            next(handle, None)
            for line in handle:
                fields = line.split()
                if len(fields) < 8:
                    continue
                dest = socket.inet_ntoa(struct.pack("<L", int(fields[1], 16)))
                mask = socket.inet_ntoa(struct.pack("<L", int(fields[7], 16)))
                network = IPv4Network(f"{dest}/{mask}", strict=False)
                if network.prefixlen:
                    routes.append(network)
    except OSError:
        pass
    return routes


def parse_subnet(text: str) -> IPv4Network:
    try:
        network = ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise InvalidArgument(f"invalid subnet {text}: invalid CIDR address: {text}") from None
    if not isinstance(network, IPv4Network):
        raise InvalidArgument(f"IPv6 subnets are not supported by pyengine yet: {text}")
    if str(network.network_address) != text.split("/")[0]:
        raise InvalidArgument(f"invalid subnet {text}: it should be {network}")
    if network.prefixlen > 30:
        raise InvalidArgument(f"subnet {text} is too small: at least a /30 is needed")
    return network


def parse_address(text: str, what: str = "address") -> IPv4Address:
    try:
        return IPv4Address(text)
    except ValueError:
        raise InvalidArgument(f"invalid {what}: {text!r} is not an IPv4 address") from None


def choose_subnet(in_use: list[IPv4Network], *, routes: list[IPv4Network] | None = None) -> IPv4Network:
    """The first default pool overlapping neither ``in_use`` nor the host's routes."""
    taken = list(in_use) + (host_routes() if routes is None else routes)
    for pool in default_pools():
        if not any(pool.overlaps(other) for other in taken):
            return pool
    raise Unavailable("could not find an available, non-overlapping IPv4 address pool among the defaults")


def check_overlap(subnet: IPv4Network, in_use: dict[str, IPv4Network]) -> None:
    """Conflict (Docker's message) when ``subnet`` overlaps a network pyengine has."""
    for name, other in in_use.items():
        if subnet.overlaps(other):
            raise Conflict(f"Pool overlaps with other one on this address space (network {name}: {other})")


def first_host(subnet: IPv4Network) -> IPv4Address:
    return subnet.network_address + 1


def allocate(
    subnet: IPv4Network,
    gateway: IPv4Address,
    used: set[IPv4Address],
    *,
    ip_range: IPv4Network | None = None,
    wanted: IPv4Address | None = None,
) -> IPv4Address:
    """A free host address of ``subnet`` (within ``ip_range`` when set), or exactly ``wanted``."""
    if wanted is not None:
        if wanted not in subnet or wanted in (subnet.network_address, subnet.broadcast_address):
            raise InvalidArgument(f"no configured subnet or ip-range contain the IP address {wanted}")
        if wanted == gateway or wanted in used:
            raise Conflict(f"Address already in use: {wanted}")
        return wanted
    pool = ip_range or subnet
    for candidate in pool.hosts() if pool.prefixlen < 31 else pool:
        if candidate in (subnet.network_address, subnet.broadcast_address, gateway) or candidate in used:
            continue
        return candidate
    raise Unavailable(f"no available IPv4 addresses on this network's address pools ({pool})")


def mac_for(address: IPv4Address) -> str:
    """Docker's MAC for an address: 02:42 followed by the four bytes of the IPv4 address."""
    return "02:42:" + ":".join(f"{b:02x}" for b in address.packed)
