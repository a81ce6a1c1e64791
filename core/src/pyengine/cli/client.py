"""A small HTTP/1.1 client for the engine API over a unix socket.

Written by hand instead of using http.client or requests because the CLI's ``run`` path must import
little: this module needs only ``socket`` and ``json``. It does what the docker CLI's client does:
keep-alive requests with Content-Length or chunked bodies, streaming responses read piece by piece,
and the ``Upgrade: tcp`` hijack that turns a connection into a raw byte stream (attach).
"""

from __future__ import annotations

import _socket  # the C module: socket.py builds enums at import time, which the run path can skip
import os

from pyengine.cli import fastjson as json

TYPE_CHECKING = False  # typing costs ~5 ms to import; annotations alone need it only for checkers
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from typing import Any

API_VERSION = "1.41"
DEFAULT_HOST = "unix:///run/pyengine/pyengine.sock"
USER_AGENT = "pyengine-cli"

_SAFE = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")


class APIError(Exception):
    """The daemon answered with an error status; ``message`` is its ``{"message": ...}`` text."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class DaemonUnreachable(Exception):
    """Nothing answers on the daemon's socket (missing file or connection refused).

    ``str()`` is the host; ``hint`` (or None) says more when something specific went wrong.
    """

    def __init__(self, host: str, hint: str | None = None) -> None:
        super().__init__(host)
        self.hint = hint


class DaemonPermissionDenied(Exception):
    """The socket exists but this user may not connect to it."""


class _NoAnswer(ConnectionError):
    """The daemon closed the connection before sending a status line."""


def quote(text: str) -> str:
    """Percent-encode ``text`` for a URL query or path segment (urllib.parse costs an import)."""
    out = []
    for byte in text.encode():
        out.append(chr(byte) if byte in _SAFE else f"%{byte:02X}")
    return "".join(out)


def encode_query(params: dict[str, Any] | None) -> str:
    """``{"a": 1, "b": None, "c": ["x", "y"]}`` -> ``"?a=1&c=x&c=y"``; booleans become ``1``/``0``
    as the docker CLI sends them."""
    if not params:
        return ""
    parts = []
    for key, value in params.items():
        for item in value if isinstance(value, list | tuple) else [value]:
            if item is None:
                continue
            if isinstance(item, bool):
                item = "1" if item else "0"
            parts.append(f"{quote(str(key))}={quote(str(item))}")
    return "?" + "&".join(parts) if parts else ""


def socket_path_of(host: str) -> str:
    """The filesystem path of a ``unix://`` host (a bare path is accepted too)."""
    if host.startswith("unix://"):
        return host[len("unix://") :]
    if "://" in host:
        raise ValueError(f"unsupported host {host!r}: only unix:// sockets are supported")
    return host


class BufferedSocket:
    """A socket with a read buffer: lines for headers, exact sizes for bodies, raw chunks for streams."""

    def __init__(self, sock: _socket.socket) -> None:
        self.sock = sock
        self.buffer = b""

    def _fill(self) -> bool:
        data = self.sock.recv(65536)
        if not data:
            return False
        self.buffer += data
        return True

    def readline(self) -> bytes:
        while True:
            index = self.buffer.find(b"\n")
            if index >= 0:
                line, self.buffer = self.buffer[: index + 1], self.buffer[index + 1 :]
                return line
            if not self._fill():
                line, self.buffer = self.buffer, b""
                return line

    def read_exact(self, size: int) -> bytes:
        while len(self.buffer) < size:
            if not self._fill():
                raise ConnectionError("connection closed by the daemon in the middle of a response")
        data, self.buffer = self.buffer[:size], self.buffer[size:]
        return data

    def read_some(self) -> bytes:
        """Whatever is buffered, else one recv; ``b""`` at end of stream."""
        if self.buffer:
            data, self.buffer = self.buffer, b""
            return data
        return self.sock.recv(65536)


class Response:
    """A response whose body is read on demand: all at once, or chunk by chunk as it arrives."""

    def __init__(self, conn: Connection, status: int, reason: str, headers: dict[str, str], method: str):
        self.conn = conn
        self.status = status
        self.reason = reason
        self.headers = headers
        self._chunked = headers.get("transfer-encoding", "").lower() == "chunked"
        length = headers.get("content-length")
        self._remaining = int(length) if length is not None else None
        if method == "HEAD" or status in (101, 204, 304) or 100 <= status < 200:
            self._remaining = 0
            self._chunked = False
        self._done = False

    def iter_raw(self) -> Iterator[bytes]:
        """Yield the body as it comes off the socket, decoding chunked transfer encoding."""
        reader = self.conn.reader
        if self._done:
            return
        if self._chunked:
            while True:
                size_line = reader.readline()
                if not size_line:
                    raise ConnectionError("connection closed by the daemon in the middle of a response")
                size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while reader.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    break
                yield reader.read_exact(size)
                reader.read_exact(2)
        elif self._remaining is not None:
            while self._remaining > 0:
                data = reader.read_some()
                if not data:
                    raise ConnectionError("connection closed by the daemon in the middle of a response")
                if len(data) > self._remaining:
                    reader.buffer = data[self._remaining :] + reader.buffer
                    data = data[: self._remaining]
                self._remaining -= len(data)
                yield data
        else:
            # No length and not chunked: the body runs until the daemon closes the connection.
            self.conn.reusable = False
            while data := reader.read_some():
                yield data
        self._done = True

    def read(self) -> bytes:
        return b"".join(self.iter_raw())

    def json(self) -> Any:
        data = self.read()
        return json.loads(data) if data.strip() else None

    def iter_lines(self) -> Iterator[bytes]:
        """Yield newline-terminated lines of a streaming body (events, pull progress)."""
        pending = b""
        for data in self.iter_raw():
            pending += data
            while (index := pending.find(b"\n")) >= 0:
                line, pending = pending[:index], pending[index + 1 :]
                if line.strip():
                    yield line
        if pending.strip():
            yield pending

    def iter_json(self) -> Iterator[Any]:
        for line in self.iter_lines():
            yield json.loads(line)

    def error_message(self) -> str:
        """Docker's rule: a JSON ``{"message"}`` body gives the message, anything else is shown raw."""
        body = self.read()
        if self.headers.get("content-type", "").split(";")[0].strip() == "application/json":
            try:
                return str(json.loads(body)["message"])
            except (ValueError, KeyError, TypeError):
                pass
        text = body.decode(errors="replace").strip()
        return text or f"{self.status} {self.reason}".strip()


class Connection:
    """One keep-alive HTTP/1.1 connection to the daemon; ``dial`` opens the socket when needed."""

    def __init__(self, dial: Callable[[], _socket.socket]) -> None:
        self.dial = dial
        self.sock: _socket.socket | None = None
        self.reader: BufferedSocket
        self.reusable = True

    def connect(self) -> None:
        self.sock = self.dial()
        self.reader = BufferedSocket(self.sock)
        self.reusable = True

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def request(
        self,
        method: str,
        target: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> Response:
        """Send one request and read the status line and headers; the body is left on the socket.

        A kept-alive connection the daemon closed in the meantime is reopened once and the request
        sent again (it cannot have been processed: no byte of an answer came back).
        """
        lines = [f"{method} {target} HTTP/1.1", "Host: api.moby.localhost", f"User-Agent: {USER_AGENT}"]
        for key, value in (headers or {}).items():
            lines.append(f"{key}: {value}")
        if body is not None or method in ("POST", "PUT"):
            lines.append(f"Content-Length: {len(body or b'')}")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode()
        message = head + body if body else head
        reused = self.sock is not None and self.reusable
        if not reused:
            self.close()
            self.connect()
        assert self.sock is not None
        try:
            self.sock.sendall(message)
            return self._read_head(method)
        except (BrokenPipeError, ConnectionResetError, _NoAnswer):
            if not reused:
                raise
        self.close()
        self.connect()
        self.sock.sendall(message)
        return self._read_head(method)

    def request_streaming(self, method: str, target: str, body: Any, headers: dict[str, str]) -> Response:
        """Send a request whose body is read from a file object, in chunked encoding (an image
        tarball on stdin can be large; it is never held in memory whole). A body with a
        ``send_to(sock)`` method writes its chunks itself (the build context, with sendfile)."""
        lines = [f"{method} {target} HTTP/1.1", "Host: api.moby.localhost", f"User-Agent: {USER_AGENT}"]
        lines += [f"{key}: {value}" for key, value in headers.items()]
        lines.append("Transfer-Encoding: chunked")
        self.close()
        self.connect()
        assert self.sock is not None
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        try:
            if hasattr(body, "send_to"):
                body.send_to(self.sock)
            else:
                while chunk := body.read(1 << 20):
                    self.sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            self.sock.sendall(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the daemon answered early (a bad query) and stopped reading: show its answer
        self.reusable = False
        return self._read_head(method)

    def _read_head(self, method: str) -> Response:
        status_line = self.reader.readline()
        if not status_line:
            raise _NoAnswer("the daemon closed the connection without answering")
        parts = status_line.decode("latin-1").rstrip("\r\n").split(" ", 2)
        status = int(parts[1])
        reason = parts[2] if len(parts) > 2 else ""
        headers: dict[str, str] = {}
        while True:
            line = self.reader.readline()
            if line in (b"\r\n", b"\n", b""):
                break
            key, _, value = line.decode("latin-1").partition(":")
            headers[key.strip().lower()] = value.strip()
        if headers.get("connection", "").lower() == "close":
            self.reusable = False
        return Response(self, status, reason, headers, method)


class Client:
    """The engine API as the CLI uses it; every call goes to ``/v1.41/...``.

    Ordinary calls share one keep-alive connection. Calls that stay open while others run (wait,
    streams, attach) take a connection of their own through ``open_stream`` and ``hijack``.
    """

    def __init__(
        self,
        host: str = DEFAULT_HOST,
        api_version: str = API_VERSION,
        autostart: Callable[[Client], None] | None = None,
    ) -> None:
        """``autostart`` is called once, the first time the socket does not answer, to start the
        daemon; if it returns normally, the connection is tried again."""
        self.host = host
        self.socket_path = socket_path_of(host)
        self.prefix = f"/v{api_version}"
        self.autostart = autostart
        self._shared: Connection | None = None

    def _connect_once(self) -> _socket.socket:
        sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
        try:
            sock.connect(self.socket_path)
        except (FileNotFoundError, ConnectionRefusedError) as exc:
            sock.close()
            raise DaemonUnreachable(self.host) from exc
        except PermissionError as exc:
            sock.close()
            raise DaemonPermissionDenied(
                f"permission denied while trying to connect to the pyengine daemon socket at {self.host}"
            ) from exc
        except OSError as exc:
            sock.close()
            raise DaemonUnreachable(self.host, f"connect {self.socket_path}: {exc.strerror or exc}") from exc
        return sock

    def dial(self) -> _socket.socket:
        """A connected socket to the daemon, starting the daemon first if ``autostart`` allows."""
        try:
            return self._connect_once()
        except DaemonUnreachable:
            if self.autostart is None:
                raise
            autostart, self.autostart = self.autostart, None
            autostart(self)
            return self._connect_once()

    def _target(self, path: str, query: dict[str, Any] | None) -> str:
        return self.prefix + path + encode_query(query)

    def _send(
        self,
        conn: Connection,
        method: str,
        path: str,
        query: dict[str, Any] | None,
        body: Any,
        headers: dict[str, str] | None,
    ) -> Response:
        headers = dict(headers or {})
        data: bytes | None
        if hasattr(body, "read") or hasattr(body, "send_to"):
            return conn.request_streaming(method, self._target(path, query), body, headers)
        if body is None or isinstance(body, bytes):
            data = body
        else:
            data = json.dumps(body).encode()
            headers.setdefault("Content-Type", "application/json")
        return conn.request(method, self._target(path, query), data, headers)

    def request(
        self,
        method: str,
        path: str,
        query: dict[str, Any] | None = None,
        body: Any = None,
        headers: dict[str, str] | None = None,
    ) -> Response:
        """A request on the shared connection; raises APIError for a status of 400 or more.

        The caller must consume the response body (``read``/``json``) before the next request.
        """
        if self._shared is None:
            self._shared = Connection(self.dial)
        response = self._send(self._shared, method, path, query, body, headers)
        if response.status >= 400:
            raise APIError(response.status, response.error_message())
        return response

    def get(self, path: str, query: dict[str, Any] | None = None) -> Any:
        return self.request("GET", path, query).json()

    def post(self, path: str, query: dict[str, Any] | None = None, body: Any = None) -> Any:
        return self.request("POST", path, query, body).json()

    def delete(self, path: str, query: dict[str, Any] | None = None) -> Any:
        return self.request("DELETE", path, query).json()

    def open_stream(
        self,
        method: str,
        path: str,
        query: dict[str, Any] | None = None,
        body: Any = None,
        headers: dict[str, str] | None = None,
    ) -> Response:
        """A request on a connection of its own, for bodies that arrive over time (wait, logs)."""
        response = self._send(Connection(self.dial), method, path, query, body, headers)
        if response.status >= 400:
            message = response.error_message()
            response.conn.close()
            raise APIError(response.status, message)
        return response

    def hijack(self, path: str, query: dict[str, Any] | None = None, body: Any = None) -> BufferedSocket:
        """POST with ``Upgrade: tcp``; after the 101 the connection is a raw duplex byte stream.

        Attach sends no body (``text/plain``, as the docker CLI); exec start sends a JSON ``body``.
        """
        conn = Connection(self.dial)
        headers = {"Connection": "Upgrade", "Upgrade": "tcp", "Content-Type": "text/plain"}
        data = b""
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        response = conn.request("POST", self._target(path, query), data, headers)
        if response.status >= 400:
            message = response.error_message()
            conn.close()
            raise APIError(response.status, message)
        if response.status != 101:
            conn.close()
            raise APIError(response.status, f"unable to upgrade to tcp, received {response.status}")
        return conn.reader

    def ping(self) -> bool:
        """True when the daemon answers ``/_ping``."""
        conn = Connection(self._connect_once)
        try:
            response = conn.request("GET", "/_ping")
            response.read()
            return response.status == 200
        except (DaemonUnreachable, OSError):
            return False
        finally:
            conn.close()

    def close(self) -> None:
        if self._shared is not None:
            self._shared.close()


def default_host() -> str:
    """The host from ``PYENGINE_HOST``, then ``DOCKER_HOST``, else the default socket."""
    return os.environ.get("PYENGINE_HOST") or os.environ.get("DOCKER_HOST") or DEFAULT_HOST
