"""``container prune``, ``builder prune``, ``system prune`` and ``system df``, as the docker CLI has
them; clients of ``/containers/prune``, ``/build/prune``, ``/system/df`` and the other prunes."""

from __future__ import annotations

import sys
import time
from typing import Any

import click

from pyengine.cli.app import client_of
from pyengine.cli.client import Client
from pyengine.cli.formatting import human_size, since
from pyengine.cli.listing import parse_filters
from pyengine.cli.tabwriter import align
from pyengine.model.base import parse_rfc3339

_SETTINGS = {"help_option_names": ["--help"]}
_ACTIVE_STATES = ("running", "paused", "restarting")


def _size(value: float) -> str:
    """Docker's units.HumanSize (4 significant digits)."""
    return human_size(value, 4)


def _confirmed(warning: str) -> bool:
    sys.stdout.write(f"{warning}\nAre you sure you want to continue? [y/N] ")
    sys.stdout.flush()
    return sys.stdin.readline().strip().lower() in ("y", "yes")


def _section(title: str, lines: list[str]) -> str:
    return f"{title}\n" + "".join(f"{line}\n" for line in lines) + "\n" if lines else ""


def _prune_containers(client: Client, filters: tuple[str, ...]) -> tuple[str, int]:
    report = client.post("/containers/prune", {"filters": parse_filters(filters)}) or {}
    deleted = report.get("ContainersDeleted") or []
    return _section("Deleted Containers:", deleted), report.get("SpaceReclaimed") or 0


def _prune_builder(
    client: Client, all_: bool, filters: tuple[str, ...], keep_storage: int = 0
) -> tuple[str, int]:
    query: dict[str, Any] = {"filters": parse_filters(filters)}
    if all_:
        query["all"] = 1
    if keep_storage:
        query["keep-storage"] = keep_storage
    report = client.post("/build/prune", query) or {}
    deleted = report.get("CachesDeleted") or []
    return _section("Deleted build cache objects:", deleted), report.get("SpaceReclaimed") or 0


@click.group(context_settings=_SETTINGS)
def container() -> None:
    """Manage containers."""


@container.command("prune", context_settings=_SETTINGS)
@click.option("-f", "--force", is_flag=True, help="Do not prompt for confirmation")
@click.option("--filter", "filters", multiple=True, help='Provide filter values (e.g. "until=<timestamp>")')
@click.pass_context
def container_prune(ctx: click.Context, force: bool, filters: tuple[str, ...]) -> int:
    """Remove all stopped containers."""
    if not force and not _confirmed("WARNING! This will remove all stopped containers."):
        return 0
    output, reclaimed = _prune_containers(client_of(ctx), filters)
    sys.stdout.write(f"{output}Total reclaimed space: {_size(reclaimed)}\n")
    return 0


@click.group(context_settings=_SETTINGS)
def builder() -> None:
    """Manage builds."""


@builder.command("prune", context_settings=_SETTINGS)
@click.option(
    "-a", "--all", "all_", is_flag=True, help="Remove all unused build cache, not just dangling ones"
)
@click.option("-f", "--force", is_flag=True, help="Do not prompt for confirmation")
@click.option("--filter", "filters", multiple=True, help='Provide filter values (e.g. "until=24h")')
@click.option("--keep-storage", default="0", help="Amount of disk space to keep for cache")
@click.pass_context
def builder_prune(
    ctx: click.Context, all_: bool, force: bool, filters: tuple[str, ...], keep_storage: str
) -> int:
    """Remove build cache."""
    from pyengine.cli.flag_values import parse_memory

    keep = parse_memory(keep_storage) if keep_storage not in ("", "0") else 0
    warning = (
        "WARNING! This will remove all build cache."
        if all_
        else "WARNING! This will remove all dangling build cache."
    )
    if not force and not _confirmed(warning):
        return 0
    output, reclaimed = _prune_builder(client_of(ctx), all_, filters, keep)
    sys.stdout.write(f"{output}Total reclaimed space: {_size(reclaimed)}\n")
    return 0


@click.group(context_settings=_SETTINGS)
def system() -> None:
    """Manage pyengine."""


@system.command("prune", context_settings=_SETTINGS)
@click.option("-a", "--all", "all_", is_flag=True, help="Remove all unused images not just dangling ones")
@click.option("-f", "--force", is_flag=True, help="Do not prompt for confirmation")
@click.option("--volumes", is_flag=True, help="Prune volumes")
@click.option("--filter", "filters", multiple=True, help='Provide filter values (e.g. "label=<key>=<value>")')
@click.pass_context
def system_prune(ctx: click.Context, all_: bool, force: bool, volumes: bool, filters: tuple[str, ...]) -> int:
    """Remove unused data."""
    if not force:
        items = ["all stopped containers", "all networks not used by at least one container"]
        if volumes:
            items.append("all volumes not used by at least one container")
        if all_:
            items += ["all images without at least one container associated to them", "all build cache"]
        else:
            items += ["all dangling images", "unused build cache"]
        warning = "WARNING! This will remove:\n" + "".join(f"  - {item}\n" for item in items)
        if not _confirmed(warning):
            return 0
    client = client_of(ctx)
    parts: list[str] = []
    total = 0
    output, reclaimed = _prune_containers(client, filters)
    parts.append(output)
    total += reclaimed
    networks = client.post("/networks/prune", {"filters": parse_filters(filters)}) or {}
    parts.append(_section("Deleted Networks:", networks.get("NetworksDeleted") or []))
    if volumes:
        report = client.post("/volumes/prune", {"filters": parse_filters(filters)}) or {}
        parts.append(_section("Deleted Volumes:", report.get("VolumesDeleted") or []))
        total += report.get("SpaceReclaimed") or 0
    image_filters = (*filters, f"dangling={'false' if all_ else 'true'}")
    report = client.post("/images/prune", {"filters": parse_filters(image_filters)}) or {}
    lines = []
    for item in report.get("ImagesDeleted") or []:
        if item.get("Untagged"):
            lines.append(f"untagged: {item['Untagged']}")
        if item.get("Deleted"):
            lines.append(f"deleted: {item['Deleted']}")
    parts.append(_section("Deleted Images:", lines))
    total += report.get("SpaceReclaimed") or 0
    output, reclaimed = _prune_builder(client, all_, filters)
    parts.append(output)
    total += reclaimed
    sys.stdout.write("".join(parts) + f"Total reclaimed space: {_size(total)}\n")
    return 0


def _reclaimable(reclaimable: int, total: int, percent: bool = True) -> str:
    if percent and total > 0:
        return f"{_size(reclaimable)} ({reclaimable * 100 // total}%)"
    return _size(reclaimable)


def summary_table(usage: dict[str, Any]) -> str:
    """``docker system df``'s TYPE TOTAL ACTIVE SIZE RECLAIMABLE table (the docker CLI's sums)."""
    images = usage.get("Images") or []
    layers = usage.get("LayersSize") or 0
    used = sum(
        i["Size"] - i["SharedSize"] for i in images if i.get("Containers") and i.get("SharedSize", -1) != -1
    )
    containers = usage.get("Containers") or []
    active = [c for c in containers if c.get("State") in _ACTIVE_STATES]
    rw = sum(c.get("SizeRw") or 0 for c in containers)
    rw_idle = sum(c.get("SizeRw") or 0 for c in containers if c.get("State") not in _ACTIVE_STATES)
    volumes = usage.get("Volumes") or []
    sizes = [(v["UsageData"]["Size"], v["UsageData"]["RefCount"]) for v in volumes if v.get("UsageData")]
    volume_size = sum(size for size, _refs in sizes if size > 0)
    volume_idle = sum(size for size, refs in sizes if size > 0 and refs == 0)
    cache = usage.get("BuildCache") or []
    cache_size = sum(c["Size"] for c in cache if not c.get("Shared"))
    cache_busy = sum(c["Size"] for c in cache if c.get("InUse") and not c.get("Shared"))
    rows = [
        (
            "Images",
            len(images),
            sum(1 for i in images if i.get("Containers")),
            layers,
            _reclaimable(layers - used, layers),
        ),
        ("Containers", len(containers), len(active), rw, _reclaimable(rw_idle, rw)),
        (
            "Local Volumes",
            len(volumes),
            sum(1 for _s, refs in sizes if refs > 0),
            volume_size,
            _reclaimable(volume_idle, volume_size),
        ),
        (
            "Build Cache",
            len(cache),
            sum(1 for c in cache if c.get("InUse")),
            cache_size,
            _reclaimable(cache_size - cache_busy, cache_size, percent=False),
        ),
    ]
    text = "TYPE\tTOTAL\tACTIVE\tSIZE\tRECLAIMABLE\n" + "".join(
        f"{kind}\t{total}\t{active_count}\t{_size(size)}\t{reclaim}\n"
        for kind, total, active_count, size, reclaim in rows
    )
    return align(text)


def _created(value: Any) -> str:
    seconds = value if isinstance(value, (int, float)) else parse_rfc3339(value) if value else time.time()
    return since(seconds)


def verbose_tables(usage: dict[str, Any]) -> str:
    """``docker system df -v``: one table per kind."""
    out = ["Images space usage:\n\n"]
    rows = "REPOSITORY\tTAG\tIMAGE ID\tCREATED\tSIZE\tSHARED SIZE\tUNIQUE SIZE\tCONTAINERS\n"
    for image in usage.get("Images") or []:
        short = image["Id"].removeprefix("sha256:")[:12]
        shared = image.get("SharedSize", -1)
        for tag in image.get("RepoTags") or ["<none>:<none>"]:
            repo, _, name = tag.rpartition(":")
            rows += (
                f"{repo}\t{name}\t{short}\t{_created(image['Created'])}\t{human_size(image['Size'])}\t"
                f"{_size(shared)}\t{_size(image['Size'] - shared)}\t{image.get('Containers', 0)}\n"
            )
    out.append(align(rows) + "\nContainers space usage:\n\n")
    rows = "CONTAINER ID\tIMAGE\tCOMMAND\tLOCAL VOLUMES\tSIZE\tCREATED\tSTATUS\tNAMES\n"
    for item in usage.get("Containers") or []:
        volumes = sum(1 for m in item.get("Mounts") or [] if m.get("Type") == "volume")
        command = item.get("Command", "")
        command = f'"{command[:19]}…"' if len(command) > 20 else f'"{command}"'
        rows += (
            f"{item['Id'][:12]}\t{item.get('Image', '')}\t{command}\t{volumes}\t"
            f"{_size(item.get('SizeRw') or 0)}\t"
            f"{_created(item['Created'])}\t{item.get('Status', '')}\t{(item.get('Names') or ['/'])[0][1:]}\n"
        )
    out.append(align(rows) + "\nLocal Volumes space usage:\n\n")
    rows = "VOLUME NAME\tLINKS\tSIZE\n"
    for volume in usage.get("Volumes") or []:
        data = volume.get("UsageData") or {"Size": -1, "RefCount": 0}
        size = "N/A" if data["Size"] < 0 else _size(data["Size"])
        rows += f"{volume['Name']}\t{data['RefCount']}\t{size}\n"
    cache = usage.get("BuildCache") or []
    cache_size = sum(c["Size"] for c in cache if not c.get("Shared"))
    out.append(align(rows) + f"\nBuild cache usage: {_size(cache_size)}\n\n")
    rows = "CACHE ID\tCACHE TYPE\tSIZE\tCREATED\tLAST USED\tUSAGE\tSHARED\n"
    for entry in cache:
        last = _created(entry["LastUsedAt"]) if entry.get("LastUsedAt") else ""
        rows += (
            f"{entry['ID'][:12]}\t{entry.get('Type', '')}\t{human_size(entry['Size'])}\t"
            f"{_created(entry['CreatedAt'])}\t"
            f"{last}\t{entry.get('UsageCount', 0)}\t{str(bool(entry.get('Shared'))).lower()}\n"
        )
    out.append(align(rows))
    return "".join(out)


@system.command("df", context_settings=_SETTINGS)
@click.option("-v", "--verbose", is_flag=True, help="Show detailed information on space usage")
@click.pass_context
def system_df(ctx: click.Context, verbose: bool) -> int:
    """Show pyengine disk usage."""
    usage = client_of(ctx).get("/system/df") or {}
    sys.stdout.write(verbose_tables(usage) if verbose else summary_table(usage))
    return 0
