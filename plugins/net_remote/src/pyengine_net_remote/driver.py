"""Docker network plugins (libnetwork's remote driver protocol) as pyengine network drivers.

A plugin is an HTTP server on a unix socket, found as ``<dir>/<name>.sock`` or
``<dir>/<name>/<name>.sock`` in /run/docker/plugins (or a ``.spec`` file holding ``unix://PATH`` in
/etc/docker/plugins or /usr/lib/docker/plugins). Every call is a POST of JSON with
``Accept: application/vnd.docker.plugins.v1.2+json``; a reply with a non-empty ``Err`` is a failure.
The plugin makes the interface (``Join`` answers its name on the host); like libnetwork, this adapter
then moves it into the sandbox, renames it ``eth<N>``, and sets its MAC, address and routes.
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import socket
import threading
from pathlib import Path
from typing import Any

from pyengine.drivers.network import IPv4Data, NetworkDriver, PortBinding
from pyengine.errors import EngineError, InvalidArgument, NotFound, Unavailable
from pyengine.networks import netns
from pyroute2 import IPRoute

log = logging.getLogger(__name__)

PLUGIN_DIRS = ("/run/docker/plugins", "/etc/docker/plugins", "/usr/lib/docker/plugins")
ACCEPT = "application/vnd.docker.plugins.v1.2+json"


def find_plugin(name: str, dirs: tuple[str, ...] = PLUGIN_DIRS) -> str | None:
    """The unix socket path of plugin ``name``, or None."""
    for directory in dirs:
        for candidate in (Path(directory) / f"{name}.sock", Path(directory) / name / f"{name}.sock"):
            if candidate.exists():
                return str(candidate)
        for suffix in (".spec", ".json"):
            spec = Path(directory) / f"{name}{suffix}"
            if spec.exists():
                text = spec.read_text().strip()
                address = json.loads(text).get("Addr", "") if suffix == ".json" else text
                if address.startswith("unix://"):
                    return address[len("unix://") :]
    return None


class _UnixHTTP(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("plugin", timeout=timeout)
        self.unix_path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.unix_path)


class PluginClient:
    def __init__(self, name: str, socket_path: str, timeout: float = 30.0) -> None:
        self.name = name
        self.socket_path = socket_path
        self.timeout = timeout

    def call(
        self, method: str, body: dict[str, Any] | None = None, *, optional: bool = False
    ) -> dict[str, Any]:
        """POST /<method>; the reply's JSON. A 404 of an ``optional`` method is an empty reply."""
        conn = _UnixHTTP(self.socket_path, self.timeout)
        try:
            conn.request(
                "POST",
                f"/{method}",
                body=json.dumps(body or {}),
                headers={"Accept": ACCEPT, "Content-Type": ACCEPT},
            )
            response = conn.getresponse()
            raw = response.read()
        except OSError as exc:
            raise Unavailable(
                f"network plugin {self.name} ({self.socket_path}) does not answer: {exc}"
            ) from exc
        finally:
            conn.close()
        if response.status == 404 and optional:
            return {}
        try:
            reply = json.loads(raw) if raw.strip() else {}
        except ValueError:
            reply = {"Err": raw.decode(errors="replace").strip()}
        if response.status != 200 or reply.get("Err"):
            raise _categorized(f"network plugin {self.name}: {method}: {reply.get('Err') or response.status}")
        return reply


def _categorized(message: str) -> EngineError:
    """The protocol carries only text: map the usual wordings to our categories (else a plain 500)."""
    lowered = message.lower()
    if "not found" in lowered or "no such" in lowered:
        return NotFound(message)
    if any(word in lowered for word in ("unknown option", "invalid", "not supported", "unsupported")):
        return InvalidArgument(message)
    return EngineError(message)


class RemoteDriver(NetworkDriver):
    """A Docker network plugin behind the NetworkDriver interface."""

    def __init__(self, root: Path, client: PluginClient) -> None:
        super().__init__(root)
        self.name = client.name
        self.client = client
        self._lock = threading.Lock()
        self.root.mkdir(parents=True, exist_ok=True)
        self._state_path = self.root / "endpoints.json"
        #: endpoint -> {"network", "address", "mac", "sandbox", "ifname", "host_ifname"}
        self.endpoints: dict[str, dict[str, Any]] = _read_json(self._state_path)
        implements = client.call("Plugin.Activate").get("Implements") or []
        if "NetworkDriver" not in implements:
            raise InvalidArgument(f"plugin {client.name} is not a network driver (implements {implements})")
        self.capabilities = client.call("NetworkDriver.GetCapabilities")

    def _save(self) -> None:
        tmp = self._state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.endpoints))
        os.replace(tmp, self._state_path)

    def create_network(
        self, network_id: str, ipv4: IPv4Data, options: dict[str, str], *, internal: bool = False
    ) -> None:
        prefix = ipv4.subnet.split("/")[1]
        self.client.call(
            "NetworkDriver.CreateNetwork",
            {
                "NetworkID": network_id,
                "Options": {
                    "com.docker.network.generic": dict(options),
                    "com.docker.network.internal": internal,
                },
                "IPv4Data": [
                    {
                        "AddressSpace": "LocalDefault",
                        "Pool": ipv4.subnet,
                        "Gateway": f"{ipv4.gateway}/{prefix}",
                    }
                ],
                "IPv6Data": [],
            },
        )

    def delete_network(self, network_id: str) -> None:
        self.client.call("NetworkDriver.DeleteNetwork", {"NetworkID": network_id})

    def create_endpoint(self, network_id: str, endpoint_id: str, *, address: str, mac: str) -> None:
        reply = self.client.call(
            "NetworkDriver.CreateEndpoint",
            {
                "NetworkID": network_id,
                "EndpointID": endpoint_id,
                "Interface": {"Address": address, "AddressIPv6": "", "MacAddress": mac},
                "Options": {},
            },
        )
        interface = reply.get("Interface") or {}
        with self._lock:
            self.endpoints[endpoint_id] = {
                "network": network_id,
                "address": interface.get("Address") or address,
                "mac": interface.get("MacAddress") or mac,
            }
            self._save()

    def delete_endpoint(self, network_id: str, endpoint_id: str) -> None:
        with self._lock:
            known = self.endpoints.pop(endpoint_id, None)
            self._save()
        if known is not None:
            self.client.call(
                "NetworkDriver.DeleteEndpoint", {"NetworkID": network_id, "EndpointID": endpoint_id}
            )

    def join(
        self, network_id: str, endpoint_id: str, sandbox_key: str, *, ifname: str, default_route: bool
    ) -> None:
        endpoint = self.endpoints.get(endpoint_id)
        if endpoint is None:
            raise NotFound(f"endpoint {endpoint_id[:12]} not found")
        reply = self.client.call(
            "NetworkDriver.Join",
            {"NetworkID": network_id, "EndpointID": endpoint_id, "SandboxKey": sandbox_key, "Options": {}},
        )
        source = (reply.get("InterfaceName") or {}).get("SrcName")
        if not source:
            raise EngineError(f"network plugin {self.name}: Join named no interface")
        try:
            with IPRoute() as ipr:
                found = ipr.link_lookup(ifname=source)
                if not found:
                    raise EngineError(f"network plugin {self.name}: interface {source} does not exist")
                ipr.link("set", index=found[0], net_ns_fd=sandbox_key)
            address, _, prefix = endpoint["address"].partition("/")
            with netns.entered(sandbox_key), IPRoute() as inside:
                lo = inside.link_lookup(ifname="lo")[0]
                inside.link("set", index=lo, state="up")
                index = inside.link_lookup(ifname=source)[0]
                inside.link("set", index=index, ifname=ifname, address=endpoint["mac"])
                inside.addr("add", index=index, address=address, prefixlen=int(prefix))
                inside.link("set", index=index, state="up")
                gateway = reply.get("Gateway")
                if default_route and gateway and not reply.get("DisableGatewayService"):
                    inside.route("add", dst="0.0.0.0/0", gateway=gateway, oif=index)
                for route in reply.get("StaticRoutes") or []:
                    if route.get("NextHop"):
                        inside.route("add", dst=route["Destination"], gateway=route["NextHop"], oif=index)
                    else:
                        inside.route("add", dst=route["Destination"], oif=index)
        except BaseException:
            self.leave(network_id, endpoint_id)
            raise
        with self._lock:
            endpoint.update(sandbox=sandbox_key, ifname=ifname)
            self._save()

    def leave(self, network_id: str, endpoint_id: str) -> None:
        self.client.call("NetworkDriver.Leave", {"NetworkID": network_id, "EndpointID": endpoint_id})

    def program_external_connectivity(
        self, network_id: str, endpoint_id: str, bindings: list[PortBinding]
    ) -> None:
        if not bindings:
            return
        protocols = {"tcp": 6, "udp": 17, "sctp": 132}
        options = {
            "com.docker.network.portmap": [
                {
                    "Proto": protocols[b.proto],
                    "Port": b.port,
                    "HostIP": b.host_ip,
                    "HostPort": b.host_port,
                    "HostPortEnd": b.host_port,
                }
                for b in bindings
            ]
        }
        self.client.call(
            "NetworkDriver.ProgramExternalConnectivity",
            {"NetworkID": network_id, "EndpointID": endpoint_id, "Options": options},
            optional=True,
        )

    def revoke_external_connectivity(self, network_id: str, endpoint_id: str) -> None:
        self.client.call(
            "NetworkDriver.RevokeExternalConnectivity",
            {"NetworkID": network_id, "EndpointID": endpoint_id},
            optional=True,
        )

    def reconcile(self, networks: set[str], endpoints: set[str]) -> None:
        for endpoint_id, endpoint in list(self.endpoints.items()):
            if endpoint_id in endpoints:
                continue
            try:
                if endpoint.get("sandbox"):
                    self.leave(endpoint["network"], endpoint_id)
                self.delete_endpoint(endpoint["network"], endpoint_id)
            except EngineError as exc:
                log.warning("plugin %s: could not remove endpoint %s: %s", self.name, endpoint_id[:12], exc)
                with self._lock:
                    self.endpoints.pop(endpoint_id, None)
                    self._save()

    def status(self) -> list[tuple[str, Any]]:
        return [("Plugin", self.client.socket_path), ("Scope", self.capabilities.get("Scope", "local"))]


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return {}
