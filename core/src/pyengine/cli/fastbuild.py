"""``pyengine build`` without click: importing click and the command table costs about a third of a
fully cached build. This parser follows the click command's flags (:mod:`pyengine.cli.build`);
anything else (``--help``, an unknown flag, a missing value, two paths) is left to click, errors
included.
"""

from __future__ import annotations

from pyengine.cli.build_run import build_params

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# flag -> (parameter, kind): "multi" appends a value, "value" sets one, True/False set a switch
_FLAGS: dict[str, tuple[str, Any]] = {
    "-t": ("tags", "multi"),
    "--tag": ("tags", "multi"),
    "-f": ("dockerfile", "value"),
    "--file": ("dockerfile", "value"),
    "--build-arg": ("build_args", "multi"),
    "--target": ("target", "value"),
    "--no-cache": ("no_cache", True),
    "--cache-from": ("cache_from", "multi"),
    "-q": ("quiet", True),
    "--quiet": ("quiet", True),
    "--label": ("labels", "multi"),
    "--rm": ("rm", True),
    "--no-rm": ("rm", False),
    "--pull": ("pull", True),
}


def parse_build_args(args: list[str]) -> dict[str, Any] | None:
    """The parameters of ``build`` as the click command would parse them, or None for click."""
    params = build_params()
    paths: list[str] = []
    index = 0
    while index < len(args):
        arg = args[index]
        index += 1
        if arg == "--":
            paths += args[index:]
            break
        if not arg.startswith("-") or arg == "-":
            paths.append(arg)
            continue
        flag, sep, value = arg.partition("=") if arg.startswith("--") else (arg[:2], "", arg[2:])
        if not arg.startswith("--") and value:
            sep = "="  # -tNAME
        spec = _FLAGS.get(flag)
        if spec is None:
            return None
        dest, kind = spec
        if isinstance(kind, bool):
            if sep:
                return None
            params[dest] = kind
            continue
        if not sep:
            if index >= len(args):
                return None
            value = args[index]
            index += 1
        if kind == "multi":
            params[dest].append(value)
        else:
            params[dest] = value
    if len(paths) != 1 or paths[0] == "-":
        return None
    params["path"] = paths[0]
    return params


def try_fast_build(host: str | None, args: list[str]) -> int | None:
    """Run ``pyengine [-H HOST] build ARGS`` without click; None when click must handle ARGS."""
    params = parse_build_args(args)
    if params is None:
        return None
    from pyengine.cli.build_run import run_build
    from pyengine.cli.client import default_host
    from pyengine.cli.session import make_client, report

    return report(lambda: run_build(make_client(host or default_host()), params))
