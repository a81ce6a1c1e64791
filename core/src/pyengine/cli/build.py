"""``pyengine build`` as a click command (``--help``, and whatever :mod:`pyengine.cli.fastbuild`
leaves to click); the work is in :mod:`pyengine.cli.build_run`."""

from __future__ import annotations

import click

from pyengine.cli.app import client_of
from pyengine.cli.build_run import run_build, write_context  # noqa: F401 - write_context: tests

_SETTINGS = {"help_option_names": ["--help"]}


@click.command(context_settings=_SETTINGS)
@click.option("-t", "--tag", "tags", multiple=True, help="Name and optionally a tag (name:tag)")
@click.option("-f", "--file", "dockerfile", help="Name of the Dockerfile (default: PATH/Dockerfile)")
@click.option("--build-arg", "build_args", multiple=True, help="Set build-time variables")
@click.option("--target", help="Set the target build stage to build")
@click.option("--no-cache", is_flag=True, help="Do not use cache when building the image")
@click.option("--cache-from", "cache_from", multiple=True, help="Images to consider as cache sources")
@click.option("-q", "--quiet", is_flag=True, help="Suppress the build output and print image ID on success")
@click.option("--label", "labels", multiple=True, help="Set metadata for an image")
@click.option("--rm/--no-rm", default=True, help="Remove intermediate containers (always done)")
@click.option("--pull", is_flag=True, help="Accepted for compatibility; pyengine cannot pull")
@click.argument("path")
@click.pass_context
def build(ctx: click.Context, **params: object) -> int:
    """Build an image from a Dockerfile."""
    return run_build(client_of(ctx), params)
