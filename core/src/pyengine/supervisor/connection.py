"""One client connection of the supervisor: request lines in, answers out, then maybe a stream.

Every socket is non-blocking and everything sent to a client goes through a bounded buffer: a client
that stops reading is dropped once its buffer passes :data:`MAX_CLIENT_BUFFER` instead of slowing the
supervisor or making it grow without bound. Container logs never depend on clients.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable
from typing import TYPE_CHECKING

from pyengine.supervisor.protocol import MAX_REQUEST_LINE, encode_message

if TYPE_CHECKING:
    from pyengine.supervisor.reactor import Reactor

log = logging.getLogger(__name__)

MAX_CLIENT_BUFFER = 4 << 20
RECV_SIZE = 65536


class Connection:
    """A client socket. ``on_line`` handles request lines while the connection is in request mode;
    once a request turns it into a stream, ``on_data`` receives what the client sends and ``on_eof``
    its half-close, and ``on_close`` runs once when the connection goes away."""

    def __init__(self, reactor: Reactor, sock: socket.socket, on_line: Callable[[Connection, bytes], None]):
        self.reactor = reactor
        self.sock = sock
        self.fd = sock.fileno()
        self.on_line: Callable[[Connection, bytes], None] | None = on_line
        self.on_data: Callable[[bytes], None] | None = None
        self.on_eof: Callable[[], None] | None = None
        self.on_close: Callable[[], None] | None = None
        # Called once everything queued has been sent, for a producer that paused itself.
        self.on_drained: Callable[[], None] | None = None
        self.closed = False
        self._inbox = bytearray()
        self._outbox = bytearray()
        self._close_when_flushed = False
        self._reading = True
        sock.setblocking(False)
        reactor.on_readable(self.fd, self._readable)

    def send(self, data: bytes) -> None:
        if self.closed or self._close_when_flushed:
            return
        if not self._outbox:
            try:
                sent = self.sock.send(data)
            except BlockingIOError:
                sent = 0
            except OSError:
                self.close()
                return
            if sent == len(data):
                return
            data = data[sent:]
            self.reactor.on_writable(self.fd, self._writable)
        self._outbox += data
        if len(self._outbox) > MAX_CLIENT_BUFFER:
            log.warning("dropping a client that stopped reading (%d bytes pending)", len(self._outbox))
            self.close()

    @property
    def pending(self) -> int:
        """Bytes queued for the client and not sent yet."""
        return len(self._outbox)

    def send_message(self, message: dict) -> None:
        self.send(encode_message(message))

    def close_when_flushed(self) -> None:
        if not self._outbox:
            self.close()
        else:
            self._close_when_flushed = True

    def stream(self, on_data: Callable[[bytes], None] | None, on_eof: Callable[[], None] | None) -> None:
        """Leave request mode: from now on the client's bytes are a stream, not request lines."""
        self.on_line = None
        self.on_data = on_data
        self.on_eof = on_eof
        # Bytes that arrived right behind the request line are already stream data.
        if self._inbox:
            data = bytes(self._inbox)
            self._inbox.clear()
            if on_data is not None:
                on_data(data)

    def pause_reading(self) -> None:
        if self._reading and not self.closed:
            self._reading = False
            self.reactor.on_readable(self.fd, None)

    def resume_reading(self) -> None:
        if not self._reading and not self.closed:
            self._reading = True
            self.reactor.on_readable(self.fd, self._readable)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.reactor.forget(self.fd)
        self.sock.close()
        self._outbox = bytearray()
        if self.on_close is not None:
            on_close, self.on_close = self.on_close, None
            on_close()

    def _readable(self) -> None:
        try:
            data = self.sock.recv(RECV_SIZE)
        except BlockingIOError:
            return
        except OSError:
            self.close()
            return
        if not data:
            self._reading = False
            self.reactor.on_readable(self.fd, None)
            if self.on_line is not None:
                # A request connection that half-closes has nothing more to ask.
                self.close_when_flushed()
            elif self.on_eof is not None:
                # A stream client may half-close and still read: it goes when a send to it fails.
                self.on_eof()
            return
        if self.on_line is None:
            if self.on_data is not None:
                self.on_data(data)
            return
        self._inbox += data
        while self.on_line is not None and not self.closed:
            newline = self._inbox.find(b"\n")
            if newline < 0:
                if len(self._inbox) > MAX_REQUEST_LINE:
                    self.send_message({"ok": False, "kind": "InvalidArgument", "error": "request too long"})
                    self.close_when_flushed()
                return
            line = bytes(self._inbox[:newline])
            del self._inbox[: newline + 1]
            self.on_line(self, line)

    def _writable(self) -> None:
        try:
            sent = self.sock.send(self._outbox)
        except BlockingIOError:
            return
        except OSError:
            self.close()
            return
        del self._outbox[:sent]
        if not self._outbox:
            self.reactor.on_writable(self.fd, None)
            if self._close_when_flushed:
                self.close()
            elif self.on_drained is not None:
                on_drained, self.on_drained = self.on_drained, None
                on_drained()
