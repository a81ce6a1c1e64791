"""Blob GET throughput: our registry server against the reference registry (Debian's docker-registry).

Both serve the same ~150 MiB incompressible blob from their own root on loopback; curl fetches it
from each in turn (order rotating each round, after a warm-up round), and the median MB/s of each
side and their ratio are printed. Nothing is asserted.

    python bench/registry_blob_get.py                    # 150 MiB, 7 rounds
    python bench/registry_blob_get.py --put              # and upload throughput (PUT) too
    python bench/registry_blob_get.py --size-mib 50 --rounds 3 --json out.json
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from pyengine.testing.registry import running_registry, stop_process

REFERENCE_REGISTRY = "/usr/bin/docker-registry"
OURS = "pyengine"
REFERENCE = "docker-registry"
REPOSITORY = "bench/blob"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_registry(url: str, process: subprocess.Popen, log: Path, timeout: float = 30.0) -> None:
    host, port = url.split("://", 1)[1].rsplit(":", 1)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{REFERENCE_REGISTRY} exited: {log.read_text(errors='replace')[-2000:]}")
        try:
            connection = http.client.HTTPConnection(host, int(port), timeout=5)
            connection.request("GET", "/v2/")
            if connection.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{REFERENCE_REGISTRY} did not answer on {url}")


@contextmanager
def reference_registry(base: Path) -> Iterator[str]:
    """docker-registry serving its own root under ``base`` on a free loopback port."""
    port = free_port()
    config = base / "config.yml"
    config.write_text(
        "version: 0.1\n"
        "log:\n  level: error\n"
        f"storage:\n  filesystem:\n    rootdirectory: {base / 'root'}\n  delete:\n    enabled: true\n"
        f"http:\n  addr: 127.0.0.1:{port}\n"
    )
    log = base / "docker-registry.log"
    with open(log, "ab") as out:
        process = subprocess.Popen([REFERENCE_REGISTRY, "serve", str(config)], stdout=out, stderr=out,
                                   stdin=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for_registry(url, process, log)
        yield url
    finally:
        stop_process(process)


def make_blob(path: Path, size: int) -> str:
    hasher = hashlib.sha256()
    with open(path, "wb") as out:
        remaining = size
        while remaining:
            chunk = os.urandom(min(remaining, 1 << 20))
            hasher.update(chunk)
            out.write(chunk)
            remaining -= len(chunk)
    return "sha256:" + hasher.hexdigest()


def push_blob(url: str, path: Path, digest: str) -> float:
    """POST for an upload, then one PUT of the whole blob with curl; return the PUT's seconds."""
    host, port = url.split("://", 1)[1].rsplit(":", 1)
    connection = http.client.HTTPConnection(host, int(port), timeout=300)
    connection.request("POST", f"/v2/{REPOSITORY}/blobs/uploads/")
    response = connection.getresponse()
    response.read()
    connection.close()
    location = response.headers["Location"]
    if response.status != 202 or not location:
        raise RuntimeError(f"{url}: upload not started ({response.status})")
    if not location.startswith("http"):
        location = url + location
    separator = "&" if "?" in location else "?"
    result = subprocess.run(
        ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code} %{time_total}", "-X", "PUT",
         "-H", "Content-Type: application/octet-stream", "-H", "Expect:", "--data-binary", f"@{path}",
         f"{location}{separator}digest={digest}"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    status, seconds = result.stdout.split()
    if status != "201":
        raise RuntimeError(f"{url}: blob upload answered {status}")
    return float(seconds)


def fetch_once(url: str, digest: str, size: int) -> float:
    """Seconds to GET the blob once with curl (into /dev/null)."""
    result = subprocess.run(
        ["curl", "-sS", "-o", "/dev/null", "-w", "%{size_download} %{time_total}",
         f"{url}/v2/{REPOSITORY}/blobs/{digest}"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    downloaded, seconds = result.stdout.split()
    if int(float(downloaded)) != size:
        raise RuntimeError(f"{url}: got {downloaded} bytes, expected {size}")
    return float(seconds)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=150)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--json", metavar="FILE")
    parser.add_argument(
        "--put", action="store_true", help="also time a monolithic PUT of the blob each round"
    )
    parser.add_argument("--pyengine-registry", default=f"{sys.executable} -m pyengine.registry",
                        help="command that runs our registry (`serve ...` is appended)")  # fmt: skip
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if shutil.which("curl") is None:
        print("curl is needed", file=sys.stderr)
        return 1
    have_reference = os.access(REFERENCE_REGISTRY, os.X_OK)
    base = Path(tempfile.mkdtemp(prefix="regbench-"))
    try:
        with ExitStack() as stack:
            size = args.size_mib * 1024 * 1024
            blob = base / "blob"
            digest = make_blob(blob, size)
            ours = stack.enter_context(
                running_registry(base / "ours", command=args.pyengine_registry.split())
            )
            urls = {OURS: ours.url}
            if have_reference:
                (base / "reference").mkdir()
                urls[REFERENCE] = stack.enter_context(reference_registry(base / "reference"))
            else:
                print(f"note: {REFERENCE_REGISTRY} not installed (Debian docker-registry): ours alone")
            names = list(urls)
            get_times: dict[str, list[float]] = {name: [] for name in names}
            put_times: dict[str, list[float]] = {name: [] for name in names}
            for name in names:  # also the warm-up: page cache, connections
                put_times[name].append(push_blob(urls[name], blob, digest))
                fetch_once(urls[name], digest, size)
            for round_number in range(args.rounds):
                order = names[round_number % len(names) :] + names[: round_number % len(names)]
                for name in order:
                    get_times[name].append(fetch_once(urls[name], digest, size))
                    if args.put:
                        put_times[name].append(push_blob(urls[name], blob, digest))
    finally:
        shutil.rmtree(base, ignore_errors=True)

    load = os.getloadavg()[0]
    print(f"{args.size_mib} MiB blob, {args.rounds} rounds, curl on loopback, load {load:.2f}")
    report = {"GET": report_table("blob GET", size, get_times)}
    if args.put:
        report["PUT"] = report_table("blob PUT (monolithic, verified and fsynced)", size, put_times)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    return 0


def report_table(title: str, size: int, times: dict[str, list[float]]) -> dict:
    mbps = {name: [size / 1e6 / t for t in values] for name, values in times.items()}
    summary: dict = {
        name: {"median_MBps": statistics.median(v), "min_MBps": min(v), "max_MBps": max(v), "MBps": v}
        for name, v in mbps.items()
    }
    print(f"\n{title}\n{'side':<18}{'median MB/s':>14}{'min':>10}{'max':>10}")
    for name, row in summary.items():
        print(f"{name:<18}{row['median_MBps']:>14.0f}{row['min_MBps']:>10.0f}{row['max_MBps']:>10.0f}")
    if REFERENCE in summary:
        ratio = summary[OURS]["median_MBps"] / summary[REFERENCE]["median_MBps"]
        summary["ratio_ours_to_reference"] = ratio
        print(f"ratio pyengine / docker-registry: {ratio:.2f}x")
    return summary


if __name__ == "__main__":
    sys.exit(main())
