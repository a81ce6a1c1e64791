"""Helpers for the network scenarios: unused subnets and ports, fetching a page, cleaning up."""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import subprocess
import time
import urllib.request

from pyengine.networks.ipam import host_routes

WEB_CMD = [
    "sh",
    "-c",
    "mkdir -p /www && echo hi-from-$(hostname) > /www/index.html && httpd -f -p 80 -h /www",
]


def free_subnet(taken: set[str], third_octets=range(60, 250)) -> str:
    """A 10.123.N.0/24 that no route of the host and no network of ``taken`` overlaps."""
    routes = host_routes()
    for third in third_octets:
        candidate = ipaddress.IPv4Network(f"10.123.{third}.0/24")
        if any(candidate.overlaps(r) for r in routes) or str(candidate) in taken:
            continue
        taken.add(str(candidate))
        return str(candidate)
    raise RuntimeError("no free 10.123.N.0/24 subnet on this host")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def fetch(url: str, attempts: int = 50) -> str:
    """GET ``url`` (loopback only), retrying while the server in the container starts."""
    assert url.startswith(("http://127.0.0.1:", "http://10.123.")), url
    last: Exception | None = None
    for _ in range(attempts):
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return response.read().decode()
        except OSError as exc:
            last = exc
            time.sleep(0.2)
    raise AssertionError(f"could not fetch {url}: {last}")


def links(prefix: str) -> set[str]:
    out = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=True).stdout
    names = set()
    for line in out.splitlines():
        name = line.split(":")[1].strip().split("@")[0]
        if name.startswith(prefix):
            names.add(name)
    return names


class Cleanup:
    """Containers and networks a test made, removed at the end even when the test fails."""

    def __init__(self, cli) -> None:
        self.cli = cli
        self.containers: list[str] = []
        self.networks: list[str] = []

    def container(self, name: str) -> str:
        self.containers.append(name)
        return name

    def network(self, name: str) -> str:
        self.networks.append(name)
        return name

    def close(self) -> None:
        for name in self.containers:
            with contextlib.suppress(Exception):
                self.cli("rm", "-f", name)
        for name in self.networks:
            with contextlib.suppress(Exception):
                self.cli("network", "rm", name)
