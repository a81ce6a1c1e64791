"""Docker's display of a JSON progress stream (pull, push, load).

On a terminal, every layer keeps one line that is redrawn in place (``a801ddcf8bd2: Downloading
[=====>    ]  1.2MB/3.4MB``), as the docker CLI's jsonmessage does; elsewhere each status change is one
line and byte-count updates are left out.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any, TextIO

from pyengine.cli.session import CommandError


def _error_of(message: dict[str, Any]) -> str | None:
    if message.get("error") or message.get("errorDetail"):
        detail = message.get("errorDetail") or {}
        return str(message.get("error") or detail.get("message"))
    return None


def display(
    messages: Iterable[dict[str, Any]], out: TextIO | None = None, *, tty: bool | None = None
) -> list[dict]:
    """Print the stream; return the ``aux`` objects; CommandError (exit 1) on an error message."""
    out = out or sys.stdout
    if tty is None:
        tty = out.isatty()
    lines: dict[str, int] = {}  # id -> line index (terminal mode)
    aux: list[dict] = []
    for message in messages:
        error = _error_of(message)
        if error is not None:
            raise CommandError(error, 1)
        if "aux" in message:
            aux.append(message["aux"])
            continue
        if "stream" in message:
            out.write(message["stream"])
            out.flush()
            continue
        status = message.get("status")
        if not status:
            continue
        ident = message.get("id")
        if not tty:
            if message.get("progress") and ident:
                continue
            out.write(f"{ident}: {status}\n" if ident else f"{status}\n")
            out.flush()
            continue
        text = f"{ident}: {status} {message.get('progress', '')}".rstrip() if ident else status
        if ident is None or ident not in lines:
            if ident is not None:
                lines[ident] = len(lines)
            # a line without an id ends the redrawn block
            if ident is None:
                lines.clear()
            out.write(f"{text}\n")
        else:
            up = len(lines) - lines[ident]
            out.write(f"\x1b[{up}A\r\x1b[2K{text}\x1b[{up}B\r")
        out.flush()
    return aux
