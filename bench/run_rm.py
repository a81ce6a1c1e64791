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
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `bench` importable from the repository root
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pyengine.testing import engine_api

from bench.sides import (
    DOCKER_CLI_ON_PYENGINE,
    PYENGINE,
    Side,
    add_side_options,
    exit_cleanly_on_sigterm,
    measure_round_robin,
    report_latencies,
    started_sides,
    time_command,
)

BAR = 0.5  # issue 2: pyengine's median at most half of Docker's
GOAL = 0.3


def time_one_run(side: Side) -> float | None:
    """Seconds one `run --rm busybox true` took; None (and side.error set) if it failed."""
    return time_command(side, side.run_command("--rm", "busybox", "true"))


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
    title = f"`run --rm busybox true`: {args.runs} runs per side after {args.warmup} warm-up runs"
    summaries, ratios = report_latencies(title, sides, times, facts)
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
            times = measure_round_robin(sides, time_one_run, args.runs, args.warmup)
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
