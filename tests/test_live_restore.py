"""Live restore: containers do not depend on the daemon process.

test_state.py covers the basic SIGKILL-and-restart case on the session daemon. These tests use a
daemon of their own (they kill its supervisor and its containers, a simulated host reboot) and check
what test_state.py does not: exits while the daemon is *down* (code, OOM kill), limits and pause that
survive, restart policies applied at daemon start, and a reboot after which nothing claims to run.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import tempfile
import time
from pathlib import Path

import pytest
from pyengine.runtime import cgroups
from pyengine.testing.daemon import supervisor_pid_file, teardown_pyengine


@pytest.fixture(scope="module")
def own(daemon, cli, busybox_tar):
    """(daemon, cli) of a daemon only this module uses, with busybox imported.

    Built with the classes of the session's ``daemon`` and ``cli`` fixtures (conftest's TestDaemon
    and Runner), which a test module cannot import by name.
    """
    base_dir = tempfile.mkdtemp(prefix="pye-lr-", dir="/tmp")
    instance = type(daemon)(base_dir)
    try:
        instance.start()
        own_env = {**os.environ, "PYENGINE_HOST": instance.host}
        own_cli = type(cli)([*cli.argv[:-2], "-H", instance.host], own_env)
        result = own_cli("import", "-c", 'CMD ["sh"]', str(busybox_tar), "busybox:latest")
        assert result.returncode == 0, result.stderr
        yield instance, own_cli
    finally:
        containers = Path(instance.data_root, "containers")
        ids = os.listdir(containers) if containers.exists() else []
        try:
            teardown_pyengine(
                daemon_pid=instance.process.pid if instance.process else None,
                exec_root=instance.exec_root,
                cleanup_roots=[base_dir],
                process=instance.process,
                socket_path=instance.socket,
            )
        finally:
            for container_id in ids:  # a simulated reboot may leave cgroups the daemon never saw again
                try:
                    cgroups.remove(cgroups.container_path(container_id))
                except OSError:
                    pass


def _inspect(cli, name: str) -> dict:
    result = cli("inspect", name)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)[0]


def _stop_daemon(daemon) -> None:
    daemon.process.send_signal(signal.SIGKILL)
    daemon.process.wait(30)


def _until(predicate, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while not (value := predicate()) and time.monotonic() < deadline:
        time.sleep(0.1)
    return value


def test_exits_while_the_daemon_is_down_are_recorded(own):
    daemon, cli = own
    cli("run", "-d", "--name", "lr-ends", "busybox", "sh", "-c", "sleep 1; exit 9")
    cli("run", "-d", "--name", "lr-oom", "-m", "16m", "--memory-swap", "16m", "busybox", "sh", "-c",
        "sleep 1; x=aaaaaaaa; while :; do x=$x$x; done")
    cli("run", "-d", "--name", "lr-runs", "-m", "48m", "--pids-limit", "40", "busybox", "sh", "-c",
        "while :; do echo tick; sleep 0.2; done")
    try:
        oom_pid = _inspect(cli, "lr-oom")["State"]["Pid"]
        ends_pid = _inspect(cli, "lr-ends")["State"]["Pid"]
        _stop_daemon(daemon)
        # Both end while no daemon runs: the supervisor alone sees these exits.
        assert _until(
            lambda: not os.path.exists(f"/proc/{oom_pid}") and not os.path.exists(f"/proc/{ends_pid}")
        )
        daemon.start()
        ends = _inspect(cli, "lr-ends")["State"]
        assert ends["Status"] == "exited" and ends["ExitCode"] == 9
        oom = _inspect(cli, "lr-oom")["State"]
        assert oom["Status"] == "exited" and oom["ExitCode"] == 137 and oom["OOMKilled"] is True
        runs = _inspect(cli, "lr-runs")
        assert runs["State"]["Status"] == "running"
        # Its cgroup and limits are still in force and readable after the restart.
        assert runs["HostConfig"]["Memory"] == 48 << 20
        stats = cli("stats", "--no-stream", "lr-runs")
        assert stats.returncode == 0 and "/ 48MiB" in stats.stdout, stats
        assert f":pids:/pyengine/{runs['Id']}" in Path(f"/proc/{runs['State']['Pid']}/cgroup").read_text()
        before = cli("logs", "lr-runs").stdout.count("tick")
        assert _until(lambda: cli("logs", "lr-runs").stdout.count("tick") > before)
        assert cli("pause", "lr-runs").returncode == 0
        daemon.restart(kill=True)
        assert _inspect(cli, "lr-runs")["State"]["Status"] == "paused"
        assert cli("unpause", "lr-runs").returncode == 0
    finally:
        cli("rm", "-f", "lr-ends", "lr-oom", "lr-runs")


def test_restart_policy_applies_to_exits_while_the_daemon_was_down(own):
    daemon, cli = own
    cli("run", "-d", "--name", "lr-always", "--restart", "always", "busybox", "sh", "-c", "sleep 1; exit 3")
    cli("run", "-d", "--name", "lr-never", "busybox", "sh", "-c", "sleep 1; exit 3")
    try:
        pid = _inspect(cli, "lr-always")["State"]["Pid"]
        _stop_daemon(daemon)
        assert _until(lambda: not os.path.exists(f"/proc/{pid}"))
        time.sleep(0.2)
        daemon.start()
        assert _until(lambda: _inspect(cli, "lr-always")["RestartCount"] >= 1)
        assert _inspect(cli, "lr-never")["State"]["Status"] == "exited"
        assert _inspect(cli, "lr-never")["RestartCount"] == 0
    finally:
        cli("rm", "-f", "lr-always", "lr-never")


def test_host_reboot_leaves_no_container_claiming_to_run(own):
    daemon, cli = own
    cli("run", "-d", "--name", "lr-boot", "-m", "32m", "busybox", "sleep", "600")
    cli("run", "-d", "--name", "lr-boot-always", "--restart", "always", "busybox", "sleep", "600")
    cli("run", "-d", "--name", "lr-boot-stopped", "--restart", "unless-stopped", "busybox", "sleep", "600")
    assert cli("stop", "-t", "0", "lr-boot-stopped").returncode == 0
    try:
        victims = [_inspect(cli, name) for name in ("lr-boot", "lr-boot-always")]
        # "Power off": the daemon, the supervisor and every container process die at once.
        _stop_daemon(daemon)
        supervisor_pid = int(Path(supervisor_pid_file(daemon.exec_root)).read_text().split()[0])
        os.kill(supervisor_pid, signal.SIGKILL)
        for info in victims:
            os.kill(info["State"]["Pid"], signal.SIGKILL)
        assert _until(lambda: not any(os.path.exists(f"/proc/{i['State']['Pid']}") for i in victims))
        assert _until(lambda: not os.path.exists(f"/proc/{supervisor_pid}"))
        shutil.rmtree(os.path.join(daemon.exec_root, "supervisor"), ignore_errors=True)  # /run is gone
        daemon.start()
        boot = _inspect(cli, "lr-boot")
        assert boot["State"]["Status"] == "exited" and boot["State"]["Running"] is False
        assert boot["State"]["Pid"] == 0
        assert not cgroups.exists(cgroups.container_path(boot["Id"]))
        assert _inspect(cli, "lr-boot-stopped")["State"]["Status"] == "exited"
        # The always-restart container comes back as a new process; nothing else runs.
        assert _until(lambda: _inspect(cli, "lr-boot-always")["State"]["Status"] == "running")
        running = cli("ps", "--format", "{{.Names}}").stdout.split()
        assert running == ["lr-boot-always"]
        assert cli("start", "lr-boot").returncode == 0  # and a stopped one starts again
        assert _inspect(cli, "lr-boot")["State"]["Status"] == "running"
    finally:
        cli("rm", "-f", "lr-boot", "lr-boot-always", "lr-boot-stopped")
