"""Linux capabilities of a container's process, from the spec's ``process.capabilities``.

The sets are applied in two steps around the switch to the container's user, as runc does:
:func:`drop_bounding` before ``setuid`` (dropping from the bounding set needs CAP_SETPCAP, which a
non-root user no longer has), then ``PR_SET_KEEPCAPS`` keeps the permitted set across ``setuid``
and :func:`apply_sets` sets effective/permitted/inheritable and raises the ambient ones.
"""

from __future__ import annotations

from pyengine.runtime import syscalls

CAPABILITY_NAMES = (
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
)
_NUMBER_BY_NAME = {f"CAP_{name}": number for number, name in enumerate(CAPABILITY_NAMES)}


def last_capability() -> int:
    """The highest capability number this kernel knows."""
    try:
        with open("/proc/sys/kernel/cap_last_cap") as file:
            return int(file.read())
    except OSError:
        return len(CAPABILITY_NAMES) - 1


def in_own_bounding_set(number: int) -> bool:
    """Whether this process may still hold capability ``number`` (PR_CAPBSET_READ)."""
    try:
        return syscalls.prctl(syscalls.PR_CAPBSET_READ, number) == 1
    except OSError:
        return False


def capability_numbers(names: list[str] | None, last_cap: int) -> set[int]:
    """Numbers of ``names`` ("CAP_CHOWN"...); unknown names raise. Ones this kernel lacks, and ones
    our own bounding set lacks (a sandboxed host), are skipped: nobody could grant them."""
    numbers = set()
    for name in names or ():
        number = _NUMBER_BY_NAME.get(name.upper())
        if number is None:
            raise ValueError(f"unknown capability {name!r}")
        if number <= last_cap and in_own_bounding_set(number):
            numbers.add(number)
    return numbers


def _mask(numbers: set[int]) -> int:
    mask = 0
    for number in numbers:
        mask |= 1 << number
    return mask


class CapabilitySets:
    """The five sets of one process, as capability numbers."""

    def __init__(self, spec: dict) -> None:
        last_cap = last_capability()
        self.last_cap = last_cap
        self.bounding = capability_numbers(spec.get("bounding"), last_cap)
        self.effective = capability_numbers(spec.get("effective"), last_cap)
        self.permitted = capability_numbers(spec.get("permitted"), last_cap)
        self.inheritable = capability_numbers(spec.get("inheritable"), last_cap)
        self.ambient = capability_numbers(spec.get("ambient"), last_cap)

    def drop_bounding(self) -> None:
        for number in range(self.last_cap + 1):
            if number not in self.bounding:
                syscalls.prctl(syscalls.PR_CAPBSET_DROP, number)

    def apply_sets(self) -> None:
        syscalls.capset(_mask(self.effective), _mask(self.permitted), _mask(self.inheritable))
        syscalls.prctl(syscalls.PR_CAP_AMBIENT, syscalls.PR_CAP_AMBIENT_CLEAR_ALL)
        for number in sorted(self.ambient):
            # Raising an ambient capability needs it in both the permitted and inheritable sets;
            # runc ignores the ones that are not, and so do we.
            if number in self.permitted and number in self.inheritable:
                syscalls.prctl(syscalls.PR_CAP_AMBIENT, syscalls.PR_CAP_AMBIENT_RAISE, number)
