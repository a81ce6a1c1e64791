"""Fixtures: a real supervisor process on a socket in a temporary directory, and busybox bundles.

Every test gets its own supervisor, stopped at the end together with every container it started,
whether the test passed or not.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
from supervisor_harness import BUSYBOX, Harness


@pytest.fixture(scope="session")
def rootfs(tmp_path_factory) -> Path:
    """A tiny root file system: static busybox and a link for each of its applets."""
    if not os.path.exists(BUSYBOX):
        pytest.skip("needs busybox-static (apt-get install busybox-static)")
    root = tmp_path_factory.mktemp("rootfs")
    for directory in ("bin", "proc", "dev", "sys", "tmp", "etc", "flags"):
        (root / directory).mkdir()
    # The stand-in runtime only chroots: give it the /dev/null a shell's background job needs. The real
    # runtime mounts its own /dev over this.
    os.mknod(root / "dev/null", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    shutil.copy(BUSYBOX, root / "bin/busybox")
    applets = subprocess.run([BUSYBOX, "--list"], capture_output=True, text=True, check=True).stdout.split()
    for applet in applets:
        if applet != "busybox":
            (root / "bin" / applet).symlink_to("busybox")
    return root


@pytest.fixture
def supervisor(tmp_path, rootfs):
    harness = Harness(tmp_path, rootfs)
    try:
        harness.spawn()
        yield harness
    finally:
        harness.stop()
