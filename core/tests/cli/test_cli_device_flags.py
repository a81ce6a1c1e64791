"""``--device`` and ``--device-cgroup-rule`` -> HostConfig, with the docker CLI's parsing and messages."""

from __future__ import annotations

import pytest
from pyengine.cli.create_options import CreateOptions, build_create_request
from pyengine.cli.flag_values import OptionError, parse_device, parse_device_cgroup_rule


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("/dev/sda", ("/dev/sda", "/dev/sda", "rwm")),
        ("/dev/sda:r", ("/dev/sda", "/dev/sda", "r")),  # a valid mode in second place is the mode
        ("/dev/sda:/dev/xvda", ("/dev/sda", "/dev/xvda", "rwm")),
        ("/dev/sda:/dev/xvda:mr", ("/dev/sda", "/dev/xvda", "mr")),
        ("/dev/dri", ("/dev/dri", "/dev/dri", "rwm")),
    ],
)
def test_device_specs(text: str, expected: tuple[str, str, str]) -> None:
    mapping = parse_device(text)
    assert (mapping["PathOnHost"], mapping["PathInContainer"], mapping["CgroupPermissions"]) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("/dev/sda:/dev/xvda:rwx", "bad mode specified: rwx"),
        ("/dev/sda:/dev/xvda:rr", "bad mode specified: rr"),
        ("/dev/sda:xvda", "xvda is not an absolute path"),
        ("/dev/sda:rwmx", "rwmx is not an absolute path"),  # not a mode, so a (relative) path
        (":/dev/x", "bad format for path: :/dev/x"),
        ("/a:/b:r:w", "bad format for path: /a:/b:r:w"),
    ],
)
def test_bad_device_specs(text: str, message: str) -> None:
    with pytest.raises(OptionError) as error:
        parse_device(text)
    assert str(error.value) == f'invalid argument "{text}" for "--device" flag: {message}'


@pytest.mark.parametrize("rule", ["c 1:3 mr", "a *:* rwm", "b 7:* r", "c *:5 w"])
def test_cgroup_rules(rule: str) -> None:
    assert parse_device_cgroup_rule(rule) == rule


@pytest.mark.parametrize("rule", ["c 1:3", "x 1:3 r", "c 1:3 rwx", "c  1:3 r", " c 1:3 r", "c 1:3 rwmr", "a"])
def test_bad_cgroup_rules(rule: str) -> None:
    with pytest.raises(OptionError) as error:
        parse_device_cgroup_rule(rule)
    assert f"invalid device cgroup format '{rule}'" in str(error.value)


def test_flags_go_into_host_config() -> None:
    opts = CreateOptions(
        "busybox",
        device=["/dev/sda:/dev/xvda:r", "/dev/null"],
        device_cgroup_rule=["c 1:3 mr", "b 7:* rwm"],
    )
    _, body = build_create_request(opts, environ={})
    assert body["HostConfig"]["Devices"] == [
        {"PathOnHost": "/dev/sda", "PathInContainer": "/dev/xvda", "CgroupPermissions": "r"},
        {"PathOnHost": "/dev/null", "PathInContainer": "/dev/null", "CgroupPermissions": "rwm"},
    ]
    assert body["HostConfig"]["DeviceCgroupRules"] == ["c 1:3 mr", "b 7:* rwm"]
    _, body = build_create_request(CreateOptions("busybox"), environ={})
    assert "Devices" not in body["HostConfig"] and "DeviceCgroupRules" not in body["HostConfig"]
