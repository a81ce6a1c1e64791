"""The supervisor process: one single-threaded loop that starts and watches every container.

It is a child subreaper, so a container's process (forked by the runtime from here) is its child and
its exit status comes to it through a pidfd per container. It holds each container's stdio, writes the
json-file logs and records exits in ``<state_dir>/<id>.exit``, whether or not any client is connected:
the daemon may die and come back, the containers and their logs carry on.

On SIGTERM (or SIGINT) it stops serving and exits, leaving running containers alone, like Docker's
live-restore; their output pipes then have no reader, so a container that writes afterwards gets
SIGPIPE/EPIPE, and their exit statuses go to init instead. The daemon never stops the supervisor on a
normal restart.
"""

from __future__ import annotations

import argparse
import ctypes
import fcntl
import gc
import json
import logging
import os
import re
import resource
import signal
import socket
import sys

from pyengine.errors import Conflict, EngineError, InvalidArgument, NotFound, StartFailed
from pyengine.runtime.start import compile_seccomp
from pyengine.supervisor.connection import Connection
from pyengine.supervisor.container import Container
from pyengine.supervisor.exec_process import ExecProcess
from pyengine.supervisor.reactor import Reactor

log = logging.getLogger("pyengine.supervisor")

PR_SET_CHILD_SUBREAPER = 36
CONTAINER_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Supervisor:
    def __init__(self, socket_path: str, state_dir: str) -> None:
        self.socket_path = socket_path
        self.state_dir = state_dir
        self.reactor = Reactor()
        self.containers: dict[str, Container] = {}
        self.event_clients: set[Connection] = set()
        self.stopping = False
        self._listener: socket.socket | None = None
        self._wakeup_fd: int | None = None
        self._ops = {
            "create": self._create,
            "start": self._start,
            "attach": self._attach,
            "signal": self._signal,
            "resize": self._resize,
            "state": self._state,
            "list": self._list,
            "delete": self._delete,
            "events": self._events,
            "ping": self._ping,
            "exec": self._exec,
            "exec_resize": self._exec_resize,
        }
        self.execs: dict[str, ExecProcess] = {}

    def serve(self) -> None:
        """Listen on the socket and run until SIGTERM or SIGINT."""
        self._listen()
        self._handle_signals()
        log.info("supervisor %d serving on %s", os.getpid(), self.socket_path)
        while not self.stopping:
            self.reactor.run_once()
        running = sum(container.running for container in self.containers.values())
        log.info("stopping; leaving %d running containers alone", running)
        self._listener.close()
        _remove(self.socket_path)

    def notify(self, event: dict) -> None:
        for conn in list(self.event_clients):
            conn.send_message(event)

    # -- plumbing ----------------------------------------------------------------------------------

    def _listen(self) -> None:
        _remove(self.socket_path)  # stale: the pid file lock proves no other supervisor serves it
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(self.socket_path)
        os.chmod(self.socket_path, 0o600)
        # A full backlog makes a non-blocking connect fail (asyncio then reports ENOTCONN): keep it deep.
        listener.listen(socket.SOMAXCONN)
        listener.setblocking(False)
        self._listener = listener
        self.reactor.on_readable(listener.fileno(), self._accept)

    def _accept(self) -> None:
        while True:
            try:
                sock, _ = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # e.g. out of file descriptors: keep serving the others
                log.error("accept failed: %s", exc)
                return
            Connection(self.reactor, sock, self._handle_line)

    def _handle_signals(self) -> None:
        read_end, write_end = os.pipe()
        os.set_blocking(read_end, False)
        os.set_blocking(write_end, False)
        signal.set_wakeup_fd(write_end, warn_on_full_buffer=False)
        for signum in (*STOP_SIGNALS, signal.SIGCHLD):
            # The handler does nothing: the wakeup fd tells the loop which signal came.
            signal.signal(signum, lambda *_: None)
        self._wakeup_fd = read_end
        self.reactor.on_readable(read_end, self._signalled)

    def _signalled(self) -> None:
        try:
            received = os.read(self._wakeup_fd, 512)
        except BlockingIOError:
            return
        if any(signum in received for signum in STOP_SIGNALS):
            self.stopping = True
        if signal.SIGCHLD in received:
            self._reap_orphans()

    def _reap_orphans(self) -> None:
        """Reap processes orphaned inside containers that share our pid namespace.

        As a subreaper we inherit them; the containers' own processes are reaped through their pidfds,
        so only pids that belong to no container are waited for here (never ``waitpid(-1)``: the
        runtime reaps its own intermediate child by pid).
        """
        ours = {container.pid for container in self.containers.values() if container.pidfd is not None}
        ours.update(process.pid for process in self.execs.values() if process.pidfd is not None)
        try:
            with open(f"/proc/self/task/{os.getpid()}/children") as children:
                pids = [int(pid) for pid in children.read().split()]
        except OSError:
            return
        for pid in pids:
            if pid not in ours:
                try:
                    os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:
                    pass

    def _handle_line(self, conn: Connection, line: bytes) -> None:
        try:
            try:
                request = json.loads(line)
            except ValueError as exc:
                raise InvalidArgument(f"a request is one line of JSON: {exc}") from None
            if not isinstance(request, dict):
                raise InvalidArgument("a request is a JSON object")
            op = self._ops.get(request.get("op"))
            if op is None:
                raise InvalidArgument(f"unknown op {request.get('op')!r}")
            answer = op(conn, request)
        except EngineError as exc:
            conn.send_message({"ok": False, "kind": type(exc).__name__, "error": exc.message})
        except Exception as exc:
            log.exception("request %r failed", line[:200])
            conn.send_message({"ok": False, "kind": "EngineError", "error": f"supervisor error: {exc}"})
        else:
            if answer is not None:  # streams (attach, events) answer by themselves
                conn.send_message({"ok": True, **answer})

    def _container(self, request: dict) -> Container:
        container_id = _field(request, "id", str)
        container = self.containers.get(container_id)
        if container is None:
            raise NotFound(f"no such container: {container_id}")
        return container

    # -- operations --------------------------------------------------------------------------------

    def _create(self, conn: Connection, request: dict) -> dict:
        container_id = _field(request, "id", str)
        if not CONTAINER_ID.fullmatch(container_id):
            raise InvalidArgument(f"invalid container id {container_id!r}")
        if container_id in self.containers:
            raise Conflict(f"container {container_id} already exists in the supervisor")
        log_path = _field(request, "log_path", str)
        if not os.path.isabs(log_path):
            raise InvalidArgument(f"log_path must be absolute: {log_path!r}")
        self.containers[container_id] = Container(
            self.reactor,
            self.notify,
            os.path.join(self.state_dir, f"{container_id}.exit"),
            id=container_id,
            bundle=_field(request, "bundle", str),
            tty=_field(request, "tty", bool, False),
            open_stdin=_field(request, "open_stdin", bool, False),
            stdin_once=_field(request, "stdin_once", bool, False),
            log_path=log_path,
        )
        return {}

    def _start(self, conn: Connection, request: dict) -> dict:
        return self._container(request).start()

    def _attach(self, conn: Connection, request: dict) -> None:
        self._container(request).attach(
            conn,
            stdin=_field(request, "stdin", bool, False),
            stdout=_field(request, "stdout", bool, True),
            stderr=_field(request, "stderr", bool, True),
            wait_start=_field(request, "wait_start", bool, False),
        )

    def _signal(self, conn: Connection, request: dict) -> dict:
        container = self._container(request)
        container.send_signal(_signal_number(request.get("signal")))
        return {}

    def _resize(self, conn: Connection, request: dict) -> dict:
        container = self._container(request)
        height, width = _field(request, "height", int), _field(request, "width", int)
        if not (0 <= height < 65536 and 0 <= width < 65536):
            raise InvalidArgument(f"invalid terminal size {height}x{width}")
        container.resize(height, width)
        return {}

    def _state(self, conn: Connection, request: dict) -> dict:
        return self._container(request).state()

    def _list(self, conn: Connection, request: dict) -> dict:
        return {"containers": [container.state() for container in self.containers.values()]}

    def _delete(self, conn: Connection, request: dict) -> dict:
        container = self._container(request)
        container.settle()
        if container.running:
            raise Conflict(f"container {container.id} is running: stop it before deleting it")
        container.forget()
        del self.containers[container.id]
        return {}

    def _events(self, conn: Connection, request: dict) -> None:
        conn.send_message({"ok": True})
        conn.stream(None, on_eof=conn.close)  # an events client has nothing to say: EOF means gone
        self.event_clients.add(conn)
        conn.on_close = lambda: self.event_clients.discard(conn)

    def _ping(self, conn: Connection, request: dict) -> dict:
        return {"pid": os.getpid()}

    def _exec(self, conn: Connection, request: dict) -> None:
        container = self._container(request)
        exec_id = _field(request, "exec_id", str)
        if not CONTAINER_ID.fullmatch(exec_id):
            raise InvalidArgument(f"invalid exec id {exec_id!r}")
        if exec_id in self.execs:
            raise Conflict(f"exec {exec_id} is already running")
        process = _field(request, "process", dict)
        container.settle()
        if not container.running or container.pidfd is None:
            raise Conflict(f"container {container.id} is not running")
        namespaces, seccomp_filter = exec_settings(container.bundle)
        exec_process = ExecProcess(
            self.reactor,
            conn,
            exec_id=exec_id,
            container_id=container.id,
            process=process,
            open_stdin=_field(request, "open_stdin", bool, False),
            on_done=lambda done: self.execs.pop(done.exec_id, None),
        )
        exec_process.start(container.pid, namespaces, seccomp_filter)
        self.execs[exec_id] = exec_process

    def _exec_resize(self, conn: Connection, request: dict) -> dict:
        exec_process = self.execs.get(_field(request, "exec_id", str))
        if exec_process is None:
            raise NotFound(f"no running exec {request.get('exec_id')}")
        height, width = _field(request, "height", int), _field(request, "width", int)
        if not (0 <= height < 65536 and 0 <= width < 65536):
            raise InvalidArgument(f"invalid terminal size {height}x{width}")
        try:
            exec_process.resize(height, width)
        except StartFailed as exc:
            raise Conflict(exc.message) from None
        return {}


_MISSING = object()


def _field(request: dict, name: str, kind: type, default: object = _MISSING):
    value = request.get(name, _MISSING)
    if value is _MISSING or value is None:
        if default is _MISSING:
            raise InvalidArgument(f"{request.get('op')}: missing field {name!r}")
        return default
    # bool is an int in Python; a request saying "height": true is still wrong.
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise InvalidArgument(f"{request.get('op')}: field {name!r} must be {kind.__name__}")
    return value


def _signal_number(value: object) -> int:
    """A signal as a number (9) or a name ("KILL", "SIGKILL"), as Docker accepts it."""
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, str):
        name = value.upper()
        name = name if name.startswith("SIG") else f"SIG{name}"
        try:
            return int(signal.Signals[name])
        except KeyError:
            raise InvalidArgument(f"unknown signal {value!r}") from None
    if isinstance(value, int) and not isinstance(value, bool) and 0 < value <= signal.SIGRTMAX:
        return value
    raise InvalidArgument(f"invalid signal {value!r}")


def exec_settings(bundle: str) -> tuple[list[str], bytes | None]:
    """The namespace types and the compiled seccomp filter of the container made from ``bundle``."""
    try:
        with open(os.path.join(bundle, "config.json"), "rb") as file:
            spec = json.load(file)
    except (OSError, ValueError) as exc:
        raise StartFailed(f"cannot read the container's config.json in {bundle}: {exc}") from exc
    # every namespace the container has, its own or joined (``path``): all are in /proc/<pid>/ns
    namespaces = [ns.get("type") for ns in (spec.get("linux") or {}).get("namespaces") or ()]
    return namespaces, compile_seccomp(spec)


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _become_subreaper() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"prctl(PR_SET_CHILD_SUBREAPER): {os.strerror(errno)}")


def _lock_pid_file(state_dir: str) -> int:
    """Hold an exclusive lock on ``supervisor.pid`` for our lifetime: one supervisor per state dir."""
    path = os.path.join(state_dir, "supervisor.pid")
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        other = os.read(fd, 32).decode().strip() or "?"
        os.close(fd)
        raise SystemExit(f"another supervisor (pid {other}) already serves {state_dir}") from None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m pyengine.supervisor", description=__doc__.split("\n")[0])
    parser.add_argument("--socket", required=True, help="unix socket to serve")
    parser.add_argument("--state-dir", required=True, help="directory for supervisor.pid and <id>.exit")
    parser.add_argument("--log-file", help="append the supervisor's own messages (and stdout/stderr) here")
    args = parser.parse_args(argv)

    # Nothing of ours on fds 0-2 may reach a container's process, nor the terminal we started from.
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    if args.log_file:
        log_fd = os.open(args.log_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        os.dup2(log_fd, 1)
        os.dup2(log_fd, 2)
        os.close(log_fd)
    os.close(null)
    logging.basicConfig(
        stream=sys.stderr, level=logging.INFO, format="%(asctime)s supervisor[%(process)d] %(message)s"
    )
    os.makedirs(args.state_dir, mode=0o700, exist_ok=True)
    pid_file = _lock_pid_file(args.state_dir)
    _become_subreaper()
    # Each container holds up to five of our fds (pidfd, three stdio ends, log): lift the soft limit.
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    # Everything imported so far is shared with every fork without copy-on-write from the collector.
    gc.freeze()
    supervisor = Supervisor(os.path.abspath(args.socket), args.state_dir)
    try:
        supervisor.serve()
    finally:
        _remove(os.path.join(args.state_dir, "supervisor.pid"))
        os.close(pid_file)
