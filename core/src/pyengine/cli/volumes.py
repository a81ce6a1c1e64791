"""``pyengine volume create|ls|inspect|rm|prune``: Docker's volume commands, as a client of ``/volumes``."""

from __future__ import annotations

import sys
from typing import Any

import click

from pyengine.cli.app import client_of
from pyengine.cli.client import APIError
from pyengine.cli.containers import call, for_each
from pyengine.cli.gotemplate_funcs import TemplateError
from pyengine.cli.session import CommandError

_SETTINGS = {"help_option_names": ["--help"]}
VOLUME_TABLE = "table {{.Driver}}\t{{.Name}}"
VOLUME_HEADERS = {
    "Driver": "DRIVER",
    "Name": "VOLUME NAME",
    "Scope": "SCOPE",
    "Mountpoint": "MOUNTPOINT",
    "Labels": "LABELS",
    "Links": "LINKS",
    "Size": "SIZE",
    "CreatedAt": "CREATED",
}


def _key_values(items: tuple[str, ...], flag: str) -> dict[str, str]:
    out = {}
    for item in items:
        key, _sep, value = item.partition("=")
        if not key:
            raise CommandError(f'invalid argument "{item}" for "{flag}" flag: empty key', 125)
        out[key] = value
    return out


class VolumeRow(dict):
    """A row for ``--format``: the volume's fields, with Labels as docker prints them."""

    def __init__(self, volume: dict[str, Any]) -> None:
        labels = volume.get("Labels") or {}
        super().__init__(
            Name=volume.get("Name", ""),
            Driver=volume.get("Driver", ""),
            Scope=volume.get("Scope", ""),
            Mountpoint=volume.get("Mountpoint", ""),
            Labels=",".join(f"{k}={v}" for k, v in sorted(labels.items())),
            Links="N/A",
            Size="N/A",
            CreatedAt=volume.get("CreatedAt", ""),
        )


@click.group(context_settings=_SETTINGS)
def volume() -> None:
    """Manage volumes."""


@volume.command(context_settings=_SETTINGS)
@click.option("-d", "--driver", default="local", show_default=True, help="Specify volume driver name")
@click.option("--name", "name_option", default="", help="Specify volume name")
@click.option("-o", "--opt", "opts", multiple=True, help="Set driver specific options")
@click.option("--label", "labels", multiple=True, help="Set metadata for a volume")
@click.argument("name", required=False, default="")
@click.pass_context
def create(
    ctx: click.Context,
    driver: str,
    name_option: str,
    opts: tuple[str, ...],
    labels: tuple[str, ...],
    name: str,
) -> int:
    """Create a volume."""
    if name and name_option and name != name_option:
        raise CommandError(
            "conflicting options: either specify --name or provide positional arg, not both", 1
        )
    body = {
        "Name": name or name_option,
        "Driver": driver,
        "DriverOpts": _key_values(opts, "-o, --opt"),
        "Labels": _key_values(labels, "--label"),
    }
    try:
        created = client_of(ctx).post("/volumes/create", None, body)
    except APIError as exc:
        raise CommandError(f"Error response from daemon: {exc.message}", 1) from exc
    print(created["Name"], flush=True)
    return 0


@volume.command("ls", context_settings=_SETTINGS)
@click.option("-q", "--quiet", is_flag=True, help="Only display volume names")
@click.option("-f", "--filter", "filters", multiple=True, help="Provide filter values (e.g. 'dangling=true')")
@click.option("--format", "format_text", default="", help="Format output using a custom template")
@click.pass_context
def ls(ctx: click.Context, quiet: bool, filters: tuple[str, ...], format_text: str) -> int:
    """List volumes."""
    from pyengine.cli.formatting import render_rows
    from pyengine.cli.listing import parse_filters

    listed = client_of(ctx).get("/volumes", {"filters": parse_filters(filters)}) or {}
    rows = [VolumeRow(v) for v in sorted(listed.get("Volumes") or [], key=lambda v: v.get("Name", ""))]
    if quiet and not format_text:
        format_text = "{{.Name}}"
    try:
        text = render_rows(format_text, rows, VOLUME_HEADERS, VOLUME_TABLE)
    except TemplateError as exc:
        raise CommandError(str(exc), 1) from exc
    sys.stdout.write(text)
    sys.stdout.flush()
    return 0


@volume.command(context_settings=_SETTINGS)
@click.option("-f", "--format", "format_text", default="", help="Format output using a custom template")
@click.argument("names", nargs=-1, required=True)
@click.pass_context
def inspect(ctx: click.Context, format_text: str, names: tuple[str, ...]) -> int:
    """Display detailed information on one or more volumes."""
    from pyengine.cli.listing import inspect as inspect_command

    return ctx.invoke(inspect_command, format_text=format_text, size=False, kind="volume", names=names)


@volume.command(context_settings=_SETTINGS)
@click.option("-f", "--force", is_flag=True, help="Force the removal of one or more volumes")
@click.argument("names", nargs=-1, required=True)
@click.pass_context
def rm(ctx: click.Context, force: bool, names: tuple[str, ...]) -> int:
    """Remove one or more volumes."""
    client = client_of(ctx)
    query = {"force": True} if force else None
    return for_each(names, lambda name: call(client, "DELETE", f"/volumes/{name}", query))


@volume.command(context_settings=_SETTINGS)
@click.option(
    "-a", "--all", "remove_all", is_flag=True, help="Remove all unused volumes, not just anonymous ones"
)
@click.option("-f", "--force", is_flag=True, help="Do not prompt for confirmation")
@click.option("--filter", "filters", multiple=True, help="Provide filter values (e.g. 'label=<label>')")
@click.pass_context
def prune(ctx: click.Context, remove_all: bool, force: bool, filters: tuple[str, ...]) -> int:
    """Remove unused local volumes."""
    from pyengine.cli.formatting import human_size
    from pyengine.cli.listing import parse_filters

    if not force:
        sys.stdout.write(
            "WARNING! This will remove all local volumes not used by at least one container.\n"
            "Are you sure you want to continue? [y/N] "
        )
        sys.stdout.flush()
        answer = sys.stdin.readline().strip().lower()
        if answer not in ("y", "yes"):
            return 0
    items = list(filters) + (["all=true"] if remove_all else [])
    report = client_of(ctx).post("/volumes/prune", {"filters": parse_filters(items)}) or {}
    deleted = report.get("VolumesDeleted") or []
    out = []
    if deleted:
        out.append("Deleted Volumes:\n" + "".join(f"{name}\n" for name in deleted) + "\n")
    out.append(f"Total reclaimed space: {human_size(report.get('SpaceReclaimed') or 0)}\n")
    sys.stdout.write("".join(out))
    return 0
