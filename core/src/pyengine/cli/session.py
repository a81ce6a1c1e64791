"""What every invocation shares, without click: the client to the daemon (starting the daemon when
it is ours to start) and the way failures are reported and turned into exit statuses."""

from __future__ import annotations

import os
import sys

from pyengine.cli.client import DEFAULT_HOST, APIError, Client, DaemonPermissionDenied, DaemonUnreachable

TYPE_CHECKING = False  # typing costs ~5 ms to import; annotations alone need it only for checkers
if TYPE_CHECKING:
    from collections.abc import Callable

AUTOSTART_LOG = "/var/log/pyengine.log"
AUTOSTART_TIMEOUT = 10.0


class CommandError(Exception):
    """A failure the CLI reports itself: ``message`` goes to stderr as is, then exit ``exit_code``."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


def make_client(host: str) -> Client:
    """The client for ``host``; root using the default socket gets the daemon started if needed."""
    autostart = start_daemon if host == DEFAULT_HOST and os.geteuid() == 0 else None
    try:
        return Client(host, autostart=autostart)
    except ValueError as exc:
        raise CommandError(f"pyengine: {exc}", 1) from exc


def start_daemon(client: Client) -> None:
    """Start ``pyengine daemon`` in its own session and wait until it answers ``/_ping``.

    A lock next to the socket makes concurrent CLIs (``run -d`` in parallel) start one daemon: the
    others wait for the lock, then find it answering.
    """
    import fcntl
    import subprocess
    import time

    lock_dir = os.path.dirname(client.socket_path)
    os.makedirs(lock_dir, mode=0o711, exist_ok=True)
    with open(os.path.join(lock_dir, "autostart.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if client.ping():
            return
        with open(AUTOSTART_LOG, "ab") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "pyengine", "daemon"],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
                close_fds=True,
            )
        deadline = time.monotonic() + AUTOSTART_TIMEOUT
        while time.monotonic() < deadline:
            if client.ping():
                return
            if process.poll() not in (None, 0):  # exit 0 may be a daemon that forked: keep waiting
                break
            time.sleep(0.02)
    raise DaemonUnreachable(client.host, f"Starting it failed; see {AUTOSTART_LOG}")


def report(command: Callable[[], int | None]) -> int:
    """Run ``command`` and turn the failures the CLI knows into docker's messages and statuses."""
    try:
        result = command()
    except CommandError as exc:
        if exc.message:
            _error(exc.message)
        return exc.exit_code
    except APIError as exc:
        _error(f"Error response from daemon: {exc.message}")
        return 1
    except DaemonUnreachable as exc:
        _error(f"Cannot connect to the pyengine daemon at {exc}. Is the daemon running?")
        if exc.hint:
            _error(exc.hint)
        return 1
    except DaemonPermissionDenied as exc:
        _error(str(exc))
        return 1
    except BrokenPipeError:
        return 1
    except KeyboardInterrupt:  # ^C before signals are proxied (or in a command that streams)
        return 130
    return result if isinstance(result, int) else 0


def _error(message: str) -> None:
    sys.stdout.flush()
    sys.stderr.write(message + "\n")
    sys.stderr.flush()
