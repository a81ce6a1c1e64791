"""Networks: their records, IPAM, and wiring containers' network namespaces through the drivers.

The core owns networks (names, subnets, addresses, which container is where); drivers only make them
exist on the host (:mod:`pyengine.drivers.network`). Three networks are built in, as in Docker:
``bridge`` (the default, on our own bridge ``pye0``: docker0 is never touched), ``host`` (no network
namespace) and ``none`` (a namespace with only ``lo``).

A container's networks are in its record (``NetworkSettings.Networks``, by network name), kept while
it is stopped; the addresses, endpoints and the namespace exist only while it runs:
:meth:`NetworkService.attach` makes them before the runtime starts the container and returns the
``linux.namespaces`` entry to give the runtime; :meth:`NetworkService.detach` undoes all of it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from ipaddress import IPv4Network
from pathlib import Path
from typing import Any

from pyengine import ids
from pyengine.drivers import registry
from pyengine.drivers.network import ENTRY_POINT_NAMESPACE, IPv4Data, NetworkDriver
from pyengine.errors import (
    AlreadyExists,
    EngineError,
    InvalidArgument,
    NotFound,
    PermissionDenied,
)
from pyengine.model.base import now_rfc3339
from pyengine.model.container import Container
from pyengine.model.network import IPAMConfig, IPAMSpec, Network, NetworkCreateRequest
from pyengine.networks import ipam, ports
from pyengine.networks.attachments import ContainerAttachments
from pyengine.state.db import Database, dumps, loads

log = logging.getLogger(__name__)

BUILTIN = {"bridge": "bridge", "host": "host", "none": "null"}
#: the entry point that adapts Docker network plugins (pyengine-net-remote), if installed
REMOTE = "remote"
DEFAULT_BRIDGE_NAME = "pye0"
_DEFAULT_BRIDGE_OPTIONS = {
    "com.docker.network.bridge.default_bridge": "true",
    "com.docker.network.bridge.enable_icc": "true",
    "com.docker.network.bridge.enable_ip_masquerade": "true",
    "com.docker.network.bridge.host_binding_ipv4": "0.0.0.0",
    "com.docker.network.bridge.name": DEFAULT_BRIDGE_NAME,
    "com.docker.network.driver.mtu": "1500",
}


class NetworkService(ContainerAttachments):
    def __init__(
        self,
        *,
        db: Database,
        state_root: Path,
        exec_root: Path,
        hooks: Any,
        factories: dict[str, Any] | None = None,
    ) -> None:
        self.db = db
        self.state_root = Path(state_root)
        self.netns_dir = Path(exec_root) / "netns"
        self.hooks = hooks
        self.factories = (
            registry.installed_factories(ENTRY_POINT_NAMESPACE) if factories is None else factories
        )
        self.drivers: dict[str, NetworkDriver] = {}
        self.driver_errors: dict[str, str] = {}
        self.networks: dict[str, Network] = {}
        self.ports = ports.PortReservations()
        self.dns: Any = None  # an EmbeddedDNS once the daemon's loop runs
        self.containers: Callable[[], list[Container]] = list
        self._lock = threading.RLock()
        self.default_bridge = default_bridge_name(Path(state_root))

    # ---- drivers ------------------------------------------------------------------------------
    def driver(self, name: str) -> NetworkDriver:
        """The driver called ``name``, made on first use; InvalidArgument/NotSupported otherwise."""
        with self._lock:
            if name in self.drivers:
                return self.drivers[name]
            factory = self.factories.get(name)
            root, options = self.state_root / name, {}
            if factory is None and name != REMOTE and callable(self.factories.get(REMOTE)):
                # not an installed driver: maybe a Docker network plugin listening on a socket
                factory, root, options = (
                    self.factories[REMOTE],
                    self.state_root / REMOTE / name,
                    {"plugin": name},
                )
            if factory is None:
                known = ", ".join(sorted({*self.factories, "host", "null"} - {REMOTE}))
                raise NotFound(
                    f"plugin {name!r} not found: no network driver of that name (installed: {known})"
                )
            if isinstance(factory, Exception):
                raise EngineError(f"network driver {name} failed to load: {factory}")
            driver = factory(root=root, options=options)
            self.drivers[name] = driver
            return driver

    def driver_status(self) -> list[dict[str, str]]:
        """For ``pyengine info``: every installed network driver and whether it works here."""
        out = []
        for name, factory in sorted(self.factories.items()):
            if isinstance(factory, Exception):
                status = f"failed to load: {factory}"
            elif name in self.drivers:
                status = "active"
            else:
                status = "available"
            broken = [f"{n}: {e}" for n, e in self.driver_errors.items() if self._driver_of(n) == name]
            out.append({"Name": name, "Status": "; ".join([status, *broken])})
        return out

    def _driver_of(self, network_name: str) -> str:
        for network in self.networks.values():
            if network.Name == network_name:
                return network.Driver
        return ""

    # ---- records ------------------------------------------------------------------------------
    def load(self) -> None:
        """Read the networks, make the built-in ones, and have the drivers bring theirs back."""
        for (doc,) in self.db.query("SELECT doc FROM networks"):
            network = Network.model_validate(loads(doc))
            self.networks[network.Id] = network
        names = {n.Name for n in self.networks.values()}
        for name, driver in BUILTIN.items():
            if name in names:
                continue
            network = Network(Name=name, Id=ids.new_id(), Created=now_rfc3339(), Driver=driver)
            network.IPAM.Options = None
            if name == "bridge":
                subnet = ipam.choose_subnet(self._subnets_in_use())
                network.IPAM.Config = [IPAMConfig(Subnet=str(subnet), Gateway=str(ipam.first_host(subnet)))]
                network.Options = {
                    **_DEFAULT_BRIDGE_OPTIONS,
                    "com.docker.network.bridge.name": self.default_bridge,
                }
            self._save(network)
            self.networks[network.Id] = network
        for network in self.networks.values():
            if network.Driver in ("host", "null"):
                continue
            try:
                self._driver_create(network)
            except EngineError as exc:
                self.driver_errors[network.Name] = str(exc)
                log.warning("network %s is not usable: %s", network.Name, exc)

    def _driver_create(self, network: Network) -> None:
        config = network.IPAM.Config[0]
        self.driver(network.Driver).create_network(
            network.Id,
            IPv4Data(subnet=config.Subnet or "", gateway=config.Gateway or ""),
            dict(network.Options),
            internal=network.Internal,
        )

    def _save(self, network: Network) -> None:
        with self.db.transaction() as cur:
            cur.execute(
                "INSERT INTO networks(id, name, doc) VALUES (?, ?, ?) "
                "ON CONFLICT(id) DO UPDATE SET name=excluded.name, doc=excluded.doc",
                (network.Id, network.Name, dumps(network.model_dump(mode="json"))),
            )

    def get(self, name_or_id: str) -> Network:
        """By full ID, exact name, or unique ID prefix; NotFound with Docker's message."""
        with self._lock:
            if name_or_id in self.networks:
                return self.networks[name_or_id]
            for network in self.networks.values():
                if network.Name == name_or_id:
                    return network
            matches = [n for n in self.networks.values() if name_or_id and n.Id.startswith(name_or_id)]
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise InvalidArgument(
                f"network {name_or_id} is ambiguous ({len(matches)} matches found based on ID prefix)"
            )
        raise NotFound(f"network {name_or_id} not found")

    def all(self) -> list[Network]:
        with self._lock:
            return list(self.networks.values())

    def _subnets_in_use(self) -> list[IPv4Network]:
        out = []
        for network in self.networks.values():
            for config in network.IPAM.Config:
                if config.Subnet:
                    out.append(IPv4Network(config.Subnet))
        return out

    # ---- create / remove ----------------------------------------------------------------------
    def create(self, request: NetworkCreateRequest) -> Network:
        name = request.Name
        if not name:
            raise InvalidArgument("network name is required")
        if not _valid_name(name):
            raise InvalidArgument(
                f"invalid network name {name!r}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
            )
        driver_name = request.Driver or "bridge"
        if name in BUILTIN or driver_name in ("host", "null"):
            raise PermissionDenied(f"{name} is a pre-defined network and cannot be created")
        if request.EnableIPv6:
            raise InvalidArgument("IPv6 networks are not supported by pyengine yet")
        driver = self.driver(driver_name)
        configs = (request.IPAM.Config if request.IPAM else None) or []
        if request.IPAM and request.IPAM.Driver not in ("", "default"):
            raise NotFound(
                f"plugin {request.IPAM.Driver!r} not found: only the default IPAM driver is built in"
            )
        if len(configs) > 1:
            raise InvalidArgument("only one IPv4 subnet per network is supported")
        with self._lock:
            if any(n.Name == name for n in self.networks.values()):
                raise AlreadyExists(f"network with name {name} already exists")
            config = self._ipam_config(configs[0] if configs else IPAMConfig())
            network = Network(
                Name=name,
                Id=ids.new_id(),
                Created=now_rfc3339(),
                Driver=driver_name,
                IPAM=IPAMSpec(
                    Driver="default",
                    Options=(request.IPAM.Options if request.IPAM else None) or {},
                    Config=[config],
                ),
                Internal=request.Internal,
                Attachable=request.Attachable,
                Options=dict(request.Options or {}),
                Labels=dict(request.Labels or {}),
            )
            self._driver_create(network)
            try:
                self._save(network)
            except BaseException:
                driver.delete_network(network.Id)
                raise
            self.networks[network.Id] = network
        self.hooks.call("pyengine_network_post_create", network=network)
        return network

    def _ipam_config(self, wanted: IPAMConfig) -> IPAMConfig:
        in_use = {
            n.Name: IPv4Network(c.Subnet) for n in self.networks.values() for c in n.IPAM.Config if c.Subnet
        }
        if wanted.Subnet:
            subnet = ipam.parse_subnet(wanted.Subnet)
            ipam.check_overlap(subnet, in_use)
        else:
            if wanted.Gateway or wanted.IPRange:
                raise InvalidArgument("a gateway or an ip-range needs a subnet (--subnet)")
            subnet = ipam.choose_subnet(list(in_use.values()))
        gateway = ipam.parse_address(wanted.Gateway, "gateway") if wanted.Gateway else ipam.first_host(subnet)
        if gateway not in subnet or gateway in (subnet.network_address, subnet.broadcast_address):
            raise InvalidArgument(f"gateway {gateway} is not a host address of subnet {subnet}")
        config = IPAMConfig(Subnet=str(subnet), Gateway=str(gateway))
        if wanted.IPRange:
            ip_range = ipam.parse_subnet(wanted.IPRange)
            if not ip_range.subnet_of(subnet):
                raise InvalidArgument(f"ip-range {ip_range} is not within subnet {subnet}")
            config.IPRange = str(ip_range)
        return config

    def remove(self, name_or_id: str) -> None:
        network = self.get(name_or_id)
        if network.Name in BUILTIN:
            raise PermissionDenied(f"{network.Name} is a pre-defined network and cannot be removed")
        with self._lock:
            if self.active_containers(network):
                raise PermissionDenied(
                    f"error while removing network: network {network.Name} id {network.Id} "
                    "has active endpoints"
                )
            self.driver(network.Driver).delete_network(network.Id)
            with self.db.transaction() as cur:
                cur.execute("DELETE FROM networks WHERE id=?", (network.Id,))
            self.networks.pop(network.Id, None)
        self.hooks.call("pyengine_network_post_remove", network=network)

    def prune(self) -> list[str]:
        """Remove every user-defined network no container refers to; their names."""
        used = {
            entry.get("NetworkID")
            for c in self.containers()
            for entry in (c.NetworkSettings.get("Networks") or {}).values()
        }
        removed = []
        for network in self.all():
            if network.Name in BUILTIN or network.Id in used:
                continue
            try:
                self.remove(network.Id)
                removed.append(network.Name)
            except EngineError as exc:
                log.info("prune kept network %s: %s", network.Name, exc)
        return removed

    def active_containers(self, network: Network) -> list[Container]:
        return [
            c
            for c in self.containers()
            if any(
                e.get("NetworkID") == network.Id and e.get("EndpointID")
                for e in (c.NetworkSettings.get("Networks") or {}).values()
            )
        ]

    # ---- views --------------------------------------------------------------------------------
    def inspect_json(self, network: Network) -> dict[str, Any]:
        doc = network.model_dump(mode="json")
        doc["IPAM"]["Config"] = [{k: v for k, v in c.items() if v is not None} for c in doc["IPAM"]["Config"]]
        doc["Containers"] = {}
        for container in self.active_containers(network):
            for entry in container.NetworkSettings["Networks"].values():
                if entry.get("NetworkID") == network.Id:
                    doc["Containers"][container.Id] = {
                        "Name": container.Name,
                        "EndpointID": entry.get("EndpointID", ""),
                        "MacAddress": entry.get("MacAddress", ""),
                        "IPv4Address": f"{entry.get('IPAddress')}/{entry.get('IPPrefixLen')}",
                        "IPv6Address": "",
                    }
        return doc


def default_bridge_name(state_root: Path) -> str:
    """``pye0`` for the default data root, ``pye0-<hash>`` for any other (a test daemon), so that
    two daemons on one host never share a bridge."""
    if state_root.resolve() == Path("/var/lib/pyengine/network"):
        return DEFAULT_BRIDGE_NAME
    import hashlib

    return "pye0-" + hashlib.sha256(str(state_root.resolve()).encode()).hexdigest()[:6]


def _valid_name(name: str) -> bool:
    import re

    return bool(re.fullmatch(r"[a-zA-Z0-9][a-zA-Z0-9_.-]*", name))
