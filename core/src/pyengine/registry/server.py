"""The registry's aiohttp application and how it is served (plain HTTP or TLS)."""

from __future__ import annotations

import asyncio
import logging
import signal
import ssl
import sys
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from pyengine.registry import errors
from pyengine.registry.auth import HtpasswdAuth
from pyengine.registry.gc import registry_lock
from pyengine.registry.routes import STORAGE_KEY, UPLOADS_KEY, add_routes
from pyengine.registry.storage import RegistryStorage
from pyengine.registry.uploads import UploadManager

log = logging.getLogger("pyengine.registry")
AUTH_KEY = web.AppKey("auth", object)


@dataclass(frozen=True)
class RegistryConfig:
    root: Path
    host: str = "127.0.0.1"
    port: int = 5000
    htpasswd: Path | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None


def parse_addr(addr: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:5000`` for IPv6; port 0 picks a free one) -> (host, port)."""
    host, sep, port = addr.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"invalid address {addr!r}: expected HOST:PORT")
    return host.strip("[]") or "0.0.0.0", int(port)


@web.middleware
async def _errors_and_auth(request: web.Request, handler) -> web.StreamResponse:
    head = request.method == "HEAD"
    try:
        auth = request.app.get(AUTH_KEY)
        if auth is not None:
            await auth.check(request.headers.get("Authorization"))
        return await handler(request)
    except errors.RegistryError as exc:
        if exc.status >= 500:
            log.error("%s %s: %s", request.method, request.path, exc)
        return exc.response(head=head)


async def _add_api_version(_request: web.Request, response: web.StreamResponse) -> None:
    name, value = errors.API_VERSION_HEADER
    response.headers.setdefault(name, value)


def make_app(root: Path, htpasswd: Path | None = None) -> web.Application:
    """The registry application serving ``root`` (created if missing), with basic auth if given."""
    app = web.Application(middlewares=[_errors_and_auth])
    storage = RegistryStorage(Path(root))
    app[STORAGE_KEY] = storage
    app[UPLOADS_KEY] = UploadManager(storage)
    if htpasswd is not None:
        app[AUTH_KEY] = HtpasswdAuth(Path(htpasswd))
    app.on_response_prepare.append(_add_api_version)
    add_routes(app)
    return app


def make_ssl_context(cert: Path, key: Path) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(str(cert), str(key))
    return context


async def serve(config: RegistryConfig, ready: asyncio.Event | None = None) -> None:
    """Serve until SIGTERM or SIGINT. Prints ``listening on URL`` (with the real port) when ready."""
    with registry_lock(Path(config.root), exclusive=False):  # garbage collection waits for us
        await _serve_locked(config, ready)


async def _serve_locked(config: RegistryConfig, ready: asyncio.Event | None) -> None:
    app = make_app(config.root, config.htpasswd)
    ssl_context = None
    if config.tls_cert is not None or config.tls_key is not None:
        if config.tls_cert is None or config.tls_key is None:
            raise ValueError("--tls-cert and --tls-key go together")
        ssl_context = make_ssl_context(config.tls_cert, config.tls_key)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    try:
        site = web.TCPSite(runner, config.host, config.port, ssl_context=ssl_context, backlog=512)
        await site.start()
        host, port = runner.addresses[0][:2]
        scheme = "https" if ssl_context else "http"
        shown_host = f"[{host}]" if ":" in host else host
        print(f"listening on {scheme}://{shown_host}:{port}", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        if ready is not None:
            ready.set()
        await stop.wait()
    finally:
        await runner.cleanup()


def run(config: RegistryConfig) -> None:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(message)s")
    asyncio.run(serve(config))
