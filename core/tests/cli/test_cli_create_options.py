"""run/create flags -> the body of POST /containers/create, in the docker CLI's shape."""

from __future__ import annotations

from pathlib import Path

import pytest
from pyengine.cli.attach import FrameDemuxer
from pyengine.cli.client import encode_query, quote, socket_path_of
from pyengine.cli.create_options import CreateOptions, build_create_request, start_failure_status
from pyengine.cli.flag_values import OptionError, parse_memory, parse_publish, parse_volume


def test_run_rm_body_matches_the_docker_capture() -> None:
    query, body = build_create_request(
        CreateOptions("busybox", command=["echo", "hi"], auto_remove=True), environ={}
    )
    assert query == {}
    assert body["Image"] == "busybox"
    assert body["Cmd"] == ["echo", "hi"]
    assert (body["AttachStdin"], body["AttachStdout"], body["AttachStderr"]) == (False, True, True)
    assert (body["Tty"], body["OpenStdin"], body["StdinOnce"]) == (False, False, False)
    assert body["Env"] is None and body["Entrypoint"] is None and body["Labels"] == {}
    host = body["HostConfig"]
    assert host["AutoRemove"] is True
    assert host["NetworkMode"] == "default"
    assert host["ConsoleSize"] == [0, 0]
    assert body["NetworkingConfig"] == {"EndpointsConfig": {"default": {}}}
    assert "ExposedPorts" not in body


def test_detached_named_container_with_ports() -> None:
    opts = CreateOptions("busybox", command=["sleep", "9"], name="xx", detach=True, publish=["8080:80"])
    query, body = build_create_request(opts, environ={})
    assert query == {"name": "xx"}
    assert (body["AttachStdout"], body["AttachStderr"]) == (False, False)
    assert body["ExposedPorts"] == {"80/tcp": {}}
    assert body["HostConfig"]["PortBindings"] == {"80/tcp": [{"HostIp": "", "HostPort": "8080"}]}


def test_interactive_tty_sets_stdin_flags_and_console_size() -> None:
    opts = CreateOptions("busybox", interactive=True, tty=True, console_size=(40, 120))
    _, body = build_create_request(opts, environ={})
    assert (body["AttachStdin"], body["OpenStdin"], body["StdinOnce"], body["Tty"]) == (
        True,
        True,
        True,
        True,
    )
    assert body["HostConfig"]["ConsoleSize"] == [40, 120]
    assert body["Cmd"] is None


def test_config_flags(tmp_path: Path) -> None:
    env_file = tmp_path / "env"
    env_file.write_text("# comment\n\nFROM_FILE=1\nPASSED\nUNSET_HERE\n")
    opts = CreateOptions(
        "busybox",
        env=["A=1", "HOME", "NOT_SET"],
        env_files=[str(env_file)],
        workdir="/tmp",
        user="1000:1000",
        hostname="box",
        entrypoint="/bin/sh",
        labels=["team=infra", "flag"],
        stop_signal="SIGINT",
        stop_timeout=3,
        volumes=["/host:/data:ro", "named:/vol", "/anon"],
        network="none",
    )
    _, body = build_create_request(opts, environ={"HOME": "/root", "PASSED": "yes"})
    assert body["Env"] == ["FROM_FILE=1", "PASSED=yes", "A=1", "HOME=/root"]
    assert body["WorkingDir"] == "/tmp"
    assert body["User"] == "1000:1000"
    assert body["Hostname"] == "box"
    assert body["Entrypoint"] == ["/bin/sh"]
    assert body["Labels"] == {"team": "infra", "flag": ""}
    assert body["StopSignal"] == "SIGINT"
    assert body["StopTimeout"] == 3
    assert body["HostConfig"]["Binds"] == ["/host:/data:ro", "named:/vol"]
    assert body["Volumes"] == {"/anon": {}}
    assert body["HostConfig"]["NetworkMode"] == "none"
    assert body["NetworkingConfig"] == {"EndpointsConfig": {"none": {}}}


def test_empty_entrypoint_resets_it() -> None:
    _, body = build_create_request(CreateOptions("busybox", entrypoint=""), environ={})
    assert body["Entrypoint"] == [""]


def test_missing_env_file_is_an_option_error(tmp_path: Path) -> None:
    with pytest.raises(OptionError, match="no such file"):
        build_create_request(CreateOptions("busybox", env_files=[str(tmp_path / "nope")]), environ={})


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("80", [("80/tcp", "", "")]),
        ("8080:80", [("80/tcp", "", "8080")]),
        ("127.0.0.1:8080:80/udp", [("80/udp", "127.0.0.1", "8080")]),
        ("127.0.0.1::80", [("80/tcp", "127.0.0.1", "")]),
        ("[::1]:8080:80", [("80/tcp", "::1", "8080")]),
        ("8000-8001:80-81", [("80/tcp", "", "8000"), ("81/tcp", "", "8001")]),
        ("8000-8010:80", [("80/tcp", "", "8000-8010")]),
    ],
)
def test_publish_specs(spec: str, expected: list[tuple[str, str, str]]) -> None:
    assert parse_publish(spec) == expected


@pytest.mark.parametrize("spec", ["80/icmp", "a:b:c:d", "99999", "8000-8001:80-82", "x:80"])
def test_bad_publish_specs(spec: str) -> None:
    with pytest.raises(OptionError):
        parse_publish(spec)


@pytest.mark.parametrize("spec", ["relative", ":/x", "/a:relative", "a:/b:ro:extra"])
def test_bad_volume_specs(spec: str) -> None:
    with pytest.raises(OptionError):
        parse_volume(spec)


@pytest.mark.parametrize(
    ("message", "status"),
    [
        ('exec: "nosuchcmd": executable file not found in $PATH', 127),
        ("open /nope: no such file or directory", 127),
        ("exec /etc/passwd: permission denied", 126),
        ("cgroup setup failed", 125),
    ],
)
def test_start_failure_statuses(message: str, status: int) -> None:
    assert start_failure_status(message) == status


def test_query_encoding() -> None:
    assert (
        encode_query({"all": True, "size": False, "skip": None, "name": "a b/c"})
        == "?all=1&size=0&name=a%20b%2Fc"
    )
    assert encode_query({"changes": ['CMD ["sh"]', "ENV A=1"]}) == (
        "?changes=CMD%20%5B%22sh%22%5D&changes=ENV%20A%3D1"
    )
    assert encode_query({}) == ""
    assert quote("ü") == "%C3%BC"


def test_host_parsing() -> None:
    assert socket_path_of("unix:///run/x.sock") == "/run/x.sock"
    assert socket_path_of("/run/x.sock") == "/run/x.sock"
    with pytest.raises(ValueError, match="only unix://"):
        socket_path_of("tcp://1.2.3.4:2375")


def test_frame_demuxer_handles_any_split() -> None:
    stream = (
        bytes([1, 0, 0, 0, 0, 0, 0, 3])
        + b"hi\n"
        + bytes([2, 0, 0, 0, 0, 0, 0, 4])
        + b"err\n"
        + bytes([1, 0, 0, 0, 0, 0, 0, 0])
    )
    for size in range(1, len(stream) + 1):
        demuxer = FrameDemuxer()
        frames = []
        for start in range(0, len(stream), size):
            frames.extend(demuxer.feed(stream[start : start + size]))
        assert frames == [(1, b"hi\n"), (2, b"err\n"), (1, b"")]
        assert demuxer.pending == b""


def test_resource_and_security_flags() -> None:
    opts = CreateOptions(
        "busybox",
        restart="on-failure:3",
        privileged=True,
        read_only=True,
        cap_add=["NET_ADMIN"],
        cap_drop=["ALL"],
        memory="512m",
        cpus="1.5",
    )
    host = build_create_request(opts, environ={})[1]["HostConfig"]
    assert host["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 3}
    assert (host["Privileged"], host["ReadonlyRootfs"]) == (True, True)
    assert (host["CapAdd"], host["CapDrop"]) == (["NET_ADMIN"], ["ALL"])
    assert host["Memory"] == 512 * 1024**2
    assert host["NanoCpus"] == 1_500_000_000


@pytest.mark.parametrize(
    ("text", "size"), [("1024", 1024), ("1k", 1024), ("1KB", 1024), ("1.5g", 3 * 1024**3 // 2), ("7b", 7)]
)
def test_memory_sizes(text: str, size: int) -> None:
    assert parse_memory(text) == size


@pytest.mark.parametrize(
    ("opts", "message"),
    [
        (CreateOptions("b", memory="lots"), "invalid size"),
        (CreateOptions("b", restart="sometimes"), "invalid restart policy"),
        (CreateOptions("b", restart="always:3"), "maximum retry count cannot be used"),
        (CreateOptions("b", cpus="many"), "--cpus"),
    ],
)
def test_bad_resource_flags(opts: CreateOptions, message: str) -> None:
    with pytest.raises(OptionError, match=message):
        build_create_request(opts, environ={})


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("10m", "1699999400"),
        ("1h30m", "1699994600"),
        ("1.5s", "1699999998.5"),
        ("250ms", "1699999999.75"),
        ("1699990000", "1699990000"),
        ("1699990000.25", "1699990000.25"),
        ("2023-11-14T22:13:20Z", "1700000000"),
        ("2023-11-14T23:13:20+01:00", "1700000000"),
    ],
)
def test_since_and_until_values(value: str, expected: str) -> None:
    from pyengine.cli.containers import parse_timestamp

    assert parse_timestamp(value, now=1_700_000_000.0) == expected


def test_since_rejects_nonsense() -> None:
    from pyengine.cli.containers import parse_timestamp
    from pyengine.cli.session import CommandError

    with pytest.raises(CommandError, match="invalid value"):
        parse_timestamp("yesterday-ish", now=0)
