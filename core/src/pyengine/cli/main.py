"""The ``pyengine`` command: a click group whose subcommands are imported only when invoked.

``pyengine run`` pays for click, the HTTP client and run.py; everything else (templates, tables,
image commands, the daemon) is imported by the command that needs it. The ``daemon`` command lives in
:mod:`pyengine.cli.daemon_cmd` (attribute ``daemon``); when that module does not import, the command is
simply absent.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import click

from pyengine import __version__
from pyengine.cli.client import DEFAULT_HOST, APIError, Client, DaemonUnreachable, default_host

# name -> "module:attribute"; the module is imported only when the command runs (or for --help).
COMMANDS: dict[str, str] = {
    "run": "pyengine.cli.run:run",
    "create": "pyengine.cli.run:create",
    "start": "pyengine.cli.containers:start",
    "stop": "pyengine.cli.containers:stop",
    "kill": "pyengine.cli.containers:kill",
    "restart": "pyengine.cli.containers:restart",
    "rm": "pyengine.cli.containers:rm",
    "wait": "pyengine.cli.containers:wait",
    "attach": "pyengine.cli.containers:attach",
    "logs": "pyengine.cli.containers:logs",
    "ps": "pyengine.cli.listing:ps",
    "inspect": "pyengine.cli.listing:inspect",
    "images": "pyengine.cli.listing:images",
    "tag": "pyengine.cli.images:tag",
    "rmi": "pyengine.cli.images:rmi",
    "import": "pyengine.cli.images:import_",
    "history": "pyengine.cli.images:history",
    "pull": "pyengine.cli.images:pull",
    "version": "pyengine.cli.system:version",
    "info": "pyengine.cli.system:info",
    "events": "pyengine.cli.system:events",
    "daemon": "pyengine.cli.daemon_cmd:daemon",
}

_NO_ARGS_IS_HELP = getattr(click.exceptions, "NoArgsIsHelpError", ())
AUTOSTART_LOG = "/var/log/pyengine.log"
AUTOSTART_TIMEOUT = 10.0


class CommandError(Exception):
    """A failure the CLI reports itself: ``message`` goes to stderr as is, then exit ``exit_code``."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


class LazyGroup(click.Group):
    """A group that imports a subcommand's module only when that subcommand is looked up."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(name for name in COMMANDS if self.get_command(ctx, name) is not None)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, attribute = target.split(":")
        try:
            module = __import__(module_name, fromlist=[attribute])
        except ImportError:
            if module_name == "pyengine.cli.daemon_cmd":
                return None  # the daemon is optional for a client-only install
            raise
        return getattr(module, attribute)


class Globals:
    """What the global options decide, shared with every subcommand through ``ctx.obj``."""

    def __init__(self, host: str) -> None:
        self.host = host
        self._client: Client | None = None

    def client(self) -> Client:
        if self._client is None:
            autostart = start_daemon if self.host == DEFAULT_HOST and os.geteuid() == 0 else None
            try:
                self._client = Client(self.host, autostart=autostart)
            except ValueError as exc:
                raise CommandError(f"pyengine: {exc}", 1) from exc
        return self._client


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
    unreachable = DaemonUnreachable(client.host)
    unreachable.hint = f"Starting it failed; see {AUTOSTART_LOG}"
    raise unreachable


def client_of(ctx: click.Context) -> Client:
    """The API client for this invocation (commands call this, not ``Client`` directly)."""
    return ctx.find_object(Globals).client()  # type: ignore[union-attr]


def _print_version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if value and not ctx.resilient_parsing:
        click.echo(f"pyengine version {__version__}")
        ctx.exit()


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["--help"]})
@click.option(
    "-H",
    "--host",
    default=None,
    metavar="HOST",
    help="Daemon socket to connect to (unix://PATH); default $PYENGINE_HOST, $DOCKER_HOST or " + DEFAULT_HOST,
)
@click.option(
    "--version",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=_print_version,
    help="Print version information and quit",
)
@click.pass_context
def cli(ctx: click.Context, host: str | None) -> None:
    """A self-sufficient runtime for containers, compatible with Docker."""
    ctx.obj = Globals(host or default_host())


def main(argv: list[str] | None = None) -> None:
    """Run the CLI and exit with the command's status, reporting errors the way the docker CLI does."""
    status = run_cli(argv)
    sys.stdout.flush()
    sys.exit(status)


def run_cli(argv: list[str] | None = None) -> int:
    """Run the CLI and return the exit status instead of exiting (for tests and embedding)."""
    try:
        result: Any = cli.main(args=argv, prog_name="pyengine", standalone_mode=False)
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.UsageError as exc:
        exc.show()
        # "pyengine" alone prints the help, which is not a mistake (docker exits 0 too)
        return 0 if isinstance(exc, _NO_ARGS_IS_HELP) else 125
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.Abort:
        return 130
    except CommandError as exc:
        if exc.message:
            click.echo(exc.message, err=True)
        return exc.exit_code
    except APIError as exc:
        click.echo(f"Error response from daemon: {exc.message}", err=True)
        return 1
    except DaemonUnreachable as exc:
        click.echo(f"Cannot connect to the pyengine daemon at {exc}. Is the daemon running?", err=True)
        if getattr(exc, "hint", None):
            click.echo(exc.hint, err=True)
        return 1
    except BrokenPipeError:
        return 1
    return result if isinstance(result, int) else 0
