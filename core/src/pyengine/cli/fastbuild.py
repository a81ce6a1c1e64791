"""``pyengine build`` without click: importing click and the command table costs about a third of a
fully cached build. This parser follows the click command's flags (:mod:`pyengine.cli.build`);
anything else (``--help``, an unknown flag, a missing value, two paths) is left to click, errors
included.
"""

from __future__ import annotations

from pyengine.cli.build_run import build_params
from pyengine.cli.fastflags import parse_flags

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# flag -> (parameter, kind), kinds as in pyengine.cli.fastflags
_FLAGS: dict[str, tuple[str, str]] = {
    "-t": ("tags", "multi"),
    "--tag": ("tags", "multi"),
    "-f": ("dockerfile", "value"),
    "--file": ("dockerfile", "value"),
    "--build-arg": ("build_args", "multi"),
    "--target": ("target", "value"),
    "--no-cache": ("no_cache", "bool"),
    "--cache-from": ("cache_from", "multi"),
    "-q": ("quiet", "bool"),
    "--quiet": ("quiet", "bool"),
    "--label": ("labels", "multi"),
    "--rm": ("rm", "bool"),
    "--no-rm": ("rm", "off"),
    "--pull": ("pull", "bool"),
}


def parse_build_args(args: list[str]) -> dict[str, Any] | None:
    """The parameters of ``build`` as the click command would parse them, or None for click."""
    params = build_params()
    paths = parse_flags(args, _FLAGS, params, interspersed=True)
    if paths is None or len(paths) != 1 or paths[0] == "-":
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
