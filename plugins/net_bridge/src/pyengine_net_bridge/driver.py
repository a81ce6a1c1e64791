"""The bridge network driver: a Linux bridge per network, a veth pair per endpoint, nftables rules.

Names on the host: the bridge of a network is ``pye-<11 hex of its ID>`` (or the ``bridge.name``
option: ``pye0`` for the default network); the host end of an endpoint's veth pair is
``pyv<12 hex of the endpoint ID>``. Only links with these prefixes are ever deleted, so docker0 and
any other bridge of the host are never touched.

State (networks, endpoints, published ports) is kept in ``root/state.json`` so that after a daemon
restart the rules can be rendered again and what the core no longer knows can be removed.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import logging
import os
import threading
from pathlib import Path
from typing import Any

from pyengine.drivers.network import IPv4Data, NetworkDriver, PortBinding
from pyengine.errors import AlreadyExists, EngineError, InvalidArgument, NotFound
from pyengine.networks import netns
from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from pyengine_net_bridge.firewall import BridgeRules, Forward, Nftables, RuleSet

log = logging.getLogger(__name__)

BRIDGE_PREFIX = "pye"
VETH_PREFIX = "pyv"
#: ``-o`` options the driver understands (Docker's names).
KNOWN_OPTIONS = {
    "com.docker.network.bridge.name",
    "com.docker.network.driver.mtu",
    "com.docker.network.bridge.enable_ip_masquerade",
    "com.docker.network.bridge.enable_icc",
    "com.docker.network.bridge.host_binding_ipv4",
    "com.docker.network.bridge.default_bridge",
}


def bridge_name(network_id: str, options: dict[str, str]) -> str:
    return options.get("com.docker.network.bridge.name") or f"{BRIDGE_PREFIX}-{network_id[:11]}"


def veth_name(endpoint_id: str) -> str:
    return f"{VETH_PREFIX}{endpoint_id[:12]}"


class BridgeDriver(NetworkDriver):
    name = "bridge"

    def __init__(self, root: Path, nft: Nftables) -> None:
        super().__init__(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.nft = nft
        self._lock = threading.RLock()
        self._state_path = self.root / "state.json"
        self.networks: dict[str, dict[str, Any]] = {}
        self.endpoints: dict[str, dict[str, Any]] = {}
        self._load()

    # ---- state --------------------------------------------------------------------------------
    def _load(self) -> None:
        try:
            doc = json.loads(self._state_path.read_text())
        except (FileNotFoundError, ValueError):
            return
        self.networks = doc.get("networks", {})
        self.endpoints = doc.get("endpoints", {})

    def _save(self) -> None:
        tmp = self._state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"networks": self.networks, "endpoints": self.endpoints}))
        os.replace(tmp, self._state_path)

    def _rules(self) -> RuleSet:
        rules = RuleSet()
        for net in self.networks.values():
            rules.bridges.append(BridgeRules(net["bridge"], net["subnet"], net.get("internal", False)))
        for ep in self.endpoints.values():
            address = ep["address"].split("/")[0]
            for b in ep.get("ports", []):
                rules.forwards.append(Forward(b["proto"], b["host_ip"], b["host_port"], address, b["port"]))
        return rules

    def _sync_rules(self) -> None:
        self.nft.apply(self._rules())

    # ---- networks -----------------------------------------------------------------------------
    def create_network(
        self, network_id: str, ipv4: IPv4Data, options: dict[str, str], *, internal: bool = False
    ) -> None:
        unknown = sorted(set(options) - KNOWN_OPTIONS)
        if unknown:
            raise InvalidArgument(f"unknown option for the bridge driver: {', '.join(unknown)}")
        name = bridge_name(network_id, options)
        if not name.startswith(BRIDGE_PREFIX) or len(name) > 15:
            raise InvalidArgument(
                f"bridge name {name!r}: pyengine only manages bridges named {BRIDGE_PREFIX}* "
                "(at most 15 characters)"
            )
        mtu = int(options.get("com.docker.network.driver.mtu") or 1500)
        network = ipaddress.ip_network(ipv4.subnet)
        with self._lock:
            record = {
                "bridge": name,
                "subnet": str(network),
                "gateway": ipv4.gateway,
                "internal": internal,
                "mtu": mtu,
            }
            for other_id, other in self.networks.items():
                if other_id != network_id and other["bridge"] == name:
                    raise AlreadyExists(f"bridge {name} is already used by network {other_id[:12]}")
            created = False
            with IPRoute() as ipr:
                found = ipr.link_lookup(ifname=name)
                if not found:
                    if network_id not in self.networks:
                        self._check_free(ipr, name)
                    ipr.link("add", ifname=name, kind="bridge", mtu=mtu)
                    created = True
                    found = ipr.link_lookup(ifname=name)
                index = found[0]
                try:
                    address = f"{ipv4.gateway}/{network.prefixlen}"
                    have = {a.get("address") for a in ipr.get_addr(index=index, family=2)}
                    if ipv4.gateway not in have:
                        ipr.addr("add", index=index, address=ipv4.gateway, prefixlen=network.prefixlen)
                    ipr.link("set", index=index, state="up")
                    _write_sysctl(f"net/ipv4/conf/{name}/route_localnet", "1")
                    self.networks[network_id] = record
                    self._sync_rules()
                    _enable_forwarding()
                except BaseException:
                    self.networks.pop(network_id, None)
                    if created:
                        with contextlib.suppress(NetlinkError):
                            ipr.link("del", index=index)
                    raise
                log.debug("network %s on bridge %s (%s)", network_id[:12], name, address)
            self._save()

    @staticmethod
    def _check_free(ipr: IPRoute, name: str) -> None:
        if ipr.link_lookup(ifname=name):
            raise AlreadyExists(f"a link named {name} already exists on the host")

    def delete_network(self, network_id: str) -> None:
        with self._lock:
            record = self.networks.pop(network_id, None)
            if record is None:
                raise NotFound(f"network {network_id} not found")
            for endpoint_id in [e for e, ep in self.endpoints.items() if ep["network"] == network_id]:
                self._remove_endpoint(endpoint_id)
            self._sync_rules()
            self._save()
            _delete_link(record["bridge"])

    # ---- endpoints ----------------------------------------------------------------------------
    def create_endpoint(self, network_id: str, endpoint_id: str, *, address: str, mac: str) -> None:
        with self._lock:
            if network_id not in self.networks:
                raise NotFound(f"network {network_id} not found")
            self.endpoints[endpoint_id] = {"network": network_id, "address": address, "mac": mac, "ports": []}
            self._save()

    def delete_endpoint(self, network_id: str, endpoint_id: str) -> None:
        with self._lock:
            if self._remove_endpoint(endpoint_id):
                self._sync_rules()
            self._save()

    def _remove_endpoint(self, endpoint_id: str) -> bool:
        ep = self.endpoints.pop(endpoint_id, None)
        _delete_link(veth_name(endpoint_id))
        return bool(ep and ep.get("ports"))

    def join(
        self, network_id: str, endpoint_id: str, sandbox_key: str, *, ifname: str, default_route: bool
    ) -> None:
        with self._lock:
            ep = self.endpoints.get(endpoint_id)
            net = self.networks.get(network_id)
            if ep is None or net is None:
                raise NotFound(f"endpoint {endpoint_id[:12]} not found on network {network_id[:12]}")
            host_end = veth_name(endpoint_id)
            address, _, prefix = ep["address"].partition("/")
        with IPRoute() as ipr:
            bridge = ipr.link_lookup(ifname=net["bridge"])
            if not bridge:
                raise NotFound(f"bridge {net['bridge']} of network {network_id[:12]} is missing")
            ipr.link(
                "add",
                ifname=host_end,
                kind="veth",
                mtu=net.get("mtu", 1500),
                peer={"ifname": ifname, "net_ns_fd": sandbox_key, "mtu": net.get("mtu", 1500)},
            )
            try:
                index = ipr.link_lookup(ifname=host_end)[0]
                ipr.link("set", index=index, master=bridge[0], state="up")
                with netns.entered(sandbox_key), IPRoute() as inside:
                    lo = inside.link_lookup(ifname="lo")[0]
                    inside.link("set", index=lo, state="up")
                    peer = inside.link_lookup(ifname=ifname)[0]
                    inside.link("set", index=peer, address=ep["mac"])
                    inside.addr("add", index=peer, address=address, prefixlen=int(prefix))
                    inside.link("set", index=peer, state="up")
                    if default_route and not net.get("internal"):
                        inside.route("add", dst="0.0.0.0/0", gateway=net["gateway"], oif=peer)
            except BaseException:
                _delete_link(host_end)
                raise

    def leave(self, network_id: str, endpoint_id: str) -> None:
        _delete_link(veth_name(endpoint_id))

    def program_external_connectivity(
        self, network_id: str, endpoint_id: str, bindings: list[PortBinding]
    ) -> None:
        with self._lock:
            ep = self.endpoints.get(endpoint_id)
            if ep is None:
                raise NotFound(f"endpoint {endpoint_id[:12]} not found")
            previous = ep.get("ports", [])
            ep["ports"] = [
                {"proto": b.proto, "port": b.port, "host_ip": b.host_ip, "host_port": b.host_port}
                for b in bindings
            ]
            try:
                self._sync_rules()
            except BaseException:
                ep["ports"] = previous
                raise
            self._save()

    def revoke_external_connectivity(self, network_id: str, endpoint_id: str) -> None:
        with self._lock:
            ep = self.endpoints.get(endpoint_id)
            if ep and ep.get("ports"):
                ep["ports"] = []
                self._sync_rules()
                self._save()

    # ---- restart ------------------------------------------------------------------------------
    def reconcile(self, networks: set[str], endpoints: set[str]) -> None:
        """Remove the endpoints and networks of our state the core no longer knows.

        Only links recorded in this driver's own state are deleted: another daemon's bridges and
        veths (same prefixes, other data root) are never touched.
        """
        with self._lock:
            for endpoint_id in [e for e in self.endpoints if e not in endpoints]:
                self._remove_endpoint(endpoint_id)
            for network_id in [n for n in self.networks if n not in networks]:
                record = self.networks.pop(network_id)
                log.info("removing bridge %s left by an earlier daemon", record["bridge"])
                _delete_link(record["bridge"])
            self._sync_rules()
            self._save()

    def status(self) -> list[tuple[str, Any]]:
        return [("Networks", len(self.networks)), ("Endpoints", len(self.endpoints))]


def _delete_link(name: str) -> None:
    with IPRoute() as ipr:
        found = ipr.link_lookup(ifname=name)
        if not found:
            return
        try:
            ipr.link("del", index=found[0])
        except NetlinkError as exc:
            if exc.code not in (19,):  # ENODEV: already gone
                raise EngineError(f"deleting link {name}: {exc}") from exc


def _write_sysctl(key: str, value: str) -> None:
    Path("/proc/sys", key).write_text(value)


def _enable_forwarding() -> None:
    path = Path("/proc/sys/net/ipv4/ip_forward")
    if path.read_text().strip() != "1":
        log.warning("enabling net.ipv4.ip_forward for container networking")
        path.write_text("1")
