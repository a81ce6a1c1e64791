"""``pyengine daemon``: load the state, make sure the supervisor runs, serve the API on a unix socket.

Stopping the daemon (SIGTERM, or even SIGKILL) leaves containers running: they belong to the
supervisor. On start the daemon reconciles its records with what the supervisor reports.
"""

from __future__ import annotations

import asyncio
import contextlib
import grp
import logging
import os
import signal
from pathlib import Path

from aiohttp import web

from pyengine.daemon.config import DaemonConfig
from pyengine.errors import InvalidArgument, Unavailable

log = logging.getLogger("pyengine.daemon")


def socket_path(host: str) -> Path:
    if host.startswith("unix://"):
        return Path(host[len("unix://") :])
    if host.startswith("/"):
        return Path(host)
    raise InvalidArgument(
        f"unsupported host {host!r}: only unix:// sockets are served (TCP needs TLS, not yet)"
    )


async def follow_supervisor(engine) -> None:
    """Apply the supervisor's exit events to the records, reconnecting if the stream breaks."""
    while True:
        try:
            async for event in engine.supervisor.events():
                if event.get("event") == "exit":
                    await engine.containers.on_exit(
                        event["id"],
                        int(event.get("exit_code", 255)),
                        event.get("finished_at"),
                        bool(event.get("oom_killed", False)),
                    )
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the supervisor went away: start it again and resync
            log.warning("lost the supervisor's event stream (%s); reconnecting", exc)
        await asyncio.sleep(0.5)
        with contextlib.suppress(Exception):
            await asyncio.to_thread(engine.ensure_supervisor)
            await engine.containers.reconcile()


async def serve(config: DaemonConfig) -> None:
    from pyengine.api.app import make_app
    from pyengine.daemon.engine import Engine

    engine = Engine(config)
    loop = asyncio.get_running_loop()
    engine.events.bind(loop)
    await asyncio.to_thread(engine.ensure_supervisor)
    engine.containers.load()
    await asyncio.to_thread(engine.start_networking, loop)
    events_ready = asyncio.Event()

    async def follow() -> None:
        events_ready.set()
        await follow_supervisor(engine)

    follower = asyncio.ensure_future(follow())
    await events_ready.wait()
    await asyncio.sleep(0)  # let the event subscription be sent before reconciling
    try:
        await engine.containers.reconcile()
    except Unavailable as exc:
        log.error("supervisor unavailable at start: %s", exc)
    await asyncio.to_thread(engine.reconcile_networks)
    engine.hooks.call("pyengine_daemon_post_start", engine=engine)

    app = make_app(engine)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    for host in config.hosts:
        path = socket_path(host)
        path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        site = web.UnixSite(runner, str(path))
        await site.start()
        os.chmod(path, 0o660)
        if config.socket_group:
            with contextlib.suppress(KeyError, PermissionError):
                os.chown(path, -1, grp.getgrnam(config.socket_group).gr_gid)
        log.info("API listening on %s", path)
    config.pid_file.write_text(str(os.getpid()))

    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    log.info("shutting down; containers keep running under the supervisor")
    follower.cancel()
    await runner.cleanup()
    for host in config.hosts:
        with contextlib.suppress(Exception):
            socket_path(host).unlink()
    with contextlib.suppress(FileNotFoundError):
        config.pid_file.unlink()
    engine.close()


def run(config: DaemonConfig) -> None:
    logging.basicConfig(
        level=logging.DEBUG if config.debug else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    asyncio.run(serve(config))
