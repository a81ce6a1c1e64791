"""Containers on networks: their endpoints, namespaces, addresses, published ports and names.

Mixed into :class:`pyengine.networks.service.NetworkService`; kept apart because this half is about
containers (create-time validation, start/stop wiring, connect/disconnect, DNS answers, restart).
"""

from __future__ import annotations

import contextlib
import logging
import os
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path
from typing import Any

from pyengine import ids
from pyengine.containers import files
from pyengine.errors import Conflict, EngineError, InvalidArgument, NotFound, PermissionDenied
from pyengine.model.container import Container
from pyengine.networks import ipam, netns, ports
from pyengine.networks.dns import RESOLVER_ADDRESS

log = logging.getLogger(__name__)

_ENDPOINT_DEFAULTS = {
    "Links": None,
    "DriverOpts": None,
    "IPv6Gateway": "",
    "GlobalIPv6Address": "",
    "GlobalIPv6PrefixLen": 0,
}


def _copy_file(source: str, destination: str) -> None:
    try:
        Path(destination).write_bytes(Path(source).read_bytes())
    except OSError as exc:
        log.warning("could not copy %s to %s: %s", source, destination, exc)


def _blank(entry: dict[str, Any]) -> None:
    entry.update({"EndpointID": "", "Gateway": "", "IPAddress": "", "IPPrefixLen": 0, "MacAddress": ""})


class ContainerAttachments:
    """The container half of the network service (see the module docstring)."""

    networks: dict
    hooks: Any
    netns_dir: Path
    ports: ports.PortReservations
    dns: Any

    def find_container(self, name_or_id: str) -> Container:  # replaced by the engine
        raise NotFound(f"No such container: {name_or_id}")

    # ---- create -------------------------------------------------------------------------------
    def configure(self, container: Container, networking_config: dict[str, Any] | None) -> None:
        """Validate the network options of a new container and record its networks (no I/O)."""
        hc = container.HostConfig
        mode = hc.NetworkMode or "default"
        if mode == "default":
            mode = hc.NetworkMode = "bridge"
        endpoints = (networking_config or {}).get("EndpointsConfig") or {}
        ports.requested_bindings(hc.PortBindings, container.Config.ExposedPorts, hc.PublishAllPorts)
        settings: dict[str, Any] = {"Networks": {}, "SandboxKey": "", "Ports": {}}
        container.NetworkSettings = settings
        if mode.startswith("container:"):
            target = self.find_container(mode.partition(":")[2])
            if target.Id == container.Id:
                raise InvalidArgument("cannot join own network")
            return
        network = self.get(mode)  # type: ignore[attr-defined]
        if network.Driver == "host" and hc.PortBindings:
            log.info("published ports are discarded when using host network mode")
        config = endpoints.get(mode) or endpoints.get(network.Name) or endpoints.get("default") or {}
        entry = self._endpoint_entry(network, config)
        settings["Networks"][network.Name] = entry

    def _endpoint_entry(self, network: Any, config: dict[str, Any]) -> dict[str, Any]:
        aliases = list(config.get("Aliases") or [])
        wanted = ((config.get("IPAMConfig") or {}).get("IPv4Address")) or ""
        user_defined = network.Name not in ("bridge", "host", "none")
        if aliases and not user_defined:
            raise InvalidArgument(
                "network-scoped alias is supported only for containers in user defined networks"
            )
        if wanted:
            if not user_defined:
                raise InvalidArgument("user specified IP address is supported on user defined networks only")
            address = ipam.parse_address(wanted, "IPv4 address")
            subnet = IPv4Network(network.IPAM.Config[0].Subnet)
            if address not in subnet:
                raise InvalidArgument(f"no configured subnet or ip-range contain the IP address {address}")
        entry = {
            "IPAMConfig": {"IPv4Address": wanted} if wanted else None,
            "Aliases": aliases or None,
            "NetworkID": network.Id,
            **_ENDPOINT_DEFAULTS,
        }
        _blank(entry)
        return entry

    # ---- start / stop -------------------------------------------------------------------------
    def attach(self, container: Container) -> dict[str, Any] | None:
        """Make the container's namespace and endpoints; the ``linux.namespaces`` entry (None: host).

        Runs in a worker thread before the runtime starts the container. On failure nothing is left.
        """
        mode = container.HostConfig.NetworkMode
        settings = container.NetworkSettings
        if mode.startswith("container:"):
            target = self.find_container(mode.partition(":")[2])
            if not target.State.running or not target.State.Pid:
                raise Conflict(f"cannot join network of a non running container: {target.Id}")
            # the same names as the container whose network it shares (as Docker's)
            _copy_file(target.HostsPath, container.HostsPath)
            _copy_file(target.ResolvConfPath, container.ResolvConfPath)
            if target.HostConfig.NetworkMode == "host":
                return None
            return {"type": "network", "path": f"/proc/{target.State.Pid}/ns/net"}
        drivers = {e["NetworkID"]: self.get(e["NetworkID"]).Driver for e in settings["Networks"].values()}  # type: ignore[attr-defined]
        if "host" in drivers.values():
            # the host's own names and resolvers (loopback ones work: this is the host's network)
            _copy_file("/etc/hosts", container.HostsPath)
            _copy_file("/etc/resolv.conf", container.ResolvConfPath)
            return None
        if set(drivers.values()) <= {"null"}:
            return {"type": "network"}
        if set(settings["Networks"]) == {"bridge"} and "bridge" in self.driver_errors:  # type: ignore[attr-defined]
            log.warning(
                "the default bridge is not usable (%s): no network for %s",
                self.driver_errors["bridge"],
                container.Id[:12],
            )  # type: ignore[attr-defined]
            return {"type": "network"}
        sandbox = self.netns_dir / container.Id
        if sandbox.exists():
            netns.remove(sandbox)
        netns.create(sandbox)
        settings["SandboxKey"] = str(sandbox)
        try:
            for index, (name, entry) in enumerate(list(settings["Networks"].items())):
                self._join(container, name, entry, index)
            self._write_name_files(container)
        except BaseException:
            self.detach(container)
            raise
        return {"type": "network", "path": str(sandbox)}

    def _join(self, container: Container, name: str, entry: dict[str, Any], index: int) -> None:
        network = self.get(entry["NetworkID"])  # type: ignore[attr-defined]
        driver = self.driver(network.Driver)  # type: ignore[attr-defined]
        config = network.IPAM.Config[0]
        subnet = IPv4Network(config.Subnet)
        gateway = IPv4Address(config.Gateway)
        wanted = (entry.get("IPAMConfig") or {}).get("IPv4Address")
        with self._lock:  # type: ignore[attr-defined]
            address = ipam.allocate(
                subnet,
                gateway,
                self._used_addresses(network.Id),
                ip_range=IPv4Network(config.IPRange) if config.IPRange else None,
                wanted=IPv4Address(wanted) if wanted else None,
            )
            endpoint_id = ids.new_id()
            entry.update(
                EndpointID=endpoint_id,
                Gateway=str(gateway),
                IPAddress=str(address),
                IPPrefixLen=subnet.prefixlen,
                MacAddress=ipam.mac_for(address),
            )
        driver.create_endpoint(
            network.Id, endpoint_id, address=f"{address}/{subnet.prefixlen}", mac=entry["MacAddress"]
        )
        driver.join(
            network.Id,
            endpoint_id,
            container.NetworkSettings["SandboxKey"],
            ifname=f"eth{index}",
            default_route=index == 0,
        )
        if index == 0:
            hc = container.HostConfig
            wanted_ports = ports.requested_bindings(
                hc.PortBindings, container.Config.ExposedPorts, hc.PublishAllPorts
            )
            bindings = self.ports.reserve(endpoint_id, wanted_ports)
            driver.program_external_connectivity(network.Id, endpoint_id, bindings)
            published: dict[str, Any] = {key: None for key in container.Config.ExposedPorts or {}}
            for b in bindings:
                published.setdefault(f"{b.port}/{b.proto}", None)
                published[f"{b.port}/{b.proto}"] = (published[f"{b.port}/{b.proto}"] or []) + [
                    {"HostIp": b.host_ip or "0.0.0.0", "HostPort": str(b.host_port)}
                ]
            container.NetworkSettings["Ports"] = published
        if name not in ("bridge",) and self.dns is not None:
            self.dns.open(container.Id, container.NetworkSettings["SandboxKey"])
        self.hooks.call("pyengine_network_post_connect", network=network, container=container)

    def _used_addresses(self, network_id: str) -> set[IPv4Address]:
        used = set()
        for container in self.containers():  # type: ignore[attr-defined]
            for entry in (container.NetworkSettings.get("Networks") or {}).values():
                if entry.get("NetworkID") == network_id and entry.get("IPAddress"):
                    used.add(IPv4Address(entry["IPAddress"]))
        return used

    def _write_name_files(self, container: Container) -> None:
        directory = Path(container.BundlePath)
        networks = container.NetworkSettings["Networks"]
        first = next(iter(networks.values()), {})
        hc = container.HostConfig
        files.write_hosts(directory, container.Config.Hostname, first.get("IPAddress") or None, hc.ExtraHosts)
        if next(iter(networks), "bridge") != "bridge" and not hc.Dns and self.dns is not None:
            host = files.write_resolv_conf(directory, None, hc.DnsSearch, hc.DnsOptions).read_text()
            kept = [line for line in host.splitlines() if not line.startswith(("nameserver", "options"))]
            options = " ".join(["ndots:0", *(hc.DnsOptions or [])])
            text = "\n".join([f"nameserver {RESOLVER_ADDRESS}", *kept, f"options {options}"]) + "\n"
            (directory / "resolv.conf").write_text(text)

    def detach(self, container: Container, *, notify: bool = True) -> list[Any]:
        """Undo :meth:`attach`: endpoints, published ports, DNS, the namespace. Idempotent.

        Returns the networks the container left. With ``notify=False`` the caller fires
        ``pyengine_network_post_disconnect`` for them itself (after its own "die", as Docker orders
        the events of an exit).
        """
        settings = container.NetworkSettings or {}
        left = []
        for entry in (settings.get("Networks") or {}).values():
            network = self._leave(entry, container, notify)
            if network is not None:
                left.append(network)
        if self.dns is not None:
            self.dns.close(container.Id)
        sandbox = settings.get("SandboxKey") or ""
        if sandbox and Path(sandbox).parent == self.netns_dir:
            try:
                netns.remove(sandbox)
            except OSError as exc:
                log.warning("could not remove the network namespace %s: %s", sandbox, exc)
        if settings:
            settings["SandboxKey"] = ""
            settings["Ports"] = {}
        return left

    def _leave(self, entry: dict[str, Any], container: Container, notify: bool = True) -> Any | None:
        endpoint_id = entry.get("EndpointID")
        if not endpoint_id:
            return None
        network = None
        with contextlib.suppress(EngineError):
            network = self.get(entry["NetworkID"])  # type: ignore[attr-defined]
            if notify:
                self.hooks.call("pyengine_network_post_disconnect", network=network, container=container)
        self.ports.release(endpoint_id)
        try:
            driver = self.driver(self.get(entry["NetworkID"]).Driver)  # type: ignore[attr-defined]
        except EngineError:
            _blank(entry)
            return network
        for step in (driver.revoke_external_connectivity, driver.leave, driver.delete_endpoint):
            try:
                step(entry["NetworkID"], endpoint_id)
            except EngineError as exc:
                log.warning("network cleanup of endpoint %s: %s", endpoint_id[:12], exc)
        _blank(entry)
        return network

    # ---- connect / disconnect -----------------------------------------------------------------
    def connect(self, network: Any, container: Container, config: dict[str, Any] | None) -> None:
        """``network connect``: record the network; join it now when the container runs."""
        mode = container.HostConfig.NetworkMode
        if mode == "host" or mode.startswith("container:") or network.Driver in ("host", "null"):
            raise InvalidArgument(
                "container cannot be disconnected from host network or connected to host network"
            )
        settings = container.NetworkSettings or {"Networks": {}, "SandboxKey": "", "Ports": {}}
        container.NetworkSettings = settings
        names = settings["Networks"]
        if any(e.get("NetworkID") == network.Id for e in names.values()):
            raise PermissionDenied(
                f"endpoint with name {container.Name} already exists in network {network.Name}"
            )
        if "none" in names:
            raise InvalidArgument(
                "container cannot be connected to multiple networks with one of the networks "
                "in private (none) mode"
            )
        entry = self._endpoint_entry(network, config or {})
        names[network.Name] = entry
        if container.State.running and settings.get("SandboxKey"):
            try:
                self._join(
                    container, network.Name, entry, len([e for e in names.values() if e.get("EndpointID")])
                )
            except BaseException:
                self._leave(entry, container)
                names.pop(network.Name, None)
                raise
        else:
            self.hooks.call("pyengine_network_post_connect", network=network, container=container)

    def disconnect(self, network: Any, container: Container, force: bool = False) -> None:
        names = (container.NetworkSettings or {}).get("Networks") or {}
        for name, entry in list(names.items()):
            if entry.get("NetworkID") == network.Id:
                if network.Driver == "host":
                    raise InvalidArgument(
                        "container cannot be disconnected from host network or connected to host network"
                    )
                if entry.get("EndpointID"):
                    self._leave(entry, container)
                else:
                    self.hooks.call("pyengine_network_post_disconnect", network=network, container=container)
                names.pop(name)
                return
        if not force:
            raise PermissionDenied(f"container {container.Id} is not connected to network {network.Name}")

    # ---- names --------------------------------------------------------------------------------
    def dns_lookup(self, container_id: str, name: str) -> list[str] | None:
        """Addresses of ``name`` seen from a container (None: not ours, ask the host's resolvers).

        Single-label names no container has get an empty answer (NXDOMAIN) rather than a trip to
        the host's resolvers: they are container names by intent, and never leave the machine.
        """
        try:
            asker = self.find_container(container_id)
        except NotFound:
            return None
        mine = {
            e["NetworkID"]
            for n, e in (asker.NetworkSettings.get("Networks") or {}).items()
            if e.get("EndpointID") and n not in ("bridge",)
        }
        found = []
        for other in self.containers():  # type: ignore[attr-defined]
            for entry in (other.NetworkSettings.get("Networks") or {}).values():
                if entry.get("NetworkID") not in mine or not entry.get("IPAddress"):
                    continue
                names = {other.Name.lower(), other.Id[:12], *(a.lower() for a in entry.get("Aliases") or [])}
                if name in names:
                    found.append(entry["IPAddress"])
        if found:
            return found
        return [] if "." not in name else None

    # ---- daemon restart -----------------------------------------------------------------------
    def reconcile(self, running: list[Container]) -> None:
        """After a daemon start: keep what running containers use, remove everything else."""
        keep_endpoints = set()
        for container in running:
            for entry in (container.NetworkSettings.get("Networks") or {}).values():
                if entry.get("EndpointID"):
                    keep_endpoints.add(entry["EndpointID"])
        for name, driver in list(self.drivers.items()):  # type: ignore[attr-defined]
            nets = {n.Id for n in self.networks.values() if n.Driver == name}
            try:
                driver.reconcile(nets, keep_endpoints)
            except EngineError as exc:
                log.warning("network driver %s could not reconcile: %s", name, exc)
        keep_sandboxes = {c.NetworkSettings.get("SandboxKey") for c in running}
        with contextlib.suppress(FileNotFoundError):
            for entry in os.listdir(self.netns_dir):
                path = str(self.netns_dir / entry)
                if path not in keep_sandboxes:
                    log.info("removing network namespace %s left by an earlier daemon", path)
                    with contextlib.suppress(OSError):
                        netns.remove(path)
        for container in running:
            sandbox = container.NetworkSettings.get("SandboxKey")
            networks = container.NetworkSettings.get("Networks") or {}
            if not sandbox:
                continue
            first = next(iter(networks.values()), {})
            if first.get("EndpointID"):
                try:
                    exact = []
                    for key, binds in (container.NetworkSettings.get("Ports") or {}).items():
                        port, proto = ports.parse_port_key(key)
                        for b in binds or []:
                            host_ip = "" if b["HostIp"] == "0.0.0.0" else b["HostIp"]
                            exact.append((proto, port, host_ip, int(b["HostPort"]), int(b["HostPort"])))
                    self.ports.reserve(first["EndpointID"], exact)
                except EngineError as exc:
                    log.warning(
                        "could not reserve the published ports of %s again: %s", container.Id[:12], exc
                    )
            if self.dns is not None and any(
                n != "bridge" and e.get("EndpointID") for n, e in networks.items()
            ):
                try:
                    self.dns.open(container.Id, sandbox)
                except OSError as exc:
                    log.warning("embedded DNS for %s: %s", container.Id[:12], exc)

    def forget_stopped(self, containers: list[Container]) -> None:
        """Blank the endpoints of containers that are not running (after a crash)."""
        for container in containers:
            if not container.State.running:
                for entry in (container.NetworkSettings.get("Networks") or {}).values():
                    _blank(entry)
                if container.NetworkSettings:
                    container.NetworkSettings["SandboxKey"] = ""
                    container.NetworkSettings["Ports"] = {}
