"""Reading a container's json-file log for ``docker logs``: tail, since/until, timestamps, follow."""

from __future__ import annotations

import json
import os
import struct
from collections import deque
from collections.abc import Iterator
from pathlib import Path

from pyengine.model.base import parse_rfc3339

STREAM_IDS = {"stdout": 1, "stderr": 2}


def frame(stream_id: int, payload: bytes) -> bytes:
    """Docker's multiplexed stream frame: [stream, 0, 0, 0, big-endian uint32 length] + payload."""
    return struct.pack(">BxxxL", stream_id, len(payload)) + payload


def read_records(
    path: Path,
    *,
    tail: int | None,
    since: float = 0.0,
    until: float = 0.0,
    stdout: bool = True,
    stderr: bool = True,
) -> tuple[list[dict], int]:
    """Records of the log file matching the filters, and the byte offset where reading stopped."""
    wanted = {name for name, on in (("stdout", stdout), ("stderr", stderr)) if on}
    records: deque[dict] | list[dict] = deque(maxlen=tail) if tail is not None and tail >= 0 else []
    offset = 0
    try:
        with open(path, "rb") as handle:
            for line in handle:
                if not line.endswith(b"\n"):
                    break  # a record still being written: a follower picks it up later
                offset += len(line)
                record = _parse(line)
                if record is None or record.get("stream") not in wanted:
                    continue
                when = parse_rfc3339(record.get("time", ""))
                if since and when < since:
                    continue
                if until and when > until:
                    continue
                records.append(record)
    except FileNotFoundError:
        pass
    return list(records), offset


def follow_records(path: Path, offset: int, *, stdout: bool = True, stderr: bool = True) -> Iterator[dict]:
    """Records appended after ``offset`` (one pass; the caller polls again while the container runs)."""
    wanted = {name for name, on in (("stdout", stdout), ("stderr", stderr)) if on}
    try:
        with open(path, "rb") as handle:
            handle.seek(offset)
            for line in handle:
                if not line.endswith(b"\n"):
                    break
                offset += len(line)
                record = _parse(line)
                if record is not None and record.get("stream") in wanted:
                    record["_offset"] = offset
                    yield record
                else:
                    yield {"_offset": offset}
    except FileNotFoundError:
        return


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


def log_size(path: Path) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0
