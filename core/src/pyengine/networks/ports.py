"""Host ports for published container ports: parsing Docker's bindings, choosing and reserving ports.

A published port is reserved by binding a socket to it on the host (never listening): another
program cannot take the port while a container publishes it, and the bind is how "port already
allocated" is found, as with Docker. Packets never reach these sockets: they are DNATed before.
"""

from __future__ import annotations

import errno
import socket
import threading
from typing import Any

from pyengine.drivers.network import PortBinding
from pyengine.errors import EngineError, InvalidArgument

EPHEMERAL = range(32768, 61000)
_SOCK_TYPES = {"tcp": socket.SOCK_STREAM, "udp": socket.SOCK_DGRAM}


class PortAllocated(EngineError):
    """The host port is taken (Docker answers 500 on start)."""

    status = 500


def parse_port_key(key: str) -> tuple[int, str]:
    """``"80/tcp"`` -> (80, "tcp"); InvalidArgument for anything else."""
    port, _, proto = key.partition("/")
    proto = (proto or "tcp").lower()
    if proto not in ("tcp", "udp", "sctp") or not port.isdigit() or not 0 < int(port) < 65536:
        raise InvalidArgument(f"invalid port specification: {key!r}")
    return int(port), proto


def requested_bindings(
    port_bindings: dict[str, Any] | None, exposed: dict[str, Any] | None, publish_all: bool
) -> list[tuple[str, int, str, int, int]]:
    """Validated ``(proto, port, host_ip, low, high)`` from HostConfig; ``low == 0`` means any port."""
    out = []
    for key, items in (port_bindings or {}).items():
        port, proto = parse_port_key(key)
        for item in items or [{}]:
            host_ip = (item or {}).get("HostIp") or ""
            if host_ip:
                try:
                    socket.inet_aton(host_ip)
                except OSError:
                    raise InvalidArgument(f"invalid host IP {host_ip!r} for port {key}") from None
            text = str((item or {}).get("HostPort") or "")
            low, _, high = text.partition("-")
            try:
                low_n = int(low) if low else 0
                high_n = int(high) if high else low_n
            except ValueError:
                raise InvalidArgument(f"invalid host port {text!r} for port {key}") from None
            if not (0 <= low_n <= high_n <= 65535):
                raise InvalidArgument(f"invalid host port {text!r} for port {key}")
            out.append((proto, port, host_ip, low_n, high_n))
    if publish_all:
        bound = {(proto, port) for proto, port, *_ in out}
        for key in exposed or {}:
            port, proto = parse_port_key(key)
            if (proto, port) not in bound:
                out.append((proto, port, "", 0, 0))
    return out


class PortReservations:
    """Sockets holding host ports, per owner (an endpoint ID)."""

    def __init__(self) -> None:
        self._held: dict[str, list[socket.socket]] = {}
        self._lock = threading.Lock()

    def reserve(self, owner: str, wanted: list[tuple[str, int, str, int, int]]) -> list[PortBinding]:
        """Bind a host port for every request (all or none); the bindings with concrete ports."""
        bindings: list[PortBinding] = []
        sockets: list[socket.socket] = []
        try:
            for proto, port, host_ip, low, high in wanted:
                candidates = range(low, high + 1) if low else EPHEMERAL
                sock, host_port = _bind_first(proto, host_ip, candidates, explicit=bool(low))
                if sock is not None:
                    sockets.append(sock)
                bindings.append(PortBinding(proto, port, host_ip, host_port))
        except BaseException:
            for sock in sockets:
                sock.close()
            raise
        with self._lock:
            self._held.setdefault(owner, []).extend(sockets)
        return bindings

    def release(self, owner: str) -> None:
        with self._lock:
            sockets = self._held.pop(owner, [])
        for sock in sockets:
            sock.close()


def _bind_first(
    proto: str, host_ip: str, candidates: range, *, explicit: bool
) -> tuple[socket.socket | None, int]:
    sock_type = _SOCK_TYPES.get(proto)
    if sock_type is None:  # sctp: nothing to hold with a plain socket here
        if not explicit:
            raise InvalidArgument("sctp ports must be given a host port")
        return None, candidates[0]
    start = 0 if explicit else hash(threading.get_ident()) % len(candidates)
    order = list(candidates[start:]) + list(candidates[:start])
    for host_port in order:
        sock = socket.socket(socket.AF_INET, sock_type)
        try:
            sock.bind((host_ip or "0.0.0.0", host_port))
            return sock, host_port
        except OSError as exc:
            sock.close()
            if exc.errno == errno.EADDRNOTAVAIL:
                raise InvalidArgument(f"host IP {host_ip} is not an address of this host") from None
            if exc.errno != errno.EADDRINUSE:
                raise
    ports = str(candidates[0]) if len(candidates) == 1 else f"{candidates[0]}-{candidates[-1]}"
    shown = f"{host_ip or '0.0.0.0'}:{ports}"
    raise PortAllocated(f"Bind for {shown} failed: port is already allocated")
