"""Storage drivers side by side: preparing a container's root from a large image, and commit.

Run as root from the repository root (pyengine and its driver packages installed):

    python bench/storage_prepare.py                       # 1 GiB / 20,000-file image, 5 prepares
    python bench/storage_prepare.py --size-mib 64 --files 2000 --runs 3 --commit-mib 20
    python bench/storage_prepare.py --skip-commit --json out.json

Part 1, per driver (overlay and vfs on a work directory, btrfs on a loop-backed btrfs made for the
run): import the image layer (create + apply_diff), then *prepare* a container's root N times -
create the writable layer on the image and mount it, which is what `run` waits for - on the
large image and on a small (busybox-sized) one. overlay and btrfs should take about the same time
for both (the ratio large/small near 1); vfs copies the image and is reported as it is.

Part 2: `commit` of a container with --commit-mib MiB of fresh changes, through the docker CLI,
against a pyengine daemon and a private dockerd in the same run (a new container per repetition,
sides interleaved). Prints medians and the pyengine/docker ratio; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `bench` importable from the repository root
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pyengine.errors import NotSupported
from pyengine.storage.archive import tar_directory

from bench.sides import print_table, seconds

DOCKER = shutil.which("docker") or "/usr/local/bin/docker"


def build_tree(root: Path, total_bytes: int, files: int) -> None:
    """``files`` files of random bytes, ``total_bytes`` in all, 100 to a directory."""
    size = max(1, total_bytes // files)
    for index in range(files):
        directory = root / f"d{index // 100:04d}"
        if index % 100 == 0:
            directory.mkdir(parents=True)
        (directory / f"f{index:06d}").write_bytes(os.urandom(size))


def write_tar(source: Path, target: Path) -> None:
    with open(target, "wb") as out:
        for chunk in tar_directory(source):
            out.write(chunk)


def busybox_tree(root: Path) -> None:
    (root / "bin").mkdir(parents=True)
    shutil.copy2("/bin/busybox", root / "bin/busybox")
    for directory in ("etc", "tmp", "root", "dev", "proc", "sys"):
        (root / directory).mkdir()
    (root / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")


@contextmanager
def loop_btrfs(parent: Path, size_bytes: int) -> Iterator[Path]:
    """A fresh btrfs on a loop device under ``parent``; unmounted and detached on exit."""
    image, point = parent / "btrfs.img", parent / "btrfs"
    point.mkdir()
    with open(image, "wb") as file:
        file.truncate(size_bytes)
    subprocess.run(["mkfs.btrfs", "-q", str(image)], check=True, capture_output=True)
    device = subprocess.run(
        ["losetup", "--find", "--show", str(image)], check=True, capture_output=True, text=True
    ).stdout.strip()
    try:
        subprocess.run(["mount", "-t", "btrfs", device, str(point)], check=True)
        try:
            yield point
        finally:
            subprocess.run(["umount", "-l", str(point)], check=False)
    finally:
        subprocess.run(["losetup", "-d", device], check=False)
        image.unlink(missing_ok=True)


def _factories() -> dict[str, Callable[..., Any] | str]:
    found: dict[str, Callable[..., Any] | str] = {}
    for name, module in (
        ("overlay", "pyengine_storage_overlay.plugin"),
        ("btrfs", "pyengine_storage_btrfs.plugin"),
        ("vfs", "pyengine_storage_vfs.plugin"),
    ):
        try:
            found[name] = __import__(module, fromlist=["factory"]).factory
        except ImportError as exc:
            found[name] = f"not installed: {exc}"
    return found


def measure_driver(factory: Callable[..., Any], root: Path, tars: dict[str, Path], runs: int) -> dict:
    driver = factory(root, {})
    results: dict[str, Any] = {}
    try:
        for label, tar_path in tars.items():
            image = f"image-{label}"
            started = time.perf_counter()
            driver.create(image, None)
            with open(tar_path, "rb") as stream:
                driver.apply_diff(image, stream)
            imported = time.perf_counter() - started
            prepares = []
            for run in range(runs):
                container = f"c-{label}-{run}"
                started = time.perf_counter()
                driver.create(container, image, writable=True)
                driver.mount(container)
                prepares.append(time.perf_counter() - started)
            for run in range(runs):
                driver.unmount(f"c-{label}-{run}")
                driver.remove(f"c-{label}-{run}")
            driver.remove(image)
            results[label] = {"import_s": imported, "prepare_s": prepares}
    finally:
        driver.cleanup()
    return results


def part_prepare(args: argparse.Namespace, work: Path) -> dict:
    source, small = work / "src-large", work / "src-small"
    print(f"building a {args.size_mib} MiB image of {args.files} files ...", flush=True)
    build_tree(source, args.size_mib << 20, args.files)
    busybox_tree(small)
    tars = {"large": work / "large.tar", "small": work / "small.tar"}
    write_tar(source, tars["large"])
    write_tar(small, tars["small"])
    shutil.rmtree(source)
    shutil.rmtree(small)
    report: dict[str, Any] = {}
    for name, factory in _factories().items():
        if isinstance(factory, str):
            report[name] = {"error": factory}
            continue
        print(f"measuring {name} ...", flush=True)
        try:
            if name == "btrfs":
                if shutil.which("mkfs.btrfs") is None:
                    report[name] = {"error": "mkfs.btrfs (btrfs-progs) not installed"}
                    continue
                # room for the layer, its blob-free copy and btrfs's metadata
                with loop_btrfs(work, max(3 * (args.size_mib << 20), 512 << 20)) as mounted:
                    report[name] = measure_driver(factory, mounted / "storage", tars, args.runs)
            else:
                report[name] = measure_driver(factory, work / f"storage-{name}", tars, args.runs)
        except NotSupported as exc:
            report[name] = {"error": f"not supported: {exc}"}
    for tar in tars.values():
        tar.unlink()
    rows = [("driver", "import large", "prepare large (median)", "prepare small (median)", "large/small")]
    for name, result in report.items():
        if "error" in result:
            rows.append((name, result["error"], "", "", ""))
            continue
        large = statistics.median(result["large"]["prepare_s"])
        small_ms = statistics.median(result["small"]["prepare_s"])
        rows.append(
            (
                name,
                f"{result['large']['import_s'] * 1000:.0f} ms",
                f"{large * 1000:.1f} ms",
                f"{small_ms * 1000:.1f} ms",
                f"{large / small_ms:.1f}x" if small_ms else "-",
            )
        )
    print(f"\nprepare a container root ({args.size_mib} MiB / {args.files} files vs busybox), "
          f"{args.runs} runs each")
    print_table(rows)
    return report


def _docker(host: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run([DOCKER, "-H", host, *args], capture_output=True, text=True, check=check)


def part_commit(args: argparse.Namespace, work: Path) -> dict:
    from pyengine.testing.daemon import pyengine_daemon
    from pyengine.testing.dockerd import (
        DaemonStartError,
        load_busybox_image,
        make_busybox_rootfs,
        private_dockerd,
    )

    rootfs = make_busybox_rootfs(work / "busybox.tar")
    times: dict[str, list[float]] = {"pyengine": [], "docker": []}
    notes: list[str] = []
    command = tuple(args.pyengine.split())
    with pyengine_daemon(command, storage_driver=args.storage_driver) as pyengine:
        hosts = {"pyengine": pyengine.host}
        load_busybox_image(pyengine.socket, rootfs, docker_cli=(DOCKER,))
        try:
            docker_cm = private_dockerd()
            docker = docker_cm.__enter__()
        except DaemonStartError as exc:
            docker_cm, docker = None, None
            notes.append(f"docker side skipped: {exc}")
            del times["docker"]
        try:
            if docker is not None:
                hosts["docker"] = docker.host
                load_busybox_image(docker.socket, rootfs, docker_cli=(DOCKER,))
            print(f"committing containers with {args.commit_mib} MiB of changes ...", flush=True)
            for repetition in range(args.runs):
                order = list(hosts) if repetition % 2 == 0 else list(reversed(hosts))
                for side in order:
                    host, name = hosts[side], f"bench-commit-{repetition}"
                    _docker(host, "run", "--network", "none", "--name", name, "busybox", "dd",
                            "if=/dev/urandom", "of=/changes", "bs=1M", f"count={args.commit_mib}")
                    started = time.perf_counter()
                    _docker(host, "commit", name, f"bench-commit:{repetition}")
                    times[side].append(time.perf_counter() - started)
                    _docker(host, "rm", name)
                    _docker(host, "rmi", f"bench-commit:{repetition}")
        finally:
            if docker_cm is not None:
                docker_cm.__exit__(None, None, None)
    rows = [("side", "commit median", "min", "max")]
    for side, values in times.items():
        rows.append((side, seconds(statistics.median(values)), seconds(min(values)), seconds(max(values))))
    print(f"\ncommit of a container with {args.commit_mib} MiB of changes, {args.runs} runs per side")
    print_table(rows)
    ratio = None
    if "docker" in times:
        ratio = statistics.median(times["pyengine"]) / statistics.median(times["docker"])
        print(f"pyengine/docker median: {ratio:.2f}x")
    for note in notes:
        print(f"note: {note}")
    return {"times": times, "ratio": ratio, "notes": notes, "storage_driver": args.storage_driver}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size-mib", type=int, default=1024, help="size of the large image (MiB)")
    parser.add_argument("--files", type=int, default=20000, help="files in the large image")
    parser.add_argument("--runs", type=int, default=5, help="repetitions per measurement")
    parser.add_argument("--commit-mib", type=int, default=100, help="MiB of changes to commit")
    parser.add_argument("--pyengine", default=f"{sys.executable} -m pyengine", help="pyengine's command")
    parser.add_argument("--storage-driver", default=None, help="the pyengine daemon's --storage-driver")
    parser.add_argument("--skip-prepare", action="store_true")
    parser.add_argument("--skip-commit", action="store_true")
    parser.add_argument("--workdir", default=None, help="where the temporary files go (default /tmp)")
    parser.add_argument("--json", help="write every measurement to this file")
    args = parser.parse_args(argv)
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-storage-", dir=args.workdir) as workdir:
        if not args.skip_prepare:
            results["prepare"] = part_prepare(args, Path(workdir))
        if not args.skip_commit:
            results["commit"] = part_commit(args, Path(workdir))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
