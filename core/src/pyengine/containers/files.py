"""The per-container files the engine writes and binds into the container: hostname, hosts, resolv.conf."""

from __future__ import annotations

from pathlib import Path

HOST_RESOLV_CONF = Path("/etc/resolv.conf")


def write_hostname(directory: Path, hostname: str) -> Path:
    path = directory / "hostname"
    path.write_text(hostname + "\n")
    return path


def write_hosts(
    directory: Path, hostname: str, address: str | None = None, extra: list[str] | None = None
) -> Path:
    """/etc/hosts: localhost entries, the container's own address when it has one, ``--add-host`` lines."""
    lines = [
        "127.0.0.1\tlocalhost",
        "::1\tlocalhost ip6-localhost ip6-loopback",
        "fe00::0\tip6-localnet",
        "ff00::0\tip6-mcastprefix",
        "ff02::1\tip6-allnodes",
        "ff02::2\tip6-allrouters",
    ]
    for item in extra or []:
        name, _, ip = item.partition(":")
        lines.append(f"{ip}\t{name}")
    if address:
        lines.append(f"{address}\t{hostname}")
    path = directory / "hosts"
    path.write_text("\n".join(lines) + "\n")
    return path


def write_resolv_conf(
    directory: Path,
    dns: list[str] | None = None,
    search: list[str] | None = None,
    options: list[str] | None = None,
) -> Path:
    """resolv.conf from the host's, without loopback nameservers (unreachable from the container's
    network namespace), or from ``--dns``/``--dns-search``/``--dns-option`` when given."""
    host_lines: list[str] = []
    try:
        host_lines = HOST_RESOLV_CONF.read_text().splitlines()
    except OSError:
        pass
    nameservers = (
        dns
        if dns
        else [
            parts[1]
            for parts in (line.split() for line in host_lines)
            if len(parts) >= 2 and parts[0] == "nameserver" and not parts[1].startswith(("127.", "::1"))
        ]
    )
    searches = (
        search
        if search
        else [
            " ".join(parts[1:])
            for parts in (line.split() for line in host_lines)
            if parts and parts[0] == "search"
        ]
    )
    opts = (
        options
        if options
        else [
            " ".join(parts[1:])
            for parts in (line.split() for line in host_lines)
            if parts and parts[0] == "options"
        ]
    )
    out = [f"nameserver {n}" for n in nameservers]
    out += [f"search {s}" for s in searches if s]
    out += [f"options {o}" for o in opts if o]
    path = directory / "resolv.conf"
    path.write_text("\n".join(out) + ("\n" if out else ""))
    return path
