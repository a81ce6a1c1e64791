"""Taking over an HTTP connection for a raw byte stream (attach, exec): Docker's "hijack".

The client sends ``Connection: Upgrade`` / ``Upgrade: tcp``; the daemon answers ``101 UPGRADED`` and from
then on the socket carries raw bytes both ways. A client half-close (EOF on its side) must not close our
side: output keeps flowing until the daemon closes the connection.
"""

from __future__ import annotations

import asyncio

from aiohttp import web


class HijackedConnection(asyncio.Protocol):
    """The asyncio protocol installed on the transport once the HTTP exchange is over."""

    def __init__(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        self.incoming: asyncio.Queue[bytes] = asyncio.Queue()
        self._can_write = asyncio.Event()
        self._can_write.set()
        self.closed = asyncio.Event()

    # protocol callbacks
    def data_received(self, data: bytes) -> None:
        self.incoming.put_nowait(bytes(data))

    def eof_received(self) -> bool:
        self.incoming.put_nowait(b"")
        return True  # keep our write side open after the client's half-close

    def connection_lost(self, exc: Exception | None) -> None:
        self.incoming.put_nowait(b"")
        self._can_write.set()
        self.closed.set()

    def pause_writing(self) -> None:
        self._can_write.clear()

    def resume_writing(self) -> None:
        self._can_write.set()

    # use
    async def write(self, data: bytes) -> bool:
        """Write and respect flow control; False once the client is gone."""
        if self.closed.is_set() or self.transport.is_closing():
            return False
        self.transport.write(data)
        await self._can_write.wait()
        return not self.closed.is_set()

    def close(self) -> None:
        if not self.transport.is_closing():
            self.transport.close()


async def hijack(
    request: web.Request, *, multiplexed: bool = False
) -> tuple[web.StreamResponse, HijackedConnection | ChunkedConnection]:
    """Answer 101 (or 200 for a client that did not ask to upgrade) and take over the connection."""
    content_type = (
        "application/vnd.docker.multiplexed-stream" if multiplexed else "application/vnd.docker.raw-stream"
    )
    upgrade = "upgrade" in request.headers.get("Connection", "").lower()
    if upgrade:
        response = web.StreamResponse(
            status=101,
            reason="UPGRADED",
            headers={"Content-Type": content_type, "Connection": "Upgrade", "Upgrade": "tcp"},
        )
    else:
        # No upgrade asked for: an ordinary chunked 200 response carries the output; no stdin.
        response = web.StreamResponse(status=200, headers={"Content-Type": content_type})
        response.enable_chunked_encoding()
        await response.prepare(request)
        return response, ChunkedConnection(response)
    response.force_close()
    await response.prepare(request)
    transport = request.transport
    assert transport is not None
    tail = bytes(getattr(request.protocol, "_message_tail", b"") or b"")
    connection = HijackedConnection(transport)  # type: ignore[arg-type]
    transport.set_protocol(connection)
    if tail:
        connection.data_received(tail)
    return response, connection


class ChunkedConnection:
    """The same interface as HijackedConnection over a plain chunked response (output only)."""

    def __init__(self, response: web.StreamResponse) -> None:
        self.response = response
        self.incoming: asyncio.Queue[bytes] = asyncio.Queue()
        self.incoming.put_nowait(b"")
        self.closed = asyncio.Event()

    async def write(self, data: bytes) -> bool:
        try:
            await self.response.write(data)
            return True
        except (ConnectionResetError, RuntimeError):
            self.closed.set()
            return False

    def close(self) -> None:
        self.closed.set()


async def forward_input(
    connection: HijackedConnection | ChunkedConnection, writer: asyncio.StreamWriter, *, keep: bool
) -> None:
    """Copy what the client sends to ``writer`` (read and dropped unless ``keep``) until it
    half-closes, then half-close ``writer`` too."""
    try:
        while True:
            data = await connection.incoming.get()
            if not data:
                if writer.can_write_eof():
                    writer.write_eof()
                return
            if keep:
                writer.write(data)
                await writer.drain()
    except (ConnectionError, OSError):
        return
