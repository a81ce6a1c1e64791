"""Named network namespaces as files under the exec root, made without forking.

A namespace lives as long as something refers to it; ``ip netns add`` keeps it alive by bind-mounting
``/proc/self/ns/net`` on a file. We do the same from the calling thread: namespaces are per thread on
Linux, so a worker thread of the daemon can ``unshare(CLONE_NEWNET)``, bind its new namespace on the
file and ``setns`` back, touching no other thread (the daemon must never fork from its threads).

:func:`entered` runs a block of code inside a namespace the same way: netlink sockets opened there
stay bound to that namespace after the thread returns.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterator
from pathlib import Path

from pyengine.runtime import syscalls as sc


def _own_netns_fd() -> int:
    return os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)


def create(path: str | os.PathLike) -> Path:
    """Make a new, empty network namespace (only ``lo``, down) held by a bind mount on ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o711)
    fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o444)
    os.close(fd)
    home = _own_netns_fd()
    try:
        try:
            sc.unshare(sc.CLONE_NEWNET)
        except OSError:
            path.unlink()
            raise
        try:
            sc.mount("/proc/thread-self/ns/net", path, None, sc.MS_BIND)
        except OSError:
            path.unlink()
            raise
        finally:
            sc.setns(home, sc.CLONE_NEWNET)
    finally:
        os.close(home)
    return path


def remove(path: str | os.PathLike) -> None:
    """Release the namespace held on ``path`` and delete the file; a missing one is fine."""
    path = Path(path)
    try:
        sc.umount2(path, sc.MNT_DETACH)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOENT):
            raise
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def is_namespace(path: str | os.PathLike) -> bool:
    """Whether ``path`` holds a network namespace (a bind mount of an nsfs inode)."""
    try:
        return os.stat(path).st_dev != os.stat(Path(path).parent).st_dev
    except OSError:
        return False


@contextlib.contextmanager
def entered(path: str | os.PathLike) -> Iterator[None]:
    """Run the block with this thread inside the namespace at ``path``; always come back."""
    target = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    home = _own_netns_fd()
    try:
        sc.setns(target, sc.CLONE_NEWNET)
        try:
            yield
        finally:
            sc.setns(home, sc.CLONE_NEWNET)
    finally:
        os.close(target)
        os.close(home)
