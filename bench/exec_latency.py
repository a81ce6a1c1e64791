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
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `bench` importable from the repository root
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.sides import (
    Side,
    add_side_options,
    exit_cleanly_on_sigterm,
    measure_round_robin,
    report_latencies,
    started_sides,
    time_command,
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


def report(sides: list[Side], times: dict[str, list[float]], facts: dict, args: argparse.Namespace) -> dict:
    title = f"`exec <container> true`: {args.runs} runs per side after {args.warmup} warm-up runs"
    summaries, ratios = report_latencies(title, sides, times, facts)
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
                for side in sides:
                    if side.name not in targets and not side.error:
                        side.error = "its target container did not start"
                times = measure_round_robin(
                    sides,
                    lambda side: time_command(side, [*side.client, "exec", targets[side.name], "true"]),
                    args.runs,
                    args.warmup,
                )
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
