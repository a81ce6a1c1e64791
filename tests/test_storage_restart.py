"""Live restore of storage: a daemon restarted (gracefully: its storage driver's cleanup runs) while a
container runs leaves the container's root mounted and usable, and releases it when it stops."""

from __future__ import annotations

import json
import time
import uuid


def _mount_points_under(path: str) -> list[str]:
    with open("/proc/self/mountinfo") as mountinfo:
        points = [line.split()[4] for line in mountinfo]
    return [p for p in points if p.startswith(path.rstrip("/") + "/")]


def _wait_for_logs(cli, name: str, text: str) -> str:
    for _ in range(300):
        logs = cli("logs", name).stdout
        if text in logs:
            return logs
        time.sleep(0.1)
    return cli("logs", name).stdout


def test_a_restarted_daemon_keeps_a_running_containers_root(cli, busybox, daemon, storage_driver, tmp_path):
    name = f"restored-{uuid.uuid4().hex[:8]}"
    script = "i=0; while :; do i=$((i+1)); echo $i > /counter; echo tick$i; sleep 0.1; done"
    assert cli("run", "-d", "--name", name, busybox, "sh", "-c", script).returncode == 0
    try:
        container_id = json.loads(cli("inspect", name).stdout)[0]["Id"]
        storage = str(daemon.data_path / "storage")
        mounted_before = [p for p in _mount_points_under(storage) if container_id in p]
        if storage_driver == "overlay":
            assert len(mounted_before) == 1
        daemon.restart(kill=False)
        assert [p for p in _mount_points_under(storage) if container_id in p] == mounted_before
        ticks = cli("logs", name).stdout.count("tick")
        assert ticks < _wait_for_logs(cli, name, f"tick{ticks + 3}").count("tick")  # it still writes
        copied = tmp_path / "counter"
        assert cli("cp", f"{name}:/counter", str(copied)).returncode == 0
        assert int(copied.read_text()) >= ticks  # the live root, not a stale copy
        assert cli("stop", "-t", "1", name).returncode == 0
        assert [p for p in _mount_points_under(storage) if container_id in p] == []
        assert cli("rm", name).returncode == 0
    finally:
        cli("rm", "-f", name)
