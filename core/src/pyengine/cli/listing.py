"""``ps``, ``images`` and ``inspect``: listing and showing objects, with ``--format`` templates."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from typing import Any

import click

from pyengine.cli.app import client_of
from pyengine.cli.client import APIError, Client
from pyengine.cli.gotemplate_funcs import TemplateError
from pyengine.cli.session import CommandError

_SETTINGS = {"help_option_names": ["--help"]}


def parse_filters(items: Iterable[str]) -> str | None:
    """``--filter k=v`` flags -> the API's ``filters`` JSON ``{"k": {"v": true}}`` (None if none)."""
    filters: dict[str, dict[str, bool]] = {}
    for item in items:
        key, equals, value = item.partition("=")
        if not equals or not key:
            raise CommandError(
                f'invalid argument "{item}" for "-f, --filter" flag: bad format of '
                "filter (expected name=value)",
                125,
            )
        filters.setdefault(key.strip().lower(), {})[value] = True
    return json.dumps(filters, separators=(",", ":")) if filters else None


def print_rows(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


def render_listing(format_text: str, rows: list[Any], headers: dict[str, str], default_table: str) -> str:
    """The rows formatted with ``--format`` (or ``default_table``); a bad template is a CLI error."""
    from pyengine.cli.formatting import render_rows

    try:
        return render_rows(format_text, rows, headers, default_table)
    except TemplateError as exc:
        raise CommandError(str(exc), 1) from exc


@click.command(context_settings=_SETTINGS)
@click.option(
    "-a", "--all", "show_all", is_flag=True, help="Show all containers (default shows just running)"
)
@click.option("-q", "--quiet", is_flag=True, help="Only display container IDs")
@click.option("--no-trunc", is_flag=True, help="Don't truncate output")
@click.option("-f", "--filter", "filters", multiple=True, help="Filter output based on conditions provided")
@click.option("--format", "format_text", default="", help="Format output using a custom template")
@click.option(
    "-n", "--last", type=int, default=-1, help="Show n last created containers (includes all states)"
)
@click.option("-l", "--latest", is_flag=True, help="Show the latest created container (includes all states)")
@click.option("-s", "--size", is_flag=True, help="Display total file sizes")
@click.pass_context
def ps(
    ctx: click.Context,
    show_all: bool,
    quiet: bool,
    no_trunc: bool,
    filters: tuple[str, ...],
    format_text: str,
    last: int,
    latest: bool,
    size: bool,
) -> int:
    """List containers."""
    from pyengine.cli import formatting

    client = client_of(ctx)
    query: dict[str, Any] = {}
    if show_all or latest or last > 0:
        query["all"] = True
    if latest:
        query["limit"] = 1
    elif last > 0:
        query["limit"] = last
    if size or "{{.Size" in format_text:
        query["size"] = True
    query["filters"] = parse_filters(filters)
    containers = client.get("/containers/json", query) or []
    if quiet and not format_text:
        format_text = "{{.ID}}"
    rows = [formatting.container_row(container, truncate=not no_trunc) for container in containers]
    default = formatting.CONTAINER_TABLE + ("\t{{.Size}}" if size else "")
    print_rows(render_listing(format_text, rows, formatting.CONTAINER_HEADERS, default))
    return 0


@click.command(context_settings=_SETTINGS)
@click.option(
    "-a", "--all", "show_all", is_flag=True, help="Show all images (default hides intermediate images)"
)
@click.option("-q", "--quiet", is_flag=True, help="Only show image IDs")
@click.option("--no-trunc", is_flag=True, help="Don't truncate output")
@click.option("--digests", is_flag=True, help="Show digests")
@click.option("-f", "--filter", "filters", multiple=True, help="Filter output based on conditions provided")
@click.option("--format", "format_text", default="", help="Format output using a custom template")
@click.argument("repository", required=False)
@click.pass_context
def images(
    ctx: click.Context,
    show_all: bool,
    quiet: bool,
    no_trunc: bool,
    digests: bool,
    filters: tuple[str, ...],
    format_text: str,
    repository: str | None,
) -> int:
    """List images."""
    from pyengine.cli import formatting

    client = client_of(ctx)
    items = list(filters) + ([f"reference={repository}"] if repository else [])
    query: dict[str, Any] = {"all": True if show_all else None, "filters": parse_filters(items)}
    listed = client.get("/images/json", query) or []
    rows = [row for image in listed for row in formatting.image_rows(image, truncate=not no_trunc)]
    if quiet and not format_text:
        seen: set[str] = set()
        rows = [row for row in rows if not (row["ID"] in seen or seen.add(row["ID"]))]
        format_text = "{{.ID}}"
    default = formatting.IMAGE_TABLE
    if digests:
        default = default.replace("{{.Tag}}\t", "{{.Tag}}\t{{.Digest}}\t")
    print_rows(render_listing(format_text, rows, formatting.IMAGE_HEADERS, default))
    return 0


# (kind, path template) in the order docker tries them for an untyped inspect
INSPECT_KINDS = (
    ("container", "/containers/{}/json"),
    ("image", "/images/{}/json"),
    ("network", "/networks/{}"),
    ("volume", "/volumes/{}"),
)


def inspect_one(client: Client, name: str, kind: str | None, size: bool) -> Any:
    """The raw JSON of the first object type that knows ``name``.

    Raises CommandError when none does: docker's "No such object" for an untyped lookup, the
    daemon's own message when the type was given.
    """
    for candidate, path in INSPECT_KINDS:
        if kind is not None and candidate != kind:
            continue
        query = {"size": True} if size and candidate == "container" else None
        try:
            return client.get(path.format(name), query)
        except APIError as exc:
            if exc.status != 404:
                raise
            if kind is not None:
                raise CommandError(f"Error response from daemon: {exc.message}", 1) from exc
    raise CommandError(f"Error: No such object: {name}", 1)


@click.command(context_settings=_SETTINGS)
@click.option("-f", "--format", "format_text", default="", help="Format output using a custom template")
@click.option("-s", "--size", is_flag=True, help="Display total file sizes if the type is container")
@click.option(
    "--type",
    "kind",
    type=click.Choice(["container", "image", "network", "volume"]),
    help="Return JSON for specified type",
)
@click.argument("names", nargs=-1, required=True)
@click.pass_context
def inspect(
    ctx: click.Context, format_text: str, size: bool, kind: str | None, names: tuple[str, ...]
) -> int:
    """Return low-level information on pyengine objects."""
    client = client_of(ctx)
    template = None
    if format_text and format_text != "json":
        from pyengine.cli.formatting import parse_template

        try:
            template = parse_template(format_text, missing_key_error=True)
        except TemplateError as exc:
            raise CommandError(f"template parsing error: {exc}", 64) from exc
    found: list[Any] = []
    missing: list[str] = []
    for name in names:
        try:
            found.append(inspect_one(client, name, kind, size))
        except CommandError as exc:
            missing.append(exc.message)
    if template is not None:
        out = []
        for obj in found:
            try:
                out.append(template.render(obj) + "\n")
            except TemplateError as exc:
                sys.stdout.write("".join(out) + "\n")
                raise CommandError(f"template parsing error: {exc}", 1) from exc
        sys.stdout.write("".join(out))
    elif format_text == "json":
        sys.stdout.write(
            "".join(json.dumps(obj, ensure_ascii=False, separators=(",", ":")) + "\n" for obj in found)
        )
    else:
        sys.stdout.write(json.dumps(found, indent=4, ensure_ascii=False) + "\n")
    sys.stdout.flush()
    if missing:
        raise CommandError("\n".join(missing), 1)
    return 0
