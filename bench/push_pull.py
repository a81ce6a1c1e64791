"""Push and pull of a ~150 MiB image through one local registry, pyengine against Docker.

    python bench/push_pull.py [-n 3] [--size-mib 150] [--pyengine "python -m pyengine"] [--json FILE]

The image has two layers of equal size: one incompressible (random bytes), one text-like (words and
numbers, compresses about 3x). It is built here as a ``docker save`` archive and loaded into both
daemons, so nothing comes from Docker Hub. Every round, for each side:

- the image is loaded afresh (so the push must compress, as a first push does) and pushed to a
  registry (Debian's docker-registry on 127.0.0.1) started empty for that round;
- the image is removed, then pulled back from the repository Docker pushed (the same bytes for
  both sides), and removed again.

Reports MB/s (uncompressed image size / wall time of the client command) and the ratio pyengine /
Docker. The bar is 1.0x on both, the goal 1.5x; the ratios are printed, never asserted.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import random
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pyengine.testing.reference_registry import reference_registry

from bench.sides import (
    DOCKER,
    PYENGINE,
    Side,
    add_side_options,
    exit_cleanly_on_sigterm,
    print_table,
    started_sides,
    summarize,
    times_x,
)

BAR = 1.0
GOAL = 1.5
IMAGE = "bench/pushpull:1"
_WORDS = [
    "".join(random.Random(i).choice("abcdefghijklmnopqrstuvwxyz") for _ in range(3 + i % 8))
    for i in range(4000)
]


def _text_block(rng: random.Random, size: int) -> bytes:
    out, total = [], 0
    while total < size:
        line = " ".join(rng.choice(_WORDS) for _ in range(12)) + f" {rng.randrange(10**9)}\n"
        out.append(line)
        total += len(line)
    return "".join(out).encode()[:size]


def _layer_tar(files: list[tuple[str, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in files:
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 1_700_000_000
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def make_image_archive(path: Path, size_mib: int) -> int:
    """Write a docker-save archive of the two-layer image; return its uncompressed size in bytes."""
    half = size_mib * (1 << 20) // 2
    random_layer = _layer_tar([("data/random.bin", os.urandom(half))])
    rng = random.Random(42)
    text_files = [(f"data/text/{i:04d}.txt", _text_block(rng, 256 << 10)) for i in range(half // (256 << 10))]
    text_layer = _layer_tar(text_files)
    layers = [random_layer, text_layer]
    diff_ids = ["sha256:" + hashlib.sha256(layer).hexdigest() for layer in layers]
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "created": "2026-01-01T00:00:00Z",
            "config": {"Cmd": ["sh"]},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "history": [
                {"created": "2026-01-01T00:00:00Z", "created_by": "random"},
                {"created": "2026-01-01T00:00:00Z", "created_by": "text"},
            ],
        }
    ).encode()
    config_name = hashlib.sha256(config).hexdigest() + ".json"
    with tarfile.open(path, "w") as archive:
        entries = [(config_name, config)]
        names = []
        for index, layer in enumerate(layers):
            name = f"layer{index}/layer.tar"
            names.append(name)
            entries.append((name, layer))
        entries.append(
            (
                "manifest.json",
                json.dumps([{"Config": config_name, "RepoTags": [IMAGE], "Layers": names}]).encode(),
            )
        )
        for name, data in entries:
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            archive.addfile(info, io.BytesIO(data))
    return sum(len(layer) for layer in layers)


def run(side: Side, *args: str) -> float:
    start = time.perf_counter()
    result = subprocess.run([*side.client, *args], capture_output=True, text=True, stdin=subprocess.DEVNULL)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError(f"{side.name}: {' '.join(args)} failed: {result.stderr.strip()[-500:]}")
    return elapsed


def quiet(side: Side, *args: str) -> None:
    subprocess.run([*side.client, *args], capture_output=True, stdin=subprocess.DEVNULL)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("-n", "--rounds", type=int, default=3)
    parser.add_argument("--size-mib", type=int, default=150)
    parser.add_argument("--json", help="write every time to this file")
    add_side_options(parser)
    parser.set_defaults(sides=f"{PYENGINE},{DOCKER}")
    args = parser.parse_args()
    exit_cleanly_on_sigterm()
    times: dict[str, dict[str, list[float]]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-pp-") as workdir, started_sides(args) as (sides, facts):
        archive = Path(workdir) / "image.tar"
        size = make_image_archive(archive, args.size_mib)
        print(f"image: {size / 1e6:.1f} MB uncompressed in 2 layers (random, text)")
        for side in sides:
            times[side.name] = {"push": [], "pull": []}
        docker_first = sorted(sides, key=lambda s: s.name != DOCKER)
        for round_number in range(args.rounds):
            with reference_registry() as registry:
                for side in docker_first:
                    quiet(side, "rmi", "-f", IMAGE)
                    run(side, "load", "-i", str(archive))
                    target = f"{registry.address}/{side.name}/pushpull:{round_number}"
                    run(side, "tag", IMAGE, target)
                    times[side.name]["push"].append(run(side, "push", target))
                    quiet(side, "rmi", "-f", target, IMAGE)
                pushed_by = DOCKER if any(s.name == DOCKER for s in sides) else PYENGINE
                source = f"{registry.address}/{pushed_by}/pushpull:{round_number}"
                order = docker_first if round_number % 2 == 0 else list(reversed(docker_first))
                for side in order:
                    times[side.name]["pull"].append(run(side, "pull", source))
                    quiet(side, "rmi", "-f", source)
            print(
                f"round {round_number + 1}: "
                + ", ".join(
                    f"{name} push {t['push'][-1]:.2f}s pull {t['pull'][-1]:.2f}s" for name, t in times.items()
                )
            )
        rows = [("side", "push MB/s", "pull MB/s", "push vs docker", "pull vs docker")]
        rates = {
            name: {op: size / 1e6 / summarize(t[op])["median"] for op in ("push", "pull")}
            for name, t in times.items()
        }
        for name, rate in rates.items():
            docker_rate = rates.get(DOCKER)
            rows.append(
                (
                    name,
                    f"{rate['push']:.1f}",
                    f"{rate['pull']:.1f}",
                    times_x(rate["push"] / docker_rate["push"]) if docker_rate else "-",
                    times_x(rate["pull"] / docker_rate["pull"]) if docker_rate else "-",
                )
            )
        print()
        print_table(rows)
        print(
            f"\nbar: >= {BAR:.1f}x Docker's throughput on both; goal {GOAL:.1f}x "
            f"(median of {args.rounds} rounds)"
        )
        if args.json:
            Path(args.json).write_text(json.dumps({"facts": facts, "bytes": size, "times": times}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
