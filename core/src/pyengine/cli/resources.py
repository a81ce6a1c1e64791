"""Commands on a running container's cgroup: stats, top, pause, unpause, update."""

from __future__ import annotations

import sys
import time
from typing import Any

import click

from pyengine.cli.app import client_of
from pyengine.cli.client import APIError, Client
from pyengine.cli.containers import call, for_each
from pyengine.cli.flag_values import OptionError, parse_memory, parse_restart
from pyengine.cli.session import CommandError
from pyengine.cli.tabwriter import align

_SETTINGS = {"help_option_names": ["--help"]}


@click.command(context_settings=_SETTINGS)
@click.argument("containers", nargs=-1, required=True)
@click.pass_context
def pause(ctx: click.Context, containers: tuple[str, ...]) -> int:
    """Pause all processes within one or more containers."""
    client = client_of(ctx)
    return for_each(containers, lambda name: call(client, "POST", f"/containers/{name}/pause"))


@click.command(context_settings=_SETTINGS)
@click.argument("containers", nargs=-1, required=True)
@click.pass_context
def unpause(ctx: click.Context, containers: tuple[str, ...]) -> int:
    """Unpause all processes within one or more containers."""
    client = client_of(ctx)
    return for_each(containers, lambda name: call(client, "POST", f"/containers/{name}/unpause"))


@click.command(context_settings={**_SETTINGS, "ignore_unknown_options": True})
@click.argument("container")
@click.argument("ps_args", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def top(ctx: click.Context, container: str, ps_args: tuple[str, ...]) -> int:
    """Display the running processes of a container."""
    query = {"ps_args": " ".join(ps_args)} if ps_args else None
    result = client_of(ctx).get(f"/containers/{container}/top", query)
    lines = ["\t".join(result["Titles"])]
    lines += ["\t".join(row) for row in result["Processes"]]
    sys.stdout.write(align("\n".join(lines) + "\n", padding=3))
    return 0


@click.command(context_settings=_SETTINGS)
@click.option("-m", "--memory", help="Memory limit")
@click.option("--memory-swap", help="Swap limit equal to memory plus swap: -1 to enable unlimited swap")
@click.option("--memory-reservation", help="Memory soft limit")
@click.option("--cpus", help="Number of CPUs")
@click.option("-c", "--cpu-shares", type=int, help="CPU shares (relative weight)")
@click.option("--cpu-period", type=int, help="Limit CPU CFS period")
@click.option("--cpu-quota", type=int, help="Limit CPU CFS quota")
@click.option("--cpuset-cpus", help="CPUs in which to allow execution (0-3, 0,1)")
@click.option("--cpuset-mems", help="MEMs in which to allow execution (0-3, 0,1)")
@click.option("--pids-limit", type=int, help="Tune container pids limit (set -1 for unlimited)")
@click.option("--blkio-weight", type=int, help="Block IO (relative weight), between 10 and 1000")
@click.option("--restart", help="Restart policy to apply when a container exits")
@click.argument("containers", nargs=-1, required=True)
@click.pass_context
def update(ctx: click.Context, containers: tuple[str, ...], **flags: Any) -> int:
    """Update configuration of one or more containers."""
    body: dict[str, Any] = {}
    try:
        if flags["memory"]:
            body["Memory"] = parse_memory(flags["memory"])
        if flags["memory_swap"]:
            swap = flags["memory_swap"].strip()
            body["MemorySwap"] = -1 if swap == "-1" else parse_memory(swap)
        if flags["memory_reservation"]:
            body["MemoryReservation"] = parse_memory(flags["memory_reservation"])
        if flags["cpus"]:
            try:
                body["NanoCpus"] = int(round(float(flags["cpus"]) * 1e9))
            except ValueError:
                raise OptionError(f'invalid argument "{flags["cpus"]}" for "--cpus" flag') from None
        if flags["restart"]:
            body["RestartPolicy"] = parse_restart(flags["restart"])
    except OptionError as exc:
        raise CommandError(f"pyengine: {exc}", 125) from None
    for key, field in (
        ("cpu_shares", "CpuShares"),
        ("cpu_period", "CpuPeriod"),
        ("cpu_quota", "CpuQuota"),
        ("pids_limit", "PidsLimit"),
        ("blkio_weight", "BlkioWeight"),
        ("cpuset_cpus", "CpusetCpus"),
        ("cpuset_mems", "CpusetMems"),
    ):
        if flags[key] is not None:
            body[field] = flags[key]
    if not body:
        raise CommandError("pyengine: you must provide one or more flags when using this command", 1)
    client = client_of(ctx)
    return for_each(containers, lambda name: client.post(f"/containers/{name}/update", body=body) and None)


# ---- stats -----------------------------------------------------------------------------------------
def binary_size(size: float) -> str:
    """go-units BytesSize: 1.5MiB, 512KiB (four significant digits at most, as docker stats)."""
    units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"]
    index = 0
    while size >= 1024 and index < len(units) - 1:
        size /= 1024
        index += 1
    return f"{size:.4g}{units[index]}"


def decimal_size(size: float) -> str:
    """go-units HumanSizeWithPrecision(size, 3): 1.2kB, 34MB."""
    units = ["B", "kB", "MB", "GB", "TB", "PB"]
    index = 0
    while size >= 1000 and index < len(units) - 1:
        size /= 1000
        index += 1
    return f"{size:.3g}{units[index]}"


def cpu_percent(doc: dict[str, Any]) -> float:
    """docker's calculateCPUPercentUnix: container delta / system delta x online cpus x 100."""
    cpu, pre = doc.get("cpu_stats") or {}, doc.get("precpu_stats") or {}
    container_delta = (cpu.get("cpu_usage") or {}).get("total_usage", 0) - (pre.get("cpu_usage") or {}).get(
        "total_usage", 0
    )
    system_delta = cpu.get("system_cpu_usage", 0) - pre.get("system_cpu_usage", 0)
    cpus = cpu.get("online_cpus") or len((cpu.get("cpu_usage") or {}).get("percpu_usage") or []) or 1
    if container_delta > 0 and system_delta > 0:
        return container_delta / system_delta * cpus * 100.0
    return 0.0


def memory_usage(memory: dict[str, Any]) -> int:
    """Usage without the page cache that can be dropped, as docker stats shows it (v1 and v2 names)."""
    stats = memory.get("stats") or {}
    usage = memory.get("usage", 0)
    for key in ("total_inactive_file", "inactive_file"):
        if key in stats and stats[key] < usage:
            return usage - stats[key]
    return usage


def stats_row(doc: dict[str, Any]) -> str:
    memory = doc.get("memory_stats") or {}
    usage, limit = memory_usage(memory), memory.get("limit", 0)
    received = sum(n.get("rx_bytes", 0) for n in (doc.get("networks") or {}).values())
    sent = sum(n.get("tx_bytes", 0) for n in (doc.get("networks") or {}).values())
    blkio = (doc.get("blkio_stats") or {}).get("io_service_bytes_recursive") or []
    read = sum(e["value"] for e in blkio if e.get("op", "").lower() == "read")
    written = sum(e["value"] for e in blkio if e.get("op", "").lower() == "write")
    return "\t".join(
        [
            doc.get("id", "")[:12],
            (doc.get("name") or "").lstrip("/"),
            f"{cpu_percent(doc):.2f}%",
            f"{binary_size(usage)} / {binary_size(limit)}",
            f"{usage / limit * 100 if limit else 0:.2f}%",
            f"{decimal_size(received)} / {decimal_size(sent)}",
            f"{decimal_size(read)} / {decimal_size(written)}",
            str((doc.get("pids_stats") or {}).get("current", 0)),
        ]
    )


STATS_HEADER = "CONTAINER ID\tNAME\tCPU %\tMEM USAGE / LIMIT\tMEM %\tNET I/O\tBLOCK I/O\tPIDS"


def _table(docs: list[dict[str, Any]]) -> str:
    return align("\n".join([STATS_HEADER, *(stats_row(doc) for doc in docs)]) + "\n", padding=3)


@click.command(context_settings=_SETTINGS)
@click.option("-a", "--all", "all_", is_flag=True, help="Show all containers (default shows just running)")
@click.option("--no-stream", is_flag=True, help="Disable streaming stats and only pull the first result")
@click.argument("containers", nargs=-1)
@click.pass_context
def stats(ctx: click.Context, all_: bool, no_stream: bool, containers: tuple[str, ...]) -> int:
    """Display a live stream of container(s) resource usage statistics."""
    client = client_of(ctx)
    names = list(containers) or [
        c["Id"] for c in client.get("/containers/json", {"all": "1" if all_ else "0"})
    ]
    if no_stream:
        docs, failed = _collect(client, names, {"stream": "0"})
        sys.stdout.write(_table(docs))
        return 1 if failed else 0
    previous: dict[str, dict[str, Any]] = {}
    while True:
        docs, failed = _collect(client, names, {"stream": "0", "one-shot": "1"})
        for doc in docs:
            before = previous.get(doc["id"])
            if before is not None:
                doc["precpu_stats"] = before["cpu_stats"]
            previous[doc["id"]] = doc
        sys.stdout.write("\033[2J\033[H" + _table(docs))
        sys.stdout.flush()
        if failed and not docs:
            return 1
        time.sleep(1)


def _collect(client: Client, names: list[str], query: dict[str, str]) -> tuple[list[dict[str, Any]], bool]:
    docs, failed = [], False
    for name in names:
        try:
            docs.append(client.get(f"/containers/{name}/stats", query))
        except APIError as exc:
            print(f"Error response from daemon: {exc.message}", file=sys.stderr)
            failed = True
    return docs, failed
