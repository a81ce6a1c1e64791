"""The embedded DNS server of user-defined networks, at 127.0.0.11:53 inside each container.

Docker's resolver address is 127.0.0.11; rather than DNAT it inside every namespace, the daemon opens
a UDP socket *inside* the container's network namespace (a worker thread enters the namespace, binds,
comes back: the socket stays in that namespace) and serves it from its own event loop. Names of
containers on the asking container's networks (container names, ``--network-alias`` aliases, short
IDs) are answered from the engine's records; every other question is relayed unchanged to the host's
resolvers from the host's namespace, and their answer relayed back. UDP only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
from collections.abc import Callable
from pathlib import Path

from pyengine.networks import netns

log = logging.getLogger(__name__)

RESOLVER_ADDRESS = "127.0.0.11"
_IP_FREEBIND = 15
_TYPE_A = 1
_CLASS_IN = 1


def parse_question(packet: bytes) -> tuple[int, str, int, int, int] | None:
    """(id, lowercased name, qtype, qclass, end offset of the question) of a query, or None."""
    if len(packet) < 12:
        return None
    ident, flags, qdcount = struct.unpack("!HHH", packet[:6])
    if flags & 0x8000 or qdcount != 1:
        return None
    labels, offset = [], 12
    while True:
        if offset >= len(packet):
            return None
        length = packet[offset]
        offset += 1
        if length == 0:
            break
        if length & 0xC0:
            return None
        labels.append(packet[offset : offset + length].decode("ascii", "replace"))
        offset += length
    if offset + 4 > len(packet):
        return None
    qtype, qclass = struct.unpack("!HH", packet[offset : offset + 4])
    return ident, ".".join(labels).lower(), qtype, qclass, offset + 4


def answer(packet: bytes, question_end: int, addresses: list[str], qtype: int, ttl: int = 600) -> bytes:
    """A reply to ``packet`` with A records for ``addresses`` (none for a type other than A)."""
    ident = struct.unpack("!H", packet[:2])[0]
    rd = struct.unpack("!H", packet[2:4])[0] & 0x0100
    records = [a for a in addresses] if qtype == _TYPE_A else []
    flags = 0x8000 | 0x0400 | rd | 0x0080  # response, authoritative, RD echoed, RA
    header = struct.pack("!HHHHHH", ident, flags, 1, len(records), 0, 0)
    body = packet[12:question_end]
    for address in records:
        body += struct.pack("!HHHIH", 0xC00C, _TYPE_A, _CLASS_IN, ttl, 4) + socket.inet_aton(address)
    return header + body


def not_found(packet: bytes, question_end: int) -> bytes:
    ident = struct.unpack("!H", packet[:2])[0]
    rd = struct.unpack("!H", packet[2:4])[0] & 0x0100
    return struct.pack("!HHHHHH", ident, 0x8000 | rd | 0x0080 | 3, 1, 0, 0, 0) + packet[12:question_end]


def host_resolvers(path: str = "/etc/resolv.conf") -> list[str]:
    out = []
    try:
        for line in Path(path).read_text().splitlines():
            parts = line.split()
            if len(parts) >= 2 and parts[0] == "nameserver":
                out.append(parts[1])
    except OSError:
        pass
    return out


#: (container ID, lowercased name) -> the addresses to answer, or None when the name is not ours
Lookup = Callable[[str, str], list[str] | None]


class EmbeddedDNS:
    def __init__(self, loop: asyncio.AbstractEventLoop, lookup: Lookup) -> None:
        self.loop = loop
        self.lookup = lookup
        self._sockets: dict[str, socket.socket] = {}

    def open(self, container_id: str, sandbox_key: str) -> None:
        """Start answering inside the namespace at ``sandbox_key`` (called from a worker thread).

        A container already served (a second user-defined network) keeps its socket."""
        if container_id in self._sockets:
            return
        with netns.entered(sandbox_key):
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.setsockopt(socket.SOL_IP, _IP_FREEBIND, 1)
            sock.bind((RESOLVER_ADDRESS, 53))
            sock.setblocking(False)
        except BaseException:
            sock.close()
            raise
        self.loop.call_soon_threadsafe(self._register, container_id, sock)

    def _register(self, container_id: str, sock: socket.socket) -> None:
        old = self._sockets.pop(container_id, None)
        if old is not None:
            self._unregister(old)
        self._sockets[container_id] = sock
        self.loop.add_reader(sock.fileno(), self._on_readable, container_id, sock)

    def close(self, container_id: str) -> None:
        """Stop answering for the container (from any thread)."""
        self.loop.call_soon_threadsafe(self._close, container_id)

    def _close(self, container_id: str) -> None:
        sock = self._sockets.pop(container_id, None)
        if sock is not None:
            self._unregister(sock)

    def _unregister(self, sock: socket.socket) -> None:
        with contextlib.suppress(ValueError, OSError):
            self.loop.remove_reader(sock.fileno())
        sock.close()

    def close_all(self) -> None:
        for container_id in list(self._sockets):
            self._close(container_id)

    def _on_readable(self, container_id: str, sock: socket.socket) -> None:
        try:
            packet, peer = sock.recvfrom(4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            return
        question = parse_question(packet)
        if question is None:
            return
        _ident, name, qtype, _qclass, end = question
        try:
            addresses = self.lookup(container_id, name.rstrip("."))
        except Exception:  # a broken lookup must not stop the resolver
            log.exception("embedded DNS lookup of %s failed", name)
            addresses = None
        if addresses is not None:
            reply = answer(packet, end, addresses, qtype) if addresses else not_found(packet, end)
            with contextlib.suppress(OSError):
                sock.sendto(reply, peer)
            return
        self.loop.create_task(self._relay(sock, packet, peer, end))

    async def _relay(self, sock: socket.socket, packet: bytes, peer: tuple, end: int) -> None:
        for server in host_resolvers():
            upstream = socket.socket(socket.AF_INET6 if ":" in server else socket.AF_INET, socket.SOCK_DGRAM)
            upstream.setblocking(False)
            try:
                await self.loop.sock_connect(upstream, (server, 53))
                await self.loop.sock_sendall(upstream, packet)
                reply = await asyncio.wait_for(self.loop.sock_recv(upstream, 4096), 3)
            except (OSError, TimeoutError):
                continue
            finally:
                upstream.close()
            with contextlib.suppress(OSError):
                sock.sendto(reply, peer)
            return
        # no upstream answered: SERVFAIL
        ident_flags = packet[:2] + struct.pack("!H", 0x8000 | 0x0080 | 2)
        with contextlib.suppress(OSError):
            sock.sendto(ident_flags + struct.pack("!HHHH", 1, 0, 0, 0) + packet[12:end], peer)
