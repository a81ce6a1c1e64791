"""The wire format shared by the supervisor and its client.

A request is one JSON object on one line (``{"op": "start", "id": "abc"}``); the answer is one JSON line,
``{"ok": true, ...}`` or ``{"ok": false, "error": "message", "kind": "NotFound"}`` where ``kind`` names a
class of :mod:`pyengine.errors`. After a successful ``attach`` the connection carries frames from the
supervisor (an 8-byte header: stream byte, three zero bytes, big-endian payload length; then the
payload) and raw stdin bytes from the client. After ``events`` it carries one JSON event per line.
"""

from __future__ import annotations

import json
import struct
import time

STDOUT = 1
STDERR = 2
STREAM_NUMBERS = {"stdout": STDOUT, "stderr": STDERR}

FRAME_HEADER = struct.Struct(">BxxxL")

# A request line longer than this is refused: requests are small, and an unbounded line is a way to
# make the supervisor hold arbitrary memory.
MAX_REQUEST_LINE = 1 << 20


def encode_frame(stream: int, payload: bytes) -> bytes:
    return FRAME_HEADER.pack(stream, len(payload)) + payload


def encode_message(message: dict) -> bytes:
    return json.dumps(message, separators=(",", ":")).encode() + b"\n"


def rfc3339_nano(ns: int | None = None) -> str:
    """UTC time as RFC 3339 with nanoseconds, the form Docker writes in logs and inspect output."""
    if ns is None:
        ns = time.time_ns()
    seconds, fraction = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{fraction:09d}Z"
