"""The click-free ``exec`` parser must agree with the click command, or give up."""

from __future__ import annotations

import pytest
from pyengine.cli.containers import exec_ as exec_command
from pyengine.cli.exec_cmd import parse_exec_args

AGREEING = [
    ["app", "id"],
    ["-it", "app", "sh"],
    ["-d", "app", "sleep", "9"],
    ["-u", "1000", "-e", "X=1", "-w", "/tmp", "app", "id"],
    ["-eA=1", "--env", "B=2", "--env=C=3", "--user=root", "--workdir=/", "app", "env"],
    ["-iu", "root", "app", "sh"],
    ["--privileged", "-t", "app", "sh", "-c", "ls -l --all"],
    ["app", "ls", "-l", "-e", "X"],  # after CONTAINER everything is the command
    ["--", "app", "-x"],
    ["-e", "-x", "app", "true"],  # a value may start with a dash
]


def click_params(args: list[str]) -> dict:
    with exec_command.make_context("exec", list(args)) as ctx:
        params = dict(ctx.params)
    for key, value in params.items():
        if isinstance(value, tuple):
            params[key] = list(value)
    return params


@pytest.mark.parametrize("args", AGREEING, ids=" ".join)
def test_fast_exec_parser_agrees_with_click(args: list[str]) -> None:
    fast = parse_exec_args(args)
    assert fast is not None
    assert fast == click_params(args)


@pytest.mark.parametrize(
    "args",
    [[], ["app"], ["--help"], ["--detach-keys", "ctrl-p", "app", "sh"], ["-x", "app", "sh"],
     ["-d=1", "app", "sh"],
     ["--tty=true", "app", "sh"], ["-u"]],
    ids=repr,
)
def test_fast_exec_parser_leaves_the_rest_to_click(args: list[str]) -> None:
    assert parse_exec_args(args) is None
