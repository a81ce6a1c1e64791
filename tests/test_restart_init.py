"""Restart policies (Docker's semantics and backoff), --init as a reaping PID 1, and the lifecycle
flags that go with them (--stop-signal, --stop-timeout, kill -s, rename, wait)."""

from __future__ import annotations

import json
import time
from pathlib import Path


def _inspect(cli, name: str) -> dict:
    result = cli("inspect", name)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)[0]


def _until(predicate, timeout: float = 30.0, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


def test_on_failure_restarts_n_times_then_stays_exited(cli, busybox):
    result = cli("run", "-d", "--name", "rs-fail", "--restart", "on-failure:3", busybox, "sh", "-c", "exit 1")
    assert result.returncode == 0, result.stderr
    try:
        waited = cli("wait", "rs-fail")  # "not-running" does not count the restarts in between
        assert waited.stdout.strip() == "1", waited
        info = _inspect(cli, "rs-fail")
        assert info["RestartCount"] == 3 and info["State"]["Status"] == "exited"
        time.sleep(1.0)
        assert _inspect(cli, "rs-fail")["RestartCount"] == 3
        assert cli("logs", "rs-fail").returncode == 0
    finally:
        cli("rm", "-f", "rs-fail")


def test_on_failure_does_not_restart_a_success(cli, busybox):
    result = cli("run", "-d", "--name", "rs-ok", "--restart", "on-failure", busybox, "true")
    try:
        assert cli("wait", "rs-ok").stdout.strip() == "0"
        time.sleep(0.5)
        info = _inspect(cli, "rs-ok")
        assert info["RestartCount"] == 0 and info["State"]["Status"] == "exited", result
    finally:
        cli("rm", "-f", "rs-ok")


def test_always_restarts_until_a_manual_stop(cli, busybox):
    result = cli("run", "-d", "--name", "rs-always", "--restart", "always", busybox, "sh", "-c",
                 "echo run; sleep 0.3")
    assert result.returncode == 0, result.stderr
    try:
        assert _until(lambda: _inspect(cli, "rs-always")["RestartCount"] >= 2)
        assert cli("stop", "-t", "1", "rs-always").returncode == 0
        stopped = _inspect(cli, "rs-always")
        assert stopped["State"]["Status"] == "exited"
        time.sleep(1.5)
        later = _inspect(cli, "rs-always")
        assert later["State"]["Status"] == "exited" and later["RestartCount"] == stopped["RestartCount"]
        assert cli("logs", "rs-always").stdout.count("run") == stopped["RestartCount"] + 1
    finally:
        cli("rm", "-f", "rs-always")


def test_a_crash_looping_container_shows_restarting_with_backoff(cli, busybox):
    result = cli("run", "-d", "--name", "rs-loop", "--restart", "always", busybox, "sh", "-c", "exit 3")
    assert result.returncode == 0, result.stderr
    try:
        # The backoff doubles from 100 ms, so the waits soon outlast the runs.
        info = _until(lambda: (i := _inspect(cli, "rs-loop"))["State"]["Status"] == "restarting" and i)
        assert info, "never seen restarting"
        assert info["State"]["Restarting"] is True and info["State"]["Running"] is True
        assert info["State"]["ExitCode"] == 3
        status = cli("ps", "-a", "--filter", "name=rs-loop", "--format", "{{.Status}}").stdout
        assert status.startswith("Restarting (3)") or status.startswith("Up"), status
        count = info["RestartCount"]
        time.sleep(1.0)
        # Backoff: at most a handful more within a second, never the hundreds a busy loop would do.
        assert _inspect(cli, "rs-loop")["RestartCount"] - count < 6
        assert cli("stop", "rs-loop").returncode == 0  # a stop cancels the pending restart
        assert _inspect(cli, "rs-loop")["State"]["Status"] == "exited"
    finally:
        cli("rm", "-f", "rs-loop")


def test_restart_policy_via_docker_cli_and_sdk(docker, sdk, busybox):
    result = docker(
        "run", "-d", "--name", "rs-docker", "--restart", "on-failure:2", busybox, "sh", "-c", "exit 5"
    )
    assert result.returncode == 0, result.stderr
    try:
        assert docker("wait", "rs-docker").stdout.strip() == "5"
        assert docker("inspect", "-f", "{{.RestartCount}}", "rs-docker").stdout.strip() == "2"
    finally:
        docker("rm", "-f", "rs-docker")
    container = sdk.containers.run(busybox, ["sh", "-c", "exit 2"], detach=True, name="rs-sdk",
                                   restart_policy={"Name": "on-failure", "MaximumRetryCount": 1})
    try:
        assert container.wait()["StatusCode"] == 2
        container.reload()
        assert container.attrs["RestartCount"] == 1
    finally:
        container.remove(force=True)


def test_update_sets_the_restart_policy(cli, busybox):
    cli("run", "-d", "--name", "rs-update", busybox, "sh", "-c", "sleep 0.5; exit 4")
    try:
        assert cli("update", "--restart", "on-failure:1", "rs-update").returncode == 0
        assert cli("wait", "rs-update").stdout.strip() == "4"
        assert _inspect(cli, "rs-update")["RestartCount"] == 1
    finally:
        cli("rm", "-f", "rs-update")


def _zombies_under(pid: int) -> list[int]:
    """Zombie processes among the descendants of ``pid`` (host pids)."""
    found, queue = [], [pid]
    while queue:
        current = queue.pop()
        try:
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except OSError:
            continue
        for child in map(int, children):
            try:
                state = Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()[0]
            except OSError:
                continue
            if state == "Z":
                found.append(child)
            queue.append(child)
    return found


def test_init_reaps_zombies_and_without_it_they_stay(cli, busybox):
    # The orphaned sleep is re-parented to PID 1; a PID 1 that is `sleep` never reaps it.
    script = "(sleep 0.1 &); exec sleep 30"
    for name, flags in (("rs-noinit", []), ("rs-init", ["--init"])):
        result = cli("run", "-d", "--name", name, *flags, busybox, "sh", "-c", script)
        assert result.returncode == 0, result.stderr
    try:
        time.sleep(1.0)
        assert _until(lambda: _zombies_under(_inspect(cli, "rs-noinit")["State"]["Pid"]), timeout=10)
        init_pid = _inspect(cli, "rs-init")["State"]["Pid"]
        assert Path(f"/proc/{init_pid}/cmdline").read_bytes().split(b"\0")[0] == b"/sbin/docker-init"
        assert _zombies_under(init_pid) == []
        info = _inspect(cli, "rs-init")
        assert info["HostConfig"]["Init"] is True and info["Path"] == "sh"
    finally:
        cli("rm", "-f", "rs-noinit", "rs-init")


def test_init_forwards_the_stop_signal_and_passes_the_exit_code(cli, busybox):
    result = cli("run", "--rm", "--init", busybox, "sh", "-c", "sleep 1 & exit 7")
    assert result.returncode == 7, result
    cli("run", "-d", "--name", "rs-init-stop", "--init", busybox, "sleep", "60")
    try:
        started = time.monotonic()
        assert cli("stop", "-t", "20", "rs-init-stop").returncode == 0
        assert time.monotonic() - started < 15  # tini passed SIGTERM on; no 20 s timeout then SIGKILL
        assert _inspect(cli, "rs-init-stop")["State"]["ExitCode"] == 143
    finally:
        cli("rm", "-f", "rs-init-stop")


def test_stop_signal_stop_timeout_kill_s_rename_wait(cli, busybox):
    trap = "trap 'echo got-usr1; exit 11' USR1; while :; do sleep 0.1; done"
    result = cli("run", "-d", "--name", "rs-sig", "--stop-signal", "USR1", "--stop-timeout", "30", busybox,
                 "sh", "-c", trap)
    assert result.returncode == 0, result.stderr
    try:
        assert _inspect(cli, "rs-sig")["Config"]["StopSignal"] == "USR1"
        assert _inspect(cli, "rs-sig")["Config"]["StopTimeout"] == 30
        time.sleep(0.3)
        assert cli("stop", "rs-sig").returncode == 0
        assert _inspect(cli, "rs-sig")["State"]["ExitCode"] == 11
        assert "got-usr1" in cli("logs", "rs-sig").stdout
        assert cli("start", "rs-sig").returncode == 0
        time.sleep(0.3)
        assert cli("kill", "-s", "USR1", "rs-sig").returncode == 0
        assert cli("wait", "rs-sig").stdout.strip() == "11"
        assert cli("rename", "rs-sig", "rs-renamed").returncode == 0
        assert _inspect(cli, "rs-renamed")["Name"] == "/rs-renamed"
        assert cli("inspect", "rs-sig").returncode != 0
    finally:
        cli("rm", "-f", "rs-sig", "rs-renamed")


def test_bad_restart_policies_are_400(api, busybox):
    for host_config, wanted in (
        ({"RestartPolicy": {"Name": "sometimes"}}, "unknown policy 'sometimes'"),
        ({"RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": -1}}, "cannot be negative"),
        ({"RestartPolicy": {"Name": "always", "MaximumRetryCount": 2}}, "only be used with 'on-failure'"),
        ({"RestartPolicy": {"Name": "always"}, "AutoRemove": True}, "--restart and --rm"),
    ):
        status, body = api("POST", "/containers/create", {"Image": busybox, "HostConfig": host_config})
        assert status == 400 and wanted in body["message"], (host_config, body)
