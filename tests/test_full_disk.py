"""A data root that fills up during commit: the commit fails cleanly and the daemon keeps working."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile

import pytest
from pyengine.testing.daemon import pyengine_daemon

STORAGE_DRIVER = os.environ.get("PYENGINE_TEST_STORAGE_DRIVER") or None


@pytest.fixture
def small_disk():
    """A 32 MiB tmpfs (short path: the daemon's socket lives in it)."""
    point = tempfile.mkdtemp(prefix="pefull-", dir="/tmp")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=32m", "tmpfs", point], check=True)
    try:
        yield point
    finally:
        subprocess.run(["umount", "-l", point], check=False)
        os.rmdir(point)


def _listing(root: str) -> list[str]:
    found = (os.path.join(d, n) for d, dirs, files in os.walk(root) for n in dirs + files)
    return sorted(os.path.relpath(path, root) for path in found)


def test_a_full_disk_during_commit_leaves_nothing_and_the_daemon_works(small_disk, busybox_tar):
    with pyengine_daemon([sys.executable, "-m", "pyengine"], parent_dir=small_disk,
                         storage_driver=STORAGE_DRIVER) as daemon:
        def cli(*args: str) -> subprocess.CompletedProcess:
            return subprocess.run([sys.executable, "-m", "pyengine", "-H", daemon.host, *args],
                                  capture_output=True, text=True, timeout=120)

        assert cli("import", "-c", 'CMD ["sh"]', str(busybox_tar), "busybox:latest").returncode == 0
        # 10 MiB of changes: the layer's blob and its unpacked copy cannot both fit any more
        made = cli("run", "--name", "big", "busybox", "dd", "if=/dev/urandom", "of=/big", "bs=1M", "count=10")
        assert made.returncode == 0, made.stderr
        blobs = _listing(os.path.join(daemon.data_root, "content"))
        layers = _listing(os.path.join(daemon.data_root, "storage"))
        images = cli("images", "-q").stdout

        failed = cli("commit", "big", "full:1")
        assert failed.returncode != 0
        assert "no space left on device" in failed.stderr.lower()
        assert cli("images", "-q").stdout == images
        assert _listing(os.path.join(daemon.data_root, "content")) == blobs
        assert _listing(os.path.join(daemon.data_root, "storage")) == layers

        # the daemon still works, and commits again once there is room
        assert cli("rm", "big").returncode == 0
        assert cli("run", "--name", "small", "busybox", "sh", "-c", "echo fits > /f").returncode == 0
        committed = cli("commit", "small", "fits:1")
        assert committed.returncode == 0, committed.stderr
        assert cli("run", "--rm", "fits:1", "cat", "/f").stdout == "fits\n"
