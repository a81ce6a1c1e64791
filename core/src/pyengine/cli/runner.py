"""The flow of ``run`` (and ``create``, ``start -a``), without click: create, attach, wait, start.

It follows the docker CLI's sequence: create (pulling once on "No such image"), attach (HTTP
upgrade) unless detached, wait (``condition=removed`` with --rm, else ``next-exit``; only the headers
come back now), start, copy the output, then exit with the status wait reports.
"""

from __future__ import annotations

import os
import sys

from pyengine.cli.client import APIError, Client, Response
from pyengine.cli.create_options import (
    LIMIT_AND_HEALTH_DESTS,
    CreateOptions,
    OptionError,
    build_create_request,
    start_failure_status,
)
from pyengine.cli.session import CommandError

TYPE_CHECKING = False  # typing costs ~5 ms to import; annotations alone need it only for checkers
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any


def options_from(params: dict[str, Any], detach: bool) -> CreateOptions:
    """CreateOptions from parsed flags (keys are the ``dest`` names of RUN_FLAGS, plus image and command)."""
    console_size = None
    if params["tty"]:
        from pyengine.cli.attach import terminal_size

        console_size = terminal_size()
    return CreateOptions(
        image=params["image"],
        command=list(params["command"]),
        name=params["name"],
        detach=detach,
        interactive=params["interactive"],
        tty=params["tty"],
        auto_remove=params["auto_remove"],
        env=list(params["env"]),
        env_files=list(params["env_file"]),
        workdir=params["workdir"],
        user=params["user"],
        hostname=params["hostname"],
        entrypoint=params["entrypoint"],
        labels=list(params["label"]),
        stop_signal=params["stop_signal"],
        stop_timeout=params["stop_timeout"],
        publish=list(params["publish"]),
        volumes=list(params["volume"]),
        mounts=list(params.get("mount") or ()),
        tmpfs=list(params.get("tmpfs") or ()),
        network=params["network"],
        network_alias=list(params["network_alias"]),
        ip=params["ip"],
        publish_all=params["publish_all"],
        restart=params["restart"],
        privileged=params["privileged"],
        read_only=params["read_only"],
        cap_add=params["cap_add"],
        cap_drop=params["cap_drop"],
        security_opt=params["security_opt"],
        ulimit=params["ulimit"],
        group_add=params["group_add"],
        userns=params.get("userns"),
        memory=params["memory"],
        cpus=params["cpus"],
        console_size=console_size,
        **{dest: params[dest] for dest in LIMIT_AND_HEALTH_DESTS},
    )


def pull_image(client: Client, reference: str, quiet: bool = False) -> None:
    """``POST /images/create?fromImage=`` once, printing progress like ``docker pull``."""
    from pyengine.cli.images import stream_pull

    stream_pull(client, reference, out=sys.stderr, quiet=quiet)


def create_container(client: Client, opts: CreateOptions, pull_policy: str) -> str:
    """Create the container, pulling the image once if it is missing; returns the full ID.

    Any failure is a CommandError with exit status 125, as ``docker create``/``run`` report it.
    """
    try:
        query, body = build_create_request(opts)
    except OptionError as exc:
        raise CommandError(f"pyengine: {exc}", 125) from exc
    try:
        if pull_policy == "always":
            pull_image(client, opts.image)
        try:
            created = client.post("/containers/create", query, body)
        except APIError as exc:
            if exc.status != 404 or "no such image" not in exc.message.lower() or pull_policy != "missing":
                raise
            print(f"Unable to find image '{opts.image}' locally", file=sys.stderr, flush=True)
            pull_image(client, opts.image)
            created = client.post("/containers/create", query, body)
    except APIError as exc:
        raise CommandError(f"pyengine: Error response from daemon: {exc.message}", 125) from exc
    for warning in created.get("Warnings") or []:
        print(f"WARNING: {warning}", file=sys.stderr)
    return created["Id"]


def check_tty(interactive: bool, tty: bool) -> None:
    """Docker refuses ``-it`` when stdin is not a terminal, before creating anything."""
    if interactive and tty and not os.isatty(0):
        raise CommandError("the input device is not a TTY", 1)


def run_container(client: Client, params: dict[str, Any]) -> int:
    """``pyengine run`` once its flags are parsed; returns the exit status."""
    detach = bool(params["detach"])
    if not detach:
        check_tty(params["interactive"], params["tty"])
    opts = options_from(params, detach)
    container_id = create_container(client, opts, params["pull"])
    if detach:
        start_or_fail(client, container_id, None, opts.auto_remove)
        print(container_id, flush=True)
        return 0
    try:
        return run_attached(client, container_id, opts.tty, opts.interactive, opts.auto_remove)
    except APIError as exc:  # attach or wait refused: docker run reports these with 125 too
        raise CommandError(f"pyengine: Error response from daemon: {exc.message}", 125) from exc


def start_or_fail(client: Client, container_id: str, wait: Response | None, auto_remove: bool) -> None:
    """``POST /containers/{id}/start``; on failure print the daemon's message and exit like docker."""
    try:
        client.request("POST", f"/containers/{container_id}/start").read()
    except APIError as exc:
        if wait is not None and auto_remove:
            try:
                wait.read()  # docker waits for the removal before exiting
            except OSError:
                pass
        raise CommandError(
            f"pyengine: Error response from daemon: {exc.message}", start_failure_status(exc.message)
        ) from exc


def run_attached(client: Client, container_id: str, tty: bool, interactive: bool, auto_remove: bool) -> int:
    """Attach, wait, start, copy the streams; returns the container's exit status.

    Shared by ``run`` and ``start -a``. ``interactive`` forwards stdin (and half-closes at its EOF);
    with ``tty`` too, and a terminal on stdin, the terminal is raw for the duration.
    """
    from pyengine.cli import attach

    query: dict[str, Any] = {"stream": True, "stdout": True, "stderr": True}
    if interactive:
        query = {"stream": True, "stdin": True, "stdout": True, "stderr": True}
    stream = client.hijack(f"/containers/{container_id}/attach", query)
    condition = "removed" if auto_remove else "next-exit"
    wait = client.open_stream("POST", f"/containers/{container_id}/wait", {"condition": condition})
    stdin_fd = 0 if interactive else None
    if stdin_fd is None:
        attach.half_close(stream)
    restore_handlers: list[Callable[[], None]] = []
    terminal = attach.RawTerminal(0) if tty and interactive and os.isatty(0) else None
    try:
        if terminal is not None:
            terminal.__enter__()
        # As docker run: signals sent to the CLI go to the container, with or without a TTY (in raw
        # mode ^C is a byte on stdin anyway, but a `kill` of the CLI must reach the container).
        # Installed before start so that no signal can end the CLI and leave the container behind.
        restore_handlers.append(attach.proxy_signals(client, container_id))
        start_or_fail(client, container_id, wait, auto_remove)
        if tty:
            restore_handlers.append(attach.follow_terminal_size(client, f"/containers/{container_id}/resize"))
        attach.pump(stream, tty, stdin_fd)
    finally:
        if terminal is not None:
            terminal.__exit__(None, None, None)
        for restore in restore_handlers:
            restore()
        stream.sock.close()
    return wait_status(wait)


def wait_status(wait: Response) -> int:
    """The exit status from a wait response; a wait error is reported and gives 125."""
    try:
        result = wait.json() or {}
    except (OSError, ValueError) as exc:
        raise CommandError(f"pyengine: error waiting for container: {exc}", 125) from exc
    finally:
        wait.conn.close()
    error = result.get("Error")
    if error and error.get("Message"):
        raise CommandError(f"pyengine: error waiting for container: {error['Message']}", 125)
    return int(result.get("StatusCode", 0))
