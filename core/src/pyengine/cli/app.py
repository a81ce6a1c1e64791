"""The click application: the ``pyengine`` group, whose subcommands are imported only when invoked.

Every command module is imported by the command that needs it (templates, tables, image commands,
the daemon). The ``daemon`` command lives in :mod:`pyengine.cli.daemon_cmd` (attribute ``daemon``);
when that module does not import, the command is simply absent. ``pyengine run`` usually does not
come here at all: :mod:`pyengine.cli.fastrun` handles it without click.
"""

from __future__ import annotations

from typing import Any

import click

from pyengine import __version__
from pyengine.cli.client import DEFAULT_HOST, Client, default_host
from pyengine.cli.session import make_client, report

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
    "exec": "pyengine.cli.containers:exec_",
    "rename": "pyengine.cli.containers:rename",
    "pause": "pyengine.cli.resources:pause",
    "unpause": "pyengine.cli.resources:unpause",
    "top": "pyengine.cli.resources:top",
    "stats": "pyengine.cli.resources:stats",
    "update": "pyengine.cli.resources:update",
    "ps": "pyengine.cli.listing:ps",
    "inspect": "pyengine.cli.listing:inspect",
    "images": "pyengine.cli.listing:images",
    "tag": "pyengine.cli.images:tag",
    "rmi": "pyengine.cli.images:rmi",
    "import": "pyengine.cli.images:import_",
    "history": "pyengine.cli.images:history",
    "pull": "pyengine.cli.images:pull",
    "build": "pyengine.cli.build:build",
    "push": "pyengine.cli.distribution:push",
    "login": "pyengine.cli.distribution:login",
    "logout": "pyengine.cli.distribution:logout",
    "save": "pyengine.cli.distribution:save",
    "load": "pyengine.cli.distribution:load",
    "image": "pyengine.cli.distribution:image",
    "version": "pyengine.cli.system:version",
    "info": "pyengine.cli.system:info",
    "events": "pyengine.cli.system:events",
    "commit": "pyengine.cli.container_files:commit",
    "diff": "pyengine.cli.container_files:diff",
    "export": "pyengine.cli.container_files:export",
    "cp": "pyengine.cli.container_files:cp",
    "network": "pyengine.cli.networks:network",
    "port": "pyengine.cli.networks:port",
    "daemon": "pyengine.cli.daemon_cmd:daemon",
    "volume": "pyengine.cli.volumes:volume",
    "registry": "pyengine.registry.cli:registry",
    "container": "pyengine.cli.prune:container",
    "builder": "pyengine.cli.prune:builder",
    "system": "pyengine.cli.prune:system",
}

_NO_ARGS_IS_HELP = getattr(click.exceptions, "NoArgsIsHelpError", ())


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
            self._client = make_client(self.host)
        return self._client


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


def run_cli(argv: list[str] | None = None) -> int:
    """Run the click application and return the exit status, reporting errors like the docker CLI."""

    def invoke() -> int:
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
        return result if isinstance(result, int) else 0

    return report(invoke)
