"""Build: a 10-step Dockerfile with a 20 MiB context - cold (--no-cache), fully cached, and after
touching one copied file - pyengine vs `docker build` (classic builder, DOCKER_BUILDKIT=0).

Bars (issue 6): cached <= 0.5x Docker's time, cold and touched <= 1.0x. Printed, never asserted.

pyengine's own CLI sends the context by digest first (a fully cached build sends no file content;
see pyengine.cli.build_run); its digest cache goes to a temporary XDG_CACHE_HOME here, and is warm
after the warm-up build, as it is for a user who rebuilds. The docker CLI always sends the whole
context, to either daemon.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from sides import (  # noqa: E402
    DOCKER,
    add_side_options,
    exit_cleanly_on_sigterm,
    print_table,
    started_sides,
)

DOCKERFILE = """FROM busybox
ENV APP=/app
WORKDIR /app
COPY data/ /app/data/
RUN echo step > /app/step.txt
COPY src/ /app/src/
RUN sh /app/src/main.sh > /app/out.txt
LABEL bench=build
EXPOSE 8080
CMD ["cat", "/app/out.txt"]
"""


def make_context(root: Path) -> None:
    (root / "data").mkdir(parents=True)
    (root / "src").mkdir()
    for i in range(20):  # 20 x 1 MiB
        (root / "data" / f"blob{i}.bin").write_bytes(os.urandom(1 << 20))
    (root / "src" / "main.sh").write_text("echo main\n")
    (root / "Dockerfile").write_text(DOCKERFILE)


def timed_build(side, context: Path, *extra: str) -> float:
    env = {**os.environ, "DOCKER_BUILDKIT": "0", "XDG_CACHE_HOME": str(context.parent / "cache")}
    start = time.perf_counter()
    result = subprocess.run(
        [*side.client, "build", "-q", *extra, "-t", "bench-build:1", str(context)],
        capture_output=True,
        text=True,
        env=env,
    )
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError(f"{side.name}: build failed: {result.stderr.strip()[-400:]}")
    return elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", "--runs", type=int, default=3, help="repetitions of each scenario (default 3)")
    add_side_options(parser)
    args = parser.parse_args(argv)
    exit_cleanly_on_sigterm()
    results: dict[str, dict[str, list[float]]] = {}
    with tempfile.TemporaryDirectory(prefix="pye-bench-build-") as tmp:
        context = Path(tmp) / "ctx"
        make_context(context)
        with started_sides(args) as (sides, _facts):
            for side in sides:
                times = results.setdefault(side.name, {"cold": [], "cached": [], "touched": []})
                timed_build(side, context)  # warm-up, fills the cache
                for i in range(args.runs):
                    times["cold"].append(timed_build(side, context, "--no-cache"))
                    times["cached"].append(timed_build(side, context))
                    (context / "src" / "main.sh").write_text(f"echo main {side.name} {i}\n")
                    times["touched"].append(timed_build(side, context))
    rows = [("side", "cold", "cached", "touched")]
    for name, times in results.items():
        rows.append((name, *(f"{statistics.median(times[k]):.2f}s" for k in ("cold", "cached", "touched"))))
    docker = results.get(DOCKER)
    if docker:
        for name, times in results.items():
            if name == DOCKER:
                continue
            rows.append(
                (
                    f"{name} / docker",
                    *(
                        f"{statistics.median(times[k]) / statistics.median(docker[k]):.2f}x"
                        for k in ("cold", "cached", "touched")
                    ),
                )
            )
        rows.append(("bar", "<= 1.0x", "<= 0.5x", "<= 1.0x"))
    print_table(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
