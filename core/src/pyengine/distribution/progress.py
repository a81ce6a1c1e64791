"""Docker's JSON progress messages (pull, push, load) and a sink that streams them to a client.

The messages are the ones ``docker pull`` prints: ``{"status", "id", "progressDetail", "progress"}``
with the 50-column bar moby's jsonmessage draws, and ``{"errorDetail": {"message"}, "error"}`` for a
failure after the response has started.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

_UNITS = ("B", "kB", "MB", "GB", "TB", "PB")


def human_size(size: float) -> str:
    """go-units HumanSize: decimal units, four significant digits (19968 -> 19.97kB)."""
    unit = 0
    while size >= 1000 and unit < len(_UNITS) - 1:
        size /= 1000
        unit += 1
    return f"{size:.4g}{_UNITS[unit]}"


def progress_bar(current: int, total: int) -> str:
    if total <= 0:
        return f"{human_size(current):>8}"
    filled = min(int(current / total * 100) // 2, 50)
    bar = "[" + "=" * filled + ">" + " " * (50 - filled) + "] "
    if current > total:
        return bar + f"{human_size(current):>8}"
    return bar + f"{human_size(current):>8}/{human_size(total)}"


def short_id(digest: str) -> str:
    return digest.split(":", 1)[-1][:12]


def status(text: str, ident: str | None = None, **extra: Any) -> dict[str, Any]:
    message: dict[str, Any] = {"status": text}
    if ident is not None:
        message["progressDetail"] = {}
        message["id"] = ident
    message.update(extra)
    return message


def progress(text: str, ident: str, current: int, total: int) -> dict[str, Any]:
    return {
        "status": text,
        "progressDetail": {"current": current, "total": total},
        "progress": progress_bar(current, total),
        "id": ident,
    }


def error(message: str) -> dict[str, Any]:
    return {"errorDetail": {"message": message}, "error": message}


def encode(message: dict[str, Any]) -> bytes:
    return json.dumps(message, separators=(",", ":")).encode() + b"\r\n"


class ProgressSink:
    """Collects progress messages from the event loop or from worker threads, in order.

    ``emit`` is for the loop, ``emit_threadsafe`` for threads (extraction); ``throttled`` drops
    byte-count updates that come faster than every 100 ms per id, as dockerd does.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self.queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self.loop = loop or asyncio.get_running_loop()
        self._last: dict[str, float] = {}

    def emit(self, message: dict[str, Any]) -> None:
        self.queue.put_nowait(message)

    def emit_threadsafe(self, message: dict[str, Any]) -> None:
        self.loop.call_soon_threadsafe(self.queue.put_nowait, message)

    def throttled(self, text: str, ident: str, current: int, total: int, *, thread: bool = False) -> None:
        now = time.monotonic()
        key = f"{text}/{ident}"
        if current < total and now - self._last.get(key, 0.0) < 0.1:
            return
        self._last[key] = now
        message = progress(text, ident, current, total)
        (self.emit_threadsafe if thread else self.emit)(message)

    def close(self) -> None:
        self.queue.put_nowait(None)
