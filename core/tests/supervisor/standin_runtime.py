"""A stand-in for ``pyengine.runtime.start_container`` while the real runtime is not on this branch.

It runs the bundle's ``process`` chrooted into its root, in a new session, without namespaces:
enough to exercise the supervisor's stdio, pty, exit and log handling with the same bundles the real
runtime gets. :func:`install` puts it in place only if the real one is absent.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import termios
from dataclasses import dataclass

from pyengine.errors import StartFailed


@dataclass
class StartedContainer:
    pid: int
    console_fd: int | None


def start_container(bundle: str, *, stdin: int | None, stdout: int | None, stderr: int | None):
    with open(os.path.join(bundle, "config.json")) as file:
        config = json.load(file)
    process = config["process"]
    root = os.path.join(bundle, config["root"]["path"])
    env = dict(item.split("=", 1) for item in process.get("env", []))
    master = slave = None
    if process.get("terminal"):
        master, slave = os.openpty()
    error_r, error_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.setsid()
            for signum in (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGTERM, signal.SIGINT, signal.SIGCHLD):
                signal.signal(signum, signal.SIG_DFL)
            signal.set_wakeup_fd(-1)
            if slave is not None:
                fcntl.ioctl(slave, termios.TIOCSCTTY, 0)
                stdio = (slave, slave, slave)
            else:
                null = os.open(os.devnull, os.O_RDWR)
                stdio = tuple(null if fd is None else fd for fd in (stdin, stdout, stderr))
            for target, fd in enumerate(stdio):
                os.dup2(fd, target)
            os.chroot(root)
            os.chdir(process.get("cwd", "/"))
            os.execvpe(process["args"][0], process["args"], env)
        except BaseException as exc:  # noqa: B036 - the child must never return into the supervisor
            os.write(error_w, f"{process['args'][0]}: {exc}".encode())
        finally:
            os._exit(127)
    os.close(error_w)
    if slave is not None:
        os.close(slave)
    message = os.read(error_r, 4096)
    os.close(error_r)
    if message:
        os.waitpid(pid, 0)
        if master is not None:
            os.close(master)
        raise StartFailed(message.decode())
    return StartedContainer(pid, master)


def install() -> bool:
    """Use the stand-in if ``pyengine.runtime`` has no ``start_container``; True if it did."""
    import pyengine.runtime

    if hasattr(pyengine.runtime, "start_container"):
        return False
    pyengine.runtime.start_container = start_container
    pyengine.runtime.StartedContainer = StartedContainer
    return True
