"""Health checks end to end: --health-* flags and an image's HEALTHCHECK, run through exec; status in
inspect and ps, the health filter, health_status events, and the docker CLI and SDK."""

from __future__ import annotations

import json
import subprocess
import time

import pytest

pytest.importorskip("pyengine.containers.exec", reason="health checks run through exec")


def _health(cli, name: str) -> dict:
    result = cli("inspect", name)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)[0]["State"].get("Health") or {}


def _until(predicate, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while not (value := predicate()) and time.monotonic() < deadline:
        time.sleep(0.1)
    return value


def test_health_status_flips_with_the_check(cli, busybox, daemon):
    events = subprocess.Popen([*cli.argv, "events", "--filter", "container=hc-flip", "--format",
                               "{{.Action}}"], stdout=subprocess.PIPE, text=True, env=cli.env)
    result = cli("run", "-d", "--name", "hc-flip", "--health-cmd", "test -f /tmp/ok && echo fine",
                 "--health-interval", "200ms", "--health-retries", "2", busybox, "sleep", "60")
    assert result.returncode == 0, result.stderr
    try:
        assert _health(cli, "hc-flip")["Status"] in ("starting", "unhealthy")
        assert _until(lambda: _health(cli, "hc-flip")["Status"] == "unhealthy")
        assert "(unhealthy)" in cli("ps", "--filter", "name=hc-flip", "--format", "{{.Status}}").stdout
        health = _health(cli, "hc-flip")
        assert health["FailingStreak"] >= 2 and health["Log"][-1]["ExitCode"] == 1
        exec_ok = cli("exec", "hc-flip", "touch", "/tmp/ok")
        assert exec_ok.returncode == 0, exec_ok.stderr
        assert _until(lambda: _health(cli, "hc-flip")["Status"] == "healthy")
        health = _health(cli, "hc-flip")
        assert health["FailingStreak"] == 0 and health["Log"][-1]["Output"] == "fine\n"
        assert "(healthy)" in cli("ps", "--filter", "name=hc-flip", "--format", "{{.Status}}").stdout
        assert cli("ps", "-q", "--filter", "health=healthy", "--filter", "name=hc-flip").stdout.strip()
        assert not cli("ps", "-q", "--filter", "health=unhealthy", "--filter", "name=hc-flip").stdout.strip()
    finally:
        cli("rm", "-f", "hc-flip")
        events.terminate()
    actions = events.communicate(timeout=10)[0].split("\n")
    assert "health_status: unhealthy" in actions and "health_status: healthy" in actions


def test_image_healthcheck_and_no_healthcheck(cli, busybox_tar):
    change = 'HEALTHCHECK --interval=1s --retries=1 CMD true'
    imported = cli("import", "-c", 'CMD ["sleep", "60"]', "-c", change, str(busybox_tar), "hc-image:1")
    if imported.returncode != 0:
        pytest.skip(f"import --change does not take HEALTHCHECK here: {imported.stderr.strip()}")
    try:
        cli("run", "-d", "--name", "hc-img", "hc-image:1")
        cli("run", "-d", "--name", "hc-none", "--no-healthcheck", "hc-image:1")
        assert _until(lambda: _health(cli, "hc-img").get("Status") == "healthy")
        assert _health(cli, "hc-none") == {}
    finally:
        cli("rm", "-f", "hc-img", "hc-none")
        cli("rmi", "hc-image:1")


def test_a_check_that_outlives_its_timeout_fails(cli, busybox):
    cli("run", "-d", "--name", "hc-slow", "--health-cmd", "sleep 5", "--health-interval", "300ms",
        "--health-timeout", "200ms", "--health-retries", "1", busybox, "sleep", "60")
    try:
        assert _until(lambda: _health(cli, "hc-slow").get("Status") == "unhealthy")
        assert "exceeded timeout" in _health(cli, "hc-slow")["Log"][-1]["Output"]
    finally:
        cli("rm", "-f", "hc-slow")


def test_bad_health_values_are_400(api, busybox):
    status, body = api("POST", "/containers/create",
                       {"Image": busybox, "Healthcheck": {"Test": ["CMD", "true"], "Interval": 5}})
    assert status == 400 and "Interval" in body["message"]


def test_health_through_docker_cli_and_sdk(docker, sdk, busybox):
    result = docker("run", "-d", "--name", "hc-docker", "--health-cmd", "true", "--health-interval", "200ms",
                    busybox, "sleep", "60")
    assert result.returncode == 0, result.stderr
    try:
        assert _until(lambda: "(healthy)" in docker("ps", "--filter", "name=hc-docker").stdout)
        status = docker("inspect", "-f", "{{.State.Health.Status}}", "hc-docker").stdout.strip()
        assert status == "healthy"
    finally:
        docker("rm", "-f", "hc-docker")
    container = sdk.containers.run(busybox, ["sleep", "60"], detach=True, name="hc-sdk",
                                   healthcheck={"test": ["CMD", "false"], "interval": 200_000_000,
                                                "retries": 1})
    try:
        def status():
            container.reload()
            return container.attrs["State"].get("Health", {}).get("Status") == "unhealthy"
        assert _until(status)
    finally:
        container.remove(force=True)
