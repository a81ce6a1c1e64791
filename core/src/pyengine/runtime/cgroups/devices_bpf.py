"""Device rules on cgroup v2: an eBPF program of type BPF_PROG_TYPE_CGROUP_DEVICE per container.

cgroup v2 has no ``devices.allow``/``devices.deny`` files; the kernel instead runs the programs
attached to a task's v2 cgroup (and to its ancestors) on every open, mknod and access of a device
node, and refuses with EPERM unless each returns 1. This module turns OCI ``linux.resources.devices``
rules into such a program, loads it with bpf(2) and attaches it to a cgroup directory.

Semantics are those of the v1 devices controller, as runc emulates them on v2:

- the rules are applied in order, so the last rule that says something about a device wins;
- a rule of type ``a`` (or without a type) resets everything: deny-all makes an allow list
  (default deny), allow-all a deny list (default allow), whatever its numbers and access;
- other rules add exceptions to the current default, or take access away from an exception with
  exactly the same type and numbers (access letters merge for identical type/major/minor);
- in an allow list a request (e.g. open for read and write) is allowed only if one exception covers
  every access it asks for; in a deny list it is refused if one exception shares any access with it;
- taking access away from *part* of a wildcard exception (``allow c 1:* rwm`` then ``deny c 1:3 w``)
  is refused: v1 ignores it silently, which would leave the device open, and runc refuses it too.

The program reads ``struct bpf_cgroup_dev_ctx {u32 access_type; u32 major; u32 minor;}``, where
access_type is the device type (block 1, char 2) in its low 16 bits and the access (mknod 1, read 2,
write 4) in its high 16 bits.
"""

from __future__ import annotations

import ctypes
import errno
import os
import struct
import sys
from dataclasses import dataclass

from pyengine.errors import InvalidArgument, StartFailed
from pyengine.runtime import syscall_numbers

# Device type and access bits of struct bpf_cgroup_dev_ctx (BPF_DEVCG_DEV_*, BPF_DEVCG_ACC_*).
DEV_BLOCK = 1
DEV_CHAR = 2
ACC_MKNOD = 1
ACC_READ = 2
ACC_WRITE = 4
ACC_ALL = ACC_MKNOD | ACC_READ | ACC_WRITE
_TYPES = {"b": DEV_BLOCK, "c": DEV_CHAR}
_ACCESS = {"m": ACC_MKNOD, "r": ACC_READ, "w": ACC_WRITE}
WILDCARD = -1
# The largest device number a 64-bit jump immediate compares correctly with a zero-extended u32
# (the immediate is sign-extended); Linux majors have 12 bits and minors 20, far below.
_MAX_NUMBER = 0x7FFF_FFFF

# bpf(2) commands, program and attach types, flags (include/uapi/linux/bpf.h).
BPF_PROG_LOAD = 5
BPF_PROG_ATTACH = 8
BPF_PROG_DETACH = 9
BPF_PROG_GET_FD_BY_ID = 13
BPF_OBJ_GET_INFO_BY_FD = 15
BPF_PROG_QUERY = 16
BPF_PROG_TYPE_CGROUP_DEVICE = 15
BPF_CGROUP_DEVICE = 6
BPF_F_ALLOW_MULTI = 2

# The name the kernel keeps for our programs (at most 15 characters): how an update finds the
# program it replaces among others attached to the same cgroup (systemd's, for instance).
PROGRAM_NAME = b"pyengine_dev"
LICENSE = b"Apache"
_LOG_SIZE = 1 << 16

# bpf(2): 280 in the generic table (aarch64, riscv64, loongarch64); x86 keeps its own numbers.
_SYS_BPF = {
    "x86_64": syscall_numbers.X86_64["bpf"],
    "i686": syscall_numbers.I386["bpf"],
    "i386": syscall_numbers.I386["bpf"],
}.get(os.uname().machine, 280)


@dataclass(frozen=True)
class DeviceException:
    """One exception to the default: devices of ``kind`` (DEV_BLOCK/DEV_CHAR) with these numbers
    (WILDCARD for any) and the access bits it covers."""

    kind: int
    major: int
    minor: int
    access: int


# ---- rules -> exceptions ---------------------------------------------------------------------------
def describe_rule(rule: dict) -> str:
    """A rule as ``docker run --device-cgroup-rule`` writes it, with its verdict: ``allow c 1:3 rwm``."""
    verdict = "allow" if rule.get("allow") else "deny"
    kind = rule.get("type") or "a"
    major = "*" if rule.get("major") in (None, WILDCARD) else rule["major"]
    minor = "*" if rule.get("minor") in (None, WILDCARD) else rule["minor"]
    return f"{verdict} {kind} {major}:{minor} {rule.get('access') or 'rwm'}"


def _parse(rule: object, index: int) -> tuple[bool, int | None, int, int, int]:
    """(allow, kind or None for ``a``, major, minor, access bits); InvalidArgument names the rule."""
    if not isinstance(rule, dict):
        raise InvalidArgument(f"invalid device cgroup rule #{index + 1}: expected an object, got {rule!r}")
    where = f"invalid device cgroup rule #{index + 1} ({describe_rule(rule)})"
    kind_name = rule.get("type") or "a"
    if kind_name != "a" and kind_name not in _TYPES:
        raise InvalidArgument(f"{where}: unknown device type {kind_name!r} (want a, b or c)")
    access_text = rule.get("access") or "rwm"
    if not isinstance(access_text, str):
        raise InvalidArgument(f"{where}: access must be a string of r, w and m")
    access = 0
    for letter in access_text:
        if letter not in _ACCESS:
            raise InvalidArgument(f"{where}: unknown access {letter!r} (want a combination of r, w and m)")
        access |= _ACCESS[letter]
    numbers = []
    for field in ("major", "minor"):
        value = rule.get(field)
        if value is None:
            value = WILDCARD
        if isinstance(value, bool) or not isinstance(value, int) or not WILDCARD <= value <= _MAX_NUMBER:
            raise InvalidArgument(f"{where}: {field} must be a device number from 0 to {_MAX_NUMBER} or -1")
        numbers.append(value)
    kind = None if kind_name == "a" else _TYPES[kind_name]
    return bool(rule.get("allow")), kind, numbers[0], numbers[1], access


def reduce_device_rules(rules: list[dict]) -> tuple[bool, list[DeviceException]]:
    """Apply OCI device rules in order to a fresh (allow-all) cgroup, as the v1 controller would.

    Returns ``(default_allow, exceptions)``: the exceptions all have the verdict opposite to the
    default, so their order does not matter (they come sorted, for a reproducible program).
    """
    default_allow = True  # a new cgroup allows everything, on v1 as with no program on v2
    table: dict[tuple[int, int, int], int] = {}
    for index, rule in enumerate(rules):
        allow, kind, major, minor, access = _parse(rule, index)
        if kind is None:
            default_allow, table = allow, {}
            continue
        key = (kind, major, minor)
        if allow != default_allow:
            table[key] = table.get(key, 0) | access
            continue
        # Agreeing with the default: take access away from the exception with these very numbers.
        for partial in ((kind, WILDCARD, minor), (kind, major, WILDCARD), (kind, WILDCARD, WILDCARD)):
            if partial != key and table.get(partial, 0) & access:
                wildcard = _describe_exception(partial, table[partial], not allow)
                raise InvalidArgument(
                    f"device cgroup rule #{index + 1} ({describe_rule(rule)}) cannot take access away "
                    f"from part of the wildcard rule {wildcard}: the kernel would ignore it"
                )
        remaining = table.pop(key, 0) & ~access
        if remaining:
            table[key] = remaining
    exceptions = [
        DeviceException(kind, major, minor, access) for (kind, major, minor), access in table.items()
    ]
    exceptions.sort(key=lambda e: (e.major, e.minor, e.kind))
    return default_allow, exceptions


def _describe_exception(key: tuple[int, int, int], access: int, allow: bool) -> str:
    kind, major, minor = key
    return describe_rule(
        {
            "allow": allow,
            "type": "b" if kind == DEV_BLOCK else "c",
            "major": major,
            "minor": minor,
            "access": "".join(
                letter
                for letter, bit in (("r", ACC_READ), ("w", ACC_WRITE), ("m", ACC_MKNOD))
                if access & bit
            ),
        }
    )


# ---- exceptions -> BPF instructions ----------------------------------------------------------------
# Opcodes of the few instructions the program needs (class | operation | source).
_LDX_MEM_W = 0x61  # dst = *(u32 *)(src + off)
_ALU32_AND_K = 0x54  # (u32) dst &= imm
_ALU32_RSH_K = 0x74  # (u32) dst >>= imm
_ALU32_MOV_K = 0xB4  # (u32) dst = imm
_ALU32_MOV_X = 0xBC  # (u32) dst = src
_ALU64_MOV_X = 0xBF  # dst = src
_JMP_JNE_K = 0x55  # if dst != imm: pc += off
_JMP_JNE_X = 0x5D  # if dst != src: pc += off
_JMP_JEQ_K = 0x15  # if dst == imm: pc += off
_EXIT = 0x95
R0, R1, R2, R3, R4, R5, R6 = range(7)


def _insn(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    """One struct bpf_insn: u8 code; u8 dst_reg:4, src_reg:4; s16 off; s32 imm (host byte order)."""
    if sys.byteorder == "little":
        return struct.pack("<BBhi", code, (src << 4) | dst, off, imm)
    return struct.pack(">BBhi", code, (dst << 4) | src, off, imm)


def _exception_block(exception: DeviceException, verdict: int, default_allow: bool) -> list[bytes]:
    """Instructions that return ``verdict`` when the request matches ``exception`` and otherwise
    fall through to the next block.

    Each block reads what it compares afresh from the context (kept in r6): with no register live
    from one block to the next, the verifier finds the same state at every block's start and checks
    the program in linear time. (Loading the fields once up front makes it walk every combination
    of earlier outcomes, and a thousand rules exceed its million-instruction budget.) What limits
    the number of exceptions now is the verifier's 8192 pending branches: about 2500 of them.
    Each test jumps to the end of the block; the offsets are numbered once the block is complete.
    """
    steps: list[tuple[int, int, int, int, int]] = [  # (code, dst, src, off, imm); off 1 marks a jump
        (_LDX_MEM_W, R2, R6, 0, 0),  # r2 = ctx->access_type & 0xffff: the device type
        (_ALU32_AND_K, R2, 0, 0, 0xFFFF),
        (_JMP_JNE_K, R2, 0, 1, exception.kind),
    ]
    if exception.access != ACC_ALL:
        steps += [
            (_LDX_MEM_W, R3, R6, 0, 0),  # r3 = ctx->access_type >> 16: the access asked for
            (_ALU32_RSH_K, R3, 0, 0, 16),
            (_ALU32_MOV_X, R1, R3, 0, 0),
            (_ALU32_AND_K, R1, 0, 0, exception.access),
        ]
        if default_allow:  # deny list: any shared access bit refuses
            steps.append((_JMP_JEQ_K, R1, 0, 1, 0))
        else:  # allow list: every requested bit must be covered
            steps.append((_JMP_JNE_X, R1, R3, 1, 0))
    if exception.major != WILDCARD:
        steps += [(_LDX_MEM_W, R4, R6, 4, 0), (_JMP_JNE_K, R4, 0, 1, exception.major)]
    if exception.minor != WILDCARD:
        steps += [(_LDX_MEM_W, R5, R6, 8, 0), (_JMP_JNE_K, R5, 0, 1, exception.minor)]
    tail = [_insn(_ALU32_MOV_K, R0, imm=verdict), _insn(_EXIT)]
    block = []
    for position, (code, dst, src, off, imm) in enumerate(steps):
        is_jump = code in (_JMP_JNE_K, _JMP_JNE_X, _JMP_JEQ_K)
        if is_jump:
            off = len(steps) - position - 1 + len(tail)
        block.append(_insn(code, dst, src, off, imm))
    return block + tail


def compile_device_rules(rules: list[dict]) -> bytes:
    """OCI ``linux.resources.devices`` rules -> the instructions of a cgroup device program.

    Raises InvalidArgument naming the rule for an unknown type or access letter, a bad device number,
    or a rule that punches a hole in a wildcard rule.
    """
    default_allow, exceptions = reduce_device_rules(rules)
    program = [_insn(_ALU64_MOV_X, R6, R1)]  # r6 = ctx, for every block
    verdict = 0 if default_allow else 1
    for exception in exceptions:
        program += _exception_block(exception, verdict, default_allow)
    program += [_insn(_ALU32_MOV_K, R0, imm=1 if default_allow else 0), _insn(_EXIT)]
    return b"".join(program)


# ---- bpf(2) ----------------------------------------------------------------------------------------
_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


class _ProgLoadAttr(ctypes.Structure):
    _fields_ = [
        ("prog_type", ctypes.c_uint32),
        ("insn_cnt", ctypes.c_uint32),
        ("insns", ctypes.c_uint64),
        ("license", ctypes.c_uint64),
        ("log_level", ctypes.c_uint32),
        ("log_size", ctypes.c_uint32),
        ("log_buf", ctypes.c_uint64),
        ("kern_version", ctypes.c_uint32),
        ("prog_flags", ctypes.c_uint32),
        ("prog_name", ctypes.c_char * 16),
        ("prog_ifindex", ctypes.c_uint32),
        ("expected_attach_type", ctypes.c_uint32),
    ]


class _AttachAttr(ctypes.Structure):
    _fields_ = [
        ("target_fd", ctypes.c_uint32),
        ("attach_bpf_fd", ctypes.c_uint32),
        ("attach_type", ctypes.c_uint32),
        ("attach_flags", ctypes.c_uint32),
        ("replace_bpf_fd", ctypes.c_uint32),
    ]


class _QueryAttr(ctypes.Structure):
    _fields_ = [
        ("target_fd", ctypes.c_uint32),
        ("attach_type", ctypes.c_uint32),
        ("query_flags", ctypes.c_uint32),
        ("attach_flags", ctypes.c_uint32),
        ("prog_ids", ctypes.c_uint64),
        ("prog_cnt", ctypes.c_uint32),
        ("_pad", ctypes.c_uint32),
    ]


class _GetFdByIdAttr(ctypes.Structure):
    _fields_ = [("prog_id", ctypes.c_uint32), ("next_id", ctypes.c_uint32), ("open_flags", ctypes.c_uint32)]


class _InfoAttr(ctypes.Structure):
    _fields_ = [("bpf_fd", ctypes.c_uint32), ("info_len", ctypes.c_uint32), ("info", ctypes.c_uint64)]


class _ProgInfo(ctypes.Structure):
    """The head of struct bpf_prog_info, up to the name."""

    _fields_ = [
        ("type", ctypes.c_uint32),
        ("id", ctypes.c_uint32),
        ("tag", ctypes.c_uint8 * 8),
        ("jited_prog_len", ctypes.c_uint32),
        ("xlated_prog_len", ctypes.c_uint32),
        ("jited_prog_insns", ctypes.c_uint64),
        ("xlated_prog_insns", ctypes.c_uint64),
        ("load_time", ctypes.c_uint64),
        ("created_by_uid", ctypes.c_uint32),
        ("nr_map_ids", ctypes.c_uint32),
        ("map_ids", ctypes.c_uint64),
        ("name", ctypes.c_char * 16),
    ]


def _bpf(command: int, attr: ctypes.Structure, what: str) -> int:
    result = _libc.syscall(
        ctypes.c_long(_SYS_BPF), ctypes.c_int(command), ctypes.byref(attr), ctypes.c_uint(ctypes.sizeof(attr))
    )
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return result


def load_device_program(insns: bytes, name: bytes = PROGRAM_NAME) -> int:
    """Load a cgroup device program; returns its file descriptor (close-on-exec, the caller closes it).

    ``name`` (at most 15 bytes) is how :func:`attach_device_program` recognises our programs.

    A program the verifier rejects raises StartFailed with the verifier's log (its head, and its
    tail where the reason is); other failures (no CAP_SYS_ADMIN, a kernel without cgroup BPF) raise
    OSError. The first attempt asks for no log: a log that outgrows its buffer fails a load that
    would otherwise succeed, so the log is only collected when retrying a failed load.
    """
    if not insns or len(insns) % 8:
        raise ValueError("a BPF program is a non-empty sequence of 8-byte instructions")
    code = ctypes.create_string_buffer(insns, len(insns))
    license = ctypes.create_string_buffer(LICENSE)
    attr = _ProgLoadAttr(
        prog_type=BPF_PROG_TYPE_CGROUP_DEVICE,
        insn_cnt=len(insns) // 8,
        insns=ctypes.addressof(code),
        license=ctypes.addressof(license),
        prog_name=name,
        expected_attach_type=BPF_CGROUP_DEVICE,
    )
    try:
        return _bpf(BPF_PROG_LOAD, attr, "loading the device cgroup program")
    except OSError as exc:
        first_failure = exc
    # The verifier answers EINVAL, EACCES, E2BIG, even EFAULT (too many branches): whether it spoke
    # shows in its log, so every failure is retried with one.
    log = ctypes.create_string_buffer(_LOG_SIZE)
    attr.log_level, attr.log_size, attr.log_buf = 1, _LOG_SIZE, ctypes.addressof(log)
    try:
        return _bpf(BPF_PROG_LOAD, attr, "loading the device cgroup program")
    except OSError:
        lines = log.value.decode(errors="replace").strip().splitlines()
        if not lines:
            raise first_failure from None
        if len(lines) > 30:
            lines = lines[:15] + [f"... ({len(lines) - 25} lines)"] + lines[-10:]
        reason = os.strerror(first_failure.errno)  # the retry may only add ENOSPC: a log cut short
        raise StartFailed(
            f"the kernel's BPF verifier rejected the device cgroup program ({reason}):\n" + "\n".join(lines)
        ) from None


def _cgroup_fd(cgroup_dir: str) -> int:
    try:
        return os.open(cgroup_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise OSError(exc.errno, f"opening cgroup {cgroup_dir}: {os.strerror(exc.errno)}") from None


def attached_program_ids(cgroup_dir: str) -> list[int]:
    """The ids of the device programs attached to the cgroup itself (not inherited ones)."""
    fd = _cgroup_fd(cgroup_dir)
    try:
        return _query(fd, cgroup_dir)
    finally:
        os.close(fd)


def _query(cgroup_fd: int, cgroup_dir: str) -> list[int]:
    capacity = 64
    while True:
        ids = (ctypes.c_uint32 * capacity)()
        attr = _QueryAttr(
            target_fd=cgroup_fd,
            attach_type=BPF_CGROUP_DEVICE,
            prog_ids=ctypes.addressof(ids),
            prog_cnt=capacity,
        )
        try:
            _bpf(BPF_PROG_QUERY, attr, f"listing the device programs of {cgroup_dir}")
        except OSError as exc:
            if exc.errno == errno.ENOSPC and capacity < 1 << 16:  # more programs than room
                capacity *= 4
                continue
            raise
        return list(ids[: attr.prog_cnt])


def program_name(prog_id: int) -> str | None:
    """The name a loaded program was given, or None if it is gone."""
    fd = _prog_fd(prog_id)
    if fd is None:
        return None
    try:
        return _name_of(fd)
    finally:
        os.close(fd)


def _prog_fd(prog_id: int) -> int | None:
    try:
        return _bpf(BPF_PROG_GET_FD_BY_ID, _GetFdByIdAttr(prog_id=prog_id), f"opening BPF program {prog_id}")
    except FileNotFoundError:
        return None  # detached and freed meanwhile


def _name_of(prog_fd: int) -> str:
    info = _ProgInfo()
    attr = _InfoAttr(bpf_fd=prog_fd, info_len=ctypes.sizeof(info), info=ctypes.addressof(info))
    _bpf(BPF_OBJ_GET_INFO_BY_FD, attr, "reading a BPF program's name")
    return info.name.decode(errors="replace")


def attach_device_program(cgroup_dir: str, prog_fd: int) -> None:
    """Attach the program to the cgroup (BPF_F_ALLOW_MULTI, so programs of others stay), then
    detach the device programs of ours that were there before: the cgroup is never without one."""
    fd = _cgroup_fd(cgroup_dir)
    try:
        before = _query(fd, cgroup_dir)
        attr = _AttachAttr(
            target_fd=fd, attach_bpf_fd=prog_fd, attach_type=BPF_CGROUP_DEVICE, attach_flags=BPF_F_ALLOW_MULTI
        )
        _bpf(BPF_PROG_ATTACH, attr, f"attaching the device program to {cgroup_dir}")
        for prog_id in before:
            old_fd = _prog_fd(prog_id)
            if old_fd is None:
                continue
            try:
                if _name_of(old_fd) != PROGRAM_NAME.decode():
                    continue
                detach = _AttachAttr(target_fd=fd, attach_bpf_fd=old_fd, attach_type=BPF_CGROUP_DEVICE)
                _bpf(BPF_PROG_DETACH, detach, f"detaching the earlier device program from {cgroup_dir}")
            finally:
                os.close(old_fd)
    finally:
        os.close(fd)


def apply_device_rules(cgroup_dir: str, rules: list[dict]) -> None:
    """Compile, load and attach ``rules`` to a v2 cgroup directory, replacing our earlier program.

    The attached program lives as long as the cgroup does (or until replaced): no descriptor is kept.
    """
    insns = compile_device_rules(rules)
    prog_fd = load_device_program(insns)
    try:
        attach_device_program(cgroup_dir, prog_fd)
    finally:
        os.close(prog_fd)
