"""`run --rm busybox true`, side by side: pyengine's CLI, the docker CLI on pyengine, and Docker.

    python bench/run_rm.py [-n 30] [--warmup 3] [--pyengine "python -m pyengine"] [--json FILE]

Every side runs the same command shape, ``<client> -H unix://SOCK run --rm --network none busybox
true``, round-robin (the order rotates every round) so that drift on the machine hits all sides
alike. Prints median and p90 per side and the ratios to Docker. Exits 1 only on an error (a daemon
that does not start, a run that fails); a ratio above the bar is reported, never asserted.
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

from pyengine.testing import engine_api
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

BAR = 0.5  # issue 2: pyengine's median at most half of Docker's
GOAL = 0.3


def time_one_run(side: Side) -> float | None:
    """Seconds one `run --rm busybox true` took; None (and side.error set) if it failed."""
    command = side.run_command("--rm", "busybox", "true")
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


def measure(sides: list[Side], runs: int, warmup: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {side.name: [] for side in sides}
    for round_number in range(warmup + runs):
        shift = round_number % len(sides)
        for side in sides[shift:] + sides[:shift]:
            if side.error:
                continue
            elapsed = time_one_run(side)
            if elapsed is not None and round_number >= warmup:
                times[side.name].append(elapsed)
    return times


def check_nothing_left(sides: list[Side]) -> None:
    """`run --rm` must leave no container behind; a leftover is noted on the side."""
    for side in sides:
        if side.error:
            continue
        try:
            left = engine_api.list_containers(side.socket)
        except Exception as exc:
            side.notes.append(f"could not list containers afterwards: {exc}")
            continue
        if left:
            side.notes.append(f"{len(left)} container(s) left behind after `run --rm`")


def report(sides: list[Side], times: dict[str, list[float]], facts: dict, args: argparse.Namespace) -> dict:
    summaries = {side.name: summarize(times[side.name]) for side in sides}
    docker = summaries.get(DOCKER, {})
    ratios = {
        f"{name}/docker": {key: ratio(summaries[name], docker, key) for key in ("median", "p90")}
        for name in (PYENGINE, DOCKER_CLI_ON_PYENGINE)
        if name in summaries
    }
    print(f"\n`run --rm busybox true`: {args.runs} runs per side after {args.warmup} warm-up runs")
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
    bars = {}
    for name in (PYENGINE, DOCKER_CLI_ON_PYENGINE):
        value = ratios.get(f"{name}/docker", {}).get("median")
        if value is not None:
            bars[name] = {
                "median_ratio": value,
                "bar": BAR,
                "goal": GOAL,
                "meets_bar": value <= BAR,
                "meets_goal": value <= GOAL,
            }
            verdict = (
                "meets the goal" if value <= GOAL else "meets the bar" if value <= BAR else "misses the bar"
            )
            print(f"\n{name}: median {value:.2f}x Docker's; bar {BAR}x, goal {GOAL}x: {verdict}")
    for side in sides:
        for note in side.notes:
            print(f"note: {side.name}: {note}")
        if side.error:
            print(f"error: {side.name}: {side.error}")
    for note in facts.get("notes", []):
        print(f"note: {note}")
    return {
        "benchmark": "run --rm busybox true",
        "runs": args.runs,
        "warmup": args.warmup,
        "facts": facts,
        "sides": {
            side.name: {
                "command": side.run_command("--rm", "busybox", "true"),
                "times": times[side.name],
                "summary": summaries[side.name],
                "notes": side.notes,
                "error": side.error,
            }
            for side in sides
        },
        "ratios": ratios,
        "bars": bars,
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
            times = measure(sides, args.runs, args.warmup)
            check_nothing_left(sides)
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
