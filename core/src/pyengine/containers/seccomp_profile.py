"""Docker's default seccomp profile, and turning a Docker-format profile into the OCI object.

The default is the list Docker ships (facts taken from moby's profiles/seccomp/default.json, written
here as our own data for x86_64): system calls refused with EPERM unless listed, and calls that
create namespaces, mount, load modules, trace or change the clock allowed only with the capability
that the kernel would also demand. keyctl, add_key, request_key, kexec_load, userfaultfd, ... are
simply not listed, so they are refused.

A profile in Docker's format (what ``--security-opt seccomp=PROFILE.json`` gives) has rules with
``includes``/``excludes`` on capabilities, architectures and kernel versions; :func:`to_oci` keeps
the rules that apply to this container and host, as Docker's daemon does before handing the profile
to the runtime.
"""

from __future__ import annotations

import os
from typing import Any

from pyengine.errors import InvalidArgument

# The last line: ptrace and process_vm_* (Docker allows them from kernel 4.8 on, when ptrace can no
# longer bypass seccomp) and the x86 arch_prctl/modify_ldt (names other architectures lack are skipped).
ALWAYS_ALLOWED = """
accept accept4 access adjtimex alarm bind brk capget capset chdir chmod chown chown32
clock_adjtime clock_adjtime64 clock_getres clock_getres_time64 clock_gettime clock_gettime64
clock_nanosleep clock_nanosleep_time64 close close_range connect copy_file_range creat dup dup2 dup3
epoll_create epoll_create1 epoll_ctl epoll_ctl_old epoll_pwait epoll_pwait2 epoll_wait epoll_wait_old
eventfd eventfd2 execve execveat exit exit_group faccessat faccessat2 fadvise64 fadvise64_64 fallocate
fanotify_mark fchdir fchmod fchmodat fchown fchown32 fchownat fcntl fcntl64 fdatasync fgetxattr
flistxattr flock fork fremovexattr fsetxattr fstat fstat64 fstatat64 fstatfs fstatfs64 fsync ftruncate
ftruncate64 futex futex_time64 futex_waitv futimesat getcpu getcwd getdents getdents64 getegid
getegid32 geteuid geteuid32 getgid getgid32 getgroups getgroups32 getitimer getpeername getpgid getpgrp
getpid getppid getpriority getrandom getresgid getresgid32 getresuid getresuid32 getrlimit
get_robust_list getrusage getsid getsockname getsockopt get_thread_area gettid gettimeofday getuid
getuid32 getxattr inotify_add_watch inotify_init inotify_init1 inotify_rm_watch io_cancel ioctl
io_destroy io_getevents io_pgetevents io_pgetevents_time64 ioprio_get ioprio_set io_setup io_submit
io_uring_enter io_uring_register io_uring_setup ipc kill landlock_add_rule landlock_create_ruleset
landlock_restrict_self lchown lchown32 lgetxattr link linkat listen listxattr llistxattr _llseek
lremovexattr lseek lsetxattr lstat lstat64 madvise membarrier memfd_create memfd_secret mincore mkdir
mkdirat mknod mknodat mlock mlock2 mlockall mmap mmap2 mprotect mq_getsetattr mq_notify mq_open
mq_timedreceive mq_timedreceive_time64 mq_timedsend mq_timedsend_time64 mq_unlink mremap msgctl msgget
msgrcv msgsnd msync munlock munlockall munmap name_to_handle_at nanosleep newfstatat _newselect open
openat openat2 pause pidfd_open pidfd_send_signal pipe pipe2 pkey_alloc pkey_free pkey_mprotect poll
ppoll ppoll_time64 prctl pread64 preadv preadv2 prlimit64 process_mrelease pselect6 pselect6_time64
pwrite64 pwritev pwritev2 read readahead readlink readlinkat readv recv recvfrom recvmmsg
recvmmsg_time64 recvmsg remap_file_pages removexattr rename renameat renameat2 restart_syscall rmdir
rseq rt_sigaction rt_sigpending rt_sigprocmask rt_sigqueueinfo rt_sigreturn rt_sigsuspend
rt_sigtimedwait rt_sigtimedwait_time64 rt_tgsigqueueinfo sched_getaffinity sched_getattr
sched_getparam sched_get_priority_max sched_get_priority_min sched_getscheduler sched_rr_get_interval
sched_rr_get_interval_time64 sched_setaffinity sched_setattr sched_setparam sched_setscheduler
sched_yield seccomp select semctl semget semop semtimedop semtimedop_time64 send sendfile sendfile64
sendmmsg sendmsg sendto setfsgid setfsgid32 setfsuid setfsuid32 setgid setgid32 setgroups setgroups32
setitimer setpgid setpriority setregid setregid32 setresgid setresgid32 setresuid setresuid32 setreuid
setreuid32 setrlimit set_robust_list setsid setsockopt set_thread_area set_tid_address setuid setuid32
setxattr shmat shmctl shmdt shmget shutdown sigaltstack signalfd signalfd4 sigprocmask sigreturn
socketcall socketpair splice stat stat64 statfs statfs64 statx symlink symlinkat sync sync_file_range
syncfs sysinfo tee tgkill time timer_create timer_delete timer_getoverrun timer_gettime
timer_gettime64 timer_settime timer_settime64 timerfd_create timerfd_gettime timerfd_gettime64
timerfd_settime timerfd_settime64 times tkill truncate truncate64 ugetrlimit umask uname unlink
unlinkat utime utimensat utimensat_time64 utimes vfork vmsplice wait4 waitid waitpid write writev
ptrace process_vm_readv process_vm_writev arch_prctl modify_ldt
""".split()

# The bits of clone's flags that create namespaces: CLONE_NEWNS|NEWCGROUP|NEWUTS|NEWIPC|NEWUSER|
# NEWPID|NEWNET. Without CAP_SYS_ADMIN, clone is allowed only when none of them is set.
CLONE_NAMESPACE_FLAGS = 0x7E020000
AF_VSOCK = 40

# (system calls, allowed when the container has every one of these capabilities)
ALLOWED_WITH_CAPABILITY: tuple[tuple[tuple[str, ...], str], ...] = (
    (("open_by_handle_at",), "CAP_DAC_READ_SEARCH"),
    (
        (
            "bpf clone clone3 fanotify_init fsconfig fsmount fsopen fspick lookup_dcookie mount "
            "mount_setattr move_mount open_tree perf_event_open quotactl quotactl_fd setdomainname "
            "sethostname setns syslog umount umount2 unshare"
        ).split(),
        "CAP_SYS_ADMIN",
    ),
    (("reboot",), "CAP_SYS_BOOT"),
    (("chroot",), "CAP_SYS_CHROOT"),
    (("delete_module", "init_module", "finit_module"), "CAP_SYS_MODULE"),
    (("acct",), "CAP_SYS_PACCT"),
    (
        ("kcmp", "pidfd_getfd", "process_madvise", "process_vm_readv", "process_vm_writev", "ptrace"),
        "CAP_SYS_PTRACE",
    ),
    (("iopl", "ioperm"), "CAP_SYS_RAWIO"),
    (("settimeofday", "stime", "clock_settime", "clock_settime64"), "CAP_SYS_TIME"),
    (("vhangup",), "CAP_SYS_TTY_CONFIG"),
    (("get_mempolicy", "mbind", "set_mempolicy", "set_mempolicy_home_node"), "CAP_SYS_NICE"),
    (("syslog",), "CAP_SYSLOG"),
    (("bpf",), "CAP_BPF"),
    (("perf_event_open",), "CAP_PERFMON"),
)


def default_profile() -> dict[str, Any]:
    """Docker's default profile in Docker's own format (includes/excludes not yet applied)."""
    syscalls: list[dict[str, Any]] = [
        {"names": list(ALWAYS_ALLOWED), "action": "SCMP_ACT_ALLOW"},
        {
            "names": ["socket"],
            "action": "SCMP_ACT_ALLOW",
            "args": [{"index": 0, "value": AF_VSOCK, "op": "SCMP_CMP_NE"}],
        },
    ]
    for persona in (0x0, 0x8, 0x20000, 0x20008, 0xFFFFFFFF):  # PER_LINUX, PER_LINUX32, UNAME26, query
        syscalls.append(
            {
                "names": ["personality"],
                "action": "SCMP_ACT_ALLOW",
                "args": [{"index": 0, "value": persona, "op": "SCMP_CMP_EQ"}],
            }
        )
    for names, capability in ALLOWED_WITH_CAPABILITY:
        syscalls.append(
            {"names": list(names), "action": "SCMP_ACT_ALLOW", "includes": {"caps": [capability]}}
        )
    syscalls.append(
        {
            "names": ["clone"],
            "action": "SCMP_ACT_ALLOW",
            "args": [{"index": 0, "value": CLONE_NAMESPACE_FLAGS, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}],
            "excludes": {"caps": ["CAP_SYS_ADMIN"]},
        }
    )
    # clone3 passes its flags in memory, out of the filter's reach: ENOSYS makes libcs fall back to clone.
    syscalls.append(
        {
            "names": ["clone3"],
            "action": "SCMP_ACT_ERRNO",
            "errnoRet": 38,
            "excludes": {"caps": ["CAP_SYS_ADMIN"]},
        }
    )
    return {
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": 1,
        "archMap": [
            {"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"]},
            {"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": ["SCMP_ARCH_ARM"]},
        ],
        "syscalls": syscalls,
    }


# Docker's names for architectures in includes/excludes, by uname machine
_ARCH_NAMES = {"x86_64": ("amd64", "x86", "x32"), "aarch64": ("arm64", "arm")}
_NATIVE_SCMP = {"x86_64": "SCMP_ARCH_X86_64", "aarch64": "SCMP_ARCH_AARCH64"}


def _kernel_at_least(version: str) -> bool:
    def numbers(text: str) -> tuple[int, ...]:
        parts = []
        for part in text.split("-")[0].split(".")[:3]:
            digits = "".join(ch for ch in part if ch.isdigit())
            parts.append(int(digits or 0))
        return tuple(parts)

    return numbers(os.uname().release) >= numbers(version)


def _applies(rule: dict[str, Any], capabilities: set[str], arch_names: tuple[str, ...]) -> bool:
    includes = rule.get("includes") or {}
    excludes = rule.get("excludes") or {}
    if includes.get("caps") and not set(includes["caps"]) <= capabilities:
        return False
    if includes.get("arches") and not set(includes["arches"]) & set(arch_names[:1]):
        return False
    if includes.get("minKernel") and not _kernel_at_least(includes["minKernel"]):
        return False
    if excludes.get("caps") and set(excludes["caps"]) & capabilities:
        return False
    if excludes.get("arches") and set(excludes["arches"]) & set(arch_names[:1]):
        return False
    return True


def to_oci(profile: dict[str, Any], capabilities: list[str], machine: str | None = None) -> dict[str, Any]:
    """The OCI ``linux.seccomp`` object for a Docker-format ``profile`` and the container's capabilities."""
    if not isinstance(profile, dict):
        raise InvalidArgument("invalid seccomp profile: expected a JSON object")
    machine = machine or os.uname().machine
    native = _NATIVE_SCMP.get(machine, "")
    if profile.get("archMap") and profile.get("architectures"):
        raise InvalidArgument("invalid seccomp profile: use either 'architectures' or 'archMap'")
    architectures = list(profile.get("architectures") or [])
    for entry in profile.get("archMap") or ():
        if entry.get("architecture") == native:
            architectures = [native, *(entry.get("subArchitectures") or [])]
    caps = set(capabilities)
    arch_names = _ARCH_NAMES.get(machine, (machine,))
    syscalls = []
    for rule in profile.get("syscalls") or ():
        if not isinstance(rule, dict):
            raise InvalidArgument("invalid seccomp profile: each syscalls entry must be an object")
        names = list(rule.get("names") or ([rule["name"]] if rule.get("name") else []))
        if not names:
            raise InvalidArgument("invalid seccomp profile: a syscalls entry has no names")
        if not rule.get("action"):
            raise InvalidArgument(f"invalid seccomp profile: the rule for {names[0]} has no action")
        if not _applies(rule, caps, arch_names):
            continue
        oci_rule: dict[str, Any] = {"names": names, "action": rule["action"]}
        if rule.get("errnoRet") is not None:
            oci_rule["errnoRet"] = rule["errnoRet"]
        if rule.get("args"):
            oci_rule["args"] = [
                {
                    "index": a.get("index", 0),
                    "value": a.get("value", 0),
                    "valueTwo": a.get("valueTwo", 0),
                    "op": a.get("op", ""),
                }
                for a in rule["args"]
            ]
        syscalls.append(oci_rule)
    if not profile.get("defaultAction"):
        raise InvalidArgument("invalid seccomp profile: defaultAction is required")
    result: dict[str, Any] = {
        "defaultAction": profile["defaultAction"],
        "architectures": architectures,
        "syscalls": syscalls,
    }
    if profile.get("defaultErrnoRet") is not None:
        result["defaultErrnoRet"] = profile["defaultErrnoRet"]
    return result
