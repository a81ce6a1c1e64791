"""What the container's init (PID 1 of the new pid namespace) does between fork and exec.

The order follows runc's: mounts and /dev in the new mount namespace, cwd created, pivot_root;
then loopback, hostname, sysctls, the terminal, read-only and masked paths, a read-only root;
rlimits, the user and its capabilities, no_new_privs; finally the executable is looked up in the
container's PATH and exec'd. Each step names itself, so a failure reads
"mounting proc on /proc: ...".

In a user namespace the init starts as the host's uid 0 with every capability in the namespace but
none on the host; host paths it must reach (the root file system, the sources of bind mounts) may
sit below directories only the host's root may enter. So it opens them first, still as the host's
uid 0 (the owner of those directories), then becomes the namespace's root (setresuid(0): the
mapped host id) before it creates anything: an inode owned by an id the namespace cannot express
could not be created on its tmpfs or through the idmapped root file system. Device nodes cannot be
made in a user namespace (the host's are bound instead, see :mod:`.mounts`).
"""

from __future__ import annotations

import array
import errno
import fcntl
import json
import os
import socket
import stat
import struct

from pyengine.runtime import console, mounts
from pyengine.runtime import process as process_setup
from pyengine.runtime import syscalls as sc
from pyengine.runtime.inroot import open_beneath, resolve

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_SIOCGIFFLAGS = 0x8913
_SIOCSIFFLAGS = 0x8914
_IFF_UP = 0x1


class SetupError(Exception):
    """A step of the container's setup failed; the message is meant for the user as-is."""


def send_message(channel: socket.socket, message: dict, fd: int | None = None) -> None:
    payload = json.dumps(message).encode()
    if fd is None:
        channel.sendmsg([payload])
    else:
        channel.sendmsg([payload], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [fd]))])


def _describe(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        # Our syscall wrappers already put the object in strerror; os.* puts it in filename.
        detail = exc.strerror[:1].lower() + exc.strerror[1:]
        return f"{exc.filename}: {detail}" if exc.filename else detail
    return str(exc) or type(exc).__name__


class _Step:
    """Context manager that turns any failure inside it into SetupError("<what>: <why>")."""

    def __init__(self, what: str) -> None:
        self.what = what

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc is not None and not isinstance(exc, SetupError):
            raise SetupError(f"{self.what}: {_describe(exc)}") from exc
        return False


def bring_loopback_up() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("16sh14x", b"lo", 0)
        flags = struct.unpack("16sh14x", fcntl.ioctl(sock.fileno(), _SIOCGIFFLAGS, request))[1]
        if flags & _IFF_UP:
            return  # already up (a namespace the network driver made: maybe not ours to change)
        fcntl.ioctl(sock.fileno(), _SIOCSIFFLAGS, struct.pack("16sh14x", b"lo", flags | _IFF_UP))


def _write_sysctl(key: str, value: str) -> None:
    parts = key.replace(".", "/").split("/")
    if any(part in ("", "..") for part in parts):
        raise ValueError(f"invalid sysctl {key!r}")
    with open("/proc/sys/" + "/".join(parts), "w") as file:
        file.write(value)


def _is_executable(path: str) -> bool:
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return not stat.S_ISDIR(mode) and bool(mode & 0o111)


def find_executable(name: str, env: dict[str, str]) -> str:
    """Look ``name`` up like Go's exec.LookPath does in runc, with the same error texts."""
    if "/" in name:
        try:
            mode = os.stat(name).st_mode
        except OSError as exc:
            raise SetupError(f'exec: "{name}": stat {name}: {sc.error_text(exc.errno)}') from None
        if stat.S_ISDIR(mode) or not mode & 0o111:
            raise SetupError(f'exec: "{name}": permission denied')
        return name
    for directory in env.get("PATH", DEFAULT_PATH).split(":"):
        candidate = os.path.join(directory or ".", name)
        if _is_executable(candidate):
            return candidate
    raise SetupError(f'exec: "{name}": executable file not found in $PATH')


def _environment(process: dict) -> dict[str, str]:
    env: dict[str, str] = {}
    for item in process.get("env") or ():
        key, sep, value = item.partition("=")
        if sep and key:
            env[key] = value
    return env


def _open_cgroup_procs(path: str | None) -> list[int]:
    """Open the cgroup's cgroup.procs files while the host's /sys/fs/cgroup is still reachable."""
    if not path:
        return []
    from pyengine.runtime import cgroups

    fds = []
    for procs in cgroups.procs_files(path):
        with _Step(f"opening {procs}"):
            fds.append(os.open(procs, os.O_WRONLY | os.O_CLOEXEC))
    return fds


def _join_cgroup(fds: list[int]) -> None:
    for fd in fds:
        with _Step("joining the container's cgroup"):
            os.write(fd, b"0")  # 0: the writer itself (our pid means nothing in this pid namespace)
        os.close(fd)


def become_namespace_root() -> None:
    """Switch to uid/gid 0 of the user namespace we are in (the mapped host ids), no extra groups."""
    os.setgroups([])
    os.setresgid(0, 0, 0)
    os.setresuid(0, 0, 0)


def run_init(spec: dict, rootfs: str, channel: socket.socket, seccomp_filter: bytes | None = None) -> None:
    """Set the container up and exec its process. Returns only by raising (SetupError or other)."""
    process = spec.get("process") or {}
    linux = spec.get("linux") or {}
    namespaces = {ns.get("type") for ns in linux.get("namespaces") or ()}
    spec_mounts = spec.get("mounts") or []
    args = process.get("args") or []
    if not args:
        raise SetupError("process.args must not be empty")
    cwd = process.get("cwd") or "/"
    os.umask(0)

    if "oomScoreAdj" in process:
        with _Step("setting oom_score_adj"), open("/proc/self/oom_score_adj", "w") as file:
            file.write(str(process["oomScoreAdj"]))

    if "mount" not in namespaces:
        raise SetupError('a mount namespace is required (linux.namespaces has no "mount")')
    cgroup_procs = _open_cgroup_procs(linux.get("cgroupsPath"))
    propagation = None
    if linux.get("rootfsPropagation"):
        propagation = mounts.PROPAGATION_OPTIONS.get(linux["rootfsPropagation"])
        if propagation is None:
            raise SetupError(f"invalid rootfsPropagation {linux['rootfsPropagation']!r}")
    with _Step(f"preparing the root file system {rootfs}"):
        mounts.prepare_root(rootfs, propagation)
        root_fd = os.open(rootfs, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    source_fds: dict[int, int] = {}
    try:
        if "user" in namespaces:
            source_fds = mounts.open_bind_sources(spec_mounts)
            with _Step("becoming root in the user namespace"):
                become_namespace_root()
            if any(ns.get("type") == "ipc" and not ns.get("path") for ns in linux.get("namespaces") or ()):
                with _Step("creating the IPC namespace"):
                    sc.unshare(sc.CLONE_NEWIPC)  # left to us by the intermediate (see .start)
        for index, entry in enumerate(spec_mounts):
            with _Step(f"mounting {entry.get('source') or entry.get('type')} on {entry.get('destination')}"):
                mounts.mount_entry(root_fd, entry, source_fds.get(index))
        if mounts.needs_dev_setup(spec_mounts):
            with _Step("creating device nodes in /dev"):
                mounts.setup_dev(root_fd, linux.get("devices"))
        with _Step(f'creating cwd ("{cwd}") set in config.json'):
            cwd_fd = open_beneath(root_fd, resolve(root_fd, cwd, create="dir"))
            try:
                if not stat.S_ISDIR(os.fstat(cwd_fd).st_mode):
                    raise NotADirectoryError(errno.ENOTDIR, "not a directory")
            finally:
                os.close(cwd_fd)
        with _Step("pivot_root"):
            mounts.pivot_to(rootfs, root_fd)
            if propagation:
                sc.mount(None, "/", None, propagation)
    finally:
        os.close(root_fd)
        for fd in source_fds.values():
            os.close(fd)

    if "network" in namespaces:
        with _Step("bringing up the loopback interface"):
            bring_loopback_up()
    if spec.get("hostname"):
        if "uts" not in namespaces:
            raise SetupError("unable to set hostname without a private UTS namespace")
        with _Step("setting the hostname"):
            socket.sethostname(spec["hostname"])
    for key, value in (linux.get("sysctl") or {}).items():
        with _Step(f"setting sysctl {key}"):
            _write_sysctl(key, value)

    if process.get("terminal"):
        with _Step("setting up the terminal"):
            master, slave, slave_path = console.open_pty(process.get("consoleSize"))
            try:
                console.bind_console(slave_path)
                console.make_controlling_terminal(slave)
                send_message(channel, {"type": "console"}, master)
            finally:
                os.close(master)

    for path in linux.get("readonlyPaths") or ():
        with _Step(f"making {path} read-only"):
            mounts.readonly_path(path)
    for path in linux.get("maskedPaths") or ():
        with _Step(f"masking {path}"):
            mounts.mask_path(path)
    if (spec.get("root") or {}).get("readonly"):
        with _Step("making the root file system read-only"):
            mounts.remount_readonly("/")

    try:
        process_setup.become(process, seccomp_filter)
    except process_setup.ProcessSetupError as exc:
        raise SetupError(str(exc)) from None

    env = _environment(process)
    executable = find_executable(args[0], env)
    # Join the cgroup last: the setup above is charged to the supervisor, the program to the container.
    _join_cgroup(cgroup_procs)
    try:
        process_setup.exec_now(executable, args, env, channel, send_message)
    except process_setup.ProcessSetupError as exc:
        raise SetupError(str(exc)) from None
