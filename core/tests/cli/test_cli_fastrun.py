"""The click-free ``run`` parser must agree with the click command, and keep click off the run path."""

from __future__ import annotations

import subprocess
import sys

import click
import pytest
from pyengine.cli.fastrun import parse_run_args, split_globals
from pyengine.cli.run import run as run_command
from scripted_daemon import Reply, Request, cli_environment, error, frame

AGREEING = [
    ["busybox"],
    ["--rm", "busybox", "true"],
    ["-it", "--rm", "busybox", "sh"],
    ["-dit", "--name", "web", "busybox"],
    ["-d", "--name=web", "-p", "8080:80", "-p", "9090:90/udp", "busybox", "sleep", "9"],
    ["-e", "A=1", "-eB=2", "--env", "C=3", "--env=D=4", "busybox", "env"],
    ["-ie", "A=1", "busybox"],
    ["-w", "/tmp", "-u", "1000", "-h", "box", "--entrypoint", "", "busybox"],
    ["-l", "a=b", "--label", "c", "--stop-signal", "SIGINT", "--stop-timeout", "3", "busybox"],
    ["-v", "/a:/b", "--volume", "/c", "--network", "none", "--net=host", "busybox"],
    ["--pull", "never", "busybox"],
    ["--pull=always", "busybox"],
    ["--env-file", "/x", "busybox"],
    ["busybox", "ls", "-l", "--rm", "-e", "X"],  # after IMAGE everything is the command
    ["--", "busybox", "-x"],
    ["--rm", "--", "busybox"],
    ["-e", "-x", "busybox"],  # a value may start with a dash
    ["--name", "--rm", "busybox"],
    ["-e", "--", "busybox"],
    ["-", "x"],
    ["--restart", "on-failure:3", "--privileged", "--read-only", "--cap-add", "NET_ADMIN", "busybox"],
    ["-m", "512m", "--cpus=1.5", "--cap-drop=ALL", "busybox"],
]


def click_params(args: list[str]) -> dict:
    with run_command.make_context("run", list(args)) as ctx:
        params = dict(ctx.params)
    for key, value in params.items():
        if isinstance(value, tuple):
            params[key] = list(value)
    return params


@pytest.mark.parametrize("args", AGREEING, ids=" ".join)
def test_fast_parser_agrees_with_click(args: list[str]) -> None:
    fast = parse_run_args(args)
    assert fast is not None
    assert fast == click_params(args)


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["--help"],
        ["--bogus", "busybox"],
        ["-x", "busybox"],
        ["--name"],
        ["--stop-timeout", "soon", "busybox"],
        ["--pull", "sometimes", "busybox"],
        ["--rm=true", "busybox"],
        ["-e=A=1", "busybox"],
        ["-d"],
    ],
    ids=repr,
)
def test_fast_parser_leaves_the_rest_to_click(args: list[str]) -> None:
    assert parse_run_args(args) is None


def test_global_host_option_spellings() -> None:
    assert split_globals(["-H", "unix:///a", "run"]) == ("unix:///a", ["run"])
    assert split_globals(["--host=unix:///a", "run"]) == ("unix:///a", ["run"])
    assert split_globals(["-Hunix:///a", "run", "-d"]) == ("unix:///a", ["run", "-d"])
    assert split_globals(["run"]) == (None, ["run"])
    assert split_globals(["--version"]) is None


def test_click_command_rejects_what_the_fast_parser_leaves() -> None:
    with pytest.raises(click.UsageError):
        click_params(["--bogus", "busybox"])


def test_run_path_does_not_import_click_or_the_table_modules(daemon) -> None:
    cid = "c" * 64

    def route(request: Request) -> Reply:
        if request.path == "/containers/create":
            return Reply(201, {"Id": cid, "Warnings": []})
        if request.path.endswith("/attach"):
            return Reply(hijack=frame(1, b"hi\n"))
        if request.path.endswith("/wait"):
            return Reply(chunks=[b'{"Error":null,"StatusCode":0}\n'])
        if request.path.endswith("/start") or request.path.endswith("/kill"):
            return Reply(204)
        return error(404, "page not found")

    scripted = daemon(route)
    # Modules already loaded at interpreter start (site hooks of this machine) do not count.
    program = (
        "import sys\n"
        "before = set(sys.modules)\n"
        "from pyengine.cli.main import run_cli\n"
        f"status = run_cli(['-H', {scripted.host!r}, 'run', '--rm', 'busybox', 'echo', 'hi'])\n"
        "heavy = sorted(m for m in set(sys.modules) - before if m == 'click' or m.startswith(("
        "'pyengine.cli.gotemplate', 'pyengine.cli.formatting', 'pyengine.cli.app', 'http', 'urllib',"
        " 'pydantic', 'aiohttp', 'subprocess', 'dataclasses', 'json.', 're.'))"
        " or m in ('re', 'json', 'typing', 'enum', 'signal', 'socket'))\n"
        "print(status, heavy, file=sys.stderr)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, env=cli_environment(), timeout=60
    )
    assert result.stdout == b"hi\n"
    assert result.stderr.decode().strip() == "0 []"


@pytest.mark.parametrize(
    "value",
    [
        {"Id": "abc", "Warnings": []},
        {"Error": None, "StatusCode": 137},
        {"message": 'No such image: é:1\n"quoted"'},
        [1, 2.5, True, False, None, "x", {"nested": {"deep": []}}],
        {"HostConfig": {"PortBindings": {"80/tcp": [{"HostIp": "", "HostPort": "8080"}]}}},
    ],
)
def test_fastjson_matches_json(value: object) -> None:
    import json

    from pyengine.cli import fastjson

    assert fastjson.dumps(value) == json.dumps(value)
    assert fastjson.loads(json.dumps(value)) == value
    assert fastjson.loads(json.dumps(value, indent=4).encode() + b"\n") == value


@pytest.mark.parametrize("text", ["", "{", "[1] trailing", "nope", "{'single': 1}"])
def test_fastjson_rejects_what_json_rejects(text: str) -> None:
    import json

    from pyengine.cli import fastjson

    with pytest.raises(ValueError):
        json.loads(text)
    with pytest.raises(ValueError):
        fastjson.loads(text)


def test_fastjson_refuses_what_json_cannot_encode() -> None:
    from pyengine.cli import fastjson

    with pytest.raises(TypeError, match="not JSON serializable"):
        fastjson.dumps({"x": object()})
