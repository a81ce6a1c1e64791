"""The daemon on a btrfs data root with --storage-driver btrfs: run, diff, commit and cp work on
subvolumes and snapshots (a loop-backed btrfs made for the test, detached even when it fails)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile

import pytest
from pyengine.testing.daemon import pyengine_daemon


@pytest.fixture
def btrfs_dir():
    if shutil.which("mkfs.btrfs") is None:
        pytest.skip("mkfs.btrfs (btrfs-progs) is not installed")
    base = tempfile.mkdtemp(prefix="pebtrfs-", dir="/tmp")
    image, point = os.path.join(base, "img"), os.path.join(base, "mnt")
    os.mkdir(point)
    with open(image, "wb") as file:
        file.truncate(512 << 20)
    subprocess.run(["mkfs.btrfs", "-q", image], check=True, capture_output=True)
    device = subprocess.run(["losetup", "--find", "--show", image], check=True, capture_output=True,
                            text=True).stdout.strip()
    try:
        subprocess.run(["mount", "-t", "btrfs", device, point], check=True)
        try:
            yield point
        finally:
            subprocess.run(["umount", "-l", point], check=False)
    finally:
        subprocess.run(["losetup", "-d", device], check=False)
        shutil.rmtree(base, ignore_errors=True)


def test_containers_on_btrfs_subvolumes(btrfs_dir, busybox_tar, tmp_path):
    with pyengine_daemon([sys.executable, "-m", "pyengine"], parent_dir=btrfs_dir,
                         storage_driver="btrfs") as daemon:
        def cli(*args: str) -> subprocess.CompletedProcess:
            return subprocess.run([sys.executable, "-m", "pyengine", "-H", daemon.host, *args],
                                  capture_output=True, text=True, timeout=120)

        assert json.loads(cli("info", "--format", "{{json .DriverStatus}}").stdout)[0] == [
            "Backing Filesystem", "btrfs"
        ]
        assert cli("import", "-c", 'CMD ["sh"]', str(busybox_tar), "busybox:latest").returncode == 0
        made = cli("run", "--name", "onbtrfs", "busybox", "sh", "-c", "echo hi > /new; rm /etc/group")
        assert made.returncode == 0, made.stderr
        assert cli("diff", "onbtrfs").stdout.splitlines() == ["C /etc", "D /etc/group", "A /new"]
        assert cli("commit", "onbtrfs", "onbtrfs:1").returncode == 0
        assert cli("run", "--rm", "onbtrfs:1", "cat", "/new").stdout == "hi\n"
        assert cli("cp", "onbtrfs:/new", str(tmp_path / "new")).returncode == 0
        assert (tmp_path / "new").read_text() == "hi\n"
        container_id = json.loads(cli("inspect", "onbtrfs").stdout)[0]["Id"]
        subvolume = os.path.join(daemon.data_root, "storage/btrfs/subvolumes", container_id)
        assert os.stat(subvolume).st_ino == 256  # the container's root is a subvolume (a snapshot)
        assert cli("rm", "onbtrfs").returncode == 0
        assert not os.path.exists(subvolume)
