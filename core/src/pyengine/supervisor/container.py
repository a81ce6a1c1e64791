"""One supervised container: its process, its stdio, its log and the clients attached to it.

The life of a run: :meth:`Container.start` opens the stdio (pipes, or the pty the runtime makes when the
bundle asks for a terminal) and calls the runtime; output is read as it comes, appended to the
json-file log and framed to every attached client. When the pidfd reports the exit, the status is
collected, the output drained (up to :data:`DRAIN_GRACE` seconds for a process that left something
holding the pipes open), and only then is the run finished: log closed, ``<id>.exit`` written, the
``exit`` event sent, attach connections closed. A container can be started again after that.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import time
from collections.abc import Callable

from pyengine import runtime
from pyengine.errors import Conflict, StartFailed
from pyengine.supervisor.connection import Connection
from pyengine.supervisor.jsonlog import JsonLogWriter
from pyengine.supervisor.protocol import STREAM_NUMBERS, encode_frame, rfc3339_nano
from pyengine.supervisor.reactor import Reactor, Timer
from pyengine.supervisor.stdio import exit_code, read_chunk, release_stdin, set_window_size

log = logging.getLogger(__name__)

# Stdin a container is not reading yet is held up to this much before its writers are paused.
MAX_STDIN_BUFFER = 1 << 20
# After the exit, how long output may keep arriving through pipes something else still holds open.
DRAIN_GRACE = 2.0


class Attachment:
    __slots__ = ("stdin", "stdout", "stderr")

    def __init__(self, stdin: bool, stdout: bool, stderr: bool) -> None:
        self.stdin = stdin
        self.stdout = stdout
        self.stderr = stderr


class Container:
    def __init__(
        self,
        reactor: Reactor,
        notify: Callable[[dict], None],
        exit_file: str,
        *,
        id: str,
        bundle: str,
        tty: bool,
        open_stdin: bool,
        stdin_once: bool,
        log_path: str,
    ) -> None:
        self.reactor = reactor
        self.notify = notify
        self.exit_file = exit_file
        self.id = id
        self.bundle = bundle
        self.tty = tty
        self.open_stdin = open_stdin
        self.stdin_once = stdin_once
        self.log_path = log_path
        self.status = "created"
        self.pid = 0
        self.pidfd: int | None = None
        self.exit_code: int | None = None
        self.started_at: str | None = None
        self.finished_at: str | None = None
        self._log: JsonLogWriter | None = None
        self._outputs: dict[int, str] = {}  # our read end -> "stdout" | "stderr"
        self._stdin_fd: int | None = None
        self._stdin_buffer = bytearray()
        self._stdin_eof = False  # a stdin_once client hung up: close stdin once the buffer is written
        self._paused_writers: set[Connection] = set()
        self._attached: dict[Connection, Attachment] = {}
        self._exit: tuple[int, int] | None = None  # (exit code, finished ns) collected, run not finished
        self._drain_timer: Timer | None = None

    @property
    def running(self) -> bool:
        return self.status == "running"

    def state(self) -> dict:
        return {
            "id": self.id,
            "status": self.status,
            "pid": self.pid,
            "exit_code": self.exit_code,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "oom_killed": False,
        }

    # -- start -------------------------------------------------------------------------------------

    def settle(self) -> None:
        """If the process has exited and only its output was still draining, finish the run now."""
        if self._exit is not None:
            self._finish()

    def start(self) -> dict:
        self.settle()
        if self.running:
            raise Conflict(f"container {self.id} is already running")
        try:
            log_writer = JsonLogWriter(self.log_path)
        except OSError as exc:
            raise StartFailed(f"cannot open the log file {self.log_path}: {exc.strerror}") from exc
        ours: dict[str, int] = {}  # our ends of the stdio, closed again if the start fails
        try:
            started = self._run(ours)
            if (started.console_fd is not None) != self.tty:
                _kill(started.pid)
                wanted = "a terminal" if self.tty else "no terminal"
                raise StartFailed(f"container {self.id} was created with {wanted}; its bundle disagrees")
            try:
                self.pidfd = os.pidfd_open(started.pid)
            except ProcessLookupError:
                raise StartFailed(f"container {self.id} vanished before it could be supervised") from None
        except BaseException as exc:
            log_writer.close()
            for fd in ours.values():
                os.close(fd)
            if isinstance(exc, StartFailed) or not isinstance(exc, Exception):
                raise
            raise StartFailed(f"cannot start container {self.id}: {exc}") from exc
        self.reactor.on_readable(self.pidfd, self._reap)
        self._log = log_writer
        for fd in ours.values():
            os.set_blocking(fd, False)
        if self.tty:
            self._outputs = {ours["console"]: "stdout"}
            self._stdin_fd = ours["console"] if self.open_stdin else None
        else:
            self._outputs = {ours["stdout"]: "stdout", ours["stderr"]: "stderr"}
            self._stdin_fd = ours.get("stdin")
        for fd in self._outputs:
            self.reactor.on_readable(fd, lambda fd=fd: self._read_output(fd))
        self.status = "running"
        self.pid = started.pid
        self.started_at = rfc3339_nano()
        self.exit_code = None
        self.finished_at = None
        _remove(self.exit_file)
        self._write_stdin()
        self.notify({"event": "start", "id": self.id, "pid": self.pid})
        return {"pid": self.pid, "started_at": self.started_at}

    def _run(self, ours: dict[str, int]) -> runtime.StartedContainer:
        """Open the stdio and call the runtime; our ends go into ``ours`` as they are opened."""
        theirs = []  # the container's ends: the runtime has dup'ed them once it returns
        stdin = stdout = stderr = None  # with a terminal, the runtime makes the pty for all three
        try:
            if not self.tty:
                ours["stdout"], stdout = os.pipe()
                theirs.append(stdout)
                ours["stderr"], stderr = os.pipe()
                theirs.append(stderr)
                if self.open_stdin:
                    stdin, ours["stdin"] = os.pipe()
                else:
                    stdin = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
                theirs.append(stdin)
            started = runtime.start_container(self.bundle, stdin=stdin, stdout=stdout, stderr=stderr)
        finally:
            for fd in theirs:
                os.close(fd)
        if started.console_fd is not None:
            ours["console"] = started.console_fd
        return started

    # -- signals and the terminal ------------------------------------------------------------------

    def send_signal(self, signum: int) -> None:
        if self.pidfd is None:
            raise Conflict(f"container {self.id} is not running")
        try:
            signal.pidfd_send_signal(self.pidfd, signum)
        except ProcessLookupError as exc:
            raise Conflict(f"container {self.id} is not running") from exc

    def resize(self, height: int, width: int) -> None:
        if not self.tty:
            raise Conflict(f"container {self.id} has no terminal to resize")
        if not self._outputs:
            raise Conflict(f"container {self.id} is not running")
        set_window_size(next(iter(self._outputs)), height, width)

    # -- attach ------------------------------------------------------------------------------------

    def attach(self, conn: Connection, *, stdin: bool, stdout: bool, stderr: bool, wait_start: bool) -> None:
        """Answer ok and stream this run (or the next, before a start) to ``conn``."""
        conn.send_message({"ok": True})
        if self.status == "exited" and not wait_start:
            conn.close_when_flushed()
            return
        self._attached[conn] = Attachment(stdin, stdout, stderr)
        conn.on_close = lambda: self._detach(conn)
        conn.stream(
            on_data=(lambda data: self._feed_stdin(conn, data)) if stdin else None,
            on_eof=self._stdin_hung_up if stdin and self.stdin_once else None,
        )

    def detach_all(self) -> None:
        for conn in list(self._attached):
            conn.close_when_flushed()
        self._attached.clear()

    def _detach(self, conn: Connection) -> None:
        self._attached.pop(conn, None)
        self._paused_writers.discard(conn)

    # -- stdin -------------------------------------------------------------------------------------

    def _feed_stdin(self, conn: Connection, data: bytes) -> None:
        if not self.open_stdin or self._stdin_eof or (self.running and self._stdin_fd is None):
            return  # stdin is closed for this run; before a start it is kept for the process
        self._stdin_buffer += data
        self._write_stdin()
        if len(self._stdin_buffer) > MAX_STDIN_BUFFER:
            conn.pause_reading()
            self._paused_writers.add(conn)

    def _stdin_hung_up(self) -> None:
        self._stdin_eof = True
        self._write_stdin()

    def _write_stdin(self) -> None:
        fd = self._stdin_fd
        if fd is None:
            return  # not started yet: the buffer waits for the process
        try:
            written = os.write(fd, self._stdin_buffer) if self._stdin_buffer else 0
        except BlockingIOError:
            written = 0
        except OSError:  # the process closed its stdin: what is left has no reader
            self._stdin_buffer.clear()
            self._close_stdin()
            written = None
        if written is not None:
            del self._stdin_buffer[:written]
            if self._stdin_buffer:
                self.reactor.on_writable(fd, self._write_stdin)
            else:
                self.reactor.on_writable(fd, None)
                if self._stdin_eof:
                    self._close_stdin()
        if self._paused_writers and len(self._stdin_buffer) <= MAX_STDIN_BUFFER // 2:
            for conn in self._paused_writers:
                conn.resume_reading()
            self._paused_writers.clear()

    def _close_stdin(self) -> None:
        fd, self._stdin_fd = self._stdin_fd, None
        if fd is not None:
            release_stdin(self.reactor, fd, self._outputs)

    # -- output and exit ---------------------------------------------------------------------------

    def _read_output(self, fd: int) -> bool:
        """Read once from ``fd``; True if data came (there may be more)."""
        data = read_chunk(fd, f"container {self.id}")
        if data is None:
            return False
        stream = self._outputs[fd]
        if not data:
            self._close_output(fd)
            if self._exit is not None and not self._outputs:
                self._finish()
            return False
        self._log.write(stream, data)
        frame = encode_frame(1 if self.tty else STREAM_NUMBERS[stream], data)
        for conn, attachment in list(self._attached.items()):
            if getattr(attachment, stream) or (self.tty and attachment.stderr):
                conn.send(frame)
        return True

    def _close_output(self, fd: int) -> None:
        stream = self._outputs.pop(fd)
        if fd == self._stdin_fd:
            self._stdin_fd = None
        self.reactor.forget(fd)
        os.close(fd)
        self._log.end_stream(stream)

    def _drain(self) -> None:
        for fd in list(self._outputs):
            while fd in self._outputs and self._read_output(fd):
                pass

    def _reap(self) -> None:
        code = exit_code(self.pidfd)
        if code is None:
            return
        self.reactor.forget(self.pidfd)
        os.close(self.pidfd)
        self.pidfd = None
        self._exit = (code, time.time_ns())
        self._close_stdin()
        self._drain()
        if self._exit is not None and self._outputs:
            self._drain_timer = self.reactor.call_later(DRAIN_GRACE, self._finish)
        elif self._exit is not None:
            self._finish()

    def _finish(self) -> None:
        code, finished_ns = self._exit
        self._exit = None
        if self._drain_timer is not None:
            self._drain_timer.cancel()
            self._drain_timer = None
        self._drain()
        for fd in list(self._outputs):
            self._close_output(fd)
        self._close_stdin()
        self._stdin_buffer.clear()
        self._stdin_eof = False
        self._log.close()
        self._log = None
        self.status = "exited"
        self.pid = 0
        self.exit_code = code
        self.finished_at = rfc3339_nano(finished_ns)
        record = {"exit_code": code, "finished_at": self.finished_at, "oom_killed": False}
        try:
            _write_atomically(self.exit_file, json.dumps(record).encode())
        except OSError as exc:
            log.error("container %s: cannot record its exit in %s: %s", self.id, self.exit_file, exc)
        self.notify({"event": "exit", "id": self.id, "exit_code": code, "finished_at": self.finished_at})
        self.detach_all()

    def forget(self) -> None:
        """The container is deleted: close whoever still waits on it and remove its exit record."""
        self.detach_all()
        _remove(self.exit_file)


def _kill(pid: int) -> None:
    """Kill and reap a process we will not supervise."""
    try:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    except OSError:
        pass


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _write_atomically(path: str, data: bytes) -> None:
    temporary = f"{path}.tmp"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    os.rename(temporary, path)
