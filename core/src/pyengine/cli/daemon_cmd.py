"""``pyengine daemon``: the click command that starts the daemon (imported lazily by the CLI)."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("daemon")
@click.option(
    "--data-root",
    type=click.Path(path_type=Path),
    default="/var/lib/pyengine",
    show_default=True,
    help="Root directory of persistent state",
)
@click.option(
    "--exec-root",
    type=click.Path(path_type=Path),
    default="/run/pyengine",
    show_default=True,
    help="Root directory of execution state (sockets, supervisor)",
)
@click.option("-H", "--host", "hosts", multiple=True, help="unix:// socket to listen on")
@click.option("-s", "--storage-driver", default=None, help="Storage driver to use")
@click.option("--storage-opt", multiple=True, help="Storage driver option KEY=VALUE")
@click.option("-G", "--group", default=None, help="Group owning the API socket")
@click.option("-D", "--debug", is_flag=True, help="Debug logging")
@click.option(
    "--volume-plugin-dir",
    "volume_plugin_dirs",
    multiple=True,
    type=click.Path(path_type=Path),
    help="Directory of Docker volume plugin sockets/specs (default: Docker's)",
)
@click.option(
    "--userns-remap",
    default=None,
    metavar="default|USER[:GROUP]",
    help="Run containers in a user namespace mapped to the user's /etc/subuid and /etc/subgid range",
)
def daemon(
    data_root: Path,
    exec_root: Path,
    hosts: tuple[str, ...],
    storage_driver: str | None,
    storage_opt: tuple[str, ...],
    group: str | None,
    debug: bool,
    volume_plugin_dirs: tuple[Path, ...] = (),
    userns_remap: str | None = None,
) -> None:
    """Run the pyengine daemon."""
    from pyengine.daemon import userns_remap as remap
    from pyengine.daemon.config import DEFAULT_HOST, DaemonConfig
    from pyengine.daemon.server import run
    from pyengine.errors import EngineError

    options = {}
    for item in storage_opt:
        key, sep, value = item.partition("=")
        if not sep:
            raise click.BadParameter(f"expected KEY=VALUE, got {item!r}", param_hint="--storage-opt")
        options[key] = value
    config = DaemonConfig(
        data_root=data_root.absolute(),
        exec_root=exec_root.absolute(),
        hosts=list(hosts) or [DEFAULT_HOST],
        storage_driver=storage_driver,
        storage_options=options,
        socket_group=group,
        debug=debug,
        volume_plugin_dirs=[p.absolute() for p in volume_plugin_dirs] or None,
        userns_remap=userns_remap,
    )
    try:
        remap.resolve(config.userns_remap)  # refuse to start on a bad value, before anything runs
    except EngineError as exc:
        raise click.ClickException(str(exc)) from None
    run(config)
