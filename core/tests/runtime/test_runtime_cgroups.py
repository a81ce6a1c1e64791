"""The cgroup module: the file values it writes for v1 and v2, detection, and on this kernel the v2
operations that need no controller (join, freeze, kill, remove) on the host's controller-less cgroup2
mount at /sys/fs/cgroup/unified."""

from __future__ import annotations

import os
import subprocess
import uuid

import pytest
from pyengine.runtime import cgroups
from pyengine.runtime.cgroups import v1, v2
from pyengine.runtime.cgroups.common import DEFAULT_DEVICE_RULES

RESOURCES = {
    "memory": {"limit": 64 << 20, "swap": 128 << 20, "reservation": 32 << 20},
    "cpu": {"shares": 512, "period": 100_000, "quota": 50_000, "cpus": "0-1", "mems": "0"},
    "pids": {"limit": 100},
    "blockIO": {"weight": 500},
}


def test_v1_files_for_resources():
    files = v1.resource_files(RESOURCES)
    assert files == [
        ("memory", "memory.memsw.limit_in_bytes", str(128 << 20)),
        ("memory", "memory.limit_in_bytes", str(64 << 20)),
        ("memory", "memory.soft_limit_in_bytes", str(32 << 20)),
        ("cpu", "cpu.shares", "512"),
        ("cpu", "cpu.cfs_period_us", "100000"),
        ("cpu", "cpu.cfs_quota_us", "50000"),
        ("cpuset", "cpuset.cpus", "0-1"),
        ("cpuset", "cpuset.mems", "0"),
        ("pids", "pids.max", "100"),
        ("blkio", "blkio.weight", "500"),
    ]


def test_v1_unlimited_pids_and_device_rules():
    assert v1.resource_files({"pids": {"limit": -1}}) == [("pids", "pids.max", "max")]
    rules = [v1.device_rule_v1(rule) for rule in DEFAULT_DEVICE_RULES]
    assert rules[0] == ("devices.deny", "a")
    assert ("devices.allow", "c 1:3 rwm") in rules
    assert ("devices.allow", "c 136:* rwm") in rules
    assert ("devices.allow", "c *:* m") in rules


def test_v2_files_for_resources():
    assert v2.resource_files(RESOURCES) == [
        ("memory.max", str(64 << 20)),
        ("memory.swap.max", str(64 << 20)),  # v2 counts swap alone: 128M memory+swap - 64M memory
        ("memory.low", str(32 << 20)),
        ("cpu.weight", str(v2.cpu_weight(512))),
        ("cpu.max", "50000 100000"),
        ("cpuset.cpus", "0-1"),
        ("cpuset.mems", "0"),
        ("pids.max", "100"),
        ("io.weight", f"default {v2.io_weight(500)}"),
    ]


def test_v2_unlimited_values_and_conversions():
    files = dict(v2.resource_files({"memory": {"limit": -1, "swap": -1},
                                    "cpu": {"quota": -1, "period": 50_000},
                                    "pids": {"limit": 0}}))
    assert files == {"memory.max": "max", "memory.swap.max": "max", "cpu.max": "max 50000", "pids.max": "max"}
    assert v2.cpu_weight(2) == 1 and v2.cpu_weight(262144) == 10000 and v2.cpu_weight(1024) == 39
    assert v2.io_weight(10) == 1 and v2.io_weight(1000) == 10000


def test_detect_hybrid_is_v1_and_unified_with_controllers_is_v2(tmp_path):
    hybrid = tmp_path / "hybrid"
    hybrid.write_text(
        "cgroup2 /sys/fs/cgroup/unified cgroup2 rw,nosuid 0 0\n"
        "cgroup /sys/fs/cgroup/memory cgroup rw,nosuid,memory 0 0\n"
        "cgroup /sys/fs/cgroup/cpu,cpuacct cgroup rw,cpu,cpuacct 0 0\n"
    )
    found = cgroups.detect(str(hybrid))
    assert found.version == 1
    assert found.mounts == {
        "memory": "/sys/fs/cgroup/memory",
        "cpu": "/sys/fs/cgroup/cpu,cpuacct",
        "cpuacct": "/sys/fs/cgroup/cpu,cpuacct",
    }
    root = tmp_path / "root"
    root.mkdir()
    (root / "cgroup.controllers").write_text("cpu memory pids\n")
    unified = tmp_path / "unified"
    unified.write_text(f"cgroup2 {root} cgroup2 rw 0 0\n")
    found = cgroups.detect(str(unified), root=str(root))
    assert found.version == 2 and found.root == str(root)


def test_this_host_is_detected():
    expected = 2 if os.path.exists("/sys/fs/cgroup/cgroup.controllers") else 1
    assert cgroups.host().version == expected


UNIFIED = "/sys/fs/cgroup/unified"


@pytest.fixture
def v2_cgroup():
    if not os.path.exists(os.path.join(UNIFIED, "cgroup.procs")):
        pytest.skip("no cgroup2 mount at /sys/fs/cgroup/unified")
    hierarchy = v2.CgroupV2(UNIFIED)
    path = f"/pyengine-test-{uuid.uuid4().hex[:8]}/c1"
    try:
        yield hierarchy, path
    finally:
        hierarchy.remove(path)
        os.rmdir(os.path.join(UNIFIED, path.split("/")[1]))


def test_v2_join_freeze_thaw_and_remove_for_real(v2_cgroup):
    hierarchy, path = v2_cgroup
    assert hierarchy.create(path, {}) == []
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        hierarchy.join(path, sleeper.pid)
        assert hierarchy.pids(path) == [sleeper.pid]
        with open(f"/proc/{sleeper.pid}/cgroup") as file:
            assert f"0::{path}\n" in file.read()
        hierarchy.freeze(path)
        assert hierarchy.frozen(path)
        hierarchy.thaw(path)
        assert not hierarchy.frozen(path)
        hierarchy.freeze(path)
        hierarchy.remove(path)  # kills the frozen sleeper through cgroup.kill, then removes
        assert sleeper.wait(10) == -9
        assert not hierarchy.exists(path)
    finally:
        if sleeper.poll() is None:
            sleeper.kill()
            sleeper.wait()


def test_v2_limits_this_kernel_lacks_are_warned_not_written(v2_cgroup):
    hierarchy, path = v2_cgroup
    warnings = hierarchy.create(path, {"memory": {"limit": 64 << 20}})
    if os.path.exists(os.path.join(UNIFIED, path.lstrip("/"), "memory.max")):
        pytest.skip("this cgroup2 mount has the memory controller")
    assert warnings == ["Your kernel does not support memory.max (cgroup v2): discarded."]


def test_v1_create_update_remove_for_real():
    if cgroups.host().version != 1:
        pytest.skip("not a cgroup v1 host")
    path = f"/pyengine-test-{uuid.uuid4().hex[:8]}"
    hierarchy = cgroups.host()
    try:
        hierarchy.create(path, {"memory": {"limit": 64 << 20, "swap": 128 << 20}, "pids": {"limit": 5}})
        memory_dir = os.path.join(hierarchy.mounts["memory"], path.lstrip("/"))
        read = lambda name: open(os.path.join(memory_dir, name)).read().strip()  # noqa: E731
        assert read("memory.limit_in_bytes") == str(64 << 20)
        # Raising past the old memory+swap needs memsw first; lowering needs the limit first.
        hierarchy.update(path, {"memory": {"limit": 512 << 20, "swap": 1 << 30}})
        limits = (read("memory.limit_in_bytes"), read("memory.memsw.limit_in_bytes"))
        assert limits == (str(512 << 20), str(1 << 30))
        hierarchy.update(path, {"memory": {"limit": 16 << 20, "swap": 32 << 20}})
        limits = (read("memory.limit_in_bytes"), read("memory.memsw.limit_in_bytes"))
        assert limits == (str(16 << 20), str(32 << 20))
        hierarchy.update(path, {"memory": {"limit": -1, "swap": -1}})
        assert int(read("memory.limit_in_bytes")) > 1 << 60
    finally:
        hierarchy.remove(path)
    assert not hierarchy.exists(path)
