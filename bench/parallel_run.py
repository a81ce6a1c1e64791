"""50 x `run -d busybox sleep 60` at once: how long until all are running, side by side.

    python bench/parallel_run.py [-c 50] [-r 3] [--pyengine "python -m pyengine"] [--json FILE]

For each side and repetition, the CLIs are started together (``<client> -H unix://SOCK run -d
--network none busybox sleep 60``) and the daemon's ``GET /containers/json`` is polled until every
container is ``running``; the clock stops there. Every container is force-removed after each
repetition (each daemon is private, so "all containers" are the benchmark's). Exits 1 only on an
error; ratios are reported, never asserted.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `bench` importable from the repository root
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pyengine.testing import engine_api

from bench.sides import (
    DOCKER,
    Side,
    add_side_options,
    exit_cleanly_on_sigterm,
    print_table,
    seconds,
    started_sides,
    times_x,
)

POLL_INTERVAL = 0.05


class RunFailed(Exception):
    pass


def count_running(socket_path: str) -> int:
    return sum(1 for c in engine_api.list_containers(socket_path) if c.get("State") == "running")


def one_repetition(side: Side, containers: int, timeout: float) -> tuple[float, float]:
    """Start the containers at once; return (seconds until all running, seconds until all CLIs exited)."""
    command = side.run_command("-d", "busybox", "sleep", "60")
    start = time.perf_counter()
    clis = [
        subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(containers)
    ]
    all_running = clis_done = None
    try:
        while all_running is None or clis_done is None:
            now = time.perf_counter() - start
            if now > timeout:
                raise RunFailed(f"not all {containers} containers running after {timeout:.0f} s")
            if clis_done is None and all(cli.poll() is not None for cli in clis):
                clis_done = now
                failed = [cli for cli in clis if cli.returncode != 0]
                if failed:
                    stderr = failed[0].stderr.read().decode(errors="replace").strip()[-500:]
                    raise RunFailed(f"{len(failed)} of `{' '.join(command)}` failed; first: {stderr}")
            if all_running is None and count_running(side.socket) >= containers:
                all_running = time.perf_counter() - start
            time.sleep(POLL_INTERVAL)
    finally:
        for cli in clis:
            if cli.poll() is None:
                cli.kill()
            cli.communicate()
    return all_running, clis_done


def remove_everything(side: Side, timeout: float = 120.0) -> None:
    errors = engine_api.remove_all_containers(side.socket, timeout=timeout)
    if errors:
        raise RunFailed("cleaning up: " + "; ".join(errors[:3]))
    deadline = time.monotonic() + timeout
    while engine_api.list_containers(side.socket):
        if time.monotonic() > deadline:
            raise RunFailed(f"containers still listed {timeout:.0f} s after removing them")
        time.sleep(0.1)


def measure(sides: list[Side], args: argparse.Namespace) -> dict[str, dict]:
    """Repetitions interleaved across sides (order rotating), so drift on the machine hits all alike."""
    running: dict[str, list[float]] = {side.name: [] for side in sides}
    exited: dict[str, list[float]] = {side.name: [] for side in sides}
    for repetition in range(args.repetitions):
        shift = repetition % len(sides)
        for side in sides[shift:] + sides[:shift]:
            if side.error:
                continue
            try:
                try:
                    all_running, clis_done = one_repetition(side, args.containers, args.timeout)
                finally:
                    remove_everything(side)
            except (RunFailed, OSError, engine_api.EngineAPIError) as exc:
                side.error = str(exc)
                continue
            running[side.name].append(all_running)
            exited[side.name].append(clis_done)
    return {
        side.name: {
            "command": side.run_command("-d", "busybox", "sleep", "60"),
            "all_running": running[side.name],
            "clis_exited": exited[side.name],
            "median_all_running": statistics.median(running[side.name]) if running[side.name] else None,
            "median_clis_exited": statistics.median(exited[side.name]) if exited[side.name] else None,
            "error": side.error,
        }
        for side in sides
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-c", "--containers", type=int, default=50, help="containers started at once (50)")
    parser.add_argument("-r", "--repetitions", type=int, default=3, help="repetitions per side (3)")
    parser.add_argument("--timeout", type=float, default=180.0, help="seconds one repetition may take (180)")
    parser.add_argument("--json", type=Path, help="also save the results to this file")
    add_side_options(parser)
    args = parser.parse_args(argv)
    exit_cleanly_on_sigterm()
    results: dict[str, dict] = {}
    try:
        with started_sides(args) as (sides, facts):
            results = measure(sides, args)
    except Exception as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    docker = results.get(DOCKER, {}).get("median_all_running")
    print(f"\n{args.containers} x `run -d busybox sleep 60` at once, {args.repetitions} repetitions per side")
    for key in ("docker_version", "pyengine_version"):
        if key in facts:
            print(f"  {key.replace('_', ' ')}: {facts[key]}")
    rows = [("side", "all running (median)", "min", "CLIs exited (median)", "running/docker")]
    for name, result in results.items():
        median = result["median_all_running"]
        rows.append(
            (
                name,
                seconds(median),
                seconds(min(result["all_running"]) if result["all_running"] else None),
                seconds(result["median_clis_exited"]),
                times_x(median / docker if median is not None and docker else None),
            )
        )
        result["ratio_to_docker"] = median / docker if median is not None and docker else None
    print()
    print_table(rows)
    for name, result in results.items():
        if result["error"]:
            print(f"error: {name}: {result['error']}")
    for note in facts.get("notes", []):
        print(f"note: {note}")
    if args.json:
        payload = {
            "benchmark": "parallel run -d",
            "containers": args.containers,
            "facts": facts,
            "sides": results,
        }
        args.json.write_text(json.dumps(payload, indent=2) + "\n")
        print(f"\nresults saved to {args.json}")
    return 1 if any(result["error"] for result in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
