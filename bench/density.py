"""Density: the memory the engine adds per idle container, pyengine vs Docker, in one run.

    python bench/density.py [-n 200] [--pyengine "python -m pyengine"] [--json FILE]

For each side: warm the daemon up (5 containers run and removed), read the engine's memory, start N
idle containers (``run -d --network none busybox sleep 3600``, 10 CLIs at a time), wait until all
run, let them settle, read the engine's memory again, and remove them. The per-container cost is
(after - before) / N.

"The engine" is every process of the side except the containers' own: for pyengine the daemon and
the supervisor (nothing else is per container); for Docker dockerd, containerd and one
containerd-shim-runc-v2 per container. They are found as the processes whose command line names the
side's private directory. Measured per process from /proc: PSS (shared pages split fairly between
the processes sharing them: the number that adds up), RSS (what ``ps`` shows), and kernel memory we
can attribute to a process: page tables (VmPTE) and kernel stacks (16 KiB per thread on x86-64).
Kernel memory not attributable to a process (pipe buffers, sockets, cgroup and namespace objects)
is not counted on either side. Ratios are printed, never asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `bench` importable from the repository root
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pyengine.testing import engine_api

from bench.sides import (
    DOCKER,
    PYENGINE,
    Side,
    add_side_options,
    exit_cleanly_on_sigterm,
    print_table,
    started_sides,
    times_x,
)

KERNEL_STACK = 16 * 1024
SETTLE_SECONDS = 3.0
PARALLEL_CLIS = 10


def engine_processes(side: Side) -> dict[int, str]:
    """pid -> short name of every process of the side that is not a container's own."""
    private_dir = os.path.dirname(side.socket)
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            raw = Path(f"/proc/{entry}/cmdline").read_bytes()
            cmdline = raw.replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if private_dir in cmdline and int(entry) != os.getpid():
            words = cmdline.split()
            name = os.path.basename(words[0]) if words else "?"
            if "pyengine.supervisor" in cmdline:
                name = "pyengine-supervisor"
            elif " daemon " in cmdline and "pyengine" in cmdline:
                name = "pyengine-daemon"
            found[int(entry)] = name
    return found


def process_memory(pid: int) -> dict[str, int]:
    """Bytes of PSS, RSS and attributable kernel memory of one process (zeros if it is gone)."""
    out = {"pss": 0, "rss": 0, "kernel": 0}
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                out["pss"] = int(line.split()[1]) * 1024
            elif line.startswith("Rss:"):
                out["rss"] = int(line.split()[1]) * 1024
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmPTE:"):
                out["kernel"] += int(line.split()[1]) * 1024
            elif line.startswith("Threads:"):
                out["kernel"] += int(line.split()[1]) * KERNEL_STACK
    except OSError:
        pass
    return out


def engine_memory(side: Side) -> dict:
    processes = engine_processes(side)
    totals = {"pss": 0, "rss": 0, "kernel": 0}
    names: dict[str, int] = {}
    for pid, name in processes.items():
        for key, value in process_memory(pid).items():
            totals[key] += value
        names[name] = names.get(name, 0) + 1
    return {**totals, "processes": len(processes), "by_name": names}


def run_containers(side: Side, count: int, timeout: float) -> None:
    command = side.run_command("-d", "busybox", "sleep", "3600")

    def one(_: int) -> str:
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
        return "" if result.returncode == 0 else result.stderr.strip()[-300:] or f"exit {result.returncode}"

    with ThreadPoolExecutor(PARALLEL_CLIS) as pool:
        errors = [error for error in pool.map(one, range(count)) if error]
    if errors:
        raise RuntimeError(f"{len(errors)} of {count} runs failed on {side.name}; first: {errors[0]}")
    deadline = time.monotonic() + timeout
    while sum(1 for c in engine_api.list_containers(side.socket) if c.get("State") == "running") < count:
        if time.monotonic() > deadline:
            raise RuntimeError(f"not all {count} containers running on {side.name} after {timeout:.0f} s")
        time.sleep(0.2)


def remove_all(side: Side, timeout: float = 300.0) -> None:
    errors = engine_api.remove_all_containers(side.socket, timeout=timeout)
    if errors:
        raise RuntimeError("cleaning up: " + "; ".join(errors[:3]))


def measure_side(side: Side, count: int, timeout: float) -> dict:
    run_containers(side, 5, timeout)  # warm-up: lazy imports, first-use caches, containerd plugins
    remove_all(side)
    time.sleep(SETTLE_SECONDS)
    before = engine_memory(side)
    started = time.monotonic()
    try:
        run_containers(side, count, timeout)
        start_seconds = time.monotonic() - started
        time.sleep(SETTLE_SECONDS)
        after = engine_memory(side)
    finally:
        remove_all(side)
    per_container = {key: (after[key] - before[key]) / count for key in ("pss", "rss", "kernel")}
    return {"before": before, "after": after, "per_container": per_container, "start_seconds": start_seconds}


def mib(value: float) -> str:
    return f"{value / (1 << 20):.1f} MiB"


def kib(value: float) -> str:
    return f"{value / 1024:.0f} KiB"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", "--containers", type=int, default=200, help="idle containers per side (200)")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds starting them may take (600)")
    parser.add_argument("--json", type=Path, help="also save the results to this file")
    add_side_options(parser)
    parser.set_defaults(sides=f"{PYENGINE},{DOCKER}")
    args = parser.parse_args(argv)
    exit_cleanly_on_sigterm()
    results: dict[str, dict] = {}
    failed = False
    with started_sides(args) as (sides, facts):
        for side in sides:
            try:
                results[side.name] = measure_side(side, args.containers, args.timeout)
            except Exception as exc:  # report the other side anyway
                print(f"error on {side.name}: {exc}", file=sys.stderr)
                failed = True
    print(f"\nEngine memory per idle container ({args.containers} x `run -d busybox sleep 3600`)")
    for key in ("pyengine_version", "docker_version"):
        if key in facts:
            print(f"  {key}: {facts[key]}")
    rows = [("side", "engine procs before/after", "PSS before", "PSS after", "PSS/container",
             "RSS/container", "kernel/container", "start all")]
    for name, result in results.items():
        before, after, per = result["before"], result["after"], result["per_container"]
        rows.append((
            name,
            f"{before['processes']}/{after['processes']}",
            mib(before["pss"]),
            mib(after["pss"]),
            kib(per["pss"]),
            kib(per["rss"]),
            kib(per["kernel"]),
            f"{result['start_seconds']:.1f} s",
        ))
    if len(rows) > 1:
        print_table(rows)
    for name, result in results.items():
        print(f"  {name} processes after: {result['after']['by_name']}")
    ours, docker = results.get(PYENGINE), results.get(DOCKER)
    if ours and docker:
        for key, label in (("pss", "PSS"), ("rss", "RSS")):
            theirs = docker["per_container"][key]
            ratio = ours["per_container"][key] / theirs if theirs else None
            print(f"  pyengine / Docker per-container {label}: {times_x(ratio)}")
        combined_ours = ours["per_container"]["pss"] + ours["per_container"]["kernel"]
        combined_docker = docker["per_container"]["pss"] + docker["per_container"]["kernel"]
        print(f"  pyengine / Docker per-container PSS + kernel: {times_x(combined_ours / combined_docker)}"
              "   (bar: <= 0.50x)")
    if args.json:
        args.json.write_text(json.dumps({"facts": facts, "results": results}, indent=2))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
