"""Resource limits on the real kernel (this host: cgroup v1 controllers): the values in the cgroup
files, enforcement (OOM kill, pids limit), pause, update, stats and top, through our CLI, the docker
CLI and the SDK. Every container is removed in a finally block; its cgroup goes with it."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from pyengine.runtime import cgroups

pytestmark = pytest.mark.skipif(cgroups.host().version != 1, reason="these tests read cgroup v1 files")

V1 = Path("/sys/fs/cgroup")


def _cg(controller: str, container_id: str, name: str) -> str:
    return (V1 / controller / "pyengine" / container_id / name).read_text().strip()


def _inspect(cli, name: str) -> dict:
    result = cli("inspect", name)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)[0]


def _wait_status(cli, name: str, status: str, timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        info = _inspect(cli, name)
        if info["State"]["Status"] == status or time.monotonic() > deadline:
            return info
        time.sleep(0.1)


def test_limits_are_written_to_the_cgroup_and_the_process_is_in_it(cli, busybox):
    result = cli("run", "-d", "--name", "cg-limits", "-m", "64m", "--memory-swap", "128m", "--cpus", "0.5",
                 "--pids-limit", "100", "--cpu-shares", "512", "--cpuset-cpus", "0", busybox, "sleep", "60")
    assert result.returncode == 0, result.stderr
    container_id = result.stdout.strip()
    try:
        assert _cg("memory", container_id, "memory.limit_in_bytes") == str(64 << 20)
        assert _cg("memory", container_id, "memory.memsw.limit_in_bytes") == str(128 << 20)
        assert _cg("cpu", container_id, "cpu.cfs_quota_us") == "50000"
        assert _cg("cpu", container_id, "cpu.cfs_period_us") == "100000"
        assert _cg("cpu", container_id, "cpu.shares") == "512"
        assert _cg("cpuset", container_id, "cpuset.cpus") == "0"
        assert _cg("pids", container_id, "pids.max") == "100"
        assert "c 1:3 rwm" in _cg("devices", container_id, "devices.list")
        assert "a *:* rwm" not in _cg("devices", container_id, "devices.list")
        info = _inspect(cli, "cg-limits")
        pid = info["State"]["Pid"]
        membership = Path(f"/proc/{pid}/cgroup").read_text()
        for controller in ("memory", "pids", "cpu", "freezer", "devices"):
            assert f":{controller}:/pyengine/{container_id}\n" in membership
        host_config = info["HostConfig"]
        assert host_config["Memory"] == 64 << 20 and host_config["MemorySwap"] == 128 << 20
        assert host_config["NanoCpus"] == 500_000_000 and host_config["PidsLimit"] == 100
    finally:
        cli("rm", "-f", "cg-limits")
    assert not (V1 / "memory" / "pyengine" / container_id).exists()
    assert not (V1 / "pids" / "pyengine" / container_id).exists()


def test_memory_defaults_swap_to_twice_the_limit_and_the_cgroup_goes_after_the_exit(cli, busybox):
    result = cli("run", "--name", "cg-swap", "-m", "32m", busybox, "sh", "-c", "cat /proc/self/cgroup")
    try:
        assert result.returncode == 0, result.stderr
        info = _inspect(cli, "cg-swap")
        assert info["HostConfig"]["MemorySwap"] == 64 << 20
        assert f"/pyengine/{info['Id']}" in result.stdout
        assert not (V1 / "memory" / "pyengine" / info["Id"]).exists()  # removed after the exit
    finally:
        cli("rm", "-f", "cg-swap")


def test_memory_hog_is_oom_killed_alone(cli, busybox):
    result = cli("run", "--name", "cg-oom", "-m", "16m", "--memory-swap", "16m", busybox,
                 "sh", "-c", "x=aaaaaaaaaaaaaaaa; while :; do x=$x$x; done", timeout=120)
    try:
        assert result.returncode == 137, (result.returncode, result.stderr)
        state = _inspect(cli, "cg-oom")["State"]
        assert state["OOMKilled"] is True and state["ExitCode"] == 137
        assert cli("version").returncode == 0  # the daemon is still responsive
    finally:
        cli("rm", "-f", "cg-oom")


def test_a_container_without_oom_is_not_reported_oom_killed(cli, busybox):
    result = cli("run", "-d", "--name", "cg-nooom", "-m", "16m", busybox, "sleep", "60")
    try:
        assert result.returncode == 0, result.stderr
        assert cli("kill", "cg-nooom").returncode == 0
        assert cli("wait", "cg-nooom").stdout.strip() == "137"
        assert _inspect(cli, "cg-nooom")["State"]["OOMKilled"] is False
    finally:
        cli("rm", "-f", "cg-nooom")


def test_pids_limit_throttles_a_fork_bomb(cli, busybox):
    # The subshell dies at the first refused fork; the container's sh and the sleeps it got live on.
    script = "(for i in $(seq 200); do sleep 30 & done) 2>&1; echo forked; sleep 30"
    result = cli("run", "-d", "--name", "cg-pids", "--pids-limit", "20", busybox, "sh", "-c", script)
    assert result.returncode == 0, result.stderr
    container_id = result.stdout.strip()
    try:
        deadline = time.monotonic() + 30
        while "forked" not in (logs := cli("logs", "cg-pids").stdout + cli("logs", "cg-pids").stderr):
            assert time.monotonic() < deadline, logs
            time.sleep(0.2)
        assert "can't fork" in logs or "Resource temporarily unavailable" in logs, logs
        assert int(_cg("pids", container_id, "pids.current")) <= 20
        assert _inspect(cli, "cg-pids")["State"]["Status"] == "running"
        assert int(_cg("pids", container_id, "pids.events").split()[-1]) > 0  # "max N": refusals
    finally:
        cli("rm", "-f", "cg-pids")


@pytest.mark.parametrize(
    ("flags", "wanted"),
    [
        (["-m", "1k"], "Minimum memory limit allowed is 6MB (--memory)"),
        (["--cpus", "-1"], "(--cpus)"),
        (["--cpus", "99"], "(--cpus)"),
        (["-m", "64m", "--memory-swap", "32m"], "(--memory-swap)"),
        (["--cpuset-cpus", "7-9"], "(--cpuset-cpus)"),
        (["--blkio-weight", "5"], "(--blkio-weight)"),
        (["--cpu-period", "10"], "(--cpu-period)"),
    ],
)
def test_senseless_limits_are_refused_and_nothing_is_created(cli, busybox, flags, wanted):
    before = cli("ps", "-aq").stdout
    result = cli("run", "--name", "cg-bad", *flags, busybox, "true")
    try:
        assert result.returncode == 125, result
        assert wanted in result.stderr
        assert cli("ps", "-aq").stdout == before
    finally:
        cli("rm", "-f", "cg-bad")


def test_senseless_limits_through_the_api_are_400(api, busybox):
    status, body = api("POST", "/containers/create", {"Image": busybox, "HostConfig": {"Memory": 1024}})
    assert status == 400 and "Minimum memory limit allowed is 6MB" in body["message"]
    status, body = api("POST", "/containers/create", {"Image": busybox, "HostConfig": {"NanoCpus": -1}})
    assert status == 400 and "--cpus" in body["message"]


def test_pause_freezes_and_unpause_thaws(cli, busybox):
    result = cli("run", "-d", "--name", "cg-pause", busybox, "sh", "-c", "while :; do sleep 0.1; done")
    assert result.returncode == 0, result.stderr
    container_id = result.stdout.strip()
    try:
        assert cli("pause", "cg-pause").returncode == 0
        assert _cg("freezer", container_id, "freezer.state") == "FROZEN"
        info = _inspect(cli, "cg-pause")
        assert info["State"]["Status"] == "paused" and info["State"]["Paused"] is True
        status = Path(f"/proc/{info['State']['Pid']}/status").read_text()
        assert "State:\tD" in status  # frozen tasks show as uninterruptible
        assert "(Paused)" in cli("ps", "--format", "{{.Names}} {{.Status}}").stdout
        again = cli("pause", "cg-pause")
        assert again.returncode != 0 and "already paused" in again.stderr
        assert cli("unpause", "cg-pause").returncode == 0
        assert _cg("freezer", container_id, "freezer.state") == "THAWED"
        assert _inspect(cli, "cg-pause")["State"]["Status"] == "running"
        assert cli("pause", "cg-pause").returncode == 0
        assert cli("stop", "-t", "1", "cg-pause").returncode == 0  # a paused container can be stopped
        assert _inspect(cli, "cg-pause")["State"]["Status"] == "exited"
    finally:
        cli("rm", "-f", "cg-pause")


def test_pause_of_a_stopped_container_is_409(api, cli, busybox):
    cli("create", "--name", "cg-created", busybox, "true")
    try:
        status, body = api("POST", "/containers/cg-created/pause")
        assert status == 409 and "is not running" in body["message"]
    finally:
        cli("rm", "-f", "cg-created")


def test_update_changes_the_limits_of_a_running_container(cli, busybox):
    result = cli("run", "-d", "--name", "cg-update", "-m", "64m", busybox, "sleep", "60")
    assert result.returncode == 0, result.stderr
    container_id = result.stdout.strip()
    try:
        update = cli("update", "-m", "32m", "--pids-limit", "50", "--cpus", "1.5", "cg-update")
        assert update.returncode == 0, update.stderr
        assert _cg("memory", container_id, "memory.limit_in_bytes") == str(32 << 20)
        assert _cg("pids", container_id, "pids.max") == "50"
        assert _cg("cpu", container_id, "cpu.cfs_quota_us") == "150000"
        host_config = _inspect(cli, "cg-update")["HostConfig"]
        assert host_config["Memory"] == 32 << 20 and host_config["PidsLimit"] == 50
        bad = cli("update", "-m", "1k", "cg-update")
        assert bad.returncode != 0 and "Minimum memory limit" in bad.stderr
        assert _cg("memory", container_id, "memory.limit_in_bytes") == str(32 << 20)
        raised = cli("update", "-m", "256m", "cg-update")  # above the old memory+swap
        assert raised.returncode == 0, raised.stderr
        assert _cg("memory", container_id, "memory.limit_in_bytes") == str(256 << 20)
    finally:
        cli("rm", "-f", "cg-update")


def test_stats_one_shot_and_stream_in_dockers_shape(api, cli, busybox):
    result = cli("run", "-d", "--name", "cg-stats", "-m", "64m", busybox, "sh", "-c",
                 "while :; do :; done")
    assert result.returncode == 0, result.stderr
    try:
        status, doc = api("GET", "/containers/cg-stats/stats?stream=false")
        assert status == 200
        keys = ("read", "preread", "cpu_stats", "precpu_stats", "memory_stats", "pids_stats", "blkio_stats")
        for key in keys:
            assert key in doc
        assert doc["name"] == "/cg-stats" and doc["memory_stats"]["limit"] == 64 << 20
        usage, previous = doc["cpu_stats"]["cpu_usage"], doc["precpu_stats"]["cpu_usage"]
        assert usage["total_usage"] > previous["total_usage"] > 0
        assert doc["pids_stats"]["current"] == 1
        table = cli("stats", "--no-stream", "cg-stats")
        assert table.returncode == 0, table.stderr
        header, row = table.stdout.splitlines()
        assert header.split()[:3] == ["CONTAINER", "ID", "NAME"]
        assert "cg-stats" in row and "/ 64MiB" in row
    finally:
        cli("rm", "-f", "cg-stats")


def test_stats_stream_gives_a_reading_per_second(daemon, cli, busybox):
    import socket

    result = cli("run", "-d", "--name", "cg-stream", busybox, "sleep", "60")
    assert result.returncode == 0, result.stderr
    sock = socket.socket(socket.AF_UNIX)
    try:
        sock.settimeout(30)
        sock.connect(daemon.socket)
        sock.sendall(b"GET /containers/cg-stream/stats HTTP/1.1\r\nHost: x\r\n\r\n")
        data = b""
        while data.count(b'"read"') < 2:
            chunk = sock.recv(65536)
            assert chunk, data
            data += chunk
        assert b"200 OK" in data.split(b"\r\n", 1)[0]
        assert data.count(b'"precpu_stats"') >= 2
    finally:
        sock.close()
        cli("rm", "-f", "cg-stream")


def test_top_lists_the_containers_processes(cli, api, busybox):
    result = cli("run", "-d", "--name", "cg-top", busybox, "sh", "-c", "sleep 61 & sleep 62; echo done")
    assert result.returncode == 0, result.stderr
    try:
        deadline = time.monotonic() + 10
        while "sleep 62" not in (out := cli("top", "cg-top").stdout) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert out.split()[:2] == ["UID", "PID"], out
        assert "sleep 61" in out and "sleep 62" in out
        assert "pytest" not in out
        status, doc = api("GET", "/containers/cg-top/top?ps_args=-o%20pid,comm")
        assert status == 200 and doc["Titles"] == ["PID", "COMMAND"]
        assert sorted(row[1] for row in doc["Processes"]) == ["sh", "sleep", "sleep"]
    finally:
        cli("rm", "-f", "cg-top")


def test_docker_cli_pause_stats_top_update(docker, busybox):
    result = docker(
        "run", "-d", "--name", "cg-docker", "-m", "48m", "--pids-limit", "30", busybox, "sleep", "60"
    )
    assert result.returncode == 0, result.stderr
    container_id = result.stdout.strip()
    try:
        assert docker("pause", "cg-docker").returncode == 0
        assert "Paused" in docker("ps", "--format", "{{.Status}}", "-f", "name=cg-docker").stdout
        assert docker("unpause", "cg-docker").returncode == 0
        stats = docker("stats", "--no-stream", "cg-docker")
        assert stats.returncode == 0 and "48MiB" in stats.stdout, stats
        top = docker("top", "cg-docker")
        assert top.returncode == 0 and "sleep 60" in top.stdout, top
        update = docker("update", "--memory", "40m", "--memory-swap", "80m", "cg-docker")
        assert update.returncode == 0, update.stderr
        assert _cg("memory", container_id, "memory.limit_in_bytes") == str(40 << 20)
        bad = docker("run", "--rm", "-m", "1k", busybox, "true")
        assert bad.returncode != 0 and "Minimum memory limit allowed is 6MB" in bad.stderr
    finally:
        docker("rm", "-f", "cg-docker")


def test_sdk_limits_pause_stats(sdk, busybox):
    container = sdk.containers.run(busybox, ["sleep", "60"], detach=True, name="cg-sdk", mem_limit="40m",
                                   pids_limit=25, nano_cpus=250_000_000)
    try:
        assert _cg("cpu", container.id, "cpu.cfs_quota_us") == "25000"
        container.pause()
        container.reload()
        assert container.status == "paused"
        container.unpause()
        stats = container.stats(stream=False)
        assert stats["memory_stats"]["limit"] == 40 << 20
        assert "sleep 60" in " ".join(" ".join(row) for row in container.top()["Processes"])
        container.update(mem_limit="30m", memswap_limit="60m")
        assert _cg("memory", container.id, "memory.limit_in_bytes") == str(30 << 20)
    finally:
        container.remove(force=True)


def test_non_root_container_joins_its_cgroup(cli, busybox):
    result = cli("run", "--rm", "-u", "1000:1000", "--pids-limit", "10", busybox, "cat", "/proc/self/cgroup")
    assert result.returncode == 0, result.stderr
    assert ":pids:/pyengine/" in result.stdout


def test_no_pyengine_cgroup_is_left_behind_by_the_tests_above(daemon, cli):
    ids = set(cli("ps", "-aq", "--no-trunc").stdout.split())
    for controller in ("memory", "pids", "cpu", "freezer"):
        parent = V1 / controller / "pyengine"
        if parent.exists():
            leftovers = {entry for entry in os.listdir(parent) if (parent / entry).is_dir()}
            # Other daemons on this host (other test sessions) may own some: only ours must be gone.
            assert not leftovers & (set(_all_ids_ever(daemon)) - ids)


def _all_ids_ever(daemon) -> list[str]:
    containers = Path(daemon.data_root) / "containers"
    return os.listdir(containers) if containers.exists() else []
