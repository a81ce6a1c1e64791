"""An exec'd process joins the cgroups of the container it enters (checked on a real v1 hierarchy)."""

from __future__ import annotations

import os
import subprocess
import time
import uuid

import pytest
from pyengine.runtime.exec import join_cgroups_of

PIDS_HIERARCHY = "/sys/fs/cgroup/pids"


@pytest.fixture
def process_in_own_cgroup():
    if not os.path.isfile(os.path.join(PIDS_HIERARCHY, "cgroup.procs")):
        pytest.skip("no cgroup v1 pids hierarchy mounted at /sys/fs/cgroup/pids")
    path = os.path.join(PIDS_HIERARCHY, f"pyengine-test-{uuid.uuid4().hex[:8]}")
    os.mkdir(path)
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        with open(os.path.join(path, "cgroup.procs"), "w") as procs:
            procs.write(str(sleeper.pid))
        yield sleeper.pid, "/" + os.path.basename(path)
    finally:
        sleeper.kill()
        sleeper.wait()
        for _ in range(50):
            try:
                os.rmdir(path)
                break
            except OSError:
                time.sleep(0.1)


def test_join_cgroups_of(process_in_own_cgroup):
    pid, cgroup = process_in_own_cgroup
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:
        try:
            os.close(read_end)
            join_cgroups_of(pid)
            with open("/proc/self/cgroup") as handle:
                os.write(write_end, handle.read().encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end) as pipe:
        memberships = pipe.read()
    os.waitpid(child, 0)
    pids_line = next(line for line in memberships.splitlines() if line.split(":")[1] == "pids")
    assert pids_line.split(":")[2] == cgroup
