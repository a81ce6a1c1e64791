"""Overriding the security defaults the way Docker's flags do, and bad values refused with a 400."""

from __future__ import annotations

import json

from test_security_defaults import DEFAULT_CAPS, status_fields

CAP_CHOWN = 1 << 0
CAP_NET_ADMIN = 1 << 12
CAP_SYS_ADMIN = 1 << 21


def caps(cli, *flags: str, field: str = "CapEff") -> int:
    result = cli("run", "--rm", *flags, "busybox", "cat", "/proc/self/status")
    assert result.returncode == 0, result.stderr
    return int(status_fields(result.stdout)[field], 16)


def all_caps() -> int:
    """Every capability this host can grant: our own bounding set (a sandboxed host may lack some)."""
    with open("/proc/self/status") as handle:
        return int(status_fields(handle.read())["CapBnd"], 16)


def test_cap_add_and_drop(cli, busybox):
    default = int(DEFAULT_CAPS, 16)
    assert caps(cli, "--cap-add", "NET_ADMIN") == default | CAP_NET_ADMIN
    assert caps(cli, "--cap-add", "cap_net_admin") == default | CAP_NET_ADMIN
    assert caps(cli, "--cap-drop", "CHOWN") == default & ~CAP_CHOWN
    assert caps(cli, "--cap-drop", "ALL") == 0
    assert caps(cli, "--cap-drop", "ALL", field="CapBnd") == 0
    assert caps(cli, "--cap-drop", "ALL", "--cap-add", "CHOWN") == CAP_CHOWN
    assert caps(cli, "--cap-add", "ALL", "--cap-drop", "SYS_ADMIN") == all_caps() & ~CAP_SYS_ADMIN
    dropped = cli("run", "--rm", "--cap-drop", "CHOWN", "busybox", "chown", "1000", "/tmp")
    assert dropped.returncode != 0 and "Operation not permitted" in dropped.stderr


def test_cap_sys_admin_lets_seccomp_allow_mount(cli, busybox):
    result = cli(
        "run",
        "--rm",
        "--cap-add",
        "SYS_ADMIN",
        "busybox",
        "sh",
        "-c",
        "mount -t tmpfs t /tmp && echo mounted && unshare -m true && echo unshared",
    )
    assert result.stdout.split() == ["mounted", "unshared"], result.stderr


def test_privileged(cli, busybox):
    result = cli(
        "run",
        "--rm",
        "--privileged",
        "busybox",
        "sh",
        "-c",
        "cat /proc/self/status; grep -c ' /proc/sys ' /proc/self/mounts",
    )
    status = status_fields(result.stdout)
    assert int(status["CapEff"], 16) == all_caps()
    assert status["Seccomp"] == "0"
    assert result.stdout.splitlines()[-1] == "0"  # /proc/sys is not made read-only


def test_ulimit(cli, busybox):
    result = cli(
        "run",
        "--rm",
        "--ulimit",
        "nofile=100:200",
        "--ulimit",
        "nproc=50",
        "busybox",
        "sh",
        "-c",
        "ulimit -n; ulimit -Hn; ulimit -u",
    )
    assert result.stdout.split() == ["100", "200", "50"], result.stderr


def test_user_and_group_add(cli, busybox):
    result = cli(
        "run",
        "--rm",
        "-u",
        "1000:1000",
        "--group-add",
        "10",
        "--group-add",
        "daemon",
        "--group-add",
        "4242",
        "busybox",
        "id",
    )
    assert result.returncode == 0, result.stderr
    assert (
        result.stdout.strip() == "uid=1000(user) gid=1000(user) groups=1(daemon),10(wheel),4242,1000(user)"
        or (
            sorted(result.stdout.split("groups=")[1].strip().split(",")) == ["1(daemon)", "10(wheel)", "4242"]
        )
    ), result.stdout


def test_seccomp_profile_file(cli, busybox, tmp_path):
    profile = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}],
    }
    path = tmp_path / "profile.json"
    path.write_text(json.dumps(profile, indent=2))
    result = cli(
        "run",
        "--rm",
        "--security-opt",
        f"seccomp={path}",
        "busybox",
        "sh",
        "-c",
        "mkdir /tmp/d; echo rc=$?; touch /tmp/f && echo touched",
    )
    assert result.stdout.split() == ["rc=1", "touched"]
    assert "Operation not permitted" in result.stderr


def test_docker_cli_security_flags(docker, busybox, tmp_path):
    profile = tmp_path / "deny-mkdir.json"
    profile.write_text(
        json.dumps(
            {
                "defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}],
            }
        )
    )
    result = docker(
        "run",
        "--rm",
        "--cap-drop",
        "ALL",
        "--read-only",
        "--security-opt",
        "no-new-privileges",
        "--security-opt",
        f"seccomp={profile}",
        "--ulimit",
        "nofile=64:64",
        "busybox",
        "sh",
        "-c",
        "grep -E 'CapEff|NoNewPrivs' /proc/self/status; ulimit -n; mkdir /tmp/x; echo rc=$?",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["CapEff:", "0000000000000000", "NoNewPrivs:", "1", "64", "rc=1"]


def test_sdk_security_options(sdk, busybox):
    output = sdk.containers.run(
        "busybox",
        ["grep", "-E", "CapEff|NoNewPrivs", "/proc/self/status"],
        remove=True,
        cap_add=["NET_ADMIN"],
        security_opt=["no-new-privileges"],
    )
    fields = status_fields(output.decode())
    assert int(fields["CapEff"], 16) == int(DEFAULT_CAPS, 16) | CAP_NET_ADMIN
    assert fields["NoNewPrivs"] == "1"


def test_bad_values_are_refused_before_anything_is_created(api, cli, busybox):
    before = cli("ps", "-aq").stdout
    cases = [
        ({"CapAdd": ["FOO"]}, 'unknown capability: "CAP_FOO"'),
        ({"CapDrop": ["CAP_BAR"]}, 'unknown capability: "CAP_BAR"'),
        ({"SecurityOpt": ["bogus"]}, "--security-opt"),
        ({"SecurityOpt": ["foo=bar"]}, "--security-opt"),
        ({"SecurityOpt": ["seccomp={not json"]}, "seccomp"),
        ({"SecurityOpt": ['seccomp={"defaultAction": "SCMP_ACT_NOPE"}']}, "seccomp"),
        ({"Ulimits": [{"Name": "nofile", "Soft": 10, "Hard": 5}]}, "--ulimit"),
        ({"Ulimits": [{"Name": "bogus", "Soft": 1, "Hard": 1}]}, "--ulimit"),
        ({"GroupAdd": ["bad group!"]}, "--group-add"),
    ]
    for host_config, words in cases:
        status, body = api(
            "POST", "/containers/create", {"Image": "busybox", "Cmd": ["true"], "HostConfig": host_config}
        )
        assert status == 400, (host_config, body)
        assert words in body["message"], (host_config, body)
    assert cli("ps", "-aq").stdout == before


def test_cli_reports_bad_flags(cli, docker, busybox):
    result = cli("run", "--rm", "--cap-add", "FOO", "busybox", "true")
    assert result.returncode == 125 and 'unknown capability: "CAP_FOO"' in result.stderr
    result = cli("run", "--rm", "--security-opt", "seccomp=/nonexistent.json", "busybox", "true")
    assert result.returncode == 125 and "/nonexistent.json" in result.stderr
    result = cli("run", "--rm", "--ulimit", "nofile=10:5", "busybox", "true")
    assert result.returncode == 125 and "--ulimit" in result.stderr
    result = docker("run", "--rm", "--cap-add", "FOO", "busybox", "true")
    assert result.returncode == 125 and "unknown capability" in result.stderr
