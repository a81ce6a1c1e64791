"""Docker-style flags parsed without click, for the commands whose start time matters (``run``,
``exec``, ``build``). Parsing follows click's rules; anything it is unsure of (an unknown flag, a
missing or invalid value, ``--switch=x``, ``-e=X``) makes it return None, and the caller leaves the
whole command line to click, which then reports the error as usual.

A flag table maps each name (``-t``, ``--tag``) to ``(dest, kind)``. Kinds: ``"bool"`` (a switch
that sets True), ``"off"`` (a switch that sets False, e.g. ``--no-rm``), ``"value"``, ``"multi"``
(repeatable), ``"int"``, ``"choice:a,b"`` (the first is the default).
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing costs ~5 ms to import; annotations alone need it only for checkers
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Any

_SWITCHES = ("bool", "off")


def default_params(specs: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """The value of every (dest, kind) when its flag is not given, as click's would be."""
    params: dict[str, Any] = {}
    for dest, kind in specs:
        if kind == "bool":
            params[dest] = False
        elif kind == "multi":
            params[dest] = []
        elif kind.startswith("choice:"):
            params[dest] = kind[len("choice:") :].split(",")[0]
        elif kind != "off":
            params[dest] = None
    return params


def _store(params: dict[str, Any], dest: str, kind: str, value: str) -> bool:
    """Record one value; False when it is not valid for the flag (click then reports it)."""
    if kind == "multi":
        params[dest].append(value)
    elif kind == "int":
        try:
            params[dest] = int(value)
        except ValueError:
            return False
    elif kind.startswith("choice:"):
        if value not in kind[len("choice:") :].split(","):
            return False
        params[dest] = value
    else:
        params[dest] = value
    return True


def parse_flags(
    args: list[str], flags: dict[str, tuple[str, str]], params: dict[str, Any], *, interspersed: bool = False
) -> list[str] | None:
    """Store the flags of ``args`` into ``params``; return the positional arguments, or None for click.

    Without ``interspersed`` (``run IMAGE CMD...``, ``exec CONTAINER CMD...``) flags end at the first
    positional argument and everything from there on is positional; with it (``build``) flags and
    positionals may alternate. ``--`` ends the flags in both cases. Short flags combine (``-it``) and
    take their value attached (``-eX=1``) or as the next argument.
    """
    positionals: list[str] = []
    index = 0
    while index < len(args):
        arg = args[index]
        if arg == "--":
            return positionals + args[index + 1 :]
        if not arg.startswith("-") or arg == "-":
            if not interspersed:
                return positionals + args[index:]
            positionals.append(arg)
            index += 1
            continue
        if arg.startswith("--"):
            name, equals, value = arg.partition("=")
            spec = flags.get(name)
            if spec is None:
                return None
            dest, kind = spec
            if kind in _SWITCHES:
                if equals:
                    return None
                params[dest] = kind == "bool"
            else:
                if not equals:
                    index += 1
                    if index >= len(args):
                        return None
                    value = args[index]
                if not _store(params, dest, kind, value):
                    return None
            index += 1
            continue
        position = 1
        while position < len(arg):
            spec = flags.get("-" + arg[position])
            if spec is None:
                return None
            dest, kind = spec
            if kind in _SWITCHES:
                params[dest] = kind == "bool"
                position += 1
                continue
            value = arg[position + 1 :]
            if value.startswith("="):
                return None  # click and docker disagree on "-e=X"; let click decide
            if not value:
                index += 1
                if index >= len(args):
                    return None
                value = args[index]
            if not _store(params, dest, kind, value):
                return None
            break
        index += 1
    return positionals
