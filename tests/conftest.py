"""Fixtures for scenarios on the real kernel: one pyengine daemon per test session, in its own
temporary data root, exec root and socket, driven three ways (our CLI, the docker CLI, the docker SDK).
Teardown ends every container, the supervisor and the daemon, and unmounts and deletes what is left,
even when tests fail."""

from __future__ import annotations

import http.client
import json
import os
import pty
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from pyengine.testing.daemon import teardown_pyengine, wait_for_ping

REPO = Path(__file__).resolve().parents[1]
PYENGINE = [sys.executable, "-m", "pyengine"]
DOCKER = shutil.which("docker") or "/usr/local/bin/docker"
#: the session daemon's --storage-driver (e.g. PYENGINE_TEST_STORAGE_DRIVER=vfs); unset: the default choice
STORAGE_DRIVER = os.environ.get("PYENGINE_TEST_STORAGE_DRIVER", "")
#: the driver the session daemon runs with (overlay is the default where the kernel has it)
EXPECTED_STORAGE_DRIVER = STORAGE_DRIVER or "overlay"


@dataclass
class TestDaemon:
    base_dir: str
    process: subprocess.Popen | None = None
    args: list[str] = field(default_factory=list)

    @property
    def socket(self) -> str:
        return os.path.join(self.base_dir, "pyengine.sock")

    @property
    def host(self) -> str:
        return f"unix://{self.socket}"

    @property
    def data_root(self) -> str:
        return os.path.join(self.base_dir, "data")

    @property
    def data_path(self) -> Path:
        return Path(self.data_root)

    @property
    def exec_root(self) -> str:
        return os.path.join(self.base_dir, "exec")

    @property
    def volume_plugin_dir(self) -> str:
        """Where the daemon looks for Docker volume plugins (tests put their plugin sockets here)."""
        return os.path.join(self.base_dir, "plugins")

    def start(self) -> None:
        self.args = [
            *PYENGINE,
            "daemon",
            "--data-root",
            self.data_root,
            "--exec-root",
            self.exec_root,
            "-H",
            self.host,
            "--volume-plugin-dir",
            self.volume_plugin_dir,
        ]
        if STORAGE_DRIVER:
            self.args += ["--storage-driver", STORAGE_DRIVER]
        log = open(os.path.join(self.base_dir, "daemon.log"), "ab")
        self.process = subprocess.Popen(
            self.args, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True
        )
        log.close()
        wait_for_ping(self.socket, self.process, 30.0, os.path.join(self.base_dir, "daemon.log"))

    def restart(self, *, kill: bool) -> None:
        """Stop the daemon (SIGKILL when ``kill``) and start it again on the same state."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        self.process.wait(30)
        self.start()

    def log_text(self) -> str:
        try:
            return Path(self.base_dir, "daemon.log").read_text()
        except OSError:
            return ""


@pytest.fixture(scope="session")
def storage_driver() -> str:
    """The name of the session daemon's storage driver."""
    return EXPECTED_STORAGE_DRIVER


@pytest.fixture(scope="session")
def daemon():
    base_dir = tempfile.mkdtemp(prefix="pye-t-", dir="/tmp")
    instance = TestDaemon(base_dir)
    try:
        instance.start()
        yield instance
    finally:
        teardown_pyengine(
            daemon_pid=instance.process.pid if instance.process else None,
            exec_root=instance.exec_root,
            cleanup_roots=[base_dir],
            process=instance.process,
            socket_path=instance.socket,
        )


class Runner:
    """Runs a client command line against the test daemon and returns the CompletedProcess."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self.argv = argv
        self.env = env

    def __call__(
        self, *args: str, input: str | None = None, timeout: float = 60, check_timeout: bool = True
    ) -> subprocess.CompletedProcess:
        try:
            return subprocess.run(
                [*self.argv, *args],
                input=input,
                capture_output=True,
                text=True,
                timeout=timeout,
                env=self.env,
            )
        except subprocess.TimeoutExpired as exc:
            if check_timeout:
                raise
            out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
            err = exc.stderr.decode() if isinstance(exc.stderr, bytes) else (exc.stderr or "")
            return subprocess.CompletedProcess(exc.cmd, -1, out, err)


@pytest.fixture(scope="session")
def cli(daemon) -> Runner:
    return Runner([*PYENGINE, "-H", daemon.host], {**os.environ, "PYENGINE_HOST": daemon.host})


@pytest.fixture(scope="session")
def docker(daemon) -> Runner:
    home = tempfile.mkdtemp(prefix="pye-dockercfg-")
    env = {**os.environ, "DOCKER_HOST": daemon.host, "DOCKER_CONFIG": home, "DOCKER_CLI_HINTS": "false"}
    env.pop("DOCKER_BUILDKIT", None)
    yield Runner([DOCKER], env)
    shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="session")
def sdk(daemon):
    docker_sdk = pytest.importorskip("docker")
    client = docker_sdk.DockerClient(base_url=daemon.host)
    yield client
    client.close()


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("localhost", timeout=60)
        self.path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(60)
        self.sock.connect(self.path)


@pytest.fixture(scope="session")
def api(daemon):
    """``api(method, path, body=None, raw=None)`` -> (status, parsed JSON body or text)."""

    def call(
        method: str, path: str, body=None, *, raw: bytes | None = None, content_type: str = "application/json"
    ):
        connection = _UnixConnection(daemon.socket)
        try:
            data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
            headers = {"Content-Type": content_type} if data is not None else {}
            connection.request(method, path, body=data, headers=headers)
            response = connection.getresponse()
            payload = response.read()
            try:
                return response.status, json.loads(payload) if payload else None
            except ValueError:
                return response.status, payload.decode(errors="replace")
        finally:
            connection.close()

    return call


@pytest.fixture(scope="session")
def busybox_tar(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("busybox") / "rootfs.tar"
    subprocess.run(["bash", str(REPO / "scripts" / "make-busybox-rootfs.sh"), str(path)], check=True)
    return path


@pytest.fixture(scope="session")
def busybox(cli, busybox_tar) -> str:
    result = cli("import", "-c", 'CMD ["sh"]', str(busybox_tar), "busybox:latest")
    assert result.returncode == 0, result.stderr
    return "busybox:latest"


@pytest.fixture(scope="session")
def empty_image(cli, busybox_tar) -> str:
    """An image with no CMD and no ENTRYPOINT."""
    result = cli("import", str(busybox_tar), "nocmd:1")
    assert result.returncode == 0, result.stderr
    return "nocmd:1"


@pytest.fixture
def run_in_pty():
    """Run a command on a real pseudo-terminal, type ``send`` into it, return (output, exit status)."""

    def run(
        argv: list[str], send: list[bytes], env: dict[str, str] | None = None, timeout: float = 90
    ) -> tuple[bytes, int]:
        pid, master = pty.fork()
        if pid == 0:  # the child: exec the client on the pty
            try:
                os.execvpe(argv[0], argv, env or dict(os.environ))
            finally:
                os._exit(127)
        output = b""
        deadline = time.monotonic() + timeout
        pending = list(send)
        sent = 0
        try:
            while time.monotonic() < deadline:
                # Type the next line only once the shell has printed one more prompt than lines sent.
                if pending and output.count(b"# ") + output.count(b"$ ") > sent:
                    os.write(master, pending.pop(0))
                    sent += 1
                ready, _, _ = select.select([master], [], [], 0.2)
                if ready:
                    try:
                        chunk = os.read(master, 4096)
                    except OSError:
                        break
                    if not chunk:
                        break
                    output += chunk
                finished, status = os.waitpid(pid, os.WNOHANG)
                if finished:
                    return output, os.waitstatus_to_exitcode(status)
            # The pty closed (the client exited) or time ran out: collect its status either way.
            while time.monotonic() < deadline:
                finished, status = os.waitpid(pid, os.WNOHANG)
                if finished:
                    return output, os.waitstatus_to_exitcode(status)
                time.sleep(0.05)
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return output, -1
        finally:
            os.close(master)

    return run
