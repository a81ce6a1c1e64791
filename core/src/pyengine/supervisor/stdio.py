"""What a supervised container and a supervised exec do alike with their process's descriptors:
read output without blocking, stop watching (or close) a stdin, size a terminal, collect an exit
status from a pidfd. Plain functions on fds; each caller keeps its own buffering and clients.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import struct
import termios

from pyengine.supervisor.reactor import Reactor

log = logging.getLogger(__name__)

READ_SIZE = 65536


def read_chunk(fd: int, owner: str) -> bytes | None:
    """Up to READ_SIZE bytes from the non-blocking ``fd``: None if nothing is there yet, b"" once
    the other end is closed (also after a read error, which is logged for ``owner``)."""
    try:
        return os.read(fd, READ_SIZE)
    except BlockingIOError:
        return None
    except OSError as exc:
        if exc.errno != errno.EIO:  # EIO is how a pty master says every slave is closed
            log.warning("%s: reading its output failed: %s", owner, exc)
        return b""


def release_stdin(reactor: Reactor, fd: int, output_fds: dict[int, str]) -> None:
    """Done writing to the stdin ``fd``: a pty master (also in ``output_fds``) stays open for its
    output and is only no longer watched for writing; a pipe is forgotten and closed."""
    if fd in output_fds:
        reactor.on_writable(fd, None)
    else:
        reactor.forget(fd)
        os.close(fd)


def set_window_size(console_fd: int, height: int, width: int) -> None:
    fcntl.ioctl(console_fd, termios.TIOCSWINSZ, struct.pack("HHHH", height, width, 0, 0))


def exit_code(pidfd: int) -> int | None:
    """The exit code of the process behind ``pidfd`` (128 + signal when killed), None if it still
    runs, 255 if it is not our child (its status went elsewhere)."""
    try:
        info = os.waitid(os.P_PIDFD, pidfd, os.WEXITED | os.WNOHANG)
    except ChildProcessError:
        log.error("the process behind pidfd %d is not a child of the supervisor: its status is lost", pidfd)
        return 255
    if info is None:
        return None
    return info.si_status if info.si_code == os.CLD_EXITED else 128 + info.si_status
