"""Seccomp: the OCI ``linux.seccomp`` object compiled to a classic BPF program, and installed.

The compiler is pure Python (no libseccomp): the supervisor compiles before it forks, so nothing is
loaded once the container's files are visible. The program it emits:

    load arch
    x86_64?  -> x86_64 section        (jumps through ``ja``: a section may be far away)
    i386?    -> i386 section          (when SCMP_ARCH_X86 is listed)
    return defaultAction               (any other architecture, x32 included, is refused)
    section: load nr; [x86_64: nr >= 0x40000000 (x32) -> defaultAction]
             per syscall: "nr == N?" then its rules in order, each "all arg checks pass -> action";
             none matched -> defaultAction
             return defaultAction

Every conditional jump is local (a rule's block is a few instructions long), so the 8-bit jump
offsets of classic BPF always suffice. Arguments are 64 bits on x86_64 and compared as two 32-bit
halves; on i386 only the low half exists. MASKED_EQ follows the OCI spec: ``value`` is the mask
and ``valueTwo`` the value compared with ``arg & mask``.
"""

from __future__ import annotations

import ctypes
import errno
import functools
import json
import os
import struct

from pyengine.runtime import syscall_numbers
from pyengine.runtime import syscalls as sc

AUDIT_ARCH_X86_64 = 0xC000003E
AUDIT_ARCH_I386 = 0x40000003
X32_SYSCALL_BIT = 0x40000000

SECCOMP_RET_KILL_PROCESS = 0x80000000
SECCOMP_RET_KILL_THREAD = 0x00000000
SECCOMP_RET_TRAP = 0x00030000
SECCOMP_RET_ERRNO = 0x00050000
SECCOMP_RET_TRACE = 0x7FF00000
SECCOMP_RET_LOG = 0x7FFC0000
SECCOMP_RET_ALLOW = 0x7FFF0000

PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2

# Classic BPF opcodes (linux/filter.h)
_LD_W_ABS = 0x20
_ALU_AND_K = 0x54
_JMP_JA = 0x05
_JMP_JEQ_K = 0x15
_JMP_JGT_K = 0x25
_JMP_JGE_K = 0x35
_RET_K = 0x06
_MAX_JUMP = 255
_MAX_INSTRUCTIONS = 4096

# offsets in struct seccomp_data
_NR = 0
_ARCH = 4
_ARGS = 16

# SCMP_ARCH_* -> (audit arch, syscall table, 64-bit arguments)
_ARCHES = {
    "SCMP_ARCH_X86_64": (AUDIT_ARCH_X86_64, syscall_numbers.X86_64, True),
    "SCMP_ARCH_X86": (AUDIT_ARCH_I386, syscall_numbers.I386, False),
}
_NATIVE = {"x86_64": "SCMP_ARCH_X86_64"}
_OPS = {
    "SCMP_CMP_EQ",
    "SCMP_CMP_NE",
    "SCMP_CMP_LT",
    "SCMP_CMP_LE",
    "SCMP_CMP_GT",
    "SCMP_CMP_GE",
    "SCMP_CMP_MASKED_EQ",
}


class SeccompError(ValueError):
    """The profile cannot be compiled (unknown action, operator, architecture...)."""


def action_value(action: str, errno_ret: int | None) -> int:
    """The SECCOMP_RET_* value of an OCI action name."""
    if action == "SCMP_ACT_ALLOW":
        return SECCOMP_RET_ALLOW
    if action == "SCMP_ACT_ERRNO":
        return SECCOMP_RET_ERRNO | ((errno.EPERM if errno_ret is None else errno_ret) & 0xFFFF)
    if action in ("SCMP_ACT_KILL", "SCMP_ACT_KILL_THREAD"):
        return SECCOMP_RET_KILL_THREAD
    if action == "SCMP_ACT_KILL_PROCESS":
        return SECCOMP_RET_KILL_PROCESS
    if action == "SCMP_ACT_TRAP":
        return SECCOMP_RET_TRAP
    if action == "SCMP_ACT_TRACE":
        return SECCOMP_RET_TRACE | ((errno.EPERM if errno_ret is None else errno_ret) & 0xFFFF)
    if action == "SCMP_ACT_LOG":
        return SECCOMP_RET_LOG
    raise SeccompError(f"unsupported seccomp action {action!r}")


class _Label:
    __slots__ = ()


class _Program:
    """Instructions with symbolic forward jump targets, resolved by :meth:`assemble`."""

    def __init__(self) -> None:
        self.items: list = []

    def label(self, label: _Label) -> None:
        self.items.append(label)

    def op(self, code: int, k: int = 0, jt: _Label | int = 0, jf: _Label | int = 0) -> None:
        self.items.append((code, jt, jf, k & 0xFFFFFFFF))

    def ret(self, value: int) -> None:
        self.op(_RET_K, value)

    def assemble(self) -> bytes:
        positions: dict[int, int] = {}
        count = 0
        for item in self.items:
            if isinstance(item, _Label):
                positions[id(item)] = count
            else:
                count += 1
        if count > _MAX_INSTRUCTIONS:
            raise SeccompError(f"the seccomp program has {count} instructions, more than {_MAX_INSTRUCTIONS}")
        out = bytearray()
        index = 0
        for item in self.items:
            if isinstance(item, _Label):
                continue
            code, jt, jf, k = item
            if code == _JMP_JA:
                k = positions[id(jt)] - index - 1
                jt = 0
            else:
                jt = jt if isinstance(jt, int) else positions[id(jt)] - index - 1
                jf = jf if isinstance(jf, int) else positions[id(jf)] - index - 1
                if not (0 <= jt <= _MAX_JUMP and 0 <= jf <= _MAX_JUMP):
                    raise SeccompError("a seccomp rule is too long to compile")
            out += struct.pack("=HBBI", code, jt, jf, k)
            index += 1
        return bytes(out)


def _arg_check(program: _Program, arg: dict, wide: bool, fail: _Label) -> None:
    """Instructions that fall through when ``arg`` holds and jump to ``fail`` otherwise."""
    index = arg.get("index")
    op = arg.get("op")
    if not isinstance(index, int) or not 0 <= index < 6:
        raise SeccompError(f"invalid seccomp argument index {index!r}")
    if op not in _OPS:
        raise SeccompError(f"unsupported seccomp operator {op!r}")
    value = int(arg.get("value") or 0) & 0xFFFFFFFFFFFFFFFF
    value_two = int(arg.get("valueTwo") or 0) & 0xFFFFFFFFFFFFFFFF
    low_offset = _ARGS + 8 * index
    high_offset = low_offset + 4
    hi, lo = value >> 32, value & 0xFFFFFFFF
    passed = _Label()
    if op == "SCMP_CMP_MASKED_EQ":
        for offset, mask, datum in (
            (high_offset, hi, value_two >> 32),
            (low_offset, lo, value_two & 0xFFFFFFFF),
        ):
            if offset == high_offset and not wide:
                continue
            program.op(_LD_W_ABS, offset)
            program.op(_ALU_AND_K, mask)
            program.op(_JMP_JEQ_K, datum & mask, 0, fail)
        return
    if not wide:
        program.op(_LD_W_ABS, low_offset)
        if op == "SCMP_CMP_EQ":
            program.op(_JMP_JEQ_K, lo, 0, fail)
        elif op == "SCMP_CMP_NE":
            program.op(_JMP_JEQ_K, lo, fail, 0)
        elif op == "SCMP_CMP_GT":
            program.op(_JMP_JGT_K, lo, 0, fail)
        elif op == "SCMP_CMP_GE":
            program.op(_JMP_JGE_K, lo, 0, fail)
        elif op == "SCMP_CMP_LT":
            program.op(_JMP_JGE_K, lo, fail, 0)
        else:  # LE
            program.op(_JMP_JGT_K, lo, fail, 0)
        return
    program.op(_LD_W_ABS, high_offset)
    if op == "SCMP_CMP_EQ":
        program.op(_JMP_JEQ_K, hi, 0, fail)
        program.op(_LD_W_ABS, low_offset)
        program.op(_JMP_JEQ_K, lo, 0, fail)
    elif op == "SCMP_CMP_NE":
        program.op(_JMP_JEQ_K, hi, 0, passed)
        program.op(_LD_W_ABS, low_offset)
        program.op(_JMP_JEQ_K, lo, fail, 0)
    elif op in ("SCMP_CMP_GT", "SCMP_CMP_GE"):
        program.op(_JMP_JGT_K, hi, passed, 0)
        program.op(_JMP_JEQ_K, hi, 0, fail)
        program.op(_LD_W_ABS, low_offset)
        program.op(_JMP_JGT_K if op == "SCMP_CMP_GT" else _JMP_JGE_K, lo, 0, fail)
    else:  # LT, LE: the negations of GE and GT
        program.op(_JMP_JGT_K, hi, fail, 0)
        program.op(_JMP_JEQ_K, hi, 0, passed)
        program.op(_LD_W_ABS, low_offset)
        program.op(_JMP_JGE_K if op == "SCMP_CMP_LT" else _JMP_JGT_K, lo, fail, 0)
    program.label(passed)


def _section(program: _Program, arch: str, rules: list[dict], default: int) -> None:
    _audit, table, wide = _ARCHES[arch]
    by_number: dict[int, list[tuple[list[dict], int]]] = {}
    for rule in rules:
        action = action_value(rule.get("action", ""), rule.get("errnoRet"))
        args = list(rule.get("args") or ())
        for name in rule.get("names") or ():
            number = table.get(name)
            if number is None:
                continue  # a syscall this architecture does not have: runc skips it too
            by_number.setdefault(number, []).append((args, action))
    program.op(_LD_W_ABS, _NR)
    if arch == "SCMP_ARCH_X86_64":
        program.op(_JMP_JGE_K, X32_SYSCALL_BIT, 0, 1)
        program.ret(default)
    for number, number_rules in by_number.items():
        after = _Label()
        program.op(_JMP_JEQ_K, number, 0, after)
        for args, action in number_rules:
            next_rule = _Label()
            for arg in args:
                _arg_check(program, arg, wide, next_rule)
            program.ret(action)
            program.label(next_rule)
            if not args:
                break  # an unconditional rule: the ones after it can never apply
        program.ret(default)
        program.label(after)
    program.ret(default)


def compile_filter(seccomp: dict, machine: str | None = None) -> bytes:
    """The BPF program (an array of ``struct sock_filter``) for an OCI ``linux.seccomp`` object."""
    machine = machine or os.uname().machine
    native = _NATIVE.get(machine)
    if native is None:
        raise SeccompError(f"seccomp filters are not supported on {machine} by this runtime")
    default = action_value(seccomp.get("defaultAction", ""), seccomp.get("defaultErrnoRet"))
    arches = [native]
    for arch in seccomp.get("architectures") or ():
        if arch in _ARCHES and arch not in arches:
            arches.append(arch)
        # anything else (x32, foreign architectures) falls to the default action
    rules = list(seccomp.get("syscalls") or ())
    for rule in rules:
        action_value(rule.get("action", ""), rule.get("errnoRet"))  # validate even unused ones
    program = _Program()
    sections = [(arch, _Label()) for arch in arches]
    program.op(_LD_W_ABS, _ARCH)
    for arch, label in sections:
        program.op(_JMP_JEQ_K, _ARCHES[arch][0], 0, 1)
        program.op(_JMP_JA, jt=label)
    program.ret(default)
    for arch, label in sections:
        program.label(label)
        _section(program, arch, rules, default)
    return program.assemble()


@functools.lru_cache(maxsize=32)
def _compile_cached(text: str) -> bytes:
    return compile_filter(json.loads(text))


def compile_cached(seccomp: dict) -> bytes:
    """:func:`compile_filter`, remembered by content: most containers share the default profile."""
    return _compile_cached(json.dumps(seccomp, sort_keys=True))


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_char_p)]


def install_filter(program: bytes) -> None:
    """Install ``program`` on the calling thread. Needs no_new_privs set or CAP_SYS_ADMIN."""
    fprog = _SockFprog(len(program) // 8, program)
    sc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.addressof(fprog))
