"""The seccomp compiler on the real kernel: each filter is installed in a forked child that makes
raw system calls and reports their results."""

from __future__ import annotations

import ctypes
import errno
import json
import os
import signal
import struct

import pytest
from pyengine.containers import seccomp_profile
from pyengine.containers.spec import DEFAULT_CAPABILITIES
from pyengine.runtime import seccomp
from pyengine.runtime import syscalls as sc
from pyengine.runtime.syscall_numbers import X86_64

pytestmark = pytest.mark.skipif(os.uname().machine != "x86_64", reason="syscall numbers here are x86_64's")

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


def _raw(name: str, *args: int, numbers: dict | None = None) -> tuple[int, int]:
    ctypes.set_errno(0)
    number = (numbers or {}).get(name, X86_64.get(name))
    result = _libc.syscall(ctypes.c_long(number), *(ctypes.c_ulong(a) for a in args))
    return result, ctypes.get_errno()


def run_filtered(
    program: bytes, calls: list[tuple], no_new_privs: bool = True, numbers: dict | None = None
) -> list[tuple[int, int]]:
    """Install ``program`` in a child, make ``calls`` [(name, *args)], return [(result, errno)]."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(read_end)
            signal.alarm(20)  # a filter that refuses exit_group would otherwise leave us spinning
            if no_new_privs:
                sc.prctl(sc.PR_SET_NO_NEW_PRIVS, 1)
            seccomp.install_filter(program)
            results = [_raw(*call, numbers=numbers) for call in calls]
            os.write(write_end, json.dumps(results).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        data = pipe.read()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    return [tuple(item) for item in json.loads(data)]


def default_filter(capabilities: list[str]) -> bytes:
    return seccomp.compile_filter(seccomp_profile.to_oci(seccomp_profile.default_profile(), capabilities))


def test_default_profile_refuses_what_docker_refuses():
    program = default_filter(list(DEFAULT_CAPABILITIES))
    clone_newuser = 0x10000000 | 17  # CLONE_NEWUSER | SIGCHLD
    results = run_filtered(
        program,
        [
            ("keyctl", 0, 0, 0, 0, 0),
            ("add_key", 0, 0, 0, 0, 0),
            ("request_key", 0, 0, 0, 0),
            ("kexec_load", 0, 0, 0, 0),
            ("bpf", 0, 0, 0),
            ("unshare", 0x10000000),
            ("setns", 0, 0),
            ("mount", 0, 0, 0, 0, 0),
            ("umount2", 0, 0),
            ("clone", clone_newuser, 0, 0, 0, 0),
            ("socket", 40, 1, 0),  # AF_VSOCK
            ("personality", 0x0040000),  # ADDR_NO_RANDOMIZE: not one of the allowed personas
            ("userfaultfd", 0),
            ("open_by_handle_at", 0, 0, 0),  # needs CAP_DAC_READ_SEARCH
        ],
    )
    assert all(result == (-1, errno.EPERM) for result in results), results
    # clone3 answers ENOSYS so that a libc falls back to clone, whose flags the filter can see
    assert run_filtered(program, [("clone3", 0, 0)]) == [(-1, errno.ENOSYS)]


def test_default_profile_allows_ordinary_calls():
    program = default_filter(list(DEFAULT_CAPABILITIES))
    results = run_filtered(program, [("getpid",), ("personality", 0xFFFFFFFF), ("getppid",)])
    assert results[0][0] > 0 and results[1][0] >= 0 and results[2][0] > 0, results


def test_sys_admin_allows_namespaces_and_mounts():
    program = default_filter([*DEFAULT_CAPABILITIES, "CAP_SYS_ADMIN"])
    # unshare(CLONE_NEWUTS) succeeds (we are root); clone3 is no longer turned into ENOSYS
    results = run_filtered(program, [("unshare", sc.CLONE_NEWUTS), ("clone3", 0, 0)])
    assert results[0] == (0, 0)
    assert results[1] == (-1, errno.EINVAL)  # the kernel's own answer to a bad clone_args size


def test_filter_installed_without_no_new_privs_needs_cap_sys_admin():
    program = default_filter(list(DEFAULT_CAPABILITIES))
    assert run_filtered(program, [("keyctl", 0, 0, 0, 0, 0)], no_new_privs=False) == [(-1, errno.EPERM)]


@pytest.mark.parametrize(
    ("op", "value", "value_two", "offset", "matches"),
    [
        ("SCMP_CMP_EQ", 5, 0, 5, True),
        ("SCMP_CMP_EQ", 5, 0, 6, False),
        ("SCMP_CMP_EQ", 1 << 33, 0, 1 << 33, True),
        ("SCMP_CMP_EQ", 1 << 33, 0, 0, False),
        ("SCMP_CMP_NE", 5, 0, 6, True),
        ("SCMP_CMP_NE", 5, 0, 5, False),
        ("SCMP_CMP_NE", 1 << 33, 0, 0, True),
        ("SCMP_CMP_GT", 5, 0, 6, True),
        ("SCMP_CMP_GT", 5, 0, 5, False),
        ("SCMP_CMP_GT", (1 << 33) + 1, 0, 1 << 34, True),
        ("SCMP_CMP_GT", (1 << 33) + 1, 0, (1 << 33) + 1, False),
        ("SCMP_CMP_GE", 5, 0, 5, True),
        ("SCMP_CMP_GE", 5, 0, 4, False),
        ("SCMP_CMP_LT", 5, 0, 4, True),
        ("SCMP_CMP_LT", 5, 0, 5, False),
        ("SCMP_CMP_LT", 1 << 33, 0, (1 << 32) + 7, True),
        ("SCMP_CMP_LE", 5, 0, 5, True),
        ("SCMP_CMP_LE", 5, 0, 6, False),
        ("SCMP_CMP_LE", 1 << 33, 0, (1 << 33) + 1, False),
        ("SCMP_CMP_MASKED_EQ", 0xF0, 0x20, 0x2F, True),
        ("SCMP_CMP_MASKED_EQ", 0xF0, 0x20, 0x3F, False),
        ("SCMP_CMP_MASKED_EQ", 0xFF << 32, 1 << 32, (1 << 32) + 5, True),
    ],
)
def test_argument_comparisons(op, value, value_two, offset, matches):
    """lseek(fd, offset, SEEK_SET) on /dev/null is refused with EACCES exactly when the rule matches."""
    profile = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [
            {
                "names": ["lseek"],
                "action": "SCMP_ACT_ERRNO",
                "errnoRet": errno.EACCES,
                "args": [{"index": 1, "op": op, "value": value, "valueTwo": value_two}],
            }
        ],
    }
    fd = os.open("/dev/null", os.O_RDONLY)
    try:
        [(result, error)] = run_filtered(seccomp.compile_filter(profile), [("lseek", fd, offset, 0)])
    finally:
        os.close(fd)
    assert (result == -1 and error == errno.EACCES) == matches, (result, error)


def test_bad_profiles_are_refused():
    for profile in (
        {"defaultAction": "SCMP_ACT_NOPE"},
        {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_BOGUS"}]},
        {
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [
                {"names": ["read"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 9, "op": "SCMP_CMP_EQ"}]}
            ],
        },
        {
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [
                {"names": ["read"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 0, "op": "SCMP_CMP_ZZ"}]}
            ],
        },
    ):
        with pytest.raises(seccomp.SeccompError):
            seccomp.compile_filter(profile)


def test_x32_system_calls_are_refused():
    """x32 calls (nr | 0x40000000, same audit arch as x86_64) get the default action, as do other
    architectures: the program checks the architecture before anything else."""
    survive = ["getpid", "write", "exit", "exit_group", "brk", "mmap", "munmap", "rt_sigreturn", "close"]
    program = seccomp.compile_filter(
        {
            "defaultAction": "SCMP_ACT_ERRNO",
            "architectures": ["SCMP_ARCH_X86_64"],
            "syscalls": [{"names": survive, "action": "SCMP_ACT_ALLOW"}],
        }
    )
    code, _jt, _jf, k = struct.unpack("=HBBI", program[:8])
    assert (code, k) == (0x20, 4)  # ld [arch]
    x32_getpid = 0x40000000 + 39
    results = run_filtered(program, [("getpid",), ("x32_getpid",)], numbers={"x32_getpid": x32_getpid})
    assert results[0][0] > 0
    assert results[1] == (-1, errno.EPERM)


def _int80_caller():
    """A function ``call(nr) -> int`` that makes an i386 system call (``int $0x80``) from this
    64-bit process: the kernel reports it with the i386 audit architecture, as a 32-bit binary's."""
    import mmap

    code = bytes([0x89, 0xF8, 0xCD, 0x80, 0xC3])  # mov eax, edi; int 0x80; ret
    memory = mmap.mmap(-1, mmap.PAGESIZE, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    memory.write(code)
    address = ctypes.addressof(ctypes.c_char.from_buffer(memory))
    function = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int)(address)
    function.memory = memory  # keep the page mapped as long as the function lives
    return function


def test_i386_system_calls_use_the_i386_numbers():
    from pyengine.runtime.syscall_numbers import I386

    call = _int80_caller()
    if call(I386["getpid"]) != os.getpid():
        pytest.skip("this kernel has no i386 emulation")
    program = default_filter(list(DEFAULT_CAPABILITIES))
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(read_end)
            signal.alarm(20)
            sc.prctl(sc.PR_SET_NO_NEW_PRIVS, 1)
            seccomp.install_filter(program)
            results = [call(I386["getpid"]), call(I386["keyctl"]), call(I386["unshare"]), call(I386["mount"])]
            os.write(write_end, json.dumps(results).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        results = json.loads(pipe.read())
    os.waitpid(pid, 0)
    assert results == [pid, -errno.EPERM, -errno.EPERM, -errno.EPERM]
