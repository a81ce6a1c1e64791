"""The three sides every benchmark compares, started together and torn down together.

- ``pyengine``: pyengine's own CLI against a pyengine daemon started for the benchmark;
- ``docker-cli-on-pyengine``: the real docker CLI against that same daemon;
- ``docker``: the docker CLI against a private dockerd (skipped with a note if not installed).

Both daemons get the busybox image imported from scripts/make-busybox-rootfs.sh, so nothing comes
from a registry.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field

from pyengine.testing import daemon as pyengine_daemon
from pyengine.testing import dockerd, engine_api

PYENGINE = "pyengine"
DOCKER_CLI_ON_PYENGINE = "docker-cli-on-pyengine"
DOCKER = "docker"
ALL_SIDES = (PYENGINE, DOCKER_CLI_ON_PYENGINE, DOCKER)


@dataclass
class Side:
    """One way of running a command: a client (with its -H) talking to one daemon."""

    name: str
    client: tuple[str, ...]  # the client command up to and including "-H unix://SOCK"
    socket: str
    network_args: tuple[str, ...]  # e.g. ("--network", "none") for `run`
    error: str | None = None  # set once a run failed; the side is then left out
    notes: list[str] = field(default_factory=list)

    def run_command(self, *run_args: str) -> list[str]:
        """``<client> run <network args> <run_args>`` (network args go before the image)."""
        return [*self.client, "run", *self.network_args, *run_args]


def add_side_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--pyengine",
        default="pyengine",
        help='pyengine\'s command, e.g. "python -m pyengine" (default: pyengine)',
    )
    parser.add_argument("--docker-cli", default="docker", help="the docker CLI (default: docker)")
    parser.add_argument(
        "--storage-driver", default=None, help="pyengine daemon's --storage-driver (default: its own choice)"
    )
    parser.add_argument(
        "--network",
        default="none",
        help="--network given to every `run` (default: none; the private dockerd has no bridge). "
        "An empty value leaves the flag out.",
    )
    parser.add_argument(
        "--pyengine-network",
        default=None,
        help="--network for pyengine's own CLI if it must differ (default: same as --network)",
    )
    parser.add_argument(
        "--sides",
        default=",".join(ALL_SIDES),
        help=f"comma-separated subset of {','.join(ALL_SIDES)} (default: all)",
    )


def exit_cleanly_on_sigterm() -> None:
    """Turn SIGTERM into SystemExit, so the daemons' teardown runs as it does on Ctrl-C."""
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))


def _network_args(mode: str | None) -> tuple[str, ...]:
    return ("--network", mode) if mode else ()


@contextmanager
def started_sides(args: argparse.Namespace) -> Iterator[tuple[list[Side], dict]]:
    """Start the daemons the chosen sides need, import busybox into each, and yield
    (sides, facts) where facts describes the machine and versions for the report.

    A side that cannot start raises (an error); Docker missing is a note, not an error.
    """
    wanted = [name.strip() for name in args.sides.split(",") if name.strip()]
    unknown = set(wanted) - set(ALL_SIDES)
    if unknown:
        raise SystemExit(f"unknown side(s): {', '.join(sorted(unknown))}; choose from {', '.join(ALL_SIDES)}")
    docker_cli = tuple(pyengine_daemon.split_command(args.docker_cli))
    pyengine_cli = pyengine_daemon.split_command(args.pyengine)
    network = _network_args(args.network)
    pyengine_network = _network_args(args.network if args.pyengine_network is None else args.pyengine_network)
    facts: dict = {
        "kernel": platform.release(),
        "cpus": _cpu_count(),
        "python": sys.version.split()[0],
        "notes": [],
    }
    if shutil.which(docker_cli[0]) is None:
        raise SystemExit(f"the docker CLI ({docker_cli[0]}) is not installed; it is needed for two sides")
    sides: list[Side] = []
    with ExitStack() as stack:
        workdir = stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-"))
        rootfs = dockerd.make_busybox_rootfs(f"{workdir}/busybox-rootfs.tar")
        if PYENGINE in wanted or DOCKER_CLI_ON_PYENGINE in wanted:
            engine = stack.enter_context(
                pyengine_daemon.pyengine_daemon(pyengine_cli, storage_driver=args.storage_driver)
            )
            dockerd.load_busybox_image(engine.socket, rootfs, docker_cli=pyengine_cli)
            facts["pyengine_version"] = _server_version(engine.socket)
            facts["pyengine_command"] = list(pyengine_cli)
            if PYENGINE in wanted:
                sides.append(
                    Side(PYENGINE, (*pyengine_cli, "-H", engine.host), engine.socket, pyengine_network)
                )
            if DOCKER_CLI_ON_PYENGINE in wanted:
                sides.append(
                    Side(DOCKER_CLI_ON_PYENGINE, (*docker_cli, "-H", engine.host), engine.socket, network)
                )
        if DOCKER in wanted:
            if dockerd.dockerd_available():
                docker = stack.enter_context(dockerd.private_dockerd())
                dockerd.load_busybox_image(docker.socket, rootfs, docker_cli=docker_cli)
                facts["docker_version"] = _server_version(docker.socket)
                sides.append(Side(DOCKER, (*docker_cli, "-H", docker.host), docker.socket, network))
            else:
                note = f"Docker side skipped: {dockerd.DOCKERD} or containerd is not installed"
                print(note)
                facts["notes"].append(note)
        yield sides, facts


def _server_version(socket_path: str) -> str:
    try:
        return str(engine_api.request(socket_path, "GET", "/version").get("Version", "?"))
    except Exception as exc:  # a version is nice to report, never worth failing the benchmark for
        return f"unknown ({exc})"


def _cpu_count() -> int:
    return len(os.sched_getaffinity(0))


def summarize(times: Sequence[float]) -> dict:
    """median, p90 (inclusive quantiles), min, max and mean of seconds; empty dict for no times."""
    if not times:
        return {}
    p90 = statistics.quantiles(times, n=10, method="inclusive")[8] if len(times) > 1 else times[0]
    return {
        "n": len(times),
        "median": statistics.median(times),
        "p90": p90,
        "min": min(times),
        "max": max(times),
        "mean": statistics.fmean(times),
    }


def ratio(numerator: dict, denominator: dict, key: str) -> float | None:
    if numerator.get(key) is None or not denominator.get(key):
        return None
    return numerator[key] / denominator[key]


def print_table(rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for number, row in enumerate(rows):
        print(
            "  ".join(
                cell.rjust(width) if i else cell.ljust(width)
                for i, (cell, width) in enumerate(zip(row, widths, strict=True))
            )
        )
        if number == 0:
            print("  ".join("-" * width for width in widths))


def seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f} s"


def times_x(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def time_command(side: Side, command: list[str]) -> float | None:
    """Seconds ``command`` took, client start to exit; None (and side.error set) if it failed."""
    start = time.perf_counter()
    result = subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        side.error = (
            f"`{' '.join(command)}` exited {result.returncode}: "
            + result.stderr.decode(errors="replace").strip()[-500:]
        )
        return None
    return elapsed


def measure_round_robin(
    sides: list[Side], time_one: Callable[[Side], float | None], runs: int, warmup: int
) -> dict[str, list[float]]:
    """``time_one(side)`` ``warmup + runs`` times per side, the order of the sides rotating every round
    so that drift on the machine hits all sides alike; the times after the warm-up, by side name.
    A side whose run failed (side.error set) is left out from then on."""
    times: dict[str, list[float]] = {side.name: [] for side in sides}
    for round_number in range(warmup + runs):
        shift = round_number % len(sides)
        for side in sides[shift:] + sides[:shift]:
            if side.error:
                continue
            elapsed = time_one(side)
            if elapsed is not None and round_number >= warmup:
                times[side.name].append(elapsed)
    return times


def report_latencies(
    title: str, sides: list[Side], times: dict[str, list[float]], facts: dict
) -> tuple[dict[str, dict], dict[str, dict]]:
    """Print the per-side median/p90/min/max table with the ratios to Docker, then every note and
    error; return (summaries by side, ratios by "<side>/docker")."""
    summaries = {side.name: summarize(times[side.name]) for side in sides}
    docker = summaries.get(DOCKER, {})
    ratios = {
        f"{name}/docker": {key: ratio(summaries[name], docker, key) for key in ("median", "p90")}
        for name in (PYENGINE, DOCKER_CLI_ON_PYENGINE)
        if name in summaries
    }
    print(f"\n{title}")
    for key in ("docker_version", "pyengine_version"):
        if key in facts:
            print(f"  {key.replace('_', ' ')}: {facts[key]}")
    rows = [("side", "median", "p90", "min", "max", "median/docker", "p90/docker")]
    for side in sides:
        summary = summaries[side.name]
        to_docker = ratios.get(f"{side.name}/docker", {})
        rows.append(
            (
                side.name,
                seconds(summary.get("median")),
                seconds(summary.get("p90")),
                seconds(summary.get("min")),
                seconds(summary.get("max")),
                times_x(to_docker.get("median")) if side.name != DOCKER else "1.00x",
                times_x(to_docker.get("p90")) if side.name != DOCKER else "1.00x",
            )
        )
    print()
    print_table(rows)
    for side in sides:
        for note in side.notes:
            print(f"note: {side.name}: {note}")
        if side.error:
            print(f"error: {side.name}: {side.error}")
    for note in facts.get("notes", []):
        print(f"note: {note}")
    return summaries, ratios
