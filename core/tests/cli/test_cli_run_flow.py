"""``pyengine run``/``create``/``start`` against a scripted daemon: the exact calls, output, exit codes."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
from pathlib import Path

from scripted_daemon import Reply, Request, cli_environment, error, frame

CID = "8fa4f99d125bd832d94b30bed7ddf6c86cd08c5890e93833e0c4a793048ba20f"


def engine(
    exit_code: int = 0,
    output: bytes = b"",
    start: Reply | None = None,
    echo_stdin: bool = False,
    images: set[str] | None = None,
    hold: threading.Event | None = None,
):
    """A route function that behaves like the engine for one container."""
    images = {"busybox"} if images is None else images

    def route(request: Request) -> Reply:
        if request.path == "/containers/create":
            image = request.json()["Image"]
            if image not in images:
                return error(404, f"No such image: {image}:latest")
            return Reply(201, {"Id": CID, "Warnings": []})
        if request.path == f"/containers/{CID}/attach":
            return Reply(hijack=output, echo_stdin=echo_stdin, hold=hold)
        if request.path == f"/containers/{CID}/wait":
            return Reply(chunks=[b'{"Error":null,"StatusCode":%d}\n' % exit_code])
        if request.path == f"/containers/{CID}/start":
            return start or Reply(204)
        if request.path == "/images/create":
            return error(500, "pulling is not implemented")
        if request.path.endswith("/kill") or request.path.endswith("/resize"):
            if hold is not None:
                hold.set()  # the container "dies" of the signal: its output ends
            return Reply(204)
        return error(404, "page not found")

    return route


def test_run_rm_streams_output_and_exits_with_the_status(daemon, cli) -> None:
    output = frame(1, b"hi\n") + frame(2, b"err\n") + frame(3, b"daemon noise\n")
    scripted = daemon(engine(exit_code=3, output=output))
    result = cli(scripted.host, "run", "--rm", "busybox", "sh", "-c", "echo hi; exit 3")
    assert result.returncode == 3, result.stderr
    assert result.stdout == "hi\n"
    assert result.stderr == "err\n"
    assert scripted.calls() == [
        "POST /containers/create",
        f"POST /containers/{CID}/attach",
        f"POST /containers/{CID}/wait",
        f"POST /containers/{CID}/start",
    ]
    create = scripted.find("POST", "/containers/create")
    assert create.json()["Cmd"] == ["sh", "-c", "echo hi; exit 3"]
    assert create.json()["HostConfig"]["AutoRemove"] is True
    attach = scripted.find("POST", f"/containers/{CID}/attach")
    assert attach.query == {"stream": ["1"], "stdout": ["1"], "stderr": ["1"]}
    assert attach.headers["upgrade"] == "tcp" and attach.headers["connection"] == "Upgrade"
    assert scripted.find("POST", f"/containers/{CID}/wait").query == {"condition": ["removed"]}
    assert scripted.stdin_received == [b""]  # half-closed at once: no stdin without -i


def test_run_without_rm_waits_for_next_exit(daemon, cli) -> None:
    scripted = daemon(engine())
    result = cli(scripted.host, "run", "busybox", "true")
    assert result.returncode == 0, result.stderr
    assert scripted.find("POST", f"/containers/{CID}/wait").query == {"condition": ["next-exit"]}


def test_run_interactive_forwards_stdin_and_half_closes(daemon, cli) -> None:
    scripted = daemon(engine(echo_stdin=True))
    result = cli(scripted.host, "run", "-i", "--rm", "busybox", "cat", stdin=b"foo\nbar\n")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "foo\nbar\n"
    assert scripted.find("POST", f"/containers/{CID}/attach").query["stdin"] == ["1"]
    body = scripted.find("POST", "/containers/create").json()
    assert (body["OpenStdin"], body["StdinOnce"], body["AttachStdin"]) == (True, True, True)


def test_run_tty_output_is_raw(daemon, cli) -> None:
    scripted = daemon(engine(output=b"\x01raw bytes\r\n"))
    result = cli(scripted.host, "run", "-t", "busybox", "sh")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "\x01raw bytes\r\n"
    assert scripted.find("POST", "/containers/create").json()["Tty"] is True


def test_run_detached_prints_the_id(daemon, cli) -> None:
    scripted = daemon(engine())
    result = cli(scripted.host, "run", "-d", "--name", "web", "-p", "8080:80", "busybox", "sleep", "9")
    assert result.returncode == 0, result.stderr
    assert result.stdout == CID + "\n"
    assert scripted.calls() == ["POST /containers/create", f"POST /containers/{CID}/start"]
    create = scripted.find("POST", "/containers/create")
    assert create.query == {"name": ["web"]}
    assert create.json()["HostConfig"]["PortBindings"] == {"80/tcp": [{"HostIp": "", "HostPort": "8080"}]}


def test_run_missing_image_tries_one_pull_then_fails_125(daemon, cli) -> None:
    scripted = daemon(engine(images=set()))
    result = cli(scripted.host, "run", "--rm", "nosuch", "true")
    assert result.returncode == 125
    assert "Unable to find image 'nosuch' locally" in result.stderr
    assert "Error response from daemon: pulling is not implemented" in result.stderr
    pull = scripted.find("POST", "/images/create")
    assert pull.query == {"fromImage": ["docker.io/library/nosuch"], "tag": ["latest"]}
    assert pull.headers["x-registry-auth"] == "e30="


def test_run_pull_never_does_not_pull(daemon, cli) -> None:
    scripted = daemon(engine(images=set()))
    result = cli(scripted.host, "run", "--pull", "never", "nosuch")
    assert result.returncode == 125
    assert "Error response from daemon: No such image: nosuch:latest" in result.stderr
    assert "Unable to find image" not in result.stderr
    assert scripted.calls() == ["POST /containers/create"]


def test_start_failure_exit_codes(daemon, cli) -> None:
    for message, status in [
        ('exec: "nosuchcmd": executable file not found in $PATH', 127),
        ("exec /etc: permission denied", 126),
        ("cannot create cgroup", 125),
    ]:
        scripted = daemon(engine(start=error(400, message)))
        result = cli(scripted.host, "run", "--rm", "busybox", "nosuchcmd")
        assert result.returncode == status, result.stderr
        assert f"Error response from daemon: {message}" in result.stderr


def test_bad_flag_values_exit_125(daemon, cli, tmp_path: Path) -> None:
    scripted = daemon(engine())
    result = cli(scripted.host, "run", "-p", "1:2:3:4", "busybox")
    assert result.returncode == 125
    assert "invalid port format" in result.stderr
    assert scripted.calls() == []
    assert cli(scripted.host, "run", "--bogus", "busybox").returncode == 125


def test_create_prints_the_id(daemon, cli) -> None:
    scripted = daemon(engine())
    result = cli(scripted.host, "create", "-e", "A=1", "-l", "k=v", "busybox", "ls", "-l")
    assert result.returncode == 0, result.stderr
    assert result.stdout == CID + "\n"
    body = scripted.find("POST", "/containers/create").json()
    assert body["Cmd"] == ["ls", "-l"]  # flags after the image belong to the command
    assert body["Env"] == ["A=1"] and body["Labels"] == {"k": "v"}


def test_start_attach_uses_the_containers_config(daemon, cli) -> None:
    def route(request: Request) -> Reply:
        if request.path == "/containers/web/json":
            return Reply(
                body={
                    "Id": CID,
                    "Config": {"Tty": False, "OpenStdin": False},
                    "HostConfig": {"AutoRemove": False},
                }
            )
        return engine(exit_code=2, output=frame(1, b"out\n"))(request)

    scripted = daemon(route)
    result = cli(scripted.host, "start", "-a", "web")
    assert result.returncode == 2
    assert result.stdout == "out\n"
    assert scripted.calls() == [
        "GET /containers/web/json",
        f"POST /containers/{CID}/attach",
        f"POST /containers/{CID}/wait",
        f"POST /containers/{CID}/start",
    ]


def test_unreachable_daemon_message(cli, tmp_path: Path) -> None:
    host = f"unix://{tmp_path}/absent.sock"
    result = cli(host, "ps")
    assert result.returncode == 1
    assert result.stderr == f"Cannot connect to the pyengine daemon at {host}. Is the daemon running?\n"


def test_signals_to_the_cli_are_forwarded_to_the_container(daemon) -> None:
    hold = threading.Event()
    scripted = daemon(engine(exit_code=143, output=frame(1, b"terminated\n"), hold=hold))
    process = subprocess.Popen(
        [sys.executable, "-m", "pyengine", "-H", scripted.host, "run", "--rm", "busybox", "sleep", "60"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=cli_environment(),
    )
    try:
        scripted.wait_for("POST", f"/containers/{CID}/start")
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 143, stderr
    assert stdout == b"terminated\n"
    assert scripted.find("POST", f"/containers/{CID}/kill").query == {"signal": ["TERM"]}


def test_run_it_makes_the_terminal_raw_sends_its_size_and_restores_it(daemon) -> None:
    import fcntl
    import os
    import select
    import struct
    import termios

    def route(request: Request) -> Reply:
        if request.path == f"/containers/{CID}/attach":
            return Reply(hijack=b"bye\n", stdin_until=b"exit 3\r")
        return engine(exit_code=3)(request)

    scripted = daemon(route)
    master, terminal = os.openpty()
    try:
        fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 33, 111, 0, 0))
        before = termios.tcgetattr(terminal)
        process = subprocess.Popen(
            [sys.executable, "-m", "pyengine", "-H", scripted.host, "run", "-it", "--rm", "busybox", "sh"],
            stdin=terminal,
            stdout=terminal,
            stderr=subprocess.PIPE,
            env=cli_environment(),
        )
        try:
            scripted.wait_for("POST", f"/containers/{CID}/resize")
            os.write(master, b"exit 3\r")
            _, stderr = process.communicate(timeout=60)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
        output = b""
        while select.select([master], [], [], 0)[0]:
            output += os.read(master, 4096)
        after = termios.tcgetattr(terminal)
    finally:
        os.close(master)
        os.close(terminal)
    assert process.returncode == 3, stderr
    assert after == before  # the terminal is back in cooked mode
    assert output == b"bye\n"  # raw mode: no \r added by the terminal while the container ran
    assert scripted.stdin_received == [b"exit 3\r"]  # raw mode: bytes as typed
    assert scripted.find("POST", f"/containers/{CID}/resize").query == {"h": ["33"], "w": ["111"]}
    create = scripted.find("POST", "/containers/create").json()
    assert (create["Tty"], create["OpenStdin"], create["HostConfig"]["ConsoleSize"]) == (
        True,
        True,
        [33, 111],
    )


def test_socket_without_permission_says_so(tmp_path: Path) -> None:
    import os
    import shutil
    import socket

    import pytest

    if shutil.which("setpriv") is None:
        pytest.skip("setpriv (util-linux) is needed to drop CAP_DAC_OVERRIDE")
    path = tmp_path / "locked.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        listener.bind(str(path))
        listener.listen(1)
        os.chmod(path, 0)
        # As root, only CAP_DAC_OVERRIDE lets us in: run the CLI without it.
        result = subprocess.run(
            [
                "setpriv",
                "--bounding-set",
                "-dac_override,-dac_read_search",
                sys.executable,
                "-m",
                "pyengine",
                "-H",
                f"unix://{path}",
                "ps",
            ],
            capture_output=True,
            env=cli_environment(),
            timeout=60,
        )
    finally:
        listener.close()
    assert result.returncode == 1
    assert result.stderr.decode() == (
        f"permission denied while trying to connect to the pyengine daemon socket at unix://{path}\n"
    )


def test_unusable_socket_path_gives_the_reason(cli) -> None:
    host = "unix:///tmp/" + "x" * 120 + ".sock"
    result = cli(host, "ps")
    assert result.returncode == 1
    assert "Is the daemon running?" in result.stderr
    assert result.stderr.rstrip().endswith("AF_UNIX path too long")


def test_run_it_without_a_terminal_is_refused_before_create(daemon, cli) -> None:
    scripted = daemon(engine())
    result = cli(scripted.host, "run", "-it", "--rm", "busybox", "sh", stdin=b"echo hi\n")
    assert result.returncode == 1
    assert result.stderr == "the input device is not a TTY\n"
    assert scripted.calls() == []
