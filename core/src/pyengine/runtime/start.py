"""start_container: an OCI runtime bundle in, a running container process out.

The process tree, and why:

    caller (the supervisor, a child subreaper)
      └─ intermediate   joins/unshares the namespaces, forks once, sends the init's pid, exits
           └─ init      PID 1 of the new pid namespace: sets the container up, execs process.args

A new pid namespace applies to the children of the process that unshared it, so the init has to be
a grandchild; the intermediate exits at once and the init is reparented to the caller, which must
be a child subreaper (PR_SET_CHILD_SUBREAPER) to receive it.

Reaping: start_container reaps the intermediate itself with ``waitpid(<its pid>)``, and on failure
also kills and reaps the init. The caller's own reaper must therefore not run *during*
start_container: a single-threaded supervisor that reaps from its event loop (SIGCHLD through a
wakeup fd or signalfd, then ``waitpid(-1, WNOHANG)``) is fine; a Python signal handler that calls
``waitpid(-1)`` is not, because Python runs it between any two bytecodes, also inside this function.
If such a reaper does win the race, start_container tolerates ECHILD, but the reaper will see the
exit of a pid it does not know (the intermediate, or a failed init) and must ignore it.

Sync channel: a SOCK_SEQPACKET socketpair created close-on-exec. Each message is one JSON
object: ``{"type": "pid", "pid": N}`` from the intermediate; ``{"type": "console"}`` carrying the
pty master by SCM_RIGHTS, ``{"type": "exec"}`` just before execve, ``{"type": "error",
"message": ...}`` from either child. The exec closes the init's end; end of file after "exec"
with no error means the process is running.

User namespaces (OCI ``{"type": "user"}`` with ``linux.uidMappings``/``gidMappings``): the
intermediate joins the namespaces given by path first (a network namespace the host made is owned
by the host's user namespace and cannot be joined from inside a new one), then unshares the user
namespace alone and sends ``{"type": "userns"}``; the caller, root on the host, writes
/proc/PID/uid_map and gid_map and answers ``{"type": "userns-mapped"}``; only then are the other
namespaces unshared, so that they are owned by the new user namespace. The init starts as the
host's uid 0 with every capability in that namespace (it can still reach the host paths it needs),
and becomes the namespace's root once it holds those paths open (see :mod:`.init`).
"""

from __future__ import annotations

import array
import json
import os
import select
import signal
import socket
import time
from dataclasses import dataclass

from pyengine.errors import InvalidArgument, StartFailed
from pyengine.runtime import cgroups, seccomp
from pyengine.runtime import syscalls as sc
from pyengine.runtime.idmap import IdMap, write_maps
from pyengine.runtime.init import SetupError, run_init, send_message

_NAMESPACE_FLAGS = {
    "pid": sc.CLONE_NEWPID,
    "network": sc.CLONE_NEWNET,
    "mount": sc.CLONE_NEWNS,
    "ipc": sc.CLONE_NEWIPC,
    "uts": sc.CLONE_NEWUTS,
    "cgroup": sc.CLONE_NEWCGROUP,
    "time": sc.CLONE_NEWTIME,
    "user": sc.CLONE_NEWUSER,
}


@dataclass
class StartedContainer:
    pid: int  # host pid of the container's PID 1, reparented to the (subreaper) caller
    console_fd: int | None  # pty master (the caller owns it) when process.terminal is true


def _load_bundle(bundle: str) -> tuple[dict, str]:
    try:
        with open(os.path.join(bundle, "config.json"), "rb") as file:
            spec = json.load(file)
    except (OSError, ValueError) as exc:
        raise StartFailed(f"cannot read the bundle's config.json in {bundle}: {exc}") from exc
    root_path = (spec.get("root") or {}).get("path")
    if not root_path:
        raise StartFailed("config.json has no root.path")
    rootfs = os.path.realpath(os.path.join(bundle, root_path))
    if not os.path.isdir(rootfs):
        raise StartFailed(f"root file system {rootfs} is not a directory")
    linux = spec.get("linux") or {}
    for namespace in linux.get("namespaces") or ():
        if namespace.get("type") not in _NAMESPACE_FLAGS:
            raise StartFailed(f"unknown namespace type {namespace.get('type')!r}")
        if namespace.get("type") == "user" and not namespace.get("path"):
            if not linux.get("uidMappings") or not linux.get("gidMappings"):
                raise StartFailed("a new user namespace needs linux.uidMappings and linux.gidMappings")
    if linux.get("uidMappings") and new_user_namespace(spec) is None:
        raise StartFailed("linux.uidMappings are set but linux.namespaces has no new user namespace")
    if not (spec.get("process") or {}).get("args"):
        raise StartFailed("config.json has no process.args")
    return spec, rootfs


def new_user_namespace(spec: dict) -> IdMap | None:
    """The id map of the user namespace the spec asks to create (None: no new user namespace)."""
    linux = spec.get("linux") or {}
    for namespace in linux.get("namespaces") or ():
        if namespace.get("type") == "user" and not namespace.get("path"):
            try:
                return IdMap.from_oci(linux)
            except (KeyError, TypeError, ValueError) as exc:
                raise StartFailed(f"invalid linux.uidMappings/gidMappings: {exc}") from None
    return None


def start_container(
    bundle: str | os.PathLike,
    *,
    stdin: int | None,
    stdout: int | None,
    stderr: int | None,
    timeout: float = 60.0,
) -> StartedContainer:
    """Create the namespaces, set up the root fs, exec process.args.

    Blocks until the process has exec'd (success) or setup failed; raises
    :class:`pyengine.errors.StartFailed` on failure, with no process left behind. stdin/stdout/
    stderr are host fds to dup onto 0/1/2 (None -> /dev/null); the caller keeps its own copies.
    They are ignored when process.terminal is true (the pty slave is used for all three).
    The init is killed if setup has not finished after ``timeout`` seconds.
    """
    if os.getpid() != 1 and not sc.is_child_subreaper():
        # The init is our grandchild: without this, it would be adopted by the host's init and
        # nobody could wait for the container.
        raise StartFailed("start_container needs a caller that is a child subreaper (PR_SET_CHILD_SUBREAPER)")
    for name, fd in (("stdin", stdin), ("stdout", stdout), ("stderr", stderr)):
        if fd is not None:
            try:
                os.fstat(fd)
            except OSError:
                raise StartFailed(f"{name} descriptor {fd} is not open") from None
    spec, rootfs = _load_bundle(os.fspath(bundle))
    cgroups_path = _create_cgroup(spec)
    try:
        return _start(spec, rootfs, (stdin, stdout, stderr), timeout)
    except BaseException:
        if cgroups_path:
            _remove_cgroup(cgroups_path)
        raise


def _create_cgroup(spec: dict) -> str | None:
    """Create linux.cgroupsPath with linux.resources before anything runs (the init joins it)."""
    linux = spec.get("linux") or {}
    path = linux.get("cgroupsPath")
    if not path:
        return None
    try:
        cgroups.create(path, linux.get("resources") or {})
    except OSError as exc:
        _remove_cgroup(path)
        raise StartFailed(f"applying cgroup configuration: {exc.strerror or exc}") from None
    except InvalidArgument as exc:  # a device rule the cgroup v2 BPF compiler refuses (nothing was made)
        raise StartFailed(f"applying cgroup configuration: {exc.message}") from None
    return path


def _remove_cgroup(path: str) -> None:
    try:
        cgroups.remove(path)
    except OSError:
        pass


def _start(spec: dict, rootfs: str, stdio: tuple, timeout: float) -> StartedContainer:
    stdin, stdout, stderr = stdio
    seccomp_filter = compile_seccomp(spec)
    parent_end, child_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    # Block every signal across fork so that no handler of the caller's ever runs in a child;
    # the children reset the dispositions to default before unblocking (just before execve).
    old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())
    try:
        intermediate = os.fork()
        if intermediate == 0:
            _run_intermediate(spec, rootfs, child_end, (stdin, stdout, stderr), seccomp_filter)
    except OSError as exc:
        parent_end.close()
        raise StartFailed(f"cannot fork the container's setup process: {sc.error_text(exc.errno)}") from exc
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
        child_end.close()
    try:
        return _collect(parent_end, intermediate, timeout, new_user_namespace(spec))
    finally:
        parent_end.close()


def _run_intermediate(
    spec: dict, rootfs: str, channel: socket.socket, stdio: tuple, seccomp_filter: bytes | None
) -> None:
    """The forked child: never returns to the caller's code, whatever happens."""
    status = 1
    try:
        try:
            _setup_stdio_and_close_fds(stdio, channel.fileno())
            _enter_namespaces((spec.get("linux") or {}).get("namespaces") or (), channel)
            init_pid = os.fork()
            if init_pid == 0:
                _run_init_process(spec, rootfs, channel, seccomp_filter)
            send_message(channel, {"type": "pid", "pid": init_pid})
            status = 0
        except BaseException as exc:
            send_message(channel, {"type": "error", "message": _message(exc)})
    finally:
        os._exit(status)


def _run_init_process(spec: dict, rootfs: str, channel: socket.socket, seccomp_filter: bytes | None) -> None:
    try:
        try:
            os.setsid()  # the container is a session of its own (and may get a controlling tty)
            run_init(spec, rootfs, channel, seccomp_filter)
        except BaseException as exc:
            send_message(channel, {"type": "error", "message": _message(exc)})
    finally:
        os._exit(1)


def compile_seccomp(spec: dict) -> bytes | None:
    """The BPF program for the spec's linux.seccomp (None without one), compiled before any fork."""
    profile = (spec.get("linux") or {}).get("seccomp")
    if not profile:
        return None
    try:
        return seccomp.compile_cached(profile)
    except (seccomp.SeccompError, ValueError, TypeError) as exc:
        raise StartFailed(f"invalid seccomp profile in config.json: {exc}") from None


def _message(exc: BaseException) -> str:
    if isinstance(exc, SetupError):
        return str(exc)
    return f"container setup failed: {type(exc).__name__}: {exc}"


def _setup_stdio_and_close_fds(stdio: tuple, channel_fd: int) -> None:
    """Put the caller's fds (None: /dev/null) on 0/1/2 and close every other descriptor but the channel."""
    devnull = os.open("/dev/null", os.O_RDWR | os.O_CLOEXEC)
    # Duplicate first, then dup2: the caller's fds may themselves be 0, 1 or 2 in any order.
    copies = [os.dup(devnull if fd is None else fd) for fd in stdio]
    for target, fd in enumerate(copies):
        os.dup2(fd, target)
    keep = sorted({0, 1, 2, channel_fd})
    low = 0
    for fd in keep:
        # Skip empty ranges: Python 3.11's os.closerange(0, 0) closes *every* descriptor (it
        # hands close_range a last fd of -1, i.e. the maximum).
        if fd > low:
            os.closerange(low, fd)
        low = fd + 1
    os.closerange(low, 2**31 - 1)


def _enter_namespaces(namespaces: list[dict], channel: socket.socket | None = None) -> None:
    # Open every path before joining any namespace: after joining a mount namespace the
    # remaining paths would resolve in it.
    to_join = []
    for namespace in namespaces:
        if namespace.get("path"):
            try:
                fd = os.open(namespace["path"], os.O_RDONLY | os.O_CLOEXEC)
            except OSError as exc:
                raise SetupError(
                    f"opening {namespace['type']} namespace {namespace['path']}: {sc.error_text(exc.errno)}"
                ) from None
            to_join.append((fd, namespace))
    # A user namespace given by path is joined last: joining the others needs the host's rights.
    to_join.sort(key=lambda item: item[1]["type"] == "user")
    for fd, namespace in to_join:
        try:
            sc.setns(fd, _NAMESPACE_FLAGS[namespace["type"]])
        except OSError as exc:
            raise SetupError(
                f"joining {namespace['type']} namespace {namespace['path']}: {sc.error_text(exc.errno)}"
            ) from None
        os.close(fd)
    flags = 0
    for namespace in namespaces:
        if not namespace.get("path"):
            flags |= _NAMESPACE_FLAGS[namespace["type"]]
    if flags & sc.CLONE_NEWUSER:
        _unshare_user_namespace(channel)
        # The init makes the IPC namespace once it is the namespace's root: its mqueue file
        # system then belongs to the container's root, not to an id the namespace cannot show.
        flags &= ~(sc.CLONE_NEWUSER | sc.CLONE_NEWIPC)
    if flags:
        try:
            sc.unshare(flags)
        except OSError as exc:
            raise SetupError(f"creating namespaces: {sc.error_text(exc.errno)}") from None


def _unshare_user_namespace(channel: socket.socket | None) -> None:
    """Create the user namespace and wait until the caller has written its id maps."""
    if channel is None:
        raise SetupError("a new user namespace needs the caller to write its id maps")
    try:
        sc.unshare(sc.CLONE_NEWUSER)
    except OSError as exc:
        raise SetupError(f"creating the user namespace: {sc.error_text(exc.errno)}") from None
    send_message(channel, {"type": "userns"})
    reply = channel.recv(65536)
    if not reply or json.loads(reply).get("type") != "userns-mapped":
        raise SetupError("the user namespace's id maps were not written")


def _collect(
    channel: socket.socket, intermediate: int, timeout: float, idmap: IdMap | None = None
) -> StartedContainer:
    init_pid = console_fd = error = None
    exec_started = False
    deadline = time.monotonic() + timeout
    poller = select.poll()
    poller.register(channel.fileno(), select.POLLIN)
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not poller.poll(remaining * 1000):
            error = error or f"container setup did not finish within {timeout:g} seconds"
            # The intermediate is our unreaped child, so its pid cannot have been reused.
            try:
                os.kill(intermediate, signal.SIGKILL)
            except ProcessLookupError:
                pass
            break
        data, ancillary, _, _ = channel.recvmsg(65536, socket.CMSG_SPACE(4 * 4))
        received_fds = _fds_from(ancillary)
        if not data:
            break
        message = json.loads(data)
        kind = message.get("type")
        if kind == "pid":
            init_pid = message["pid"]
        elif kind == "console" and received_fds:
            console_fd = received_fds.pop(0)
        elif kind == "error":
            error = error or message.get("message", "unknown error")
        elif kind == "exec":
            exec_started = True
        elif kind == "userns":
            error = error or _write_id_maps(channel, intermediate, idmap)
        for fd in received_fds:
            os.close(fd)
    status = _reap(intermediate)
    if error is None and not exec_started:
        if status == 0:
            error = "container init exited before exec"
        else:
            error = f"container setup process failed (wait status {status})"
    if error is not None:
        if init_pid is not None:
            try:
                os.kill(init_pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            _reap(init_pid)
        if console_fd is not None:
            os.close(console_fd)
        raise StartFailed(error)
    if console_fd is not None:
        os.set_inheritable(console_fd, False)  # SCM_RIGHTS delivers it without close-on-exec
    return StartedContainer(pid=init_pid, console_fd=console_fd)


def _write_id_maps(channel: socket.socket, pid: int, idmap: IdMap | None) -> str | None:
    """Map the user namespace the intermediate ``pid`` made; an error text on failure."""
    if idmap is None:
        os.kill(pid, signal.SIGKILL)
        return "the container's setup made a user namespace that config.json does not ask for"
    try:
        write_maps(pid, idmap)
    except OSError as exc:
        # The intermediate waits for our answer: end it (our unreaped child, so the pid is its).
        os.kill(pid, signal.SIGKILL)
        return f"writing the user namespace's id maps: {sc.error_text(exc.errno)}"
    send_message(channel, {"type": "userns-mapped"})
    return None


def _fds_from(ancillary: list) -> list[int]:
    fds = []
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            numbers = array.array("i")
            numbers.frombytes(data[: len(data) - len(data) % numbers.itemsize])
            fds.extend(numbers)
    return fds


def _reap(pid: int) -> int | None:
    """waitpid(pid); None if someone else already reaped it (ECHILD)."""
    while True:
        try:
            return os.waitpid(pid, 0)[1]
        except ChildProcessError:
            return None
        except InterruptedError:
            continue
