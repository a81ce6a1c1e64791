"""HostConfig's resource limits: Docker's defaults and checks, and the OCI ``linux.resources`` they become.

Checks run at create and update, before anything exists, with moby's messages followed by the flag a
user typed, so ``-m 1k`` answers 400 "Minimum memory limit allowed is 6MB (--memory)".
"""

from __future__ import annotations

import os
import re
from typing import Any

from pyengine.errors import InvalidArgument
from pyengine.model.container import HostConfigSpec
from pyengine.runtime.cgroups.common import DEFAULT_DEVICE_RULES

MIN_MEMORY = 6 * 1024 * 1024
RESOURCE_FIELDS = (
    "Memory",
    "MemorySwap",
    "MemoryReservation",
    "MemorySwappiness",
    "NanoCpus",
    "CpuShares",
    "CpuPeriod",
    "CpuQuota",
    "CpusetCpus",
    "CpusetMems",
    "PidsLimit",
    "BlkioWeight",
    "OomKillDisable",
)
_CPUSET = re.compile(r"^\d+(-\d+)?(,\d+(-\d+)?)*$")


def _refuse(message: str, flag: str) -> InvalidArgument:
    return InvalidArgument(f"{message} ({flag})")


def adapt(hc: HostConfigSpec) -> None:
    """Docker's defaults: swap defaults to the memory limit again (memory+swap = 2 x memory)."""
    if hc.Memory > 0 and hc.MemorySwap == 0:
        hc.MemorySwap = hc.Memory * 2


def _cpus_available() -> set[int]:
    return set(os.sched_getaffinity(0))


def _parse_cpuset(text: str) -> set[int]:
    out: set[int] = set()
    for part in text.split(","):
        low, _, high = part.partition("-")
        out.update(range(int(low), int(high or low) + 1))
    return out


def validate(hc: HostConfigSpec) -> None:
    """Raise InvalidArgument for limits that make no sense (moby's verifyPlatformContainerResources)."""
    if hc.Memory < 0 and hc.Memory != -1:
        raise _refuse("invalid memory limit", "--memory")
    if 0 < hc.Memory < MIN_MEMORY:
        raise _refuse("Minimum memory limit allowed is 6MB", "--memory")
    if hc.MemorySwap > 0 and hc.Memory <= 0:
        raise _refuse(
            "You should always set the Memory limit when using Memoryswap limit, see usage", "--memory-swap"
        )
    if hc.Memory > 0 and hc.MemorySwap > 0 and hc.MemorySwap < hc.Memory:
        raise _refuse(
            "Minimum memoryswap limit should be larger than memory limit, see usage", "--memory-swap"
        )
    if hc.MemorySwap < -1:
        raise _refuse("invalid memory swap limit", "--memory-swap")
    if hc.MemoryReservation < 0 or (hc.Memory > 0 and hc.MemoryReservation > hc.Memory):
        raise _refuse(
            "Minimum memory limit can not be less than memory reservation limit, see usage",
            "--memory-reservation",
        )
    if hc.MemorySwappiness is not None and not -1 <= hc.MemorySwappiness <= 100:
        raise _refuse(
            f"Invalid value: {hc.MemorySwappiness}, valid memory swappiness range is 0-100",
            "--memory-swappiness",
        )
    ncpu = os.cpu_count() or 1
    if hc.NanoCpus < 0 or hc.NanoCpus > ncpu * 1_000_000_000:
        raise _refuse(
            f"Range of CPUs is from 0.01 to {ncpu}.00, as there are only {ncpu} CPUs available", "--cpus"
        )
    if 0 < hc.NanoCpus < 10_000_000:
        raise _refuse(
            f"Range of CPUs is from 0.01 to {ncpu}.00, as there are only {ncpu} CPUs available", "--cpus"
        )
    if hc.NanoCpus > 0 and (hc.CpuPeriod > 0 or hc.CpuQuota > 0):
        raise _refuse("Conflicting options: Nano CPUs and CPU Period/Quota cannot both be set", "--cpus")
    if hc.CpuShares < 0:
        raise _refuse("invalid CPU shares: must not be negative", "--cpu-shares")
    if hc.CpuPeriod != 0 and not 1000 <= hc.CpuPeriod <= 1_000_000:
        raise _refuse(
            "CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)",
            "--cpu-period",
        )
    if hc.CpuQuota != 0 and hc.CpuQuota != -1 and hc.CpuQuota < 1000:
        raise _refuse("CPU cfs quota can not be less than 1ms (i.e. 1000)", "--cpu-quota")
    for value, flag in ((hc.CpusetCpus, "--cpuset-cpus"), (hc.CpusetMems, "--cpuset-mems")):
        if value and not _CPUSET.match(value):
            raise _refuse(f"Invalid value {value} for cpuset {flag[9:]}", flag)
    if hc.CpusetCpus:
        missing = _parse_cpuset(hc.CpusetCpus) - _cpus_available()
        if missing:
            available = ",".join(str(c) for c in sorted(_cpus_available()))
            raise _refuse(
                f"Requested CPUs are not available - requested {hc.CpusetCpus}, available: {available}",
                "--cpuset-cpus",
            )
    if hc.BlkioWeight and not 10 <= hc.BlkioWeight <= 1000:
        raise _refuse("Range of blkio weight is from 10 to 1000", "--blkio-weight")
    from pyengine.containers.restart import validate_policy

    validate_policy(hc)


def oci_resources(hc: HostConfigSpec, *, with_devices: bool = True) -> dict[str, Any]:
    """HostConfig -> OCI ``linux.resources`` (runc's units: period/quota in us, swap = memory+swap)."""
    resources: dict[str, Any] = {}
    memory: dict[str, Any] = {}
    if hc.Memory:
        memory["limit"] = hc.Memory
    if hc.MemorySwap:
        memory["swap"] = hc.MemorySwap
    if hc.MemoryReservation:
        memory["reservation"] = hc.MemoryReservation
    if hc.OomKillDisable:
        memory["disableOOMKiller"] = True
    if hc.MemorySwappiness is not None and hc.MemorySwappiness >= 0:
        memory["swappiness"] = hc.MemorySwappiness
    if memory:
        resources["memory"] = memory
    cpu: dict[str, Any] = {}
    if hc.NanoCpus:
        cpu["period"] = 100_000
        cpu["quota"] = hc.NanoCpus * 100_000 // 1_000_000_000
    else:
        if hc.CpuPeriod:
            cpu["period"] = hc.CpuPeriod
        if hc.CpuQuota:
            cpu["quota"] = hc.CpuQuota
    if hc.CpuShares:
        cpu["shares"] = hc.CpuShares
    if hc.CpusetCpus:
        cpu["cpus"] = hc.CpusetCpus
    if hc.CpusetMems:
        cpu["mems"] = hc.CpusetMems
    if cpu:
        resources["cpu"] = cpu
    if hc.PidsLimit is not None:
        resources["pids"] = {"limit": hc.PidsLimit if hc.PidsLimit > 0 else -1}
    if hc.BlkioWeight:
        resources["blockIO"] = {"weight": hc.BlkioWeight}
    if with_devices:
        resources["devices"] = (
            [{"allow": True, "access": "rwm"}] if hc.Privileged else list(DEFAULT_DEVICE_RULES)
        )
    return resources


def apply_update(hc: HostConfigSpec, body: dict[str, Any]) -> HostConfigSpec:
    """A copy of ``hc`` with the fields of a ``POST /containers/{id}/update`` body, validated."""
    changes = {key: body[key] for key in RESOURCE_FIELDS if key in body and body[key] is not None}
    if "RestartPolicy" in body and body["RestartPolicy"]:
        changes["RestartPolicy"] = body["RestartPolicy"]
    updated = HostConfigSpec.model_validate({**hc.model_dump(mode="json"), **changes})
    if "Memory" in changes and "MemorySwap" not in changes and updated.Memory > 0:
        if hc.MemorySwap > 0 and updated.Memory > hc.MemorySwap:
            updated.MemorySwap = updated.Memory * 2
    validate(updated)
    return updated
