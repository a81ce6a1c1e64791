"""Docker's volume plugins as pyengine volume drivers: ``/Plugin.Activate`` and ``/VolumeDriver.*``.

A plugin named ``NAME`` is found as Docker finds it, in each plugin directory in turn:
``NAME.sock`` or ``NAME/NAME.sock`` (a unix socket the plugin listens on), ``NAME.spec`` (one line:
``unix:///path.sock`` or ``tcp://host:port``) or ``NAME.json`` (``{"Addr": ...}``). Docker's
directories are ``/run/docker/plugins``, ``/etc/docker/plugins`` and ``/usr/lib/docker/plugins``;
the daemon's ``--volume-plugin-dir`` replaces them (tests use a temporary one).

Every call is an HTTP POST of a JSON body with ``Accept: application/vnd.docker.plugins.v1.2+json``;
a reply with a non-empty ``Err`` is a failure.
"""

from __future__ import annotations

import http.client
import json
import socket
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from pyengine.drivers.volume import VolumeDriver, VolumeInfo
from pyengine.errors import EngineError, NotFound, Unavailable

DEFAULT_PLUGIN_DIRS = (
    Path("/run/docker/plugins"),
    Path("/etc/docker/plugins"),
    Path("/usr/lib/docker/plugins"),
)
ACCEPT = "application/vnd.docker.plugins.v1.2+json"
CALL_TIMEOUT = 60.0


class PluginError(EngineError):
    """The plugin answered with an ``Err`` (the message is the plugin's, prefixed with the method)."""


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("plugin", timeout=timeout)
        self._socket_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self._socket_path)
        self.sock = sock


def find_plugin(name: str, plugin_dirs: list[Path] | tuple[Path, ...]) -> str | None:
    """The address (``unix:///...`` or ``tcp://...``) of the plugin ``name``, or None."""
    if not name or "/" in name or name.startswith("."):
        return None
    for directory in plugin_dirs:
        for candidate in (directory / f"{name}.sock", directory / name / f"{name}.sock"):
            if candidate.is_socket():
                return f"unix://{candidate}"
        spec = directory / f"{name}.spec"
        if spec.is_file():
            return spec.read_text().strip()
        described = directory / f"{name}.json"
        if described.is_file():
            try:
                return str(json.loads(described.read_text()).get("Addr") or "") or None
            except ValueError:
                return None
    return None


class PluginClient:
    """A synchronous client of one plugin address."""

    def __init__(self, name: str, address: str, timeout: float = CALL_TIMEOUT) -> None:
        self.name = name
        self.address = address
        self.timeout = timeout

    def _connection(self) -> http.client.HTTPConnection:
        url = urlparse(self.address)
        if url.scheme == "unix":
            return _UnixConnection(url.path, self.timeout)
        if url.scheme in ("tcp", "http"):
            return http.client.HTTPConnection(
                url.hostname or "localhost", url.port or 80, timeout=self.timeout
            )
        raise Unavailable(f"plugin {self.name}: unsupported address {self.address!r}")

    def call(self, method: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        """POST ``/<method>``; the decoded reply. Unavailable if the plugin does not answer."""
        payload = json.dumps(body or {}).encode()
        connection = self._connection()
        try:
            connection.request(
                "POST",
                f"/{method}",
                body=payload,
                headers={"Accept": ACCEPT, "Content-Type": ACCEPT, "Content-Length": str(len(payload))},
            )
            response = connection.getresponse()
            raw = response.read()
        except OSError as exc:
            raise Unavailable(f"plugin {self.name} at {self.address} does not answer: {exc}") from exc
        finally:
            connection.close()
        try:
            reply = json.loads(raw) if raw.strip() else {}
        except ValueError:
            reply = {"Err": raw.decode(errors="replace").strip()}
        if not isinstance(reply, dict):
            reply = {}
        if reply.get("Err"):
            message = f"{method}: {reply['Err']}"
            lowered = str(reply["Err"]).lower()
            if "no such volume" in lowered or "not found" in lowered or "does not exist" in lowered:
                raise NotFound(message)
            raise PluginError(message)
        if response.status != 200:
            raise PluginError(f"{method}: the plugin answered HTTP {response.status}")
        return reply


def activate(name: str, address: str) -> RemoteVolumeDriver:
    """Handshake with the plugin; NotFound if it is not a volume driver."""
    client = PluginClient(name, address)
    reply = client.call("Plugin.Activate")
    if "VolumeDriver" not in (reply.get("Implements") or []):
        raise NotFound(
            f'error looking up volume plugin {name}: plugin "{name}" does not implement VolumeDriver'
        )
    return RemoteVolumeDriver(name, client)


class RemoteVolumeDriver(VolumeDriver):
    """A volume driver speaking Docker's volume plugin protocol to ``client``."""

    def __init__(self, name: str, client: PluginClient) -> None:
        self.name = name
        self.client = client

    def create(self, name: str, options: dict[str, str]) -> None:
        self.client.call("VolumeDriver.Create", {"Name": name, "Opts": dict(options)})

    def remove(self, name: str) -> None:
        self.client.call("VolumeDriver.Remove", {"Name": name})

    def mount(self, name: str, mount_id: str) -> Path:
        reply = self.client.call("VolumeDriver.Mount", {"Name": name, "ID": mount_id})
        mountpoint = reply.get("Mountpoint") or ""
        if not mountpoint.startswith("/"):
            raise PluginError(f"VolumeDriver.Mount: the plugin gave no absolute mount point for {name}")
        return Path(mountpoint)

    def unmount(self, name: str, mount_id: str) -> None:
        self.client.call("VolumeDriver.Unmount", {"Name": name, "ID": mount_id})

    def get(self, name: str) -> VolumeInfo:
        try:
            reply = self.client.call("VolumeDriver.Get", {"Name": name})
        except PluginError as exc:
            raise NotFound(f"get {name}: {exc.message}") from exc
        return _info(reply.get("Volume") or {"Name": name})

    def list(self) -> list[VolumeInfo]:
        reply = self.client.call("VolumeDriver.List")
        return [_info(item) for item in reply.get("Volumes") or []]

    def capabilities(self) -> dict[str, str]:
        try:
            reply = self.client.call("VolumeDriver.Capabilities")
        except PluginError:
            return {"Scope": "local"}  # old plugins lack the method
        return {"Scope": str((reply.get("Capabilities") or {}).get("Scope") or "local")}


def _info(item: dict[str, Any]) -> VolumeInfo:
    return VolumeInfo(
        name=str(item.get("Name") or ""),
        mountpoint=str(item.get("Mountpoint") or ""),
        created_at=str(item.get("CreatedAt") or ""),
        status=dict(item.get("Status") or {}),
    )
