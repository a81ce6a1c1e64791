"""exec_in_container: a new process inside a running container (``docker exec``).

The process tree mirrors :mod:`.start`:

    caller (the supervisor, a child subreaper)
      └─ helper       joins the container's cgroups, then its namespaces (mount last), forks, exits
           └─ process  in the container's pid namespace: terminal, user, capabilities, seccomp, exec

Joining a running container is where runtimes have been broken, so the helper and the process:

* are non-dumpable from the start (PR_SET_DUMPABLE 0): while they still run the host's Python,
  a process of the container cannot open ``/proc/<pid>/exe`` (the host binary), their memory or
  their descriptors, nor ptrace them; the flag resets itself at execve of the container's binary;
* close every descriptor but stdio and the sync channel before joining anything, so no host
  descriptor can be reached through ``/proc/<pid>/fd`` and none is inherited (the channel is
  close-on-exec, everything else above 2 is marked close-on-exec before the execve);
* join the mount namespace last and then ``chdir("/")``: after setns the root and working directory
  are the container's, and the working directory of the process is resolved inside that root;
* import nothing and read nothing of the container's files besides what the exec'd program needs
  (the terminal comes from the container's own devpts; the executable is looked up in its PATH);
  the seccomp program was compiled by the caller before the fork;
* exec the target as soon as the setup is done: the helper exits right after the fork.

The sync channel and its messages are those of :mod:`.start` (pid, console, exec, error).
"""

from __future__ import annotations

import os
import signal
import socket
import stat

from pyengine.errors import StartFailed
from pyengine.runtime import console
from pyengine.runtime import process as process_setup
from pyengine.runtime import syscalls as sc
from pyengine.runtime.init import SetupError, become_namespace_root, find_executable, send_message
from pyengine.runtime.start import (
    _NAMESPACE_FLAGS,
    StartedContainer,
    _collect,
    _message,
    _setup_stdio_and_close_fds,
)

PR_SET_DUMPABLE = 4

# /proc/<pid>/ns/<name> for each OCI namespace type, in the order they are joined: the mount
# namespace after the others (after it, host paths such as /sys/fs/cgroup no longer resolve), the
# user namespace last: as the host's root we may join every namespace, also those the host's user
# namespace owns (a network namespace the network driver made), which we could not from inside.
JOIN_ORDER = (
    ("cgroup", "cgroup"),
    ("ipc", "ipc"),
    ("uts", "uts"),
    ("network", "net"),
    ("pid", "pid"),
    ("time", "time"),
    ("mount", "mnt"),
    ("user", "user"),
)


def exec_in_container(
    container_pid: int,
    namespaces: list[str],
    process: dict,
    seccomp_filter: bytes | None,
    *,
    stdin: int | None,
    stdout: int | None,
    stderr: int | None,
    timeout: float = 30.0,
) -> StartedContainer:
    """Start ``process`` (an OCI ``process`` object) inside the container whose PID 1 is ``container_pid``.

    ``namespaces`` are the OCI types the container has (``pid``, ``mount``, ...); each is joined
    through ``/proc/<container_pid>/ns``. The caller must be a child subreaper and must keep the
    container's PID 1 unreaped (so that its pid cannot be reused) while this runs. Blocks until
    the process has exec'd; raises StartFailed otherwise, with no process left behind. The returned
    pid is the process's host pid; ``console_fd`` its pty master when ``process.terminal`` is true.
    """
    if os.getpid() != 1 and not sc.is_child_subreaper():
        raise StartFailed(
            "exec_in_container needs a caller that is a child subreaper (PR_SET_CHILD_SUBREAPER)"
        )
    if not (process.get("args") or []):
        raise StartFailed("no command to exec")
    unknown = [ns for ns in namespaces if ns not in _NAMESPACE_FLAGS and ns != "user"]
    if unknown:
        raise StartFailed(f"unknown namespace type {unknown[0]!r}")
    for name, fd in (("stdin", stdin), ("stdout", stdout), ("stderr", stderr)):
        if fd is not None:
            try:
                os.fstat(fd)
            except OSError:
                raise StartFailed(f"{name} descriptor {fd} is not open") from None
    parent_end, child_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())
    try:
        helper = os.fork()
        if helper == 0:
            _run_helper(
                container_pid, set(namespaces), process, seccomp_filter, child_end, (stdin, stdout, stderr)
            )
    except OSError as exc:
        parent_end.close()
        raise StartFailed(f"cannot fork the exec helper: {sc.error_text(exc.errno)}") from exc
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
        child_end.close()
    try:
        return _collect(parent_end, helper, timeout)
    finally:
        parent_end.close()


def _run_helper(
    container_pid: int,
    namespaces: set[str],
    process: dict,
    seccomp_filter: bytes | None,
    channel: socket.socket,
    stdio: tuple,
) -> None:
    """The forked helper: never returns to the caller's code."""
    status = 1
    try:
        try:
            sc.prctl(PR_SET_DUMPABLE, 0)
            _setup_stdio_and_close_fds(stdio, channel.fileno())
            join_cgroups_of(container_pid)
            _join_namespaces(container_pid, namespaces)
            if "user" in namespaces:
                become_namespace_root()  # so that what we create (the pty) is the container's
            os.chdir("/")  # the container's root, now that its mount namespace is ours
            pid = os.fork()
            if pid == 0:
                _run_process(process, seccomp_filter, channel)
            send_message(channel, {"type": "pid", "pid": pid})
            status = 0
        except BaseException as exc:
            send_message(channel, {"type": "error", "message": _message(exc)})
    finally:
        os._exit(status)


def _join_namespaces(container_pid: int, namespaces: set[str]) -> None:
    opened = []
    try:
        for kind, name in JOIN_ORDER:
            if kind not in namespaces:
                continue
            path = f"/proc/{container_pid}/ns/{name}"
            try:
                opened.append((kind, os.open(path, os.O_RDONLY | os.O_CLOEXEC)))
            except OSError as exc:
                raise SetupError(f"opening {kind} namespace {path}: {sc.error_text(exc.errno)}") from None
        for kind, fd in opened:
            try:
                sc.setns(fd, sc.CLONE_NEWUSER if kind == "user" else _NAMESPACE_FLAGS[kind])
            except OSError as exc:
                raise SetupError(
                    f"joining the container's {kind} namespace: {sc.error_text(exc.errno)}"
                ) from None
    finally:
        for _, fd in opened:
            os.close(fd)


def _run_process(process: dict, seccomp_filter: bytes | None, channel: socket.socket) -> None:
    try:
        try:
            os.setsid()
            if process.get("terminal"):
                _open_terminal(process.get("consoleSize"), channel)
            process_setup.become(process, seccomp_filter)
            env = {}
            for item in process.get("env") or ():
                key, sep, value = item.partition("=")
                if sep and key:
                    env[key] = value
            args = process["args"]
            executable = find_executable(args[0], env)
            process_setup.exec_now(executable, args, env, channel, send_message)
        except process_setup.ProcessSetupError as exc:
            send_message(channel, {"type": "error", "message": str(exc)})
        except BaseException as exc:
            send_message(channel, {"type": "error", "message": _message(exc)})
    finally:
        os._exit(1)


def _open_terminal(size: dict | None, channel: socket.socket) -> None:
    """A pty from the container's own devpts, made our controlling terminal; the master goes back."""
    try:
        master, slave, _ = console.open_pty(size)
    except OSError as exc:
        raise SetupError(f"opening a terminal in the container: {sc.error_text(exc.errno)}") from None
    try:
        if not stat.S_ISCHR(os.fstat(master).st_mode):
            raise SetupError("the container's /dev/ptmx is not a character device")
        console.make_controlling_terminal(slave)
        send_message(channel, {"type": "console"}, master)
    finally:
        os.close(master)


# -- cgroups --------------------------------------------------------------------------------------


def _cgroup_memberships(path: str) -> dict[frozenset, str]:
    """/proc/<pid>/cgroup as {controllers of the hierarchy: path}; the v2 hierarchy's key is empty."""
    memberships = {}
    with open(path) as file:
        for line in file:
            _id, _, rest = line.rstrip("\n").partition(":")
            controllers, _, cgroup = rest.partition(":")
            memberships[frozenset(filter(None, controllers.split(",")))] = cgroup
    return memberships


def _cgroup_mounts() -> dict[frozenset, str]:
    """Where each hierarchy is mounted, from our mountinfo (keys as in :func:`_cgroup_memberships`)."""
    mounts: dict[frozenset, str] = {}
    with open("/proc/self/mountinfo") as file:
        for line in file:
            fields = line.split()
            separator = fields.index("-")
            fstype, super_options = fields[separator + 1], fields[separator + 3]
            root, mount_point = fields[3], fields[4]
            if root != "/":
                continue
            if fstype == "cgroup2":
                mounts.setdefault(frozenset(), mount_point)
            elif fstype == "cgroup":
                options = {o for o in super_options.split(",") if o not in ("rw", "ro", "xattr", "noprefix")}
                options = {o for o in options if "=" not in o or o.startswith("name=")}
                mounts.setdefault(frozenset(options), mount_point)
    return mounts


def join_cgroups_of(pid: int) -> None:
    """Move the calling process into every cgroup of process ``pid`` where it is not already.

    Today containers share the supervisor's cgroups and this writes nothing; once containers get
    cgroups of their own, an exec'd process lands in them (and is limited and counted with the
    container) before it joins any namespace.
    """
    try:
        theirs = _cgroup_memberships(f"/proc/{pid}/cgroup")
        ours = _cgroup_memberships("/proc/self/cgroup")
    except OSError as exc:
        raise SetupError(f"reading the container's cgroups: {sc.error_text(exc.errno)}") from None
    mounts = None
    for hierarchy, cgroup in theirs.items():
        if ours.get(hierarchy) == cgroup:
            continue
        if mounts is None:
            mounts = _cgroup_mounts()
        mount_point = mounts.get(hierarchy)
        if mount_point is None:
            continue  # a hierarchy not mounted on this host: nothing to join
        procs = os.path.join(mount_point, cgroup.lstrip("/"), "cgroup.procs")
        try:
            with open(procs, "w") as file:
                file.write(str(os.getpid()))
        except OSError as exc:
            raise SetupError(f"joining the container's cgroup {procs}: {sc.error_text(exc.errno)}") from None
