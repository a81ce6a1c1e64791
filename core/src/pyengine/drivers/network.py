"""The network driver interface: how a container's network namespace is wired to a network.

Vocabulary
----------
network_id
    The 64-hex ID of a network the core created. The core owns its name, IPAM and labels; the
    driver only makes the network exist on the host (a bridge, a vxlan, a remote plugin's state).
endpoint_id
    The 64-hex ID of one container's attachment to one network. The core allocates its address
    (IPAM is in the core) before asking the driver to create it.
sandbox_key
    The path of the container's network namespace: a file under the exec root that holds a bind
    mount of the namespace (as ``ip netns`` does). It exists before the container starts; the
    runtime joins it through ``linux.namespaces[{"type": "network", "path": sandbox_key}]``.
interface name
    The name the endpoint's interface gets inside the sandbox: ``eth0`` for the first network of a
    container, ``eth1`` for the next...

Typical flows
-------------
A container starting on a network (the core made the sandbox)::

    driver.create_endpoint(network_id, endpoint_id, address="10.123.0.2/24", mac="02:42:...")
    driver.join(network_id, endpoint_id, sandbox_key, ifname="eth0", default_route=True)
    driver.program_external_connectivity(network_id, endpoint_id, bindings)   # -p, -P

The container stopping (or ``network disconnect``)::

    driver.revoke_external_connectivity(network_id, endpoint_id)
    driver.leave(network_id, endpoint_id)
    driver.delete_endpoint(network_id, endpoint_id)

A daemon restart after a crash::

    driver.reconcile(known_networks, known_endpoints)   # remove whatever the core no longer knows

Errors: :class:`pyengine.errors.NotFound` for an unknown network or endpoint,
:class:`~pyengine.errors.InvalidArgument` for options the driver does not know (``-o foo=bar``),
:class:`~pyengine.errors.Conflict` for a host resource in use (a host port), and
:class:`~pyengine.errors.NotSupported` from the factory when the host cannot run the driver. On any
error a method leaves nothing half-made behind (no link, no rule).

Every method is synchronous kernel work, called by the core from worker threads; a driver guards
its own state with a lock. ``create_network`` is idempotent for the same arguments, so the core can
replay the networks it knows at every daemon start (after a reboot the bridges are gone).

Registration: a driver package names a factory in the ``pyengine.network.v1`` entry-point
namespace, called as ``factory(root=Path, options=dict)``; the driver keeps whatever it needs to
survive a restart under ``root``.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ENTRY_POINT_NAMESPACE = "pyengine.network.v1"


@dataclass(frozen=True)
class IPv4Data:
    """The network's subnet (``10.123.0.0/24``) and its gateway address (``10.123.0.1``)."""

    subnet: str
    gateway: str


@dataclass(frozen=True)
class PortBinding:
    """One published port: host ``host_ip:host_port`` forwarded to the endpoint's ``port``.

    ``host_ip`` is ``""`` for every address of the host; the core has chosen ``host_port`` already
    (for ``-P`` and ``-p 80``) and checked that it is free.
    """

    proto: str  # "tcp" | "udp" | "sctp"
    port: int
    host_ip: str
    host_port: int


class NetworkDriver(abc.ABC):
    """A way to connect sandboxes to networks. See the module docstring for the flows."""

    #: the user-visible name, as in ``network create --driver NAME``
    name: str = ""

    def __init__(self, root: Path) -> None:
        #: the directory the driver owns for its state
        self.root = Path(root)

    @abc.abstractmethod
    def create_network(
        self, network_id: str, ipv4: IPv4Data, options: dict[str, str], *, internal: bool = False
    ) -> None:
        """Make the network exist on the host. ``options`` are the ``-o`` driver options (unknown
        ones raise InvalidArgument, with nothing created). ``internal`` networks get no route out.
        Idempotent: creating a network that exists with the same data succeeds."""

    @abc.abstractmethod
    def delete_network(self, network_id: str) -> None:
        """Remove the network and everything of it on the host. The core has removed its endpoints."""

    @abc.abstractmethod
    def create_endpoint(self, network_id: str, endpoint_id: str, *, address: str, mac: str) -> None:
        """Record an endpoint with its address (``10.123.0.2/24``) and MAC. Raises NotFound."""

    @abc.abstractmethod
    def delete_endpoint(self, network_id: str, endpoint_id: str) -> None:
        """Forget an endpoint (after :meth:`leave`). Unknown endpoints are ignored."""

    @abc.abstractmethod
    def join(
        self, network_id: str, endpoint_id: str, sandbox_key: str, *, ifname: str, default_route: bool
    ) -> None:
        """Put the endpoint's interface into the sandbox as ``ifname``, up, with its address (and
        the default route through the network's gateway when ``default_route``)."""

    @abc.abstractmethod
    def leave(self, network_id: str, endpoint_id: str) -> None:
        """Take the endpoint's interface out of its sandbox (and delete it). Idempotent."""

    def program_external_connectivity(
        self, network_id: str, endpoint_id: str, bindings: list[PortBinding]
    ) -> None:
        """Forward the published ports to the endpoint. Drivers without port publishing raise
        InvalidArgument when ``bindings`` is not empty."""
        if bindings:
            from pyengine.errors import InvalidArgument

            raise InvalidArgument(f"the {self.name} network driver cannot publish ports")

    def revoke_external_connectivity(self, network_id: str, endpoint_id: str) -> None:  # noqa: B027
        """Stop forwarding the endpoint's published ports. Idempotent."""

    def reconcile(self, networks: set[str], endpoints: set[str]) -> None:  # noqa: B027
        """At daemon start: remove every network and endpoint (links, rules) not in these sets."""

    def status(self) -> list[tuple[str, Any]]:
        """Pairs for ``pyengine info``."""
        return []
