"""A throw-away pyengine daemon in temporary directories, and the teardown that leaves nothing behind.

    with pyengine_daemon(("pyengine",)) as engine:
        subprocess.run(["pyengine", "-H", engine.host, "ps"])

The daemon is started as ``<command> daemon --data-root D/data --exec-root D/exec -H unix://D/s``.
It starts a supervisor (pid file ``<exec-root>/supervisor/supervisor.pid``) that holds the
containers and is meant to outlive the daemon, so stopping the daemon alone would leave them
running: teardown_pyengine() ends the containers first, then the supervisor, then the daemon, then
anything else still tied to the directories, and unmounts and deletes what is left. The test
fixtures reuse it.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

from pyengine.testing import engine_api, hostcleanup
from pyengine.testing.dockerd import DaemonStartError, wait_for_ping

__all__ = [
    "DaemonStartError",
    "PyengineDaemon",
    "pyengine_daemon",
    "split_command",
    "supervisor_pid_file",
    "teardown_pyengine",
]


@dataclass(frozen=True)
class PyengineDaemon:
    """A running pyengine daemon. ``host`` is what ``-H`` takes (for pyengine's CLI and docker's)."""

    socket: str
    pid: int
    base_dir: str
    data_root: str
    exec_root: str
    log_path: str
    command: tuple[str, ...]

    @property
    def host(self) -> str:
        return f"unix://{self.socket}"

    @property
    def supervisor_pid_file(self) -> str:
        return supervisor_pid_file(self.exec_root)


def supervisor_pid_file(exec_root: str) -> str:
    return os.path.join(exec_root, "supervisor", "supervisor.pid")


def split_command(command: str | Sequence[str]) -> tuple[str, ...]:
    """``"python -m pyengine"`` or ``("python", "-m", "pyengine")`` -> a tuple of arguments."""
    return tuple(shlex.split(command)) if isinstance(command, str) else tuple(command)


@contextmanager
def pyengine_daemon(
    command: str | Sequence[str] = ("pyengine",),
    *,
    storage_driver: str | None = None,
    extra_args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    start_timeout: float = 30.0,
    stop_timeout: float = 10.0,
    parent_dir: str | None = None,
) -> Iterator[PyengineDaemon]:
    """Start ``<command> daemon`` in a fresh temporary directory and yield it once /_ping answers.

    On exit, or if it fails to start, teardown_pyengine() runs; it raises RuntimeError when
    something could not be cleaned. env is added to this process's environment for the daemon.
    parent_dir is where the temporary directory goes (default /tmp; keep it short, unix socket
    paths must stay below 108 bytes).
    """
    command = split_command(command)
    base_dir = tempfile.mkdtemp(prefix="pe-", dir=parent_dir or "/tmp")
    daemon = PyengineDaemon(
        socket=os.path.join(base_dir, "pyengine.sock"),
        pid=0,
        base_dir=base_dir,
        data_root=os.path.join(base_dir, "data"),
        exec_root=os.path.join(base_dir, "exec"),
        log_path=os.path.join(base_dir, "daemon.log"),
        command=command,
    )
    args = [
        *command,
        "daemon",
        "--data-root",
        daemon.data_root,
        "--exec-root",
        daemon.exec_root,
        "-H",
        daemon.host,
        *(("--storage-driver", storage_driver) if storage_driver else ()),
        *extra_args,
    ]
    process = None
    try:
        with open(daemon.log_path, "ab") as log:
            # Its own session: a Ctrl-C meant for us must not reach it before teardown runs.
            try:
                process = subprocess.Popen(
                    args,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=log,
                    start_new_session=True,
                    env={**os.environ, **(env or {})},
                )
            except FileNotFoundError as exc:
                raise DaemonStartError(
                    f"cannot start the pyengine daemon: {command[0]!r} not found"
                    ' (give the command, e.g. --pyengine "python -m pyengine")'
                ) from exc
        daemon = replace(daemon, pid=process.pid)
        wait_for_ping(daemon.socket, process, start_timeout, daemon.log_path)
        yield daemon
    finally:
        teardown_pyengine(
            daemon_pid=daemon.pid or None,
            exec_root=daemon.exec_root,
            cleanup_roots=[daemon.base_dir],
            process=process,
            socket_path=daemon.socket,
            stop_timeout=stop_timeout,
        )


def teardown_pyengine(
    *,
    daemon_pid: int | None,
    exec_root: str,
    cleanup_roots: Sequence[str],
    process: subprocess.Popen | None = None,
    socket_path: str | None = None,
    stop_timeout: float = 10.0,
    remove_roots: bool = True,
) -> None:
    """End a pyengine daemon and everything it started; raise RuntimeError listing what survived.

    1. If socket_path answers, every container is force-removed through the API (the normal path).
    2. The supervisor's descendants (container processes) are killed, deepest first.
    3. The supervisor gets SIGTERM, then SIGKILL after a short grace.
    4. The daemon gets SIGTERM, then SIGKILL after stop_timeout; its remaining descendants are killed.
    5. Any process still tied to cleanup_roots (naming them on its command line, or a container whose
       root file system comes from them) is killed with its descendants.
    6. Every mount at or below cleanup_roots is unmounted, and (remove_roots) the roots are deleted.

    Pids are checked against their start time before each signal, so a reused pid is left alone.
    """
    problems: list[str] = []
    if socket_path and daemon_pid and engine_api.ping(socket_path):
        problems += engine_api.remove_all_containers(socket_path, timeout=stop_timeout)

    table = hostcleanup.process_table()
    pid_file = supervisor_pid_file(exec_root)
    supervisor_pid = hostcleanup.read_pid_file(pid_file)
    supervisor = table.get(supervisor_pid) if supervisor_pid else None
    if supervisor is not None and not _belongs_to_roots(
        supervisor, daemon_pid, cleanup_roots, table, pid_file
    ):
        supervisor = None  # a stale pid file whose pid now names an unrelated process
    if supervisor is not None:
        containers = hostcleanup.descendants([supervisor.pid], table)
        problems += _describe(hostcleanup.stop_processes(containers), "container process")
        problems += _describe(hostcleanup.stop_processes([supervisor], term_timeout=2.0), "supervisor")

    daemon = table.get(daemon_pid) if daemon_pid else None
    helpers = hostcleanup.descendants([daemon_pid], table) if daemon is not None else []
    if process is not None:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(stop_timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    elif daemon is not None:
        problems += _describe(hostcleanup.stop_processes([daemon], term_timeout=stop_timeout), "daemon")
    problems += _describe(hostcleanup.stop_processes(helpers), "daemon helper")

    leftovers = hostcleanup.processes_referencing(cleanup_roots)
    problems += _describe(hostcleanup.stop_processes(leftovers), "leftover process")

    problems += _remove_container_cgroups(cleanup_roots)
    problems += _remove_network_leftovers(cleanup_roots)
    left_mounts = hostcleanup.unmount_under(cleanup_roots)
    problems += [f"mount {m} could not be unmounted" for m in left_mounts]
    if remove_roots and not left_mounts:
        for root in cleanup_roots:
            try:
                hostcleanup.remove_tree(root)
            except OSError as exc:
                problems.append(f"removing {root}: {exc}")
    if problems:
        raise RuntimeError("pyengine teardown incomplete: " + "; ".join(problems))


def _remove_network_leftovers(cleanup_roots: Sequence[str]) -> list[str]:
    """Delete the bridges, veths and nftables table the bridge driver (when installed) made for a
    daemon whose data root is under the roots: networks outlive a daemon, as Docker's do."""
    import glob

    try:
        from pyengine_net_bridge.plugin import remove_all
    except ImportError:
        return []
    problems = []
    for root in cleanup_roots:
        for state in glob.glob(os.path.join(root, "**", "network", "bridge", "state.json"), recursive=True):
            try:
                remove_all(Path(state).parent)
            except Exception as exc:  # report, and go on with the rest of the teardown
                problems.append(f"network leftovers of {state}: {exc}")
    return problems


def _remove_container_cgroups(cleanup_roots: Sequence[str]) -> list[str]:
    """Remove the cgroups (/pyengine/<id>) of the containers whose directories are under the roots:
    a daemon that died without removing its containers leaves them behind."""
    import glob

    from pyengine.runtime import cgroups

    problems = []
    for root in cleanup_roots:
        # <data-root>/containers/<id>, the data root being the root itself or a directory in it.
        directories = glob.glob(os.path.join(root, "containers", "*"))
        directories += glob.glob(os.path.join(root, "*", "containers", "*"))
        for directory in directories:
            name = os.path.basename(directory)
            if len(name) != 64 or not os.path.isdir(directory):
                continue
            try:
                cgroups.remove(cgroups.container_path(name))
            except OSError as exc:
                problems.append(f"cgroup of {name[:12]}: {exc}")
    return problems


def _belongs_to_roots(
    info: hostcleanup.ProcessInfo,
    daemon_pid: int | None,
    roots: Sequence[str],
    table: dict[int, hostcleanup.ProcessInfo],
    pid_file: str,
) -> bool:
    """Whether the pid read from pid_file is still the process that wrote it.

    True if it descends from the daemon, names one of the roots on its command line, or started
    before the pid file was written (a later reuse of the pid starts after it).
    """
    if daemon_pid and info in hostcleanup.descendants([daemon_pid], table):
        return True
    prefixes = [os.path.realpath(root) for root in roots]
    if any(prefix in arg for arg in info.cmdline for prefix in prefixes):
        return True
    try:
        written = os.stat(pid_file).st_mtime
    except FileNotFoundError:
        return False
    return hostcleanup.start_time_seconds(info) <= written + 1.0


def _describe(survivors: list[hostcleanup.ProcessInfo], what: str) -> list[str]:
    return [f"{what} {p.pid} ({' '.join(p.cmdline)[:80]}) survived SIGKILL" for p in survivors]
