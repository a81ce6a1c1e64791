"""How long vfs takes to import a layer and to prepare a container's root file system.

Run as root: /root/.pyenv/versions/3.11.7/bin/python3 bench/storage_vfs_prepare.py [WORKDIR]
Two layers: a busybox-sized one (the static busybox binary hard linked under every applet
name, as in the busybox image) and a ~100 MiB one of 5,000 files in 50 directories.
"Prepare" is what `docker run` waits for: create the writable layer on the image + mount it.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pyengine.storage.archive import tar_directory
from pyengine_storage_vfs.plugin import factory


def busybox_tree(root: Path) -> None:
    (root / "bin").mkdir(parents=True)
    shutil.copy2("/bin/busybox", root / "bin/busybox")
    applets = subprocess.run(["/bin/busybox", "--list"], capture_output=True, text=True, check=True).stdout
    for applet in applets.split():
        if applet != "busybox":
            os.link(root / "bin/busybox", root / "bin" / applet)
    for directory in ("etc", "root", "tmp", "var/spool/mail", "home", "dev", "proc", "sys"):
        (root / directory).mkdir(parents=True, exist_ok=True)
    (root / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    (root / "etc/group").write_text("root:x:0:\n")


def big_tree(root: Path, files: int = 5000, total: int = 100 << 20) -> None:
    size = total // files
    for index in range(files):
        directory = root / f"d{index % 50:02d}"
        directory.mkdir(parents=True, exist_ok=True)
        (directory / f"f{index:05d}").write_bytes(os.urandom(size))


def median_ms(timings: list[float]) -> float:
    return sorted(timings)[len(timings) // 2] * 1000


def measure(workdir: Path, label: str, build, reflink: str) -> None:
    source = workdir / f"src-{label}"
    source.mkdir()
    build(source)
    entries = sum(len(dirs) + len(files) for _, dirs, files in os.walk(source))
    tar = b"".join(tar_directory(source))
    driver = factory(workdir / f"vfs-{label}-{reflink}", {"reflink": reflink})
    started = time.perf_counter()
    driver.create("image", None)
    driver.apply_diff("image", io.BytesIO(tar))
    imported = time.perf_counter() - started
    timings = []
    for run in range(5):
        started = time.perf_counter()
        driver.create(f"c{run}", "image", writable=True)
        driver.mount(f"c{run}")
        timings.append(time.perf_counter() - started)
    for run in range(5):
        driver.unmount(f"c{run}")
        driver.remove(f"c{run}")
    # the same copy by coreutils, as a floor for what this file system allows
    baseline = []
    for run in range(5):
        started = time.perf_counter()
        subprocess.run(
            ["cp", "-a", "--reflink=auto", driver.mount("image"), workdir / f"cp-{run}"], check=True
        )
        baseline.append(time.perf_counter() - started)
        driver.unmount("image")
        shutil.rmtree(workdir / f"cp-{run}")
    print(
        f"{label:9s} {len(tar) / 2**20:6.1f} MiB tar, {entries:5d} entries, reflinks "
        f"{'yes' if driver.use_reflinks else 'no '}: import {imported * 1000:7.1f} ms, "
        f"prepare rootfs median {median_ms(timings):7.1f} ms (min {min(timings) * 1000:.1f}); "
        f"cp -a median {median_ms(baseline):7.1f} ms"
    )
    shutil.rmtree(source)


def main() -> None:
    base = Path(sys.argv[1]) if len(sys.argv) > 1 else None
    with tempfile.TemporaryDirectory(dir=base) as workdir:
        for label, build in (("busybox", busybox_tree), ("100MiB-5k", big_tree)):
            measure(Path(workdir), label, build, "auto")


if __name__ == "__main__":
    main()
