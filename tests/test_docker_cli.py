"""The real docker CLI against our daemon, unchanged (DOCKER_HOST=unix://...)."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.docker_cli


def test_run_rm_echo(docker, busybox):
    result = docker("run", "--rm", "busybox", "echo", "hello")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "hello\n"
    assert docker("ps", "-aq").stdout == ""


def test_exit_codes(docker, busybox):
    assert docker("run", "--rm", "busybox", "sh", "-c", "exit 7").returncode == 7
    missing = docker("run", "--rm", "busybox", "nosuch")
    assert missing.returncode == 127
    assert "executable file not found" in missing.stderr


def test_stdin_is_forwarded(docker, busybox):
    result = docker("run", "--rm", "-i", "busybox", "sh", "-c", "cat; echo done", input="line1\nline2\n")
    assert result.stdout == "line1\nline2\ndone\n"


def test_detached_ps_logs_stop_rm(docker, busybox):
    run = docker("run", "-d", "--name", "dk-web", "busybox", "sh", "-c", "echo started; sleep 60")
    assert run.returncode == 0, run.stderr
    try:
        ps = docker("ps", "--format", "{{.Names}}|{{.Image}}|{{.Command}}")
        assert ps.stdout.startswith('dk-web|busybox|"sh -c echo')  # the CLI quotes and truncates
        logs = docker("logs", "dk-web")
        assert logs.stdout == "started\n"
        assert docker("stop", "-t", "1", "dk-web").returncode == 0
        state = json.loads(docker("inspect", "dk-web").stdout)[0]["State"]
        assert state["Running"] is False and state["ExitCode"] == 137
        assert docker("stop", "dk-web").returncode == 0  # 304: already stopped is not an error
    finally:
        docker("rm", "-f", "dk-web")


def test_remove_running_needs_force(docker, busybox):
    docker("run", "-d", "--name", "dk-busy", "busybox", "sleep", "60")
    try:
        refused = docker("rm", "dk-busy")
        assert refused.returncode == 1
        assert "You cannot remove a running container" in refused.stderr
    finally:
        assert docker("rm", "-f", "dk-busy").returncode == 0


def test_name_conflict(docker, busybox):
    docker("create", "--name", "dk-dup", "busybox", "true")
    try:
        again = docker("create", "--name", "dk-dup", "busybox", "true")
        assert again.returncode != 0
        assert 'The container name "/dk-dup" is already in use' in again.stderr
    finally:
        docker("rm", "dk-dup")


def test_unknown_image_and_object(docker):
    missing = docker("run", "--rm", "--pull", "never", "nosuchimage:1", "true")
    assert missing.returncode == 125
    assert "No such image: nosuchimage:1" in missing.stderr
    inspect = docker("inspect", "nosuchobject")
    assert inspect.returncode == 1 and "No such object: nosuchobject" in inspect.stderr


def test_images_and_version(docker, busybox, storage_driver):
    images = docker("images", "--format", "{{.Repository}}:{{.Tag}}")
    assert "busybox:latest" in images.stdout.split()
    version = docker("version", "--format", "{{.Server.APIVersion}}")
    assert version.stdout.strip() == "1.41"
    info = docker("info", "--format", "{{.Driver}}")
    assert info.stdout.strip() == storage_driver


def test_tty_run(docker, busybox, run_in_pty):
    output, status = run_in_pty(
        [*docker.argv, "run", "-it", "--rm", "busybox", "sh"],
        send=[b"tty; stty size\r", b"exit 5\r"],
        env=docker.env,
    )
    assert status == 5
    assert b"/dev/pts/0" in output
