"""Container lifecycle commands: start, stop, kill, restart, rm, wait, attach, logs."""

from __future__ import annotations

import os
import re
import sys
import time
from collections.abc import Callable
from typing import Any

import click

from pyengine.cli.app import client_of
from pyengine.cli.client import APIError, Client
from pyengine.cli.session import CommandError

_SETTINGS = {"help_option_names": ["--help"]}


def call(client: Client, method: str, path: str, query: dict[str, Any] | None = None) -> None:
    """A request whose answer has no body worth reading (204, 304)."""
    client.request(method, path, query).read()


def for_each(names: tuple[str, ...], action: Callable[[str], Any], echo: bool = True) -> int:
    """Apply ``action`` to every name like docker's multi-container commands: print each name that
    succeeded, report each failure on stderr, exit 1 if any failed."""
    failed = False
    for name in names:
        try:
            result = action(name)
        except APIError as exc:
            print(f"Error response from daemon: {exc.message}", file=sys.stderr)
            failed = True
            continue
        if echo:
            print(name if result is None else result, flush=True)
    return 1 if failed else 0


@click.command(context_settings=_SETTINGS)
@click.option("-a", "--attach", is_flag=True, help="Attach STDOUT/STDERR and forward signals")
@click.option("-i", "--interactive", is_flag=True, help="Attach container's STDIN")
@click.argument("containers", nargs=-1, required=True)
@click.pass_context
def start(ctx: click.Context, attach: bool, interactive: bool, containers: tuple[str, ...]) -> int:
    """Start one or more stopped containers."""
    client = client_of(ctx)
    if attach or interactive:
        if len(containers) > 1:
            raise CommandError("pyengine: you cannot start and attach multiple containers at once", 1)
        from pyengine.cli.runner import check_tty, run_attached

        info = client.get(f"/containers/{containers[0]}/json")
        config = info.get("Config") or {}
        host_config = info.get("HostConfig") or {}
        check_tty(interactive and bool(config.get("OpenStdin")), bool(config.get("Tty")))
        return run_attached(
            client,
            info["Id"],
            tty=bool(config.get("Tty")),
            interactive=interactive and bool(config.get("OpenStdin")),
            auto_remove=bool(host_config.get("AutoRemove")),
        )
    failures = []
    for name in containers:
        try:
            client.request("POST", f"/containers/{name}/start").read()
        except APIError as exc:
            print(f"Error response from daemon: {exc.message}", file=sys.stderr)
            failures.append(name)
            continue
        print(name, flush=True)
    if failures:
        raise CommandError(f"Error: failed to start containers: {', '.join(failures)}", 1)
    return 0


@click.command(context_settings=_SETTINGS)
@click.option("-t", "--time", "timeout", type=int, help="Seconds to wait before killing the container")
@click.option("-s", "--signal", "stop_signal", help="Signal to send to the container")
@click.argument("containers", nargs=-1, required=True)
@click.pass_context
def stop(
    ctx: click.Context, timeout: int | None, stop_signal: str | None, containers: tuple[str, ...]
) -> int:
    """Stop one or more running containers."""
    client = client_of(ctx)
    query = {"t": timeout, "signal": stop_signal}
    return for_each(containers, lambda name: call(client, "POST", f"/containers/{name}/stop", query))


@click.command(context_settings=_SETTINGS)
@click.option("-s", "--signal", "kill_signal", help="Signal to send to the container")
@click.argument("containers", nargs=-1, required=True)
@click.pass_context
def kill(ctx: click.Context, kill_signal: str | None, containers: tuple[str, ...]) -> int:
    """Kill one or more running containers."""
    client = client_of(ctx)
    query = {"signal": kill_signal}
    return for_each(containers, lambda name: call(client, "POST", f"/containers/{name}/kill", query))


@click.command(context_settings=_SETTINGS)
@click.option("-t", "--time", "timeout", type=int, help="Seconds to wait before killing the container")
@click.argument("containers", nargs=-1, required=True)
@click.pass_context
def restart(ctx: click.Context, timeout: int | None, containers: tuple[str, ...]) -> int:
    """Restart one or more containers."""
    client = client_of(ctx)
    query = {"t": timeout}
    return for_each(containers, lambda name: call(client, "POST", f"/containers/{name}/restart", query))


@click.command(context_settings=_SETTINGS)
@click.option("-f", "--force", is_flag=True, help="Force the removal of a running container (uses SIGKILL)")
@click.option("-v", "--volumes", is_flag=True, help="Remove anonymous volumes associated with the container")
@click.option("-l", "--link", is_flag=True, help="Remove the specified link")
@click.argument("containers", nargs=-1, required=True)
@click.pass_context
def rm(ctx: click.Context, force: bool, volumes: bool, link: bool, containers: tuple[str, ...]) -> int:
    """Remove one or more containers."""
    client = client_of(ctx)
    query: dict[str, Any] = {}
    if force:
        query["force"] = True
    if volumes:
        query["v"] = True
    if link:
        query["link"] = True
    return for_each(containers, lambda name: call(client, "DELETE", f"/containers/{name}", query))


@click.command(context_settings=_SETTINGS)
@click.argument("containers", nargs=-1, required=True)
@click.pass_context
def wait(ctx: click.Context, containers: tuple[str, ...]) -> int:
    """Block until one or more containers stop, then print their exit codes."""
    client = client_of(ctx)

    def wait_one(name: str) -> str:
        response = client.open_stream("POST", f"/containers/{name}/wait")
        try:
            result = response.json() or {}
        finally:
            response.conn.close()
        error = result.get("Error")
        if error and error.get("Message"):
            raise APIError(500, error["Message"])
        return str(result.get("StatusCode", 0))

    return for_each(containers, wait_one)


@click.command(context_settings=_SETTINGS)
@click.option("--no-stdin", is_flag=True, help="Do not attach STDIN")
@click.option("--sig-proxy/--no-sig-proxy", default=True, help="Proxy all received signals to the process")
@click.argument("container")
@click.pass_context
def attach(ctx: click.Context, no_stdin: bool, sig_proxy: bool, container: str) -> int:
    """Attach local standard input, output, and error streams to a running container."""
    from pyengine.cli import attach as streams

    client = client_of(ctx)
    info = client.get(f"/containers/{container}/json")
    state = info.get("State") or {}
    if not state.get("Running"):
        raise CommandError("You cannot attach to a stopped container, start it first", 1)
    if state.get("Paused"):
        raise CommandError("You cannot attach to a paused container, unpause it first", 1)
    container_id = info["Id"]
    config = info.get("Config") or {}
    tty = bool(config.get("Tty"))
    interactive = bool(config.get("OpenStdin")) and not no_stdin
    from pyengine.cli.runner import check_tty

    check_tty(interactive, tty)
    query = {"stream": True, "stdin": interactive, "stdout": True, "stderr": True}
    stream = client.hijack(f"/containers/{container_id}/attach", query)
    waiter = client.open_stream("POST", f"/containers/{container_id}/wait")
    if not interactive:
        streams.half_close(stream)
    terminal = streams.RawTerminal(0) if tty and interactive and os.isatty(0) else None
    restore: list[Callable[[], None]] = []
    try:
        if terminal is not None:
            terminal.__enter__()
        if tty:
            restore.append(streams.follow_terminal_size(client, f"/containers/{container_id}/resize"))
        elif sig_proxy:
            restore.append(streams.proxy_signals(client, container_id))
        streams.pump(stream, tty, 0 if interactive else None)
    finally:
        if terminal is not None:
            terminal.__exit__(None, None, None)
        for undo in restore:
            undo()
        stream.sock.close()
    from pyengine.cli.runner import wait_status

    return wait_status(waiter)


_DURATION = re.compile(r"^(?:(\d+(?:\.\d+)?)(h|m|s|ms|us|µs|ns))+$")
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(h|ms|m|s|us|µs|ns)")
_UNIT_SECONDS = {"h": 3600, "m": 60, "s": 1, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}


def parse_timestamp(value: str, now: float | None = None) -> str:
    """Docker's --since/--until: a Go duration ("10m", "1h30m") relative to now, a unix time
    ("1700000000[.5]") or an RFC 3339 date; returns the unix time string the API expects."""
    now = time.time() if now is None else now
    if _DURATION.match(value):
        seconds = sum(float(number) * _UNIT_SECONDS[unit] for number, unit in _DURATION_PART.findall(value))
        return f"{now - seconds:.9f}".rstrip("0").rstrip(".")
    if re.fullmatch(r"\d+(\.\d+)?", value):
        return value
    from datetime import datetime

    text = value.replace("Z", "+00:00")
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise CommandError(f"invalid value for --since/--until: {value!r}", 1) from None
    if moment.tzinfo is None:
        moment = moment.astimezone()  # no zone given: local time, as docker reads it
    return f"{moment.timestamp():.9f}".rstrip("0").rstrip(".")


@click.command(context_settings=_SETTINGS)
@click.option("-f", "--follow", is_flag=True, help="Follow log output")
@click.option("-n", "--tail", default="all", help="Number of lines to show from the end of the logs")
@click.option("-t", "--timestamps", is_flag=True, help="Show timestamps")
@click.option("--since", help="Show logs since timestamp or relative (e.g. 42m for 42 minutes)")
@click.option("--until", help="Show logs before a timestamp or relative (e.g. 42m for 42 minutes)")
@click.option("--details", is_flag=True, help="Show extra details provided to logs")
@click.argument("container")
@click.pass_context
def logs(
    ctx: click.Context,
    follow: bool,
    tail: str,
    timestamps: bool,
    since: str | None,
    until: str | None,
    details: bool,
    container: str,
) -> int:
    """Fetch the logs of a container."""
    from pyengine.cli.attach import copy_output

    client = client_of(ctx)
    info = client.get(f"/containers/{container}/json")
    query: dict[str, Any] = {"stderr": True, "stdout": True, "tail": tail}
    if follow:
        query["follow"] = True
    if timestamps:
        query["timestamps"] = True
    if details:
        query["details"] = True
    if since:
        query["since"] = parse_timestamp(since)
    if until:
        query["until"] = parse_timestamp(until)
    response = client.open_stream("GET", f"/containers/{info['Id']}/logs", query)
    try:
        copy_output(response.iter_raw(), tty=bool((info.get("Config") or {}).get("Tty")))
    finally:
        response.conn.close()
    return 0


@click.command("exec", context_settings={**_SETTINGS, "allow_interspersed_args": False})
@click.option("-d", "--detach", is_flag=True, help="Detached mode: run command in the background")
@click.option("-i", "--interactive", is_flag=True, help="Keep STDIN open even if not attached")
@click.option("-t", "--tty", is_flag=True, help="Allocate a pseudo-TTY")
@click.option("-e", "--env", multiple=True, help="Set environment variables")
@click.option("-w", "--workdir", help="Working directory inside the container")
@click.option("-u", "--user", help="Username or UID (format: <name|uid>[:<group|gid>])")
@click.option("--privileged", is_flag=True, help="Give extended privileges to the command")
@click.argument("container")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@click.pass_context
def exec_(
    ctx: click.Context,
    detach: bool,
    interactive: bool,
    tty: bool,
    env: tuple[str, ...],
    workdir: str | None,
    user: str | None,
    privileged: bool,
    container: str,
    command: tuple[str, ...],
) -> int:
    """Execute a command in a running container."""
    from pyengine.cli.exec_cmd import exec_in

    params = {"detach": detach, "interactive": interactive, "tty": tty, "env": list(env), "workdir": workdir,
              "user": user, "privileged": privileged, "container": container, "command": list(command)}
    return exec_in(client_of(ctx), params)


@click.command(context_settings=_SETTINGS)
@click.argument("container")
@click.argument("new_name")
@click.pass_context
def rename(ctx: click.Context, container: str, new_name: str) -> int:
    """Rename a container."""
    call(client_of(ctx), "POST", f"/containers/{container}/rename", {"name": new_name})
    return 0
