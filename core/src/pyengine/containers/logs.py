"""Reading a container's json-file log for ``docker logs``: tail, since/until, timestamps, follow."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import BinaryIO

from pyengine.model.base import parse_rfc3339

STREAM_IDS = {"stdout": 1, "stderr": 2}


def frame(stream_id: int, payload: bytes) -> bytes:
    """Docker's multiplexed stream frame: [stream, 0, 0, 0, big-endian uint32 length] + payload."""
    return struct.pack(">BxxxL", stream_id, len(payload)) + payload


class LogReader:
    """Reads a container's json-file log through one open file.

    The file stays open for the whole request, so records a follower has not read yet are still read
    after the container, and its log file with it, is removed (``docker run --rm`` and docker-py's
    ``containers.run(remove=True)`` remove the container while its logs are still being streamed).
    """

    def __init__(
        self, path: Path, *, stdout: bool = True, stderr: bool = True, since: float = 0.0, until: float = 0.0
    ) -> None:
        self.path = Path(path)
        self.wanted = {name for name, on in (("stdout", stdout), ("stderr", stderr)) if on}
        self.since = since
        self.until = until
        self._handle: BinaryIO | None = None
        self._partial = b""

    def read_new(self) -> list[dict]:
        """The matching records appended since the last call (a record still being written waits)."""
        if self._handle is None:
            try:
                self._handle = open(self.path, "rb")
            except FileNotFoundError:
                return []
        data = self._partial + self._handle.read()
        complete, _, self._partial = data.rpartition(b"\n")
        records = []
        for line in complete.split(b"\n") if complete else []:
            record = _parse(line)
            if record is None or record.get("stream") not in self.wanted:
                continue
            if self.since or self.until:
                when = parse_rfc3339(record.get("time", ""))
                if (self.since and when < self.since) or (self.until and when > self.until):
                    continue
            records.append(record)
        return records

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None


def tail(records: list[dict], count: int | None) -> list[dict]:
    """The last ``count`` records (all when None or negative, as Docker's tail=all)."""
    if count is None or count < 0:
        return records
    return records[len(records) - count :] if count else []


def render(record: dict, *, timestamps: bool, tty: bool) -> bytes:
    payload = record.get("log", "").encode()
    if timestamps:
        payload = record.get("time", "").encode() + b" " + payload
    if tty:
        return payload
    return frame(STREAM_IDS.get(record.get("stream", "stdout"), 1), payload)


def _parse(line: bytes) -> dict | None:
    try:
        return json.loads(line)
    except ValueError:
        return None
