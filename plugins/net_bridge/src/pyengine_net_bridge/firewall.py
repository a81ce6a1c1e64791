"""The bridge driver's packet rules: one nftables table of our own, ``ip pyengine``, rendered whole.

The rules are a pure function of the driver's state (networks and published ports), so every change
replaces the whole table in one nftables transaction ("add table; delete table; table {...}"):
there is never a half-updated rule set, a crash leaves the last complete one, and cleaning up is
deleting our table. Nothing outside our table is touched (docker0, the host's own rules).

Why libnftables through ctypes rather than pyroute2's nftables module: pyroute2 builds rules from raw
netlink expressions (its API is marked prototype and has helpers only for masquerade and verdicts),
while the nft language here is short, reviewable and atomic per buffer. libnftables is a library
call, so the daemon still never forks. Package: ``libnftables1`` (Debian).

What the table does
-------------------
- ``postrouting``: masquerade traffic leaving a bridge's subnet for anywhere but that bridge
  (outbound NAT); masquerade loopback-sourced traffic going into a bridge (``127.0.0.1:PORT`` of a
  published port; with ``route_localnet`` on our bridges this replaces Docker's userland proxy).
- ``prerouting`` and ``output``: DNAT of published ports to the container's address, for packets
  addressed to one of the host's own addresses (or to the binding's host IP).
- ``forward``: drop traffic between two different bridges of ours (network isolation), and
  anything out of an internal network.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import threading
from dataclasses import dataclass, field

from pyengine.errors import NotSupported

TABLE = "pyengine"


@dataclass(frozen=True)
class BridgeRules:
    bridge: str
    subnet: str
    internal: bool = False


@dataclass(frozen=True)
class Forward:
    proto: str
    host_ip: str
    host_port: int
    address: str  # the container's address, no prefix
    port: int


@dataclass
class RuleSet:
    bridges: list[BridgeRules] = field(default_factory=list)
    forwards: list[Forward] = field(default_factory=list)


def render(rules: RuleSet, table: str = TABLE) -> str:
    """The nft script that replaces ``table`` with one holding exactly ``rules``."""
    lines = [f"add table ip {table}", f"delete table ip {table}", f"table ip {table} {{"]
    ports = []
    for fwd in sorted(rules.forwards, key=lambda f: (f.proto, f.host_port, f.host_ip)):
        where = f"ip daddr {fwd.host_ip} " if fwd.host_ip and fwd.host_ip != "0.0.0.0" else ""
        ports.append(f"{where}{fwd.proto} dport {fwd.host_port} dnat to {fwd.address}:{fwd.port}")
    lines += _chain("ports", None, ports)
    lines += _chain(
        "prerouting",
        "type nat hook prerouting priority dstnat; policy accept;",
        ["fib daddr type local jump ports"],
    )
    lines += _chain(
        "output", "type nat hook output priority -100; policy accept;", ["fib daddr type local jump ports"]
    )
    post = []
    forward = []
    for rule in rules.bridges:
        if not rule.internal:
            post.append(f'ip saddr {rule.subnet} oifname != "{rule.bridge}" masquerade')
        post.append(f'ip saddr 127.0.0.0/8 oifname "{rule.bridge}" masquerade')
        if rule.internal:
            forward.append(f'iifname "{rule.bridge}" oifname != "{rule.bridge}" drop')
            forward.append(f'oifname "{rule.bridge}" iifname != "{rule.bridge}" drop')
        for other in rules.bridges:
            if other.bridge != rule.bridge:
                forward.append(f'iifname "{rule.bridge}" oifname "{other.bridge}" drop')
    lines += _chain("postrouting", "type nat hook postrouting priority srcnat; policy accept;", post)
    lines += _chain("forward", "type filter hook forward priority filter; policy accept;", forward)
    lines.append("}")
    return "\n".join(lines) + "\n"


def _chain(name: str, header: str | None, rules: list[str]) -> list[str]:
    out = [f"  chain {name} {{"]
    if header:
        out.append(f"    {header}")
    out += [f"    {rule}" for rule in rules]
    out.append("  }")
    return out


class Nftables:
    """A libnftables context: run nft scripts atomically, from any thread (one at a time)."""

    def __init__(self, table: str = TABLE) -> None:
        self.table = table
        name = ctypes.util.find_library("nftables") or "libnftables.so.1"
        try:
            lib = ctypes.CDLL(name)
        except OSError as exc:
            raise NotSupported(f"libnftables is not installed (apt-get install libnftables1): {exc}") from exc
        lib.nft_ctx_new.restype = ctypes.c_void_p
        lib.nft_ctx_new.argtypes = [ctypes.c_uint32]
        lib.nft_ctx_free.argtypes = [ctypes.c_void_p]
        lib.nft_run_cmd_from_buffer.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
        lib.nft_ctx_buffer_output.argtypes = [ctypes.c_void_p]
        lib.nft_ctx_buffer_error.argtypes = [ctypes.c_void_p]
        for getter in ("nft_ctx_get_output_buffer", "nft_ctx_get_error_buffer"):
            getattr(lib, getter).restype = ctypes.c_char_p
            getattr(lib, getter).argtypes = [ctypes.c_void_p]
        self._lib = lib
        self._ctx = lib.nft_ctx_new(0)
        lib.nft_ctx_buffer_output(self._ctx)
        lib.nft_ctx_buffer_error(self._ctx)
        self._lock = threading.Lock()

    def run(self, script: str) -> str:
        """Run an nft script as one transaction; its output, or OSError with nft's message."""
        with self._lock:
            rc = self._lib.nft_run_cmd_from_buffer(self._ctx, script.encode())
            output = (self._lib.nft_ctx_get_output_buffer(self._ctx) or b"").decode()
            error = (self._lib.nft_ctx_get_error_buffer(self._ctx) or b"").decode()
        if rc != 0:
            raise OSError(f"nftables refused the rules: {error.strip()}")
        return output

    def apply(self, rules: RuleSet) -> None:
        self.run(render(rules, self.table))

    def delete_table(self) -> None:
        self.run(f"add table ip {self.table}\ndelete table ip {self.table}\n")

    def list_table(self) -> str:
        try:
            return self.run(f"list table ip {self.table}")
        except OSError:
            return ""
