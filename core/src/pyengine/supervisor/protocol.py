"""The wire format shared by the supervisor and its client.

A request is one JSON object on one line (``{"op": "start", "id": "abc"}``); the answer is one JSON line,
``{"ok": true, ...}`` or ``{"ok": false, "error": "message", "kind": "NotFound"}`` where ``kind`` names a
class of :mod:`pyengine.errors`. After a successful ``attach`` the connection carries frames from the
supervisor (an 8-byte header: stream byte, three zero bytes, big-endian payload length; then the
payload) and raw stdin bytes from the client. After ``events`` it carries one JSON event per line.

Operations (fields; answer fields besides ``ok``):

- ``create`` (id, bundle, tty, open_stdin, stdin_once, log_path) — registers a container; Conflict if
  the id exists.
- ``start`` (id) -> pid, started_at — also after an exit (new stdio, the same log appended).
- ``attach`` (id, stdin, stdout, stderr, wait_start) — then a stream until the run ends. Before the
  first start it waits for the start; after an exit it ends at once unless ``wait_start`` is true
  (an extension for ``docker start -a``, which attaches before it starts).
- ``signal`` (id, signal: number or name) — Conflict if not running.
- ``resize`` (id, height, width) — Conflict without a terminal or when not running.
- ``state`` (id) -> id, status (created|running|exited), pid (0 unless running), exit_code (null
  unless exited), started_at, finished_at, oom_killed.
- ``list`` -> containers: [state, ...].
- ``delete`` (id) — forgets it and removes ``<id>.exit``; Conflict while running.
- ``events`` — then ``{"event": "start", "id", "pid"}`` and ``{"event": "exit", "id", "exit_code",
  "finished_at"}`` lines.
- ``ping`` -> pid (the supervisor's).
- ``exec`` (id, exec_id, process: an OCI process object, open_stdin) -> pid — a process joins the
  running container (its namespaces, cgroups, seccomp filter from the bundle); then a stream as for
  attach, ended by one frame on :data:`EXIT_STREAM` with ``{"exit_code": N}`` (see
  :mod:`pyengine.supervisor.exec_process`). Conflict if the container is not running.
- ``exec_resize`` (exec_id, height, width) — NotFound unless that exec runs with a terminal.
"""

from __future__ import annotations

import json
import struct
import time

STDOUT = 1
STDERR = 2
STREAM_NUMBERS = {"stdout": STDOUT, "stderr": STDERR}
EXIT_STREAM = 255  # the last frame of an exec stream: {"exit_code": N}

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
