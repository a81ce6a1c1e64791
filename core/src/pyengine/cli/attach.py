"""Moving bytes between the terminal and an attached container.

The daemon sends output either raw (Tty=true) or multiplexed in frames (Tty=false): an 8-byte header
``[stream, 0, 0, 0, size as big-endian uint32]`` then ``size`` bytes; stream 0 and 1 go to stdout, 2 to
stderr, 3 (the daemon's own errors) is dropped. Stdin always goes raw. One thread runs a select loop
over the socket and stdin; signal handlers (terminal size, signal proxying) make their own requests on
fresh connections so they never interleave with a response being read.
"""

from __future__ import annotations

import _signal  # the C module: signal.py builds enums at import time
import _socket
import os
import select

from pyengine.cli.client import BufferedSocket, Client

TYPE_CHECKING = False  # typing costs ~5 ms to import; annotations alone need it only for checkers
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from typing import Any

STDOUT_FD = 1
STDERR_FD = 2

# Docker forwards every signal but CHLD, PIPE and URG; these are the ones a user actually sends.
# signal number -> the name the kill endpoint takes (docker sends names without "SIG").
PROXIED_SIGNALS = {
    getattr(_signal, f"SIG{name}"): name for name in ("INT", "TERM", "HUP", "QUIT", "USR1", "USR2", "ALRM")
}


class FrameDemuxer:
    """Split a multiplexed stream into (stream number, payload) pieces, whatever the read sizes."""

    HEADER_SIZE = 8

    def __init__(self) -> None:
        self.pending = b""

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        self.pending += data
        frames = []
        while len(self.pending) >= self.HEADER_SIZE:
            size = int.from_bytes(self.pending[4:8], "big")
            end = self.HEADER_SIZE + size
            if len(self.pending) < end:
                break
            frames.append((self.pending[0], self.pending[self.HEADER_SIZE : end]))
            self.pending = self.pending[end:]
        return frames


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def fd_for_stream(stream: int) -> int | None:
    """The local descriptor a frame goes to: stdin echo and stdout to 1, stderr to 2, others dropped."""
    if stream in (0, 1):
        return STDOUT_FD
    if stream == 2:
        return STDERR_FD
    return None


class OutputWriter:
    """Writes what the daemon sends, demultiplexing frames unless the container has a TTY."""

    def __init__(self, tty: bool) -> None:
        self.demuxer = None if tty else FrameDemuxer()

    def write(self, data: bytes) -> None:
        if self.demuxer is None:
            write_all(STDOUT_FD, data)
            return
        for stream, payload in self.demuxer.feed(data):
            fd = fd_for_stream(stream)
            if fd is not None and payload:
                write_all(fd, payload)


def copy_output(chunks: Iterator[bytes], tty: bool) -> None:
    """Write a body (logs) to stdout/stderr as it arrives."""
    writer = OutputWriter(tty)
    for data in chunks:
        writer.write(data)


def pump(stream: BufferedSocket, tty: bool, stdin_fd: int | None) -> None:
    """Copy container output to stdout/stderr until the daemon closes the stream.

    With ``stdin_fd``, bytes read there go to the container and its EOF half-closes the socket;
    without it the socket must already be half-closed by the caller.
    """
    writer = OutputWriter(tty)
    if stream.buffer:
        writer.write(stream.read_some())
    sock = stream.sock
    readers: list[Any] = [sock]
    if stdin_fd is not None:
        readers.append(stdin_fd)
    while True:
        ready, _, _ = select.select(readers, [], [])
        if sock in ready:
            try:
                data = sock.recv(65536)
            except ConnectionResetError:
                data = b""
            if not data:
                return
            writer.write(data)
        if stdin_fd is not None and stdin_fd in ready:
            data = os.read(stdin_fd, 65536)
            if data:
                try:
                    sock.sendall(data)
                except (BrokenPipeError, ConnectionResetError):
                    readers.remove(stdin_fd)
                    stdin_fd = None
            else:
                readers.remove(stdin_fd)
                stdin_fd = None
                _half_close(sock)


def _half_close(sock: _socket.socket) -> None:
    try:
        sock.shutdown(_socket.SHUT_WR)
    except OSError:
        pass


def half_close(stream: BufferedSocket) -> None:
    """Tell the daemon no stdin will come (docker's CloseWrite)."""
    _half_close(stream.sock)


class RawTerminal:
    """Puts a terminal in raw mode for the duration of a ``with`` block, and always restores it."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.saved: list[Any] | None = None

    def __enter__(self) -> RawTerminal:
        import termios
        import tty

        self.saved = termios.tcgetattr(self.fd)
        tty.setraw(self.fd, termios.TCSANOW)
        return self

    def __exit__(self, *exc_info: object) -> None:
        import termios

        if self.saved is not None:
            termios.tcsetattr(self.fd, termios.TCSADRAIN, self.saved)


def terminal_size(fd: int = STDOUT_FD) -> tuple[int, int] | None:
    """(rows, columns) of the terminal on ``fd``, or None when it is not a terminal."""
    try:
        size = os.get_terminal_size(fd)
    except OSError:
        return None
    return size.lines, size.columns


def resize(client: Client, path: str, fd: int = STDOUT_FD) -> None:
    """Send the local terminal size to ``path`` (``/containers/{id}/resize``); errors are ignored,
    as docker does, since the process may already be gone."""
    size = terminal_size(fd)
    if size is None:
        return
    try:
        response = client.open_stream("POST", path, {"h": size[0], "w": size[1]})
        response.read()
        response.conn.close()
    except Exception:  # noqa: BLE001 - a failed resize must never break the session
        pass


def follow_terminal_size(client: Client, path: str) -> Callable[[], None]:
    """Resize now and on every SIGWINCH; returns a function that restores the old handler."""
    resize(client, path)
    previous = _signal.signal(_signal.SIGWINCH, lambda _signum, _frame: resize(client, path))
    return lambda: _signal.signal(_signal.SIGWINCH, previous)


def proxy_signals(client: Client, container_id: str) -> Callable[[], None]:
    """Forward the signals the CLI receives to the container (``POST /containers/{id}/kill``).

    Returns a function that puts the previous handlers back.
    """

    def forward(signum: int, _frame: object) -> None:
        name = PROXIED_SIGNALS[signum]
        try:
            response = client.open_stream("POST", f"/containers/{container_id}/kill", {"signal": name})
            response.read()
            response.conn.close()
        except Exception:  # noqa: BLE001 - the container may be gone already
            pass

    previous = {}
    for signum in PROXIED_SIGNALS:
        previous[signum] = _signal.signal(signum, forward)

    def restore() -> None:
        for signum, handler in previous.items():
            _signal.signal(signum, handler)

    return restore
