"""Docker's json-file log format, written as output arrives.

One JSON object per line: ``{"log": "hello\\n", "stream": "stdout", "time": "<RFC 3339 nano>"}``. A record
ends at a newline; a line longer than 16 KiB is cut into 16 KiB records (the last one carries the
newline), as Docker's log copier does. A partial line waits in memory for the rest of its line and is
written on its own when the stream ends.
"""

from __future__ import annotations

import json
import logging
import os

from pyengine.supervisor.protocol import rfc3339_nano

log = logging.getLogger(__name__)

MAX_RECORD = 16 * 1024


class JsonLogWriter:
    """Appends records to one container's log file; everything is written before a call returns."""

    def __init__(self, path: str) -> None:
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
        self._partial: dict[str, bytes] = {}
        self._failed = False

    def write(self, stream: str, data: bytes) -> None:
        pending = self._partial.pop(stream, b"") + data
        records = []
        start = 0
        while True:
            newline = pending.find(b"\n", start, start + MAX_RECORD)
            if newline >= 0:
                end = newline + 1
            elif len(pending) - start >= MAX_RECORD:
                end = start + MAX_RECORD
            else:
                break
            records.append(pending[start:end])
            start = end
        if start < len(pending):
            self._partial[stream] = pending[start:]
        self._append(stream, records)

    def end_stream(self, stream: str) -> None:
        """The stream reached its end: write what is left of its last line."""
        rest = self._partial.pop(stream, b"")
        if rest:
            self._append(stream, [rest])

    def close(self) -> None:
        for stream in list(self._partial):
            self.end_stream(stream)
        os.close(self._fd)

    def _append(self, stream: str, records: list[bytes]) -> None:
        if not records:
            return
        now = rfc3339_nano()
        lines = b"".join(
            json.dumps(
                {"log": record.decode("utf-8", "replace"), "stream": stream, "time": now},
                ensure_ascii=False,
                separators=(",", ":"),
            ).encode()
            + b"\n"
            for record in records
        )
        view = memoryview(lines)
        try:
            while view:
                view = view[os.write(self._fd, view) :]
        except OSError as exc:
            # A full disk loses log records (as with Docker), never the container or the supervisor.
            if not self._failed:
                log.error("cannot write a container log: %s; records are lost until it recovers", exc)
            self._failed = True
        else:
            self._failed = False
