"""A scripted engine API on a real unix socket, to check the exact requests the CLI sends.

It is not a mock of the kernel: the CLI really connects, writes HTTP/1.1 and reads the answers,
including chunked bodies and the attach upgrade. Each test gives a ``route`` function that answers
a request; the server records every request in order.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

SRC = Path(__file__).resolve().parents[2] / "src"


@dataclass
class Request:
    method: str
    path: str  # without the /v1.41 prefix
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    connection: int

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Reply:
    """What the scripted daemon answers: a status and JSON, raw bytes, a chunk list, or a hijack."""

    status: int = 200
    body: Any = None  # JSON-able value, or bytes
    chunks: list[bytes] | None = None  # send chunked, one write per chunk
    hijack: bytes | None = None  # answer 101 then send these bytes and close
    echo_stdin: bool = False  # with hijack: first read the client's stdin to EOF, send it back framed
    hold: threading.Event | None = None  # with hijack: send the output only once this is set
    stdin_until: bytes | None = None  # with hijack: stop reading stdin once this arrived, not at EOF
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


def error(status: int, message: str) -> Reply:
    return Reply(status, {"message": message})


def frame(stream: int, payload: bytes) -> bytes:
    return bytes([stream, 0, 0, 0]) + len(payload).to_bytes(4, "big") + payload


class ScriptedDaemon:
    def __init__(self, path: str, route: Callable[[Request], Reply]) -> None:
        self.path = path
        self.route = route
        self.requests: list[Request] = []
        self.stdin_received: list[bytes] = []  # per hijacked connection, what the client sent
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(path)
        self.server.listen(16)
        self.threads: list[threading.Thread] = []
        self.connections = 0
        self.accepting = threading.Thread(target=self._accept, daemon=True)
        self.accepting.start()

    @property
    def host(self) -> str:
        return f"unix://{self.path}"

    def wait_for(self, method: str, path: str, timeout: float = 60) -> Request:
        """Block until the CLI has sent this request (the CLI runs in another process)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for request in list(self.requests):
                if request.method == method and request.path == path:
                    return request
            time.sleep(0.01)
        raise AssertionError(f"the CLI never sent {method} {path}; it sent {self.calls()}")

    def calls(self) -> list[str]:
        """``"POST /containers/create"`` lines in order, for comparing sequences."""
        return [f"{r.method} {r.path}" for r in self.requests]

    def find(self, method: str, path: str) -> Request:
        for request in self.requests:
            if request.method == method and request.path == path:
                return request
        raise AssertionError(f"no {method} {path} in {self.calls()}")

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            self.connections += 1
            thread = threading.Thread(target=self._serve, args=(conn, self.connections), daemon=True)
            thread.start()
            self.threads.append(thread)

    def _serve(self, conn: socket.socket, number: int) -> None:
        reader = conn.makefile("rb")
        try:
            while True:
                line = reader.readline()
                if not line:
                    return
                method, target, _ = line.decode().split(" ", 2)
                headers = {}
                while (header := reader.readline()) not in (b"\r\n", b""):
                    key, _, value = header.decode().partition(":")
                    headers[key.strip().lower()] = value.strip()
                if headers.get("transfer-encoding") == "chunked":
                    body = b""
                    while size := int(reader.readline().strip(), 16):
                        body += reader.read(size)
                        reader.readline()
                    reader.readline()
                else:
                    body = reader.read(int(headers.get("content-length", "0")))
                parts = urlsplit(target)
                path = parts.path
                if path.startswith("/v1.41/"):
                    path = path[len("/v1.41") :]
                request = Request(
                    method, path, parse_qs(parts.query, keep_blank_values=True), headers, body, number
                )
                self.requests.append(request)
                reply = self.route(request)
                if not self._answer(conn, reply):
                    return
        except (OSError, ValueError):
            return
        finally:
            reader.close()
            conn.close()

    def _answer(self, conn: socket.socket, reply: Reply) -> bool:
        """Write the reply; False when the connection must end (hijack)."""
        if reply.hijack is not None:
            conn.sendall(
                b"HTTP/1.1 101 UPGRADED\r\nContent-Type: application/vnd.docker.raw-stream\r\n"
                b"Connection: Upgrade\r\nUpgrade: tcp\r\n\r\n"
            )
            # The client must half-close (at once without stdin, at stdin's EOF with it); a client
            # that does not makes this time out and the test fail instead of hanging.
            conn.settimeout(20)
            received = b""
            while data := conn.recv(65536):
                received += data
                if reply.stdin_until is not None and reply.stdin_until in received:
                    break  # a terminal in raw mode never sends EOF: the "container" exits here
            self.stdin_received.append(received)
            if reply.echo_stdin:
                conn.sendall(frame(1, received))
            if reply.hold is not None:
                reply.hold.wait(60)
            conn.sendall(reply.hijack)
            conn.shutdown(socket.SHUT_WR)
            return False
        head = [f"HTTP/1.1 {reply.status} X", "Api-Version: 1.41"]
        head += [f"{key}: {value}" for key, value in reply.headers.items()]
        if reply.chunks is not None:
            head += [f"Content-Type: {reply.content_type}", "Transfer-Encoding: chunked"]
            conn.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
            for chunk in reply.chunks:
                conn.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
            conn.sendall(b"0\r\n\r\n")
            return True
        if reply.status in (204, 304):
            conn.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
            return True
        body = reply.body if isinstance(reply.body, bytes) else json.dumps(reply.body).encode()
        head += [f"Content-Type: {reply.content_type}", f"Content-Length: {len(body)}"]
        conn.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + body)
        return True

    def close(self) -> None:
        self.server.close()


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


def cli_environment() -> dict[str, str]:
    """The environment of a CLI child: this checkout's sources first, no host from the caller."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(SRC) + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("PYENGINE_HOST", None)
    env.pop("DOCKER_HOST", None)
    return env


def run_cli(host: str, *args: str, stdin: bytes = b"", timeout: float = 60) -> Result:
    """Run ``python -m pyengine -H host args...`` as a user would, in a child process."""
    env = cli_environment()
    process = subprocess.run(
        [sys.executable, "-m", "pyengine", "-H", host, *args],
        input=stdin,
        capture_output=True,
        env=env,
        timeout=timeout,
    )
    return Result(process.returncode, process.stdout.decode(), process.stderr.decode())
