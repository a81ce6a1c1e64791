"""A minimal client for the Docker Engine API on a unix socket, standard library only.

The benchmarks use it to wait for a daemon, poll container states and clean up, for Docker and
pyengine alike; it imports nothing heavy so that polling costs little next to what is measured.
"""

from __future__ import annotations

import http.client
import json
import socket
import urllib.parse
from typing import Any


class EngineAPIError(RuntimeError):
    """The daemon answered with an error status."""

    def __init__(self, method: str, path: str, status: int, message: str) -> None:
        super().__init__(f"{method} {path}: HTTP {status}: {message}")
        self.status = status
        self.message = message


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, socket_path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self.socket_path = socket_path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.socket_path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


def request(
    socket_path: str,
    method: str,
    path: str,
    *,
    query: dict[str, str] | None = None,
    body: Any = None,
    timeout: float = 30.0,
) -> Any:
    """Send one request and return the decoded JSON body (None when empty).

    Raises EngineAPIError for a status >= 400 and OSError when the socket does not answer.
    """
    if query:
        path = f"{path}?{urllib.parse.urlencode(query)}"
    headers = {"Host": "localhost"}
    payload = None
    if body is not None:
        payload = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    conn = _UnixHTTPConnection(socket_path, timeout)
    try:
        conn.request(method, path, body=payload, headers=headers)
        response = conn.getresponse()
        data = response.read()
    finally:
        conn.close()
    if response.status >= 400:
        try:
            message = json.loads(data).get("message", "")
        except (ValueError, AttributeError):
            message = data.decode(errors="replace")
        raise EngineAPIError(method, path, response.status, message)
    if not data:
        return None
    try:
        return json.loads(data)
    except ValueError:
        return data.decode(errors="replace")


def ping(socket_path: str, timeout: float = 2.0) -> bool:
    """True when ``GET /_ping`` answers OK."""
    try:
        return request(socket_path, "GET", "/_ping", timeout=timeout) == "OK"
    except (OSError, EngineAPIError, http.client.HTTPException):
        return False


def list_containers(socket_path: str, *, all_states: bool = True, timeout: float = 30.0) -> list[dict]:
    query = {"all": "1"} if all_states else None
    return request(socket_path, "GET", "/containers/json", query=query, timeout=timeout) or []


def remove_all_containers(socket_path: str, *, timeout: float = 30.0) -> list[str]:
    """Force-remove every container the daemon knows; return the errors met (empty when all went)."""
    errors: list[str] = []
    try:
        containers = list_containers(socket_path, timeout=timeout)
    except (OSError, EngineAPIError, http.client.HTTPException) as exc:
        return [f"listing containers: {exc}"]
    for container in containers:
        try:
            request(
                socket_path,
                "DELETE",
                f"/containers/{container['Id']}",
                query={"force": "1", "v": "1"},
                timeout=timeout,
            )
        except EngineAPIError as exc:
            if exc.status != 404:  # already gone (an AutoRemove finishing) is fine
                errors.append(str(exc))
        except (OSError, http.client.HTTPException) as exc:
            errors.append(f"removing {container['Id'][:12]}: {exc}")
    return errors
