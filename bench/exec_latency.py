"""`exec <container> true` latency, side by side: pyengine's CLI, the docker CLI on pyengine, and Docker.

    python bench/exec_latency.py [-n 30] [--warmup 3] [--pyengine "python -m pyengine"] [--json FILE]

Each side starts one idle container (``run -d --network none busybox sleep 3600``), then times
``<client> -H unix://SOCK exec <it> true`` round-robin (the order rotates every round), client start
to client exit: create, the hijacked start, joining the container, exec, exit code. Prints median
and p90 per side and the ratios to Docker; never asserts them. The containers are removed at the end.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `bench` importable from the repository root
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.sides import (
    DOCKER,
    DOCKER_CLI_ON_PYENGINE,
    PYENGINE,
    Side,
    add_side_options,
    exit_cleanly_on_sigterm,
    print_table,
    ratio,
    seconds,
    started_sides,
    summarize,
    times_x,
)

CONTAINER = "bench-exec-target"


def start_target(side: Side) -> str | None:
    """Start the side's idle container; its id, or None (and side.error set)."""
    command = side.run_command("-d", "--name", f"{CONTAINER}-{side.name}", "busybox", "sleep", "3600")
    result = subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True, text=True)
    if result.returncode != 0:
        side.error = f"`{' '.join(command)}` exited {result.returncode}: {result.stderr.strip()[-500:]}"
        return None
    return result.stdout.strip()


def remove_target(side: Side, container: str) -> None:
    subprocess.run([*side.client, "rm", "-f", container], stdin=subprocess.DEVNULL, capture_output=True)


def time_one_exec(side: Side, container: str) -> float | None:
    command = [*side.client, "exec", container, "true"]
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


def measure(sides: list[Side], targets: dict[str, str], runs: int, warmup: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {side.name: [] for side in sides}
    for round_number in range(warmup + runs):
        shift = round_number % len(sides)
        for side in sides[shift:] + sides[:shift]:
            if side.error or side.name not in targets:
                continue
            elapsed = time_one_exec(side, targets[side.name])
            if elapsed is not None and round_number >= warmup:
                times[side.name].append(elapsed)
    return times


def report(sides: list[Side], times: dict[str, list[float]], facts: dict, args: argparse.Namespace) -> dict:
    summaries = {side.name: summarize(times[side.name]) for side in sides}
    docker = summaries.get(DOCKER, {})
    ratios = {
        f"{name}/docker": {key: ratio(summaries[name], docker, key) for key in ("median", "p90")}
        for name in (PYENGINE, DOCKER_CLI_ON_PYENGINE)
        if name in summaries
    }
    print(f"\n`exec <container> true`: {args.runs} runs per side after {args.warmup} warm-up runs")
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
    return {
        "benchmark": "exec <container> true",
        "runs": args.runs,
        "warmup": args.warmup,
        "facts": facts,
        "sides": {
            side.name: {"times": times[side.name], "summary": summaries[side.name], "error": side.error}
            for side in sides
        },
        "ratios": ratios,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", "--runs", type=int, default=30, help="measured runs per side (default 30)")
    parser.add_argument("--warmup", type=int, default=3, help="unmeasured runs per side first (default 3)")
    parser.add_argument("--json", type=Path, help="also save the results (with every time) to this file")
    add_side_options(parser)
    args = parser.parse_args(argv)
    exit_cleanly_on_sigterm()
    if args.runs < 1 or args.warmup < 0:
        parser.error("--runs must be at least 1 and --warmup at least 0")
    try:
        with started_sides(args) as (sides, facts):
            if not sides:
                print("nothing to measure")
                return 0
            targets: dict[str, str] = {}
            # The two pyengine sides share a daemon, but each gets its own container all the same.
            try:
                for side in sides:
                    container = start_target(side)
                    if container is not None:
                        targets[side.name] = container
                times = measure(sides, targets, args.runs, args.warmup)
            finally:
                for side in sides:
                    if side.name in targets:
                        remove_target(side, targets[side.name])
    except Exception as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    results = report(sides, times, facts, args)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
        print(f"\nresults saved to {args.json}")
    return 1 if any(side.error for side in sides) else 0


if __name__ == "__main__":
    sys.exit(main())
