"""The ``pyengine`` entry point.

``pyengine run ...`` goes through :mod:`pyengine.cli.fastrun`, which parses docker's run flags
without importing click (about a quarter of the CLI's start-up); anything it does not recognise,
and every other command, goes to the click application in :mod:`pyengine.cli.app`.
"""

from __future__ import annotations

import sys


def run_cli(argv: list[str] | None = None) -> int:
    """Run the CLI and return the exit status instead of exiting (for tests and embedding)."""
    args = sys.argv[1:] if argv is None else list(argv)
    from pyengine.cli.fastrun import try_fast_run

    status = try_fast_run(args)
    if status is not None:
        return status
    from pyengine.cli.app import run_cli as run_click_app

    return run_click_app(args)


def main(argv: list[str] | None = None) -> None:
    """Run the CLI and exit with the command's status."""
    status = run_cli(argv)
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        # `pyengine ps | head -1`: the reader left. Point stdout at /dev/null so that the flush at
        # interpreter exit does not print a second error.
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        status = status or 1
    sys.exit(status)
