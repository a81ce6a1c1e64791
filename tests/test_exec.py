"""exec: a process joins a running container through our CLI, the docker CLI and the SDK."""

from __future__ import annotations

import os
import subprocess
import time

import pytest
from test_security_defaults import DEFAULT_CAPS, status_fields


@pytest.fixture
def running(cli, busybox):
    """A running container (``-u`` none, ``--group-add 4242``); removed afterwards."""
    name = f"exec-{os.getpid()}-{os.urandom(3).hex()}"
    result = cli(
        "run",
        "-d",
        "--name",
        name,
        "--group-add",
        "4242",
        "-e",
        "FROM_RUN=yes",
        "busybox",
        "sh",
        "-c",
        "echo started; sleep 1000",
    )
    assert result.returncode == 0, result.stderr
    yield name
    cli("rm", "-f", name)


def test_exec_output_and_exit_code(cli, running):
    result = cli("exec", running, "sh", "-c", "echo out; echo err >&2; exit 3")
    assert result.returncode == 3
    assert result.stdout == "out\n"
    assert result.stderr == "err\n"


def test_exec_joins_every_namespace(cli, running):
    container_pid = cli("inspect", "-f", "{{.State.Pid}}", running).stdout.strip()
    result = cli(
        "exec",
        running,
        "sh",
        "-c",
        "hostname; cat /proc/1/cmdline | tr '\\0' ' '; echo; ls /proc | grep -c '^[0-9]'; ip -o link",
    )
    lines = result.stdout.splitlines()
    assert lines[0] == cli("inspect", "-f", "{{.Config.Hostname}}", running).stdout.strip()
    with open(f"/proc/{container_pid}/cmdline", "rb") as handle:  # PID 1 is the container's
        assert lines[1] == handle.read().replace(b"\0", b" ").decode()
    assert int(lines[2]) < 10  # the container's pid namespace, not the host's
    # the container's network namespace: lo and its eth0 on the default bridge, no host interface
    assert [line.split(":")[1].strip().split("@")[0] for line in lines[3:]] == ["lo", "eth0"]
    for kind in ("mnt", "pid", "net", "ipc", "uts"):
        assert os.readlink(f"/proc/{container_pid}/ns/{kind}") != os.readlink(f"/proc/self/ns/{kind}")
    # the same mount namespace: a file written by exec is seen by the container's process
    cli("exec", running, "sh", "-c", "echo shared > /tmp/marker")
    assert cli("exec", running, "cat", "/tmp/marker").stdout == "shared\n"


def test_exec_user_env_workdir(cli, running):
    result = cli(
        "exec", "-u", "1000", "-e", "X=1", "-w", "/tmp", running, "sh", "-c", "id; echo $X $FROM_RUN; pwd"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "uid=1000(user) gid=1000(user) groups=1000(user),4242",
        "1 yes",
        "/tmp",
    ] or (
        result.stdout.splitlines()[1:] == ["1 yes", "/tmp"]
        and "uid=1000(user)" in result.stdout
        and "4242" in result.stdout
    )


def test_exec_has_the_container_security(cli, running):
    result = cli("exec", running, "cat", "/proc/self/status")
    status = status_fields(result.stdout)
    assert status["CapEff"] == DEFAULT_CAPS and status["CapBnd"] == DEFAULT_CAPS
    assert status["Seccomp"] == "2"
    refused = cli("exec", running, "unshare", "-U", "true")
    assert refused.returncode != 0 and "not permitted" in refused.stderr
    user = status_fields(cli("exec", "-u", "1000", running, "cat", "/proc/self/status").stdout)
    assert user["CapEff"] == "0000000000000000" and user["CapBnd"] == DEFAULT_CAPS


def test_exec_no_new_privileges_follows_the_container(cli, busybox):
    name = f"exec-nnp-{os.urandom(3).hex()}"
    assert (
        cli(
            "run",
            "-d",
            "--name",
            name,
            "--security-opt",
            "no-new-privileges",
            "--cap-drop",
            "ALL",
            "busybox",
            "sleep",
            "1000",
        ).returncode
        == 0
    )
    try:
        status = status_fields(cli("exec", name, "cat", "/proc/self/status").stdout)
        assert status["NoNewPrivs"] == "1"
        assert status["CapEff"] == "0000000000000000"
    finally:
        cli("rm", "-f", name)


def test_exec_inherits_no_host_descriptor(cli, running):
    result = cli("exec", running, "sh", "-c", "ls /proc/$$/fd; :")
    assert result.stdout.split() == ["0", "1", "2"]
    interactive = cli("exec", "-i", running, "sh", "-c", "ls /proc/$$/fd; :", input="")
    assert interactive.stdout.split() == ["0", "1", "2"]


def test_exec_stdin(cli, docker, running):
    assert cli("exec", "-i", running, "cat", input="hello\nworld\n").stdout == "hello\nworld\n"
    assert docker("exec", "-i", running, "wc", "-l", input="a\nb\nc\n").stdout.strip() == "3"


def test_exec_missing_command(cli, docker, running):
    for runner in (cli, docker):
        result = runner("exec", running, "nosuch")
        assert result.returncode == 127
        assert "executable file not found" in result.stdout + result.stderr


def test_exec_into_stopped_container_is_409(cli, api, busybox):
    name = f"exec-stopped-{os.urandom(3).hex()}"
    assert cli("create", "--name", name, "busybox", "true").returncode == 0
    try:
        status, body = api("POST", f"/containers/{name}/exec", {"Cmd": ["true"]})
        assert status == 409
        assert body["message"].endswith("is not running")
        result = cli("exec", name, "true")
        assert result.returncode != 0 and "is not running" in result.stderr
    finally:
        cli("rm", "-f", name)


def test_exec_api_shapes(api, running):
    status, body = api("POST", f"/containers/{running}/exec", {"Cmd": []})
    assert status == 400
    status, body = api("POST", f"/containers/{running}/exec", {"Cmd": ["pwd"], "WorkingDir": "tmp"})
    assert status == 400 and "absolute path" in body["message"]
    status, body = api(
        "POST",
        f"/containers/{running}/exec",
        {"Cmd": ["sh", "-c", "exit 4"], "AttachStdout": True, "AttachStderr": True},
    )
    assert status == 201
    exec_id = body["Id"]
    status, info = api("GET", f"/exec/{exec_id}/json")
    assert status == 200 and info["Running"] is False and info["ExitCode"] is None
    status, _ = api("POST", f"/exec/{exec_id}/start", {"Detach": False, "Tty": False})
    assert status == 200
    status, info = api("GET", f"/exec/{exec_id}/json")
    assert info["ExitCode"] == 4 and info["Running"] is False and info["Pid"] > 0
    assert info["ProcessConfig"] == {
        "tty": False,
        "entrypoint": "sh",
        "arguments": ["-c", "exit 4"],
        "privileged": False,
        "user": "",
    }
    assert len(info["ContainerID"]) == 64
    status, body = api("POST", f"/exec/{exec_id}/start", {"Detach": False})
    assert status == 409
    assert api("GET", "/exec/nope/json")[0] == 404


def test_exec_detached(cli, running):
    assert cli("exec", "-d", running, "sh", "-c", "sleep 0.2; echo done > /tmp/detached").returncode == 0
    result = cli(
        "exec",
        running,
        "sh",
        "-c",
        "for i in $(seq 100); do test -f /tmp/detached && break; sleep 0.1; done; cat /tmp/detached",
    )
    assert result.stdout == "done\n"


def test_docker_exec_it_on_a_terminal(docker, running, run_in_pty):
    output, status = run_in_pty(
        [*docker.argv, "exec", "-it", running, "sh"],
        send=[b"tty; stty size; echo $TERM\r", b"exit 6\r"],
        env=docker.env,
    )
    assert status == 6, output
    assert b"/dev/pts/" in output
    assert b"xterm" in output


def test_pyengine_exec_it_on_a_terminal(cli, running, run_in_pty):
    output, status = run_in_pty(
        [*cli.argv, "exec", "-it", running, "sh"],
        send=[b"tty; ls /proc/$$/fd; echo marker\r", b"exit 7\r"],
        env=cli.env,
    )
    assert status == 7, output
    assert b"/dev/pts/" in output and b"marker" in output


def test_sdk_exec_run(sdk, running):
    container = sdk.containers.get(running)
    code, output = container.exec_run(["sh", "-c", "echo sdk; id -u"], user="1000")
    assert code == 0 and output == b"sdk\n1000\n"
    code, (out, err) = container.exec_run(["sh", "-c", "echo o; echo e >&2; exit 2"], demux=True)
    assert code == 2 and out == b"o\n" and err == b"e\n"
    code, output = container.exec_run("tty", tty=True)
    assert code == 0 and output.startswith(b"/dev/pts/")


def test_exec_privileged_gets_every_capability(cli, running):
    with open("/proc/self/status") as handle:
        bounding = status_fields(handle.read())["CapBnd"]  # what this host can grant at all
    status = status_fields(cli("exec", "--privileged", running, "cat", "/proc/self/status").stdout)
    assert status["CapEff"] == bounding


def test_exec_large_output_to_a_slow_reader(cli, running):
    """Far more output than the supervisor buffers for a client: flow control, nothing lost."""
    command = [*cli.argv, "exec", running, "sh", "-c", "head -c 30000000 /dev/zero; echo end >&2"]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=cli.env) as process:
        time.sleep(2)  # let the supervisor's buffer for this client fill up
        total = 0
        while chunk := process.stdout.read(1 << 16):
            total += len(chunk)
        stderr = process.stderr.read()
        assert process.wait(60) == 0
    assert total == 30000000
    assert stderr == b"end\n"
