"""End to end through the runtime with the cgroup v2 manager: a busybox container whose device rules
are the eBPF program of its v2 cgroup.

This host is hybrid, so the engine itself picks the v1 manager; here the runtime is given a v2
manager on the controller-less unified hierarchy instead (nothing of the kernel is faked: the
container really lives in that cgroup and the kernel really runs the program). The test process's v1
devices cgroup allows everything and the container inherits it, so any refusal comes from the
program.
"""

from __future__ import annotations

import os
import uuid

import pytest
from conftest import run_container, write
from pyengine.runtime import cgroups
from pyengine.runtime.cgroups.common import DEFAULT_DEVICE_RULES
from pyengine.runtime.cgroups.v2 import CgroupV2

SCRIPT = """
head -c 4 /dev/zero | wc -c
echo x > /dev/null && echo null-ok
grep '^0::' /proc/self/cgroup
mknod /tmp/lc c 10 237 && echo mknod-c-ok
(exec 3< /tmp/lc) && echo open-c-ok
mknod /tmp/b b 7 0 && echo mknod-b-ok
(exec 3< /tmp/b) && echo open-b-ok
true
"""


@pytest.fixture
def v2_manager(monkeypatch, unified):
    """The runtime's cgroup calls go to a v2 manager; the container's cgroup is removed afterwards."""
    root = unified
    hierarchy = CgroupV2(root)
    monkeypatch.setattr(cgroups, "host", lambda: hierarchy)
    parent = f"pyengine-test-{uuid.uuid4().hex[:8]}"
    path = f"/{parent}/c1"
    try:
        yield hierarchy, path
    finally:
        hierarchy.remove(path)
        if os.path.isdir(os.path.join(root, parent)):
            os.rmdir(os.path.join(root, parent))


def run_with_devices(bundle, path: str, devices: list[dict]):
    bundle_dir, spec = bundle(["sh", "-c", SCRIPT])
    spec["linux"]["cgroupsPath"] = path
    spec["linux"]["resources"] = {"devices": devices}
    return run_container(write(bundle_dir, spec))


def test_default_device_rules_are_enforced_in_a_v2_container(bundle, v2_manager):
    hierarchy, path = v2_manager
    run = run_with_devices(bundle, path, DEFAULT_DEVICE_RULES)
    assert run.error is None, run.error
    lines = run.stdout.split()
    assert lines[:2] == ["4", "null-ok"]
    assert f"0::{path}" in lines  # the container ran in the v2 cgroup
    assert "mknod-c-ok" in lines and "mknod-b-ok" in lines  # Docker allows mknod of any node...
    assert "open-c-ok" not in lines and "open-b-ok" not in lines  # ...but not opening it
    assert run.stderr.count("Operation not permitted") == 2, run.stderr


def test_a_privileged_rule_set_opens_everything(bundle, v2_manager):
    hierarchy, path = v2_manager
    run = run_with_devices(bundle, path, [{"allow": True, "access": "rwm"}])
    assert run.error is None, run.error
    assert {"mknod-c-ok", "open-c-ok", "mknod-b-ok", "open-b-ok"} <= set(run.stdout.split()), run.stderr


def test_a_bad_rule_fails_the_start_and_leaves_no_cgroup(bundle, v2_manager):
    hierarchy, path = v2_manager
    bundle_dir, spec = bundle(["true"])
    spec["linux"]["cgroupsPath"] = path
    spec["linux"]["resources"] = {"devices": [{"allow": True, "type": "q", "access": "r"}]}
    run = run_container(write(bundle_dir, spec))
    assert run.error and "applying cgroup configuration: invalid device cgroup rule #1" in run.error
    assert not hierarchy.exists(path)
