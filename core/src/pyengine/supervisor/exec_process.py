"""One exec'd process inside a running container, as the supervisor runs it.

The client (the daemon) asks with an ``exec`` request on a connection of its own; the answer
``{"ok": true, "pid": N}`` comes once the process has exec'd, and the connection then carries the
process's output as frames (stdout 1, stderr 2; a terminal's output as stdout) and raw bytes of
stdin the other way (half-close: stdin is closed). When the process has exited and its output is
drained, one last frame on stream :data:`~pyengine.supervisor.protocol.EXIT_STREAM` carries
``{"exit_code": N}`` and the connection closes. The process does not depend on the client: if
the connection goes, its output is read and dropped until it exits, and nothing is logged (as
Docker, an exec's output is not part of the container's log).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable

from pyengine.errors import StartFailed
from pyengine.runtime.exec import exec_in_container
from pyengine.supervisor.connection import Connection
from pyengine.supervisor.protocol import EXIT_STREAM, STREAM_NUMBERS, encode_frame
from pyengine.supervisor.reactor import Reactor
from pyengine.supervisor.stdio import exit_code, read_chunk, release_stdin, set_window_size

log = logging.getLogger(__name__)

MAX_STDIN_BUFFER = 1 << 20
# An exec's output has no log to fall back on: past this much unsent to the client, the process's
# output is no longer read (the process blocks on its pipe) until the client has caught up.
MAX_PENDING_OUTPUT = 1 << 20


class ExecProcess:
    def __init__(
        self,
        reactor: Reactor,
        conn: Connection,
        *,
        exec_id: str,
        container_id: str,
        process: dict,
        open_stdin: bool,
        on_done: Callable[[ExecProcess], None],
    ) -> None:
        self.reactor = reactor
        self.conn: Connection | None = conn
        self.exec_id = exec_id
        self.container_id = container_id
        self.process = process
        self.tty = bool(process.get("terminal"))
        self.open_stdin = open_stdin
        self.on_done = on_done
        self.pid = 0
        self.pidfd: int | None = None
        self.exit_code: int | None = None
        self._outputs: dict[int, str] = {}
        self._stdin_fd: int | None = None
        self._stdin_buffer = bytearray()
        self._stdin_eof = False
        self._console: int | None = None
        self._exited = False

    def start(self, container_pid: int, namespaces: list[str], seccomp_filter: bytes | None) -> None:
        """Start the process and turn the connection into its stream; raises StartFailed."""
        ours: dict[str, int] = {}
        theirs: list[int] = []
        stdin = stdout = stderr = None
        try:
            try:
                if not self.tty:
                    ours["stdout"], stdout = os.pipe()
                    theirs.append(stdout)
                    ours["stderr"], stderr = os.pipe()
                    theirs.append(stderr)
                    if self.open_stdin:
                        stdin, ours["stdin"] = os.pipe()
                        theirs.append(stdin)
                started = exec_in_container(
                    container_pid,
                    namespaces,
                    self.process,
                    seccomp_filter,
                    stdin=stdin,
                    stdout=stdout,
                    stderr=stderr,
                )
            finally:
                for fd in theirs:
                    os.close(fd)
            self.pidfd = os.pidfd_open(started.pid)
        except BaseException as exc:
            for fd in ours.values():
                os.close(fd)
            if isinstance(exc, StartFailed) or not isinstance(exc, Exception):
                raise
            raise StartFailed(f"cannot exec in container {self.container_id}: {exc}") from exc
        self.pid = started.pid
        if started.console_fd is not None:
            self._console = started.console_fd
            ours = {"console": started.console_fd}
        for fd in ours.values():
            os.set_blocking(fd, False)
        if self.tty:
            self._outputs = {self._console: "stdout"}
            self._stdin_fd = self._console if self.open_stdin else None
        else:
            self._outputs = {ours["stdout"]: "stdout", ours["stderr"]: "stderr"}
            self._stdin_fd = ours.get("stdin")
        self.reactor.on_readable(self.pidfd, self._reap)
        for fd in self._outputs:
            self.reactor.on_readable(fd, lambda fd=fd: self._read_output(fd))
        conn = self.conn
        conn.send_message({"ok": True, "pid": self.pid})
        conn.on_close = self._client_gone
        conn.stream(on_data=self._feed_stdin, on_eof=self._stdin_hung_up)

    def resize(self, height: int, width: int) -> None:
        if self._console is None or self._exited:
            raise StartFailed(f"exec {self.exec_id} has no terminal to resize")
        set_window_size(self._console, height, width)

    # -- stdin -------------------------------------------------------------------------------------

    def _feed_stdin(self, data: bytes) -> None:
        if self._stdin_fd is None or self._stdin_eof:
            return
        self._stdin_buffer += data
        self._write_stdin()
        if len(self._stdin_buffer) > MAX_STDIN_BUFFER and self.conn is not None:
            self.conn.pause_reading()

    def _stdin_hung_up(self) -> None:
        self._stdin_eof = True
        self._write_stdin()

    def _write_stdin(self) -> None:
        fd = self._stdin_fd
        if fd is None:
            return
        try:
            written = os.write(fd, self._stdin_buffer) if self._stdin_buffer else 0
        except BlockingIOError:
            written = 0
        except OSError:
            self._stdin_buffer.clear()
            self._close_stdin()
            return
        del self._stdin_buffer[:written]
        if self._stdin_buffer:
            self.reactor.on_writable(fd, self._write_stdin)
            return
        self.reactor.on_writable(fd, None)
        if self.conn is not None:
            self.conn.resume_reading()
        if self._stdin_eof:
            if self.tty:
                # a terminal has no half-close: send the EOF character, as typing ^D would
                try:
                    os.write(fd, b"\x04")
                except OSError:
                    pass
                self._stdin_fd = None
            else:
                self._close_stdin()

    def _close_stdin(self) -> None:
        fd, self._stdin_fd = self._stdin_fd, None
        if fd is not None:
            release_stdin(self.reactor, fd, self._outputs)

    # -- output and exit ---------------------------------------------------------------------------

    def _read_output(self, fd: int) -> bool:
        data = read_chunk(fd, f"exec {self.exec_id}")
        if data is None:
            return False
        if not data:
            self._close_output(fd)
            if self._exited and not self._outputs:
                self._finish()
            return False
        conn = self.conn
        if conn is not None:
            stream = self._outputs[fd]
            conn.send(encode_frame(1 if self.tty else STREAM_NUMBERS[stream], data))
            if conn.pending > MAX_PENDING_OUTPUT and not self._exited:
                self._pause_output()
                return False
        return True

    def _pause_output(self) -> None:
        for fd in self._outputs:
            self.reactor.on_readable(fd, None)
        if self.conn is not None:
            self.conn.on_drained = self._resume_output

    def _resume_output(self) -> None:
        for fd in self._outputs:
            self.reactor.on_readable(fd, lambda fd=fd: self._read_output(fd))

    def _close_output(self, fd: int) -> None:
        self._outputs.pop(fd, None)
        if fd == self._stdin_fd:
            self._stdin_fd = None
        if fd == self._console:
            self._console = None
        self.reactor.forget(fd)
        os.close(fd)

    def _reap(self) -> None:
        code = exit_code(self.pidfd)
        if code is None:
            return
        self.reactor.forget(self.pidfd)
        os.close(self.pidfd)
        self.pidfd = None
        self.exit_code = code
        self._exited = True
        self._close_stdin()
        for fd in list(self._outputs):
            while fd in self._outputs and self._read_output(fd):
                pass
        if self.tty and self._console is not None:
            # the pty master stays readable only while a slave is open; background processes
            # of the exec may hold it: what they write later is not waited for
            self._close_output(self._console)
        if not self._outputs:
            self._finish()
        else:
            self.reactor.call_later(2.0, self._finish)

    def _finish(self) -> None:
        if self.exit_code is None or self.on_done is None:
            return
        for fd in list(self._outputs):
            self._close_output(fd)
        self._close_stdin()
        on_done, self.on_done = self.on_done, None
        conn, self.conn = self.conn, None
        if conn is not None:
            conn.on_close = None
            conn.send(encode_frame(EXIT_STREAM, json.dumps({"exit_code": self.exit_code}).encode()))
            conn.close_when_flushed()
        on_done(self)

    def _client_gone(self) -> None:
        self.conn = None
        self._resume_output()  # nobody to wait for: read and drop
        self._stdin_eof = True
        self._write_stdin()
