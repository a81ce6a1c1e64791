"""``pyengine run`` and ``pyengine create`` as click commands (the flow itself is in runner.py).

``pyengine run`` normally takes the click-free path of :mod:`pyengine.cli.fastrun`; it comes here for
``--help`` and for anything that path leaves to click (unknown flags, odd spellings), so both must
accept the same flags: both are built from ``RUN_FLAGS``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from pyengine.cli.app import client_of
from pyengine.cli.create_options import RUN_FLAGS
from pyengine.cli.runner import create_container, options_from, run_container

_ARGS_SETTINGS = {"allow_interspersed_args": False, "help_option_names": ["--help"]}


def container_options(detach: bool) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The flags of ``run`` (with ``-d``) or ``create``, from RUN_FLAGS, then IMAGE [COMMAND...]."""

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        options = []
        for names, dest, kind, help_text in RUN_FLAGS:
            if dest == "detach" and not detach:
                continue
            if kind == "bool":
                options.append(click.option(*names, dest, is_flag=True, help=help_text))
            elif kind == "multi":
                options.append(click.option(*names, dest, multiple=True, help=help_text))
            elif kind == "int":
                options.append(click.option(*names, dest, type=int, help=help_text))
            elif kind.startswith("choice:"):
                choices = kind[len("choice:") :].split(",")
                options.append(
                    click.option(
                        *names,
                        dest,
                        type=click.Choice(choices),
                        default=choices[0],
                        show_default=True,
                        help=help_text,
                    )
                )
            else:
                options.append(click.option(*names, dest, help=help_text))
        options.append(click.argument("image"))
        options.append(click.argument("command", nargs=-1, type=click.UNPROCESSED))
        for option in reversed(options):
            func = option(func)
        return func

    return decorate


@click.command(context_settings=_ARGS_SETTINGS)
@container_options(detach=True)
@click.pass_context
def run(ctx: click.Context, **params: Any) -> int:
    """Create and run a new container from an image."""
    return run_container(client_of(ctx), params)


@click.command(context_settings=_ARGS_SETTINGS)
@container_options(detach=False)
@click.pass_context
def create(ctx: click.Context, **params: Any) -> int:
    """Create a new container."""
    client = client_of(ctx)
    print(create_container(client, options_from(params, detach=True), params["pull"]))
    return 0
