"""``pyengine registry serve`` and ``garbage-collect`` (also ``python -m pyengine.registry ...``)."""

from __future__ import annotations

import ssl
from pathlib import Path

import click

from pyengine.errors import EngineError


@click.group(context_settings={"help_option_names": ["--help"]})
def registry() -> None:
    """Run a registry of our own (the OCI distribution API)."""


@registry.command("serve")
@click.option(
    "--addr",
    default="127.0.0.1:5000",
    show_default=True,
    help="HOST:PORT to listen on (port 0: a free one, printed on start)",
)
@click.option(
    "--root",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory holding blobs, repositories and uploads (created if missing)",
)
@click.option(
    "--htpasswd",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Require basic auth against this htpasswd file (bcrypt entries, htpasswd -B)",
)
@click.option(
    "--tls-cert", type=click.Path(exists=True, dir_okay=False, path_type=Path), help="PEM certificate"
)
@click.option(
    "--tls-key", type=click.Path(exists=True, dir_okay=False, path_type=Path), help="PEM private key"
)
def serve(addr: str, root: Path, htpasswd: Path | None, tls_cert: Path | None, tls_key: Path | None) -> None:
    """Serve the registry until SIGTERM or Ctrl-C."""
    from pyengine.registry.server import RegistryConfig, parse_addr, run

    try:
        host, port = parse_addr(addr)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--addr") from None
    if (tls_cert is None) != (tls_key is None):
        raise click.UsageError("--tls-cert and --tls-key go together")
    config = RegistryConfig(
        root=root, host=host, port=port, htpasswd=htpasswd, tls_cert=tls_cert, tls_key=tls_key
    )
    try:
        run(config)
    except (OSError, ValueError, ssl.SSLError, EngineError) as exc:
        raise click.ClickException(str(exc)) from None


@registry.command("garbage-collect")
@click.option(
    "--root",
    required=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="The registry's directory (the registry must not be serving it)",
)
@click.option("--dry-run", is_flag=True, help="Only list what would be deleted")
@click.option(
    "-m", "--delete-untagged", is_flag=True, help="Also delete manifests no tag reaches, and their blobs"
)
def garbage_collect(root: Path, dry_run: bool, delete_untagged: bool) -> None:
    """Delete the blobs (and untagged manifests, with -m) nothing refers to any more."""
    from pyengine.registry.gc import collect_garbage

    try:
        report = collect_garbage(root, dry_run=dry_run, delete_untagged=delete_untagged)
    except EngineError as exc:
        raise click.ClickException(str(exc)) from None
    verb = "would delete" if dry_run else "deleted"
    for repository, digest in report.manifests:
        click.echo(f"{repository}: {verb} manifest {digest}")
    for digest in report.blobs:
        click.echo(f"{verb} blob {digest}")
    click.echo(f"{len(report.blobs)} blobs, {report.bytes_freed} bytes {'to free' if dry_run else 'freed'}")
