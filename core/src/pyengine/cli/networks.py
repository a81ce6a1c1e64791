"""``network create|ls|inspect|rm|connect|disconnect|prune`` and ``port``, as the docker CLI has them."""

from __future__ import annotations

import sys
from typing import Any

import click

from pyengine.cli.app import client_of
from pyengine.cli.client import APIError
from pyengine.cli.listing import parse_filters, print_rows, render_listing
from pyengine.cli.session import CommandError

_SETTINGS = {"help_option_names": ["--help"]}
NETWORK_TABLE = "table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}"
NETWORK_HEADERS = {
    "ID": "NETWORK ID",
    "Name": "NAME",
    "Driver": "DRIVER",
    "Scope": "SCOPE",
    "IPv6": "IPV6",
    "Internal": "INTERNAL",
    "Labels": "LABELS",
    "CreatedAt": "CREATED AT",
}


def parse_options(items: tuple[str, ...], what: str) -> dict[str, str]:
    out = {}
    for item in items:
        key, equals, value = item.partition("=")
        if not equals or not key:
            raise CommandError(f'invalid argument "{item}" for "{what}" flag: expected key=value', 125)
        out[key] = value
    return out


@click.group(context_settings=_SETTINGS)
def network() -> None:
    """Manage networks."""


@network.command(context_settings=_SETTINGS)
@click.option("-d", "--driver", default="bridge", show_default=True, help="Driver to manage the Network")
@click.option("--subnet", multiple=True, help="Subnet in CIDR format that represents a network segment")
@click.option("--gateway", multiple=True, help="IPv4 Gateway for the master subnet")
@click.option("--ip-range", multiple=True, help="Allocate container ip from a sub-range")
@click.option("--ipam-driver", default="default", help="IP Address Management Driver")
@click.option("-o", "--opt", multiple=True, help="Set driver specific options")
@click.option("--label", multiple=True, help="Set metadata on a network")
@click.option("--internal", is_flag=True, help="Restrict external access to the network")
@click.option("--attachable", is_flag=True, help="Enable manual container attachment")
@click.argument("name")
@click.pass_context
def create(
    ctx: click.Context,
    driver: str,
    subnet: tuple[str, ...],
    gateway: tuple[str, ...],
    ip_range: tuple[str, ...],
    ipam_driver: str,
    opt: tuple[str, ...],
    label: tuple[str, ...],
    internal: bool,
    attachable: bool,
    name: str,
) -> int:
    """Create a network."""
    if len(gateway) > len(subnet) or len(ip_range) > len(subnet):
        raise CommandError("every ip-range or gateway must have a corresponding subnet", 125)
    config = []
    for index, item in enumerate(subnet):
        entry = {"Subnet": item}
        if index < len(gateway):
            entry["Gateway"] = gateway[index]
        if index < len(ip_range):
            entry["IPRange"] = ip_range[index]
        config.append(entry)
    body = {
        "Name": name,
        "Driver": driver,
        "Scope": "",
        "IPAM": {"Driver": ipam_driver, "Options": {}, "Config": config},
        "Internal": internal,
        "Attachable": attachable,
        "Ingress": False,
        "ConfigOnly": False,
        "ConfigFrom": None,
        "Options": parse_options(opt, "-o, --opt"),
        "Labels": parse_options(label, "--label"),
        "CheckDuplicate": True,
    }
    reply = client_of(ctx).post("/networks/create", None, body)
    click.echo(reply["Id"])
    return 0


@network.command(name="ls", context_settings=_SETTINGS)
@click.option("-q", "--quiet", is_flag=True, help="Only display network IDs")
@click.option("--no-trunc", is_flag=True, help="Do not truncate the output")
@click.option("-f", "--filter", "filters", multiple=True, help="Provide filter values (e.g. 'driver=bridge')")
@click.option("--format", "format_text", default="", help="Format output using a custom template")
@click.pass_context
def ls(ctx: click.Context, quiet: bool, no_trunc: bool, filters: tuple[str, ...], format_text: str) -> int:
    """List networks."""
    listed = client_of(ctx).get("/networks", {"filters": parse_filters(filters)}) or []
    rows = []
    for item in sorted(listed, key=lambda n: n["Name"]):
        labels = ",".join(f"{k}={v}" for k, v in sorted((item.get("Labels") or {}).items()))
        rows.append(
            {
                "ID": item["Id"] if no_trunc else item["Id"][:12],
                "Name": item["Name"],
                "Driver": item["Driver"],
                "Scope": item.get("Scope", "local"),
                "IPv6": str(item.get("EnableIPv6", False)).lower(),
                "Internal": str(item.get("Internal", False)).lower(),
                "Labels": labels,
                "CreatedAt": item.get("Created", ""),
            }
        )
    if quiet and not format_text:
        format_text = "{{.ID}}"
    print_rows(render_listing(format_text, rows, NETWORK_HEADERS, NETWORK_TABLE))
    return 0


@network.command(context_settings=_SETTINGS)
@click.option("-f", "--format", "format_text", default="", help="Format output using a custom template")
@click.argument("names", nargs=-1, required=True)
@click.pass_context
def inspect(ctx: click.Context, format_text: str, names: tuple[str, ...]) -> int:
    """Display detailed information on one or more networks."""
    from pyengine.cli.listing import inspect as inspect_any

    args = ["--type", "network", *(["--format", format_text] if format_text else []), *names]
    return ctx.invoke(inspect_any, **_inspect_params(inspect_any, args))


def _inspect_params(command: click.Command, args: list[str]) -> dict[str, Any]:
    sub = command.make_context("inspect", args)
    return dict(sub.params)


@network.command(name="rm", context_settings=_SETTINGS)
@click.option("-f", "--force", is_flag=True, help="Do not error if the network does not exist")
@click.argument("names", nargs=-1, required=True)
@click.pass_context
def rm(ctx: click.Context, force: bool, names: tuple[str, ...]) -> int:
    """Remove one or more networks."""
    client = client_of(ctx)
    failed = []
    for name in names:
        try:
            client.delete(f"/networks/{name}")
            click.echo(name)
        except APIError as exc:
            if force and exc.status == 404:
                continue
            failed.append(f"Error response from daemon: {exc.message}")
    if failed:
        raise CommandError("\n".join(failed), 1)
    return 0


@network.command(context_settings=_SETTINGS)
@click.option("--alias", multiple=True, help="Add network-scoped alias for the container")
@click.option("--ip", default="", help="IPv4 address (e.g., 172.30.100.104)")
@click.argument("network_name")
@click.argument("container")
@click.pass_context
def connect(ctx: click.Context, alias: tuple[str, ...], ip: str, network_name: str, container: str) -> int:
    """Connect a container to a network."""
    config: dict[str, Any] = {"Aliases": list(alias) or None}
    if ip:
        config["IPAMConfig"] = {"IPv4Address": ip}
    client_of(ctx).post(
        f"/networks/{network_name}/connect", None, {"Container": container, "EndpointConfig": config}
    )
    return 0


@network.command(context_settings=_SETTINGS)
@click.option("-f", "--force", is_flag=True, help="Force the container to disconnect from a network")
@click.argument("network_name")
@click.argument("container")
@click.pass_context
def disconnect(ctx: click.Context, force: bool, network_name: str, container: str) -> int:
    """Disconnect a container from a network."""
    client_of(ctx).post(
        f"/networks/{network_name}/disconnect", None, {"Container": container, "Force": force}
    )
    return 0


@network.command(context_settings=_SETTINGS)
@click.option("-f", "--force", is_flag=True, help="Do not prompt for confirmation")
@click.option("--filter", "filters", multiple=True, help="Provide filter values (e.g. 'until=<timestamp>')")
@click.pass_context
def prune(ctx: click.Context, force: bool, filters: tuple[str, ...]) -> int:
    """Remove all unused networks."""
    if not force:
        sys.stdout.write(
            "WARNING! This will remove all custom networks not used by at least one container.\n"
            "Are you sure you want to continue? [y/N] "
        )
        sys.stdout.flush()
        if sys.stdin.readline().strip().lower() not in ("y", "yes"):
            return 0
    reply = client_of(ctx).post("/networks/prune", {"filters": parse_filters(filters)}) or {}
    deleted = reply.get("NetworksDeleted") or []
    if deleted:
        click.echo("Deleted Networks:\n" + "\n".join(deleted))
    return 0


@click.command(context_settings=_SETTINGS)
@click.argument("container")
@click.argument("private_port", required=False)
@click.pass_context
def port(ctx: click.Context, container: str, private_port: str | None) -> int:
    """List port mappings or a specific mapping for the container."""
    info = client_of(ctx).get(f"/containers/{container}/json")
    ports = (info.get("NetworkSettings") or {}).get("Ports") or {}
    if private_port:
        key = private_port if "/" in private_port else f"{private_port}/tcp"
        bindings = ports.get(key)
        if not bindings:
            raise CommandError(f"Error: No public port '{key}' published for {container}", 1)
        for b in bindings:
            click.echo(f"{b['HostIp']}:{b['HostPort']}")
        return 0
    for key in sorted(ports, key=lambda k: (int(k.split("/")[0]), k)):
        for b in ports[key] or []:
            click.echo(f"{key} -> {b['HostIp']}:{b['HostPort']}")
    return 0
