"""``pyengine run`` without click: the command every container start pays for.

Importing click costs about 15 ms here, a quarter of the CLI's start-up, so ``run`` parses its flags
with this small parser built from the same table as the click command (``RUN_FLAGS``), following the
same rules: long flags with ``=`` or a separate value, grouped short flags (``-it``, ``-eA=1``), options
only before IMAGE, ``--`` ends them. Whenever the arguments hold anything else (``--help``, an unknown
flag, a missing value, a bad number) it gives up and the click command handles them, errors included.
"""

from __future__ import annotations

from pyengine.cli.create_options import RUN_FLAGS
from pyengine.cli.fastflags import default_params, parse_flags

TYPE_CHECKING = False  # typing costs ~5 ms to import; annotations alone need it only for checkers
if TYPE_CHECKING:
    from typing import Any

_FLAGS = {name: (dest, kind) for names, dest, kind, _help in RUN_FLAGS for name in names}


def parse_run_args(args: list[str]) -> dict[str, Any] | None:
    """The flags and arguments of ``run`` as the click command would parse them, or None to let
    click handle (and report) them."""
    params = default_params((dest, kind) for _names, dest, kind, _help in RUN_FLAGS)
    positionals = parse_flags(args, _FLAGS, params)
    if not positionals:
        return None  # no IMAGE: click prints the usage error
    params["image"] = positionals[0]
    params["command"] = positionals[1:]
    return params


def split_globals(args: list[str]) -> tuple[str | None, list[str]] | None:
    """(``-H`` value, the rest) when the only global option is ``-H/--host``; None otherwise."""
    host = None
    index = 0
    while index < len(args) and args[index].startswith("-"):
        arg = args[index]
        if arg in ("-H", "--host"):
            if index + 1 >= len(args):
                return None
            host = args[index + 1]
            index += 2
        elif arg.startswith("--host="):
            host = arg[len("--host=") :]
            index += 1
        elif arg.startswith("-H") and not arg.startswith("-H="):
            host = arg[2:]
            index += 1
        else:
            return None
    return host, args[index:]


def try_fast_run(args: list[str]) -> int | None:
    """Run ``pyengine [-H HOST] run ...`` without click; None when the arguments are not for us."""
    split = split_globals(args)
    if split is None:
        return None
    host, rest = split
    if rest and rest[0] == "exec":
        from pyengine.cli.exec_cmd import try_fast_exec

        return try_fast_exec(host, rest[1:])
    if rest and rest[0] == "build":
        from pyengine.cli.fastbuild import try_fast_build

        return try_fast_build(host, rest[1:])
    if not rest or rest[0] != "run":
        return None
    params = parse_run_args(rest[1:])
    if params is None:
        return None
    from pyengine.cli.client import default_host
    from pyengine.cli.runner import run_container
    from pyengine.cli.session import make_client, report

    return report(lambda: run_container(make_client(host or default_host()), params))
