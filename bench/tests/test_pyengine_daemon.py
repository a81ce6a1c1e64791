"""The pyengine harness's teardown, against a stand-in daemon that leaves real processes and mounts."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import pytest
from pyengine.testing import hostcleanup
from pyengine.testing.daemon import DaemonStartError, pyengine_daemon

BUSYBOX_SLEEP = ("/bin/busybox", "sleep", "1000")
FAKE = (sys.executable, str(Path(__file__).with_name("fake_pyengine.py")))

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="mounts and namespaces need root")


def tied_processes(daemon_pid: int, supervisor_pid: int) -> list[hostcleanup.ProcessInfo]:
    table = hostcleanup.process_table()
    return [
        table[daemon_pid],
        table[supervisor_pid],
        *hostcleanup.descendants([daemon_pid, supervisor_pid], table),
    ]


def wait_for_containers(supervisor_pid: int, count: int) -> list[hostcleanup.ProcessInfo]:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        sleepers = [p for p in hostcleanup.descendants([supervisor_pid]) if p.cmdline == BUSYBOX_SLEEP]
        if len(sleepers) == count:
            break
        time.sleep(0.05)
    return hostcleanup.descendants([supervisor_pid])


def assert_all_gone(processes: list[hostcleanup.ProcessInfo], base_dir: str) -> None:
    assert hostcleanup.wait_gone(processes, 0) == []
    assert not os.path.exists(base_dir)
    assert hostcleanup.mounts_under([base_dir]) == []


def test_teardown_ends_containers_supervisor_daemon_and_mounts():
    with pyengine_daemon(FAKE, extra_args=["--containers", "2"]) as engine:
        supervisor_pid = hostcleanup.read_pid_file(engine.supervisor_pid_file)
        wait_for_containers(supervisor_pid, 2)
        processes = tied_processes(engine.pid, supervisor_pid)
        assert len(processes) >= 2 + 1 + 2  # daemon, supervisor, helper, containers
        assert hostcleanup.mounts_under([engine.base_dir])
        base_dir = engine.base_dir
    assert_all_gone(processes, base_dir)


def test_teardown_finds_containers_orphaned_by_a_dead_supervisor():
    with pyengine_daemon(FAKE, extra_args=["--containers", "4", "--stubborn-supervisor"]) as engine:
        supervisor_pid = hostcleanup.read_pid_file(engine.supervisor_pid_file)
        containers = wait_for_containers(supervisor_pid, 4)
        os.kill(supervisor_pid, signal.SIGKILL)
        for container in containers:
            if container.cmdline[0] == "unshare":
                os.kill(container.pid, signal.SIGKILL)  # the chrooted sleeps now belong to init
        time.sleep(0.2)
        orphans = [p for p in containers if p.cmdline == BUSYBOX_SLEEP]
        assert len(orphans) == 4 and hostcleanup.wait_gone(orphans, 0) == orphans
        base_dir = engine.base_dir
    assert_all_gone(orphans, base_dir)


def test_a_daemon_that_does_not_start_reports_its_log_and_leaves_nothing(tmp_path):
    with pytest.raises(DaemonStartError, match="refusing to start on purpose"):
        with pyengine_daemon(FAKE, extra_args=["--fail-at-start"], parent_dir=str(tmp_path)):
            pass
    assert os.listdir(tmp_path) == []
