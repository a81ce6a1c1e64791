"""Fixtures for the runtime tests: a fresh busybox bundle, and a subreaper to run containers from.

start_container forks and expects its caller to be a child subreaper, so each container is
started from a forked child of the test process that sets PR_SET_CHILD_SUBREAPER, collects the
container's output and exit status, checks that it has no child left, and reports back as JSON.
"""

from __future__ import annotations

import errno
import json
import os
import selectors
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from pyengine.errors import StartFailed
from pyengine.runtime import start_container
from pyengine.runtime import syscalls as sc
from pyengine.testing.bundle import default_spec, make_busybox_rootfs, write_bundle


@dataclass
class ContainerRun:
    error: str | None  # the StartFailed message, if start failed
    stdout: str
    stderr: str
    status: int | None  # wait status of the container's PID 1
    start_seconds: float
    leftover_children: bool  # anything still a child of the subreaper after the run

    @property
    def exit_code(self) -> int | None:
        return os.waitstatus_to_exitcode(self.status) if self.status is not None else None


def _read_all(fds: dict[int, str]) -> dict[str, bytes]:
    output = {name: b"" for name in fds.values()}
    selector = selectors.DefaultSelector()
    for fd in fds:
        selector.register(fd, selectors.EVENT_READ)
    while selector.get_map():
        for key, _ in selector.select():
            try:
                chunk = os.read(key.fd, 65536)
            except OSError as exc:  # a pty master reports EIO once the slave is gone
                if exc.errno != errno.EIO:
                    raise
                chunk = b""
            if chunk:
                output[fds[key.fd]] += chunk
            else:
                selector.unregister(key.fd)
                os.close(key.fd)
    return output


def _subreaper_main(bundle: Path, stdin_data: bytes, kill_with: int | None, timeout: float) -> dict:
    sc.prctl(sc.PR_SET_CHILD_SUBREAPER, 1)
    in_r, in_w = os.pipe()
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    began = time.perf_counter()
    try:
        started = start_container(bundle, stdin=in_r, stdout=out_w, stderr=err_w, timeout=timeout)
    except StartFailed as exc:
        result = {"error": str(exc), "stdout": "", "stderr": "", "status": None}
    else:
        result = {"error": None}
    elapsed = time.perf_counter() - began
    for fd in (in_r, out_w, err_w):
        os.close(fd)
    if result["error"] is None:
        os.write(in_w, stdin_data)
        os.close(in_w)
        if kill_with is not None:
            os.kill(started.pid, kill_with)
        if started.console_fd is not None:
            os.close(out_r)
            os.close(err_r)
            output = _read_all({started.console_fd: "stdout"})
            output["stderr"] = b""
        else:
            output = _read_all({out_r: "stdout", err_r: "stderr"})
        result["status"] = os.waitpid(started.pid, 0)[1]
        result["stdout"] = output["stdout"].decode(errors="replace")
        result["stderr"] = output["stderr"].decode(errors="replace")
    else:
        for fd in (in_w, out_r, err_r):
            os.close(fd)
    try:
        os.waitpid(-1, os.WNOHANG)
        result["leftover_children"] = True
    except ChildProcessError:
        result["leftover_children"] = False
    result["start_seconds"] = elapsed
    return result


def run_container(
    bundle: Path, stdin_data: bytes = b"", kill_with: int | None = None, timeout: float = 60.0
) -> ContainerRun:
    """Start the bundle's container from a subreaper child and wait for it to exit.

    ``kill_with``: a signal the subreaper sends to the container's PID 1 right after the start.
    """
    report_r, report_w = os.pipe()
    child = os.fork()
    if child == 0:
        try:
            os.close(report_r)
            try:
                result = _subreaper_main(bundle, stdin_data, kill_with, timeout)
            except BaseException as exc:  # report, never return into pytest in the child
                result = {"crash": f"{type(exc).__name__}: {exc}"}
            os.write(report_w, json.dumps(result).encode())
        finally:
            os._exit(0)
    os.close(report_w)
    chunks = []
    while chunk := os.read(report_r, 65536):
        chunks.append(chunk)
    os.close(report_r)
    os.waitpid(child, 0)
    result = json.loads(b"".join(chunks))
    if "crash" in result:
        raise AssertionError(f"the subreaper child crashed: {result['crash']}")
    run = ContainerRun(**result)
    assert not run.leftover_children, "a process of the container outlived it (or was never reaped)"
    return run


@pytest.fixture
def bundle(tmp_path: Path):
    """A bundle directory with a busybox rootfs; call it with the container's args to write config.json."""
    make_busybox_rootfs(tmp_path / "rootfs")

    def make(args: list[str], **spec_options) -> tuple[Path, dict]:
        spec = default_spec(args, **spec_options)
        return tmp_path, spec

    return make


def write(bundle_dir: Path, spec: dict) -> Path:
    return write_bundle(bundle_dir, spec)


def _mount_points() -> list[str]:
    with open("/proc/self/mountinfo") as file:
        return [line.split()[4] for line in file]


@pytest.fixture(autouse=True)
def no_leaked_mounts(tmp_path: Path):
    """A container's mounts live in its own mount namespace: none may appear under the test's directory.

    (Other work on this machine mounts things meanwhile, so the whole table is not compared.)
    """
    yield
    leaked = [point for point in _mount_points() if point.startswith(str(tmp_path))]
    assert leaked == []


@pytest.fixture
def unified() -> str:
    """The cgroup2 (unified) hierarchy's mount point; skips without root or a cgroup2 mount."""
    root = None
    with open("/proc/self/mounts") as file:
        for line in file:
            fields = line.split()
            if fields[2] == "cgroup2":
                root = fields[1]
                break
    if os.geteuid() != 0 or root is None:
        pytest.skip("needs root and a cgroup2 mount")
    return root
