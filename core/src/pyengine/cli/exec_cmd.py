"""``pyengine exec``: the command itself, shared by the click command and a click-free fast path.

Like ``run`` (see :mod:`pyengine.cli.fastrun`), ``exec`` is typed often and waited on: the fast path
parses its few flags without importing click and gives up (returns None, click then handles and
reports everything) on anything else, such as ``--help`` or an unknown flag.
"""

from __future__ import annotations

import os

from pyengine.cli.session import CommandError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from pyengine.cli.client import Client

# (names, dest, kind): kind is "bool", "value" or "multi" (repeatable); docker's names.
EXEC_FLAGS: tuple[tuple[tuple[str, ...], str, str], ...] = (
    (("-d", "--detach"), "detach", "bool"),
    (("-i", "--interactive"), "interactive", "bool"),
    (("-t", "--tty"), "tty", "bool"),
    (("-e", "--env"), "env", "multi"),
    (("-w", "--workdir"), "workdir", "value"),
    (("-u", "--user"), "user", "value"),
    (("--privileged",), "privileged", "bool"),
)
_BY_NAME = {name: (dest, kind) for names, dest, kind in EXEC_FLAGS for name in names}


def parse_exec_args(args: list[str]) -> dict[str, Any] | None:
    """``[OPTIONS] CONTAINER COMMAND [ARG...]`` as the click command parses it, or None to let click
    handle it. Options come before CONTAINER only (what follows belongs to the command)."""
    from pyengine.cli.fastflags import default_params, parse_flags

    params = default_params((dest, kind) for _names, dest, kind in EXEC_FLAGS)
    positionals = parse_flags(args, _BY_NAME, params)
    if positionals is None or len(positionals) < 2:
        return None  # no container or no command: click prints the usage error
    params["container"] = positionals[0]
    params["command"] = positionals[1:]
    return params


def exec_in(client: Client, params: dict[str, Any]) -> int:
    """Run the exec described by ``params`` (the dests above, plus container and command)."""
    from pyengine.cli import attach as streams
    from pyengine.cli.flag_values import OptionError, parse_env_line
    from pyengine.cli.runner import check_tty

    container = params["container"]
    detach, interactive, tty = bool(params["detach"]), bool(params["interactive"]), bool(params["tty"])
    client.get(f"/containers/{container}/json")  # as docker: "No such container" wins over the rest
    check_tty(interactive, tty)
    try:
        variables = [v for v in (parse_env_line(item, os.environ) for item in params["env"]) if v is not None]
    except OptionError as exc:
        raise CommandError(f"pyengine: {exc}", 125) from exc
    config = {
        "User": params["user"] or "",
        "Privileged": bool(params["privileged"]),
        "Tty": tty,
        "AttachStdin": interactive and not detach,
        "AttachStdout": not detach,
        "AttachStderr": not detach,
        "Detach": detach,
        "DetachKeys": "",
        "Env": variables or None,
        "WorkingDir": params["workdir"] or "",
        "Cmd": list(params["command"]),
    }
    exec_id = client.post(f"/containers/{container}/exec", None, config)["Id"]
    if detach:
        client.request("POST", f"/exec/{exec_id}/start", None, {"Detach": True, "Tty": tty}).read()
        return 0
    stream = client.hijack(f"/exec/{exec_id}/start", None, {"Detach": False, "Tty": tty})
    if not interactive:
        streams.half_close(stream)
    terminal = streams.RawTerminal(0) if tty and interactive and os.isatty(0) else None
    restore = []
    try:
        if terminal is not None:
            terminal.__enter__()
        if tty:
            restore.append(streams.follow_terminal_size(client, f"/exec/{exec_id}/resize"))
        streams.pump(stream, tty, 0 if interactive else None)
    finally:
        if terminal is not None:
            terminal.__exit__(None, None, None)
        for undo in restore:
            undo()
        stream.sock.close()
    return int(client.get(f"/exec/{exec_id}/json").get("ExitCode") or 0)


def try_fast_exec(host: str | None, args: list[str]) -> int | None:
    """``pyengine [-H HOST] exec ...`` without click; None when click must handle the arguments."""
    params = parse_exec_args(args)
    if params is None:
        return None
    from pyengine.cli.client import default_host
    from pyengine.cli.session import make_client, report

    return report(lambda: exec_in(make_client(host or default_host()), params))
