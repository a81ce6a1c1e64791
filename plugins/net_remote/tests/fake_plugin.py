"""A small Docker network plugin for tests: a bridge per network, a veth pair per endpoint.

It speaks the libnetwork remote protocol on a unix socket in a thread, as a third-party plugin
would; links are named ``pyt...`` and all of them are removed by :meth:`FakeNetworkPlugin.close`.
"""

from __future__ import annotations

import contextlib
import json
import os
import socketserver
import subprocess
import threading
from http.server import BaseHTTPRequestHandler


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


class FakeNetworkPlugin:
    def __init__(self, socket_path: str) -> None:
        self.socket_path = socket_path
        self.calls: list[str] = []
        self.networks: dict[str, str] = {}  # network id -> bridge
        self.gateways: dict[str, str] = {}
        self.endpoints: dict[str, str] = {}  # endpoint id -> network id
        plugin = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # quiet
                pass

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                method = self.path.lstrip("/")
                plugin.calls.append(method)
                handler = getattr(plugin, method.replace(".", "_"), None)
                if handler is None:
                    self.send_response(404)
                    self.end_headers()
                    return
                try:
                    reply = handler(body)
                except Exception as exc:  # the protocol's error form
                    reply = {"Err": str(exc)}
                data = json.dumps(reply).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/vnd.docker.plugins.v1.2+json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
            daemon_threads = True

            def get_request(self):
                request, _ = super().get_request()
                return request, ("plugin", 0)

        os.makedirs(os.path.dirname(socket_path), exist_ok=True)
        self.server = Server(socket_path, Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    # ---- the protocol -------------------------------------------------------------------------
    def Plugin_Activate(self, body):  # noqa: N802
        return {"Implements": ["NetworkDriver"]}

    def NetworkDriver_GetCapabilities(self, body):  # noqa: N802
        return {"Scope": "local", "ConnectivityScope": "local"}

    def NetworkDriver_CreateNetwork(self, body):  # noqa: N802
        network_id = body["NetworkID"]
        unknown = sorted(body["Options"]["com.docker.network.generic"])
        if unknown:
            raise ValueError(f"unknown option: {', '.join(unknown)}")
        bridge = "pytb" + network_id[:8]
        if network_id in self.networks:
            return {}
        _ip("link", "add", bridge, "type", "bridge")
        gateway = body["IPv4Data"][0]["Gateway"]
        _ip("addr", "add", gateway, "dev", bridge)
        _ip("link", "set", bridge, "up")
        self.networks[network_id] = bridge
        self.gateways[network_id] = gateway.split("/")[0]
        return {}

    def NetworkDriver_DeleteNetwork(self, body):  # noqa: N802
        bridge = self.networks.pop(body["NetworkID"], None)
        if bridge is None:
            raise KeyError(f"network {body['NetworkID']} not found")
        _ip("link", "del", bridge)
        return {}

    def NetworkDriver_CreateEndpoint(self, body):  # noqa: N802
        self.endpoints[body["EndpointID"]] = body["NetworkID"]
        return {"Interface": {}}

    def NetworkDriver_DeleteEndpoint(self, body):  # noqa: N802
        self.endpoints.pop(body["EndpointID"], None)
        return {}

    def NetworkDriver_Join(self, body):  # noqa: N802
        network_id, endpoint_id = body["NetworkID"], body["EndpointID"]
        host_end, peer = "pyth" + endpoint_id[:8], "pytc" + endpoint_id[:8]
        _ip("link", "add", host_end, "type", "veth", "peer", "name", peer)
        _ip("link", "set", host_end, "master", self.networks[network_id], "up")
        return {"InterfaceName": {"SrcName": peer, "DstPrefix": "eth"}, "Gateway": self.gateways[network_id]}

    def NetworkDriver_Leave(self, body):  # noqa: N802
        with contextlib.suppress(subprocess.CalledProcessError):
            _ip("link", "del", "pyth" + body["EndpointID"][:8])
        return {}

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.socket_path)
        for endpoint_id in list(self.endpoints):
            subprocess.run(["ip", "link", "del", "pyth" + endpoint_id[:8]], capture_output=True)
        for bridge in self.networks.values():
            subprocess.run(["ip", "link", "del", bridge], capture_output=True)
