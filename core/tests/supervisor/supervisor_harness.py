"""What the supervisor tests share: a real supervisor process driven through its client, busybox
bundles, and small readers of frames, logs and memory."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyengine.runtime
from pyengine.supervisor.client import SupervisorClient, ping, read_frame

HERE = Path(__file__).parent
PYTHON = sys.executable
BUSYBOX = "/bin/busybox"
REAL_RUNTIME = hasattr(pyengine.runtime, "start_container")


def run(coroutine, timeout: float = 60):
    """Run a test scenario; the timeout only keeps a broken supervisor from hanging the suite."""
    return asyncio.run(asyncio.wait_for(coroutine, timeout))


def wait_until(predicate, what: str, timeout: float = 30):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.02)


async def read_frames(reader: asyncio.StreamReader) -> list[tuple[int, bytes]]:
    frames = []
    while (frame := await read_frame(reader)) is not None:
        frames.append(frame)
    return frames


def joined(frames: list[tuple[int, bytes]], stream: int) -> bytes:
    return b"".join(payload for number, payload in frames if number == stream)


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for {pid}")


def oci_config(rootfs: Path, args: list[str], terminal: bool, host_pid: bool = False) -> dict:
    """A config.json in the shape of ``runc spec``: the usual mounts and namespaces, few privileges."""
    capabilities = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
    return {
        "ociVersion": "1.0.2",
        "process": {
            "terminal": terminal,
            "user": {"uid": 0, "gid": 0},
            "args": args,
            "env": ["PATH=/bin", "TERM=xterm", "HOME=/"],
            "cwd": "/",
            "capabilities": {kind: capabilities for kind in ("bounding", "effective", "permitted")},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": True,
        },
        "root": {"path": str(rootfs), "readonly": False},
        "hostname": "supervised",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {
                "destination": "/dev",
                "type": "tmpfs",
                "source": "tmpfs",
                "options": ["nosuid", "strictatime", "mode=755", "size=65536k"],
            },
            {
                "destination": "/dev/pts",
                "type": "devpts",
                "source": "devpts",
                "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"],
            },
            {
                "destination": "/sys",
                "type": "sysfs",
                "source": "sysfs",
                "options": ["nosuid", "noexec", "ro"],
            },
        ],
        "linux": {
            "namespaces": [
                {"type": kind}
                for kind in ("pid", "ipc", "uts", "mount", "network")
                if kind != "pid" or not host_pid
            ],
            "maskedPaths": ["/proc/kcore", "/proc/keys", "/sys/firmware"],
            "readonlyPaths": ["/proc/sys", "/proc/sysrq-trigger"],
        },
    }


class Harness:
    """One running supervisor plus what a test needs to drive it and to clean up after it."""

    def __init__(self, tmp_path: Path, rootfs: Path) -> None:
        self.tmp_path = tmp_path
        self.rootfs = rootfs
        self.socket = str(tmp_path / "supervisor.sock")
        self.state_dir = tmp_path / "state"
        self.client = SupervisorClient(self.socket)
        self.process: subprocess.Popen | None = None
        self.container_pids: set[int] = set()
        self._ids = itertools.count(1)

    def spawn(self) -> None:
        if REAL_RUNTIME:
            command = [PYTHON, "-m", "pyengine.supervisor"]
        else:
            launcher = (
                "import sys; sys.path.insert(0, sys.argv.pop(1)); import standin_runtime; "
                "standin_runtime.install(); from pyengine.supervisor.server import main; main()"
            )
            command = [PYTHON, "-c", launcher, str(HERE)]
        command += ["--socket", self.socket, "--state-dir", str(self.state_dir)]
        command += ["--log-file", str(self.tmp_path / "supervisor.log")]
        env = dict(os.environ)
        source_root = str(Path(pyengine.__file__).resolve().parents[1])
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [source_root, env.get("PYTHONPATH")]))
        self.process = subprocess.Popen(command, env=env, start_new_session=True)
        wait_until(lambda: ping(self.socket) is not None or self.process.poll() is not None, "the supervisor")
        if self.process.poll() is not None:
            raise AssertionError(f"the supervisor died: {self.supervisor_log()}")

    @property
    def pid(self) -> int:
        return self.process.pid

    def supervisor_log(self) -> str:
        path = self.tmp_path / "supervisor.log"
        return path.read_text() if path.exists() else ""

    def bundle(self, args: list[str], *, terminal: bool = False, host_pid: bool = False) -> str:
        path = self.tmp_path / f"bundle-{next(self._ids)}"
        path.mkdir()
        (path / "config.json").write_text(json.dumps(oci_config(self.rootfs, args, terminal, host_pid)))
        return str(path)

    async def create(self, args: list[str], *, tty: bool = False, host_pid: bool = False, **options) -> str:
        container_id = f"c{next(self._ids)}"
        log_path = str(self.tmp_path / f"{container_id}-json.log")
        bundle = self.bundle(args, terminal=tty, host_pid=host_pid)
        await self.client.create(container_id, bundle, log_path=log_path, tty=tty, **options)
        return container_id

    async def start(self, container_id: str) -> dict:
        started = await self.client.start(container_id)
        self.container_pids.add(started["pid"])
        return started

    def log_records(self, container_id: str) -> list[dict]:
        path = self.tmp_path / f"{container_id}-json.log"
        return [json.loads(line) for line in path.read_text().splitlines()]

    def exit_record(self, container_id: str) -> dict | None:
        path = self.state_dir / f"{container_id}.exit"
        return json.loads(path.read_text()) if path.exists() else None

    def flag_path(self, name: str) -> str:
        """A path inside the containers whose existence a test controls (the rootfs is shared)."""
        return f"/flags/{self.tmp_path.name}-{name}"

    def raise_flag(self, name: str) -> None:
        """Create the file at :meth:`flag_path`: how a test tells a container to go on."""
        (self.rootfs / self.flag_path(name).lstrip("/")).touch()

    def stop(self) -> None:
        """Kill every container this test started, then the supervisor."""
        for pid in self.container_pids:
            for kill in (os.killpg, os.kill):
                try:
                    kill(pid, signal.SIGKILL)
                except OSError:
                    pass
        if self.process is not None and self.process.poll() is None:
            if self.container_pids:
                # Let the supervisor reap them (it is their parent) before it goes.
                try:
                    wait_until(lambda: not children_of(self.process.pid), "containers to be reaped", 10)
                except AssertionError:
                    pass  # still stop the supervisor; init reaps what is left
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def children_of(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as children:
            return children.read().split()
    except OSError:
        return []
