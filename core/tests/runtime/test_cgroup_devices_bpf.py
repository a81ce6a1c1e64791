"""Device rules on cgroup v2 as an eBPF program, on the real kernel.

The device hook of a task's v2 cgroup runs whatever controllers the hierarchy has, so on this hybrid
host (controller-less cgroup2 at /sys/fs/cgroup/unified) a program attached to a directory there is
enforced for real. Each probe is a forked child that joins the test's cgroup and reports what open()
and mknod() of device nodes (made in the test's temporary directory) answered. The test process's v1
devices cgroup allows everything, so an EPERM can only come from the program.
"""

from __future__ import annotations

import errno
import json
import os
import stat
import uuid

import pytest
from pyengine.errors import InvalidArgument, StartFailed
from pyengine.runtime.cgroups import common, devices_bpf
from pyengine.runtime.cgroups.common import DEFAULT_DEVICE_RULES
from pyengine.runtime.cgroups.v2 import CgroupV2

OK = "ok"
EPERM = "EPERM"
DENY_ALL = {"allow": False, "access": "rwm"}
ALLOW_ALL = {"allow": True, "access": "rwm"}


@pytest.fixture
def cgroup_dir(unified: str):
    """A fresh directory in the unified hierarchy; whatever is left in it is killed, then it goes."""
    directory = os.path.join(unified, f"pyengine-test-{uuid.uuid4().hex[:8]}")
    os.mkdir(directory)
    try:
        yield directory
    finally:
        common.remove_dir(directory, os.path.join(directory, "cgroup.procs"))


@pytest.fixture
def nodes(tmp_path):
    """Device nodes made here, outside any program: name -> path."""
    made = {}
    for name, kind, major, minor in (
        ("null", stat.S_IFCHR, 1, 3),
        ("zero", stat.S_IFCHR, 1, 5),
        ("urandom", stat.S_IFCHR, 1, 9),
        ("loop-control", stat.S_IFCHR, 10, 237),
        ("loop0", stat.S_IFBLK, 7, 0),
    ):
        path = tmp_path / name
        os.mknod(path, kind | 0o600, os.makedev(major, minor))
        made[name] = str(path)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    made["scratch"] = str(scratch)
    return made


_OPEN_FLAGS = {"r": os.O_RDONLY, "w": os.O_WRONLY, "rw": os.O_RDWR}


def _run_ops(ops: list[tuple]) -> list[str]:
    results = []
    for op in ops:
        try:
            if op[0] == "open":
                os.close(os.open(op[1], _OPEN_FLAGS[op[2]] | os.O_CLOEXEC))
            else:
                _, path, kind, major, minor = op
                mode = (stat.S_IFBLK if kind == "b" else stat.S_IFCHR) | 0o600
                os.mknod(path, mode, os.makedev(major, minor))
                os.unlink(path)
            results.append(OK)
        except OSError as exc:
            results.append(errno.errorcode.get(exc.errno, str(exc.errno)))
    return results


def probe(cgroup: str | None, ops: list[tuple]) -> list[str]:
    """Run ``ops`` (("open", path, "r"|"w"|"rw") or ("mknod", path, "b"|"c", major, minor)) in a
    child that first joins ``cgroup``; one result per op: "ok" or the errno's name."""
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:
        try:
            os.close(read_end)
            try:
                if cgroup:
                    common.write(os.path.join(cgroup, "cgroup.procs"), "0")
                report = {"results": _run_ops(ops)}
            except BaseException as exc:  # report, never return into pytest in the child
                report = {"crash": f"{type(exc).__name__}: {exc}"}
            os.write(write_end, json.dumps(report).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    chunks = []
    while chunk := os.read(read_end, 65536):
        chunks.append(chunk)
    os.close(read_end)
    os.waitpid(child, 0)
    report = json.loads(b"".join(chunks))
    assert "crash" not in report, report.get("crash")
    return report["results"]


def attach(cgroup: str, rules: list[dict]) -> None:
    devices_bpf.apply_device_rules(cgroup, rules)


# ---- compiling -------------------------------------------------------------------------------------
def test_default_rules_reduce_to_an_allow_list_of_the_standard_nodes():
    default_allow, exceptions = devices_bpf.reduce_device_rules(DEFAULT_DEVICE_RULES)
    assert default_allow is False
    W = devices_bpf.WILDCARD
    as_tuples = {(e.kind, e.major, e.minor, e.access) for e in exceptions}
    assert (devices_bpf.DEV_CHAR, W, W, devices_bpf.ACC_MKNOD) in as_tuples
    assert (devices_bpf.DEV_BLOCK, W, W, devices_bpf.ACC_MKNOD) in as_tuples
    assert (devices_bpf.DEV_CHAR, 1, 3, devices_bpf.ACC_ALL) in as_tuples
    assert (devices_bpf.DEV_CHAR, 136, W, devices_bpf.ACC_ALL) in as_tuples
    assert len(exceptions) == len(DEFAULT_DEVICE_RULES) - 1  # the deny-all only sets the default
    insns = devices_bpf.compile_device_rules(DEFAULT_DEVICE_RULES)
    assert len(insns) % 8 == 0
    assert devices_bpf.compile_device_rules(DEFAULT_DEVICE_RULES) == insns  # reproducible


def test_later_rules_override_earlier_ones_and_access_merges():
    rules = [
        DENY_ALL,
        {"allow": True, "type": "c", "major": 1, "minor": 5, "access": "r"},
        {"allow": True, "type": "c", "major": 1, "minor": 5, "access": "w"},
        {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
        {"allow": False, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
    ]
    default_allow, exceptions = devices_bpf.reduce_device_rules(rules)
    assert default_allow is False
    assert exceptions == [
        devices_bpf.DeviceException(devices_bpf.DEV_CHAR, 1, 5, devices_bpf.ACC_READ | devices_bpf.ACC_WRITE)
    ]
    # A type "a" rule resets, whatever came before.
    assert devices_bpf.reduce_device_rules(rules + [ALLOW_ALL]) == (True, [])


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        (
            {"allow": True, "type": "x", "major": 1, "minor": 3, "access": "rwm"},
            "#2 (allow x 1:3 rwm): unknown device type 'x'",
        ),
        (
            {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rq"},
            "#2 (allow c 1:3 rq): unknown access 'q'",
        ),
        ({"allow": True, "type": "c", "major": 1 << 40, "access": "r"}, "major must be a device number"),
        (
            {"allow": True, "type": "c", "major": 1, "minor": "3", "access": "r"},
            "minor must be a device number",
        ),
    ],
)
def test_bad_rules_are_refused_naming_the_rule(rule, message):
    with pytest.raises(InvalidArgument, match="invalid device cgroup rule") as info:
        devices_bpf.compile_device_rules([DENY_ALL, rule])
    assert message in str(info.value)


def test_punching_a_hole_in_a_wildcard_rule_is_refused():
    rules = [
        DENY_ALL,
        {"allow": True, "type": "c", "major": 1, "access": "rw"},
        {"allow": False, "type": "c", "major": 1, "minor": 3, "access": "w"},
    ]
    with pytest.raises(
        InvalidArgument,
        match=r"#3 \(deny c 1:3 w\) cannot take access away from part of the wildcard rule allow c 1:\* rw",
    ):
        devices_bpf.compile_device_rules(rules)


# ---- loading ---------------------------------------------------------------------------------------
def test_a_program_the_verifier_rejects_fails_with_its_log(unified):
    exit_without_verdict = devices_bpf._insn(devices_bpf._EXIT)  # r0 never set
    with pytest.raises(StartFailed, match="BPF verifier rejected") as info:
        devices_bpf.load_device_program(exit_without_verdict)
    assert "R0 !read_ok" in str(info.value)
    read_past_the_context = (
        devices_bpf._insn(devices_bpf._LDX_MEM_W, 2, 1, 12)
        + devices_bpf._insn(devices_bpf._ALU32_MOV_K, 0, imm=1)
        + devices_bpf._insn(devices_bpf._EXIT)
    )
    with pytest.raises(StartFailed, match="invalid bpf_context access"):
        devices_bpf.load_device_program(read_past_the_context)


# ---- enforcing -------------------------------------------------------------------------------------
def test_default_rules_allow_the_standard_nodes_and_mknod_only(cgroup_dir, nodes):
    ops = [
        ("open", nodes["null"], "rw"),
        ("open", nodes["zero"], "r"),
        ("open", nodes["urandom"], "rw"),
        ("open", nodes["loop-control"], "rw"),
        ("open", nodes["loop0"], "r"),
        ("mknod", os.path.join(nodes["scratch"], "c"), "c", 10, 237),
        ("mknod", os.path.join(nodes["scratch"], "b"), "b", 7, 0),
    ]
    assert probe(cgroup_dir, ops) == [OK] * 7  # nothing attached yet: the kernel allows all
    attach(cgroup_dir, DEFAULT_DEVICE_RULES)
    assert probe(cgroup_dir, ops) == [OK, OK, OK, EPERM, EPERM, OK, OK]
    assert probe(None, ops) == [OK] * 7  # only the cgroup's members are filtered


def test_access_letters_are_enforced_one_by_one(cgroup_dir, nodes):
    attach(cgroup_dir, [DENY_ALL, {"allow": True, "type": "c", "major": 1, "minor": 5, "access": "r"}])
    zero = nodes["zero"]
    assert probe(cgroup_dir, [("open", zero, "r"), ("open", zero, "w"), ("open", zero, "rw")]) == [
        OK,
        EPERM,
        EPERM,
    ]
    assert probe(cgroup_dir, [("mknod", os.path.join(nodes["scratch"], "z"), "c", 1, 5)]) == [EPERM]


def test_access_granted_by_two_rules_merges(cgroup_dir, nodes):
    attach(
        cgroup_dir,
        [
            DENY_ALL,
            {"allow": True, "type": "c", "major": 1, "minor": 5, "access": "r"},
            {"allow": True, "type": "c", "major": 1, "minor": 5, "access": "w"},
        ],
    )
    assert probe(cgroup_dir, [("open", nodes["zero"], "rw")]) == [OK]


def test_wildcards_and_the_last_matching_rule_win(cgroup_dir, nodes):
    attach(cgroup_dir, [DENY_ALL, {"allow": True, "type": "c", "major": 1, "access": "rwm"}])
    ops = [
        ("open", nodes["null"], "rw"),
        ("open", nodes["zero"], "rw"),
        ("open", nodes["loop-control"], "rw"),
    ]
    assert probe(cgroup_dir, ops) == [OK, OK, EPERM]

    # allow, then take write away again from the same device: read only.
    attach(
        cgroup_dir,
        [
            DENY_ALL,
            {"allow": True, "type": "c", "major": 1, "minor": 5, "access": "rwm"},
            {"allow": False, "type": "c", "major": 1, "minor": 5, "access": "w"},
        ],
    )
    assert probe(cgroup_dir, [("open", nodes["zero"], "r"), ("open", nodes["zero"], "rw")]) == [OK, EPERM]

    # A type "a" rule resets: deny, then allow-all, leaves everything open...
    attach(cgroup_dir, [DENY_ALL, ALLOW_ALL])
    assert probe(cgroup_dir, ops + [("open", nodes["loop0"], "r")]) == [OK] * 4
    # ...and allow-all then deny-all then one allow leaves just that one.
    attach(
        cgroup_dir,
        [ALLOW_ALL, DENY_ALL, {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rw"}],
    )
    assert probe(cgroup_dir, ops) == [OK, EPERM, EPERM]


def test_a_deny_list_refuses_any_access_a_deny_rule_names(cgroup_dir, nodes):
    attach(cgroup_dir, [ALLOW_ALL, {"allow": False, "type": "c", "major": 10, "minor": 237, "access": "w"}])
    control = nodes["loop-control"]
    ops = [
        ("open", control, "r"),
        ("open", control, "w"),
        ("open", control, "rw"),
        ("open", nodes["loop0"], "r"),
    ]
    # rw shares w with the rule: refused, as the v1 controller refuses it.
    assert probe(cgroup_dir, ops) == [OK, EPERM, EPERM, OK]


def test_mknod_follows_the_rules(cgroup_dir, nodes):
    scratch = nodes["scratch"]
    attach(cgroup_dir, [DENY_ALL, {"allow": True, "type": "c", "major": 1, "access": "m"}])
    ops = [
        ("mknod", os.path.join(scratch, "a"), "c", 1, 3),
        ("mknod", os.path.join(scratch, "b"), "c", 10, 237),
        ("mknod", os.path.join(scratch, "c"), "b", 7, 0),
        ("open", nodes["null"], "r"),
    ]
    assert probe(cgroup_dir, ops) == [OK, EPERM, EPERM, EPERM]


def test_an_update_replaces_our_program_and_keeps_others(cgroup_dir, nodes):
    foreign_fd = devices_bpf.load_device_program(
        devices_bpf.compile_device_rules([ALLOW_ALL]), name=b"someone_else"
    )
    try:
        devices_bpf.attach_device_program(cgroup_dir, foreign_fd)
    finally:
        os.close(foreign_fd)
    attach(cgroup_dir, DEFAULT_DEVICE_RULES)
    attach(cgroup_dir, [DENY_ALL, {"allow": True, "type": "c", "major": 10, "minor": 237, "access": "rw"}])
    names = sorted(devices_bpf.program_name(i) for i in devices_bpf.attached_program_ids(cgroup_dir))
    assert names == ["pyengine_dev", "someone_else"]
    # The second rule set is the one in force: null is no longer allowed, loop-control is.
    assert probe(cgroup_dir, [("open", nodes["null"], "rw"), ("open", nodes["loop-control"], "rw")]) == [
        EPERM,
        OK,
    ]


# ---- the v2 manager --------------------------------------------------------------------------------
@pytest.fixture
def v2_path(unified):
    hierarchy = CgroupV2(unified)
    parent = f"pyengine-test-{uuid.uuid4().hex[:8]}"
    path = f"/{parent}/c1"
    try:
        yield hierarchy, path
    finally:
        hierarchy.remove(path)
        if os.path.isdir(os.path.join(unified, parent)):
            os.rmdir(os.path.join(unified, parent))


def test_v2_create_and_update_enforce_device_rules(v2_path, nodes):
    hierarchy, path = v2_path
    directory = os.path.join(hierarchy.root, path.lstrip("/"))
    hierarchy.create(path, {"devices": DEFAULT_DEVICE_RULES})
    ops = [("open", nodes["zero"], "rw"), ("open", nodes["loop-control"], "rw")]
    assert probe(directory, ops) == [OK, EPERM]
    hierarchy.update(
        path, {"pids": {"limit": 10}} if os.path.exists(os.path.join(directory, "pids.max")) else {}
    )
    assert probe(directory, ops) == [OK, EPERM]  # an update without devices keeps the program
    hierarchy.update(path, {"devices": [ALLOW_ALL]})  # e.g. a privileged container
    assert probe(directory, ops) == [OK, OK]
    assert len(devices_bpf.attached_program_ids(directory)) == 1


def test_v2_create_with_a_bad_rule_makes_nothing(v2_path):
    hierarchy, path = v2_path
    with pytest.raises(InvalidArgument, match="unknown device type 'z'"):
        hierarchy.create(path, {"devices": [DENY_ALL, {"allow": True, "type": "z", "access": "r"}]})
    assert not hierarchy.exists(path)


def test_a_long_rule_list_loads_and_is_enforced(cgroup_dir, nodes):
    many = [{"allow": True, "type": "c", "major": 200 + i, "minor": i, "access": "rw"} for i in range(1000)]
    attach(cgroup_dir, [DENY_ALL, *many, {"allow": True, "type": "c", "major": 1, "minor": 5, "access": "r"}])
    ops = [("open", nodes["zero"], "r"), ("open", nodes["loop-control"], "r")]
    assert probe(cgroup_dir, ops) == [OK, EPERM]


def test_v2_create_refused_by_the_verifier_leaves_no_directory(v2_path):
    # Far more exceptions than the verifier's 8192 pending branches allow (about 2500 fit).
    hierarchy, path = v2_path
    too_many = [{"allow": True, "type": "c", "major": 300 + i, "access": "rw"} for i in range(20000)]
    with pytest.raises(StartFailed, match="BPF verifier rejected the device cgroup program") as info:
        hierarchy.create(path, {"devices": [DENY_ALL, *too_many]})
    assert "\n" in str(info.value)  # the log follows the first line
    assert not hierarchy.exists(path)
