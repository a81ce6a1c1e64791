"""The container's terminal: a pty from the container's own devpts instance.

Opened by the init after pivot_root (so /dev/ptmx is the container's), made the controlling
terminal of the container's session and dup'ed onto 0/1/2; the master goes back to the caller.
"""

from __future__ import annotations

import fcntl
import os
import struct
import termios

from pyengine.runtime import syscalls as sc
from pyengine.runtime.inroot import open_beneath, resolve

# Not exported by Python's termios module.
_TIOCGPTN = 0x80045430
_TIOCSPTLCK = 0x40045431


def open_pty(console_size: dict | None) -> tuple[int, int, str]:
    """Open a pty pair in the current /dev; return (master fd, slave fd, slave path)."""
    master = os.open("/dev/ptmx", os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    try:
        fcntl.ioctl(master, _TIOCSPTLCK, struct.pack("i", 0))
        (number,) = struct.unpack("I", fcntl.ioctl(master, _TIOCGPTN, b"\0" * 4))
        slave_path = f"/dev/pts/{number}"
        slave = os.open(slave_path, os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
        if console_size:
            size = struct.pack("HHHH", console_size.get("height", 0), console_size.get("width", 0), 0, 0)
            fcntl.ioctl(slave, termios.TIOCSWINSZ, size)
    except BaseException:
        os.close(master)
        raise
    return master, slave, slave_path


def bind_console(slave_path: str) -> None:
    """Bind the pty slave over /dev/console (created as an empty file), as Docker does."""
    root_fd = os.open("/", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        console_fd = open_beneath(root_fd, resolve(root_fd, "/dev/console", create="file", mode=0o600))
        try:
            sc.mount(slave_path, f"/proc/self/fd/{console_fd}", None, sc.MS_BIND)
        finally:
            os.close(console_fd)
    finally:
        os.close(root_fd)


def make_controlling_terminal(slave: int) -> None:
    """Put the slave on 0/1/2 and make it the controlling terminal of our (new) session."""
    for target in (0, 1, 2):
        os.dup2(slave, target)
    os.close(slave)
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)
