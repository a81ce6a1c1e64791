"""The last steps before a container's process (its init or an exec'd one) becomes process.args.

Shared by the container's init (:mod:`.init`) and by a process joining a running container
(:mod:`.exec`), so both get the same rlimits, user, capabilities, no_new_privs and seccomp filter.

The order, and why:

1. rlimits (raising a hard limit needs CAP_SYS_RESOURCE, which we still have);
2. the bounding set is cut while we still have CAP_SETPCAP; PR_SET_KEEPCAPS keeps the permitted
   set across the switch to the container's user;
3. without no_new_privs, installing a seccomp filter needs CAP_SYS_ADMIN, so the filter goes in
   now, before setuid drops it (what runc does); the calls still to come (setgroups, setuid,
   capset, prctl, chdir, execve...) must be allowed by the profile, as they are by Docker's;
4. setgroups/setgid/setuid, chdir to the working directory (as the user, so permissions apply);
5. capset to the spec's sets and ambient capabilities;
6. with no_new_privs, it is set now and the filter is installed as the very last step, so that it
   filters nothing of ours but the execve;
7. every descriptor above 2 is marked close-on-exec and the process execs.

Everything here runs after the container's files became visible (pivot_root or setns): it imports
nothing, and only uses modules imported before.
"""

from __future__ import annotations

import os
import resource
import signal
import socket

from pyengine.runtime import seccomp
from pyengine.runtime import syscalls as sc
from pyengine.runtime.capabilities import CapabilitySets

# RLIMIT_* numbers on Linux (Python's resource module lacks RLIMIT_LOCKS).
RLIMIT_NUMBERS = {
    "RLIMIT_CPU": 0,
    "RLIMIT_FSIZE": 1,
    "RLIMIT_DATA": 2,
    "RLIMIT_STACK": 3,
    "RLIMIT_CORE": 4,
    "RLIMIT_RSS": 5,
    "RLIMIT_NPROC": 6,
    "RLIMIT_NOFILE": 7,
    "RLIMIT_MEMLOCK": 8,
    "RLIMIT_AS": 9,
    "RLIMIT_LOCKS": 10,
    "RLIMIT_SIGPENDING": 11,
    "RLIMIT_MSGQUEUE": 12,
    "RLIMIT_NICE": 13,
    "RLIMIT_RTPRIO": 14,
    "RLIMIT_RTTIME": 15,
}
_INFINITY = 2**64 - 1


class ProcessSetupError(Exception):
    """A step failed; the message is meant for the user as-is."""


def _fail(what: str, exc: BaseException) -> ProcessSetupError:
    if isinstance(exc, OSError) and exc.strerror:
        detail = exc.strerror[:1].lower() + exc.strerror[1:]
    else:
        detail = str(exc) or type(exc).__name__
    return ProcessSetupError(f"{what}: {detail}")


def set_rlimits(rlimits: list[dict] | None) -> None:
    for limit in rlimits or ():
        kind = limit.get("type")
        number = RLIMIT_NUMBERS.get(kind)
        if number is None:
            raise ProcessSetupError(f"unknown rlimit {kind!r}")
        soft, hard = (resource.RLIM_INFINITY if v >= _INFINITY else v for v in (limit["soft"], limit["hard"]))
        try:
            resource.setrlimit(number, (soft, hard))
        except (OSError, ValueError) as exc:
            raise _fail(f"setting {kind}", exc) from None


def become(process: dict, seccomp_filter: bytes | None) -> None:
    """Steps 1-6 above for the calling (single-threaded) process."""
    set_rlimits(process.get("rlimits"))
    user = process.get("user") or {}
    no_new_privileges = bool(process.get("noNewPrivileges"))
    capabilities = None
    if process.get("capabilities") is not None:
        try:
            capabilities = CapabilitySets(process["capabilities"])
            capabilities.drop_bounding()
            sc.prctl(sc.PR_SET_KEEPCAPS, 1)
        except (OSError, ValueError) as exc:
            raise _fail("setting capabilities", exc) from None
    if seccomp_filter is not None and not no_new_privileges:
        try:
            seccomp.install_filter(seccomp_filter)
        except OSError as exc:
            raise _fail("installing the seccomp filter", exc) from None
    try:
        os.setgroups(list(user.get("additionalGids") or []))
        os.setgid(user.get("gid", 0))
        os.setuid(user.get("uid", 0))
    except OSError as exc:
        raise _fail(f"setting user {user.get('uid', 0)}:{user.get('gid', 0)}", exc) from None
    cwd = process.get("cwd") or "/"
    try:
        os.chdir(cwd)
    except OSError as exc:
        raise ProcessSetupError(
            f'chdir to cwd ("{cwd}") set in config.json failed: {sc.error_text(exc.errno)}'
        ) from None
    if capabilities is not None:
        try:
            sc.prctl(sc.PR_SET_KEEPCAPS, 0)
            capabilities.apply_sets()
        except OSError as exc:
            raise _fail("setting capabilities", exc) from None
    if no_new_privileges:
        try:
            sc.prctl(sc.PR_SET_NO_NEW_PRIVS, 1)
        except OSError as exc:
            raise _fail("setting no_new_privs", exc) from None
    os.umask(user.get("umask", 0o022))
    if seccomp_filter is not None and no_new_privileges:
        try:
            seccomp.install_filter(seccomp_filter)
        except OSError as exc:
            raise _fail("installing the seccomp filter", exc) from None


def reset_signals() -> None:
    signal.set_wakeup_fd(-1)
    for number in range(1, signal.NSIG):
        if number in (signal.SIGKILL, signal.SIGSTOP):
            continue
        try:
            signal.signal(number, signal.SIG_DFL)
        except (OSError, ValueError):
            pass  # signals the C library reserves for itself (32, 33)


def exec_now(executable: str, args: list[str], env: dict[str, str], channel: socket.socket, announce) -> None:
    """Close-on-exec every descriptor above 2, tell the caller, unblock signals and execve."""
    reset_signals()
    sc.close_range_cloexec(3)  # the container must not inherit a single host descriptor
    announce(channel, {"type": "exec"})
    signal.pthread_sigmask(signal.SIG_SETMASK, [])
    try:
        os.execve(executable, args, env)
    except OSError as exc:
        raise ProcessSetupError(f"exec {executable}: {sc.error_text(exc.errno)}") from None
