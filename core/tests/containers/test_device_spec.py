"""HostConfig.Devices / DeviceCgroupRules / Privileged -> the OCI spec's devices and cgroup rules,
read from real device nodes of the host (/dev/null, /dev/zero, /dev/net/tun and nodes made here)."""

from __future__ import annotations

import os
import stat

import pytest
from pyengine.containers import devices
from pyengine.errors import InvalidArgument
from pyengine.model.container import HostConfigSpec
from pyengine.runtime.cgroups.common import DEFAULT_DEVICE_RULES


def spec_for(**host_config) -> dict:
    spec: dict = {"linux": {"resources": {"devices": list(DEFAULT_DEVICE_RULES)}}}
    hc = HostConfigSpec.model_validate(host_config)
    devices.check_host_config(hc)
    devices.apply_to_spec(spec, hc)
    return spec


def test_a_device_adds_its_node_and_an_allow_rule() -> None:
    spec = spec_for(
        Devices=[{"PathOnHost": "/dev/null", "PathInContainer": "/dev/mynull", "CgroupPermissions": "r"}]
    )
    info = os.stat("/dev/null")
    assert spec["linux"]["devices"] == [
        {
            "path": "/dev/mynull",
            "type": "c",
            "major": 1,
            "minor": 3,
            "fileMode": stat.S_IMODE(info.st_mode),
            "uid": info.st_uid,
            "gid": info.st_gid,
        }
    ]
    rules = spec["linux"]["resources"]["devices"]
    assert rules[: len(DEFAULT_DEVICE_RULES)] == DEFAULT_DEVICE_RULES
    assert rules[len(DEFAULT_DEVICE_RULES) :] == [
        {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "r"}
    ]


def test_empty_fields_take_the_docker_cli_defaults() -> None:
    spec = spec_for(Devices=[{"PathOnHost": "/dev/zero"}])
    assert spec["linux"]["devices"][0]["path"] == "/dev/zero"
    assert spec["linux"]["resources"]["devices"][-1]["access"] == "rwm"


def test_cgroup_rules_follow_the_defaults() -> None:
    spec = spec_for(DeviceCgroupRules=["c 1:3 mr", "b *:* rwm", "a"])
    assert "devices" not in spec["linux"]
    assert spec["linux"]["resources"]["devices"][len(DEFAULT_DEVICE_RULES) :] == [
        {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "mr"},
        {"allow": True, "type": "b", "major": -1, "minor": -1, "access": "rwm"},
        {"allow": True, "type": "a", "major": -1, "minor": -1, "access": "rwm"},
    ]


def test_a_directory_gives_the_nodes_below_it(tmp_path) -> None:
    os.mknod(tmp_path / "zero", stat.S_IFCHR | 0o600, os.makedev(1, 5))
    (tmp_path / "deep").mkdir()
    os.mknod(tmp_path / "deep" / "null", stat.S_IFCHR | 0o600, os.makedev(1, 3))
    (tmp_path / "file").write_text("not a device")
    os.symlink("/dev/full", tmp_path / "link")  # symlinks inside are not followed
    spec = spec_for(Devices=[{"PathOnHost": str(tmp_path), "PathInContainer": "/dev/d"}])
    found = {d["path"]: (d["major"], d["minor"]) for d in spec["linux"]["devices"]}
    assert found == {"/dev/d/zero": (1, 5), "/dev/d/deep/null": (1, 3)}


def test_a_symlink_to_a_device_is_followed(tmp_path) -> None:
    os.symlink("/dev/zero", tmp_path / "z")
    spec = spec_for(Devices=[{"PathOnHost": str(tmp_path / "z"), "PathInContainer": "/dev/z"}])
    assert [(d["path"], d["minor"]) for d in spec["linux"]["devices"]] == [("/dev/z", 5)]


def test_privileged_gets_every_host_device_and_allows_all() -> None:
    spec = spec_for(Privileged=True, Devices=[{"PathOnHost": "/dev/zero", "PathInContainer": "/dev/z"}])
    paths = {d["path"] for d in spec["linux"]["devices"]}
    assert {"/dev/null", "/dev/zero", "/dev/z"} <= paths
    if os.path.exists("/dev/net/tun"):
        assert "/dev/net/tun" in paths
    assert not any(p.startswith(("/dev/pts/", "/dev/shm/")) or p == "/dev/console" for p in paths)
    assert spec["linux"]["resources"]["devices"] == [{"allow": True, "access": "rwm"}]


def test_privileged_skips_a_same_path_mapping_even_if_missing() -> None:
    spec_for(Privileged=True, Devices=[{"PathOnHost": "/dev/pye-none", "PathInContainer": "/dev/pye-none"}])


@pytest.mark.parametrize(
    ("host_config", "message"),
    [
        (
            {"Devices": [{"PathOnHost": "/dev/pye-none"}]},
            'error gathering device information while adding custom device "/dev/pye-none": '
            "no such file or directory",
        ),
        (
            {"Devices": [{"PathOnHost": "/etc/hostname"}]},
            'error gathering device information while adding custom device "/etc/hostname": '
            "not a device node",
        ),
        (
            {"Devices": [{"PathOnHost": "/dev/null", "CgroupPermissions": "rw "}]},
            'invalid device mode: "rw "',
        ),
        ({"Devices": [{"PathOnHost": "/dev/null", "CgroupPermissions": "rr"}]}, 'invalid device mode: "rr"'),
        ({"Devices": [{"PathOnHost": "/dev/null", "PathInContainer": "x"}]}, "x is not an absolute path"),
        (
            {"Devices": [{"PathOnHost": "dev/null"}]},
            'invalid device "dev/null": dev/null is not an absolute path',
        ),
        ({"DeviceCgroupRules": ["c 1:3 rwx"]}, "invalid device cgroup rule format: 'c 1:3 rwx'"),
        ({"DeviceCgroupRules": ["c 1:3 "]}, "invalid device cgroup rule format: 'c 1:3 '"),
    ],
)
def test_bad_values_are_invalid_arguments(host_config: dict, message: str) -> None:
    with pytest.raises(InvalidArgument) as error:
        devices.check_host_config(HostConfigSpec.model_validate(host_config))
    assert message in str(error.value)
