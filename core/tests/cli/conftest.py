"""Fixtures for the CLI tests: a scripted daemon on a unix socket and a way to run the CLI."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"
# Test this checkout's sources even when another copy of pyengine is installed.
if str(SRC) not in sys.path:
    sys.path.insert(0, str(SRC))

from scripted_daemon import Reply, Request, Result, ScriptedDaemon, run_cli  # noqa: E402


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Callable[[Callable[[Request], Reply]], ScriptedDaemon]]:
    """``daemon(route)`` starts a scripted daemon on a socket in tmp_path."""
    started: list[ScriptedDaemon] = []

    def start(route: Callable[[Request], Reply]) -> ScriptedDaemon:
        scripted = ScriptedDaemon(str(tmp_path / f"engine{len(started)}.sock"), route)
        started.append(scripted)
        return scripted

    yield start
    for scripted in started:
        scripted.close()


@pytest.fixture
def cli() -> Callable[..., Result]:
    return run_cli
