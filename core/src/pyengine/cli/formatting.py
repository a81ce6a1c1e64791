"""What ``ps``, ``images`` and ``history`` print: Docker's columns, human sizes and "2 minutes ago".

Each listed object becomes a *row context*: a dict of Docker's formatter field names (``.ID``,
``.RunningFor``, ...) to strings, which ``--format`` templates read and ``{{json .}}`` prints whole.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping
from typing import Any

from pyengine.cli.gotemplate import Template
from pyengine.cli.gotemplate_funcs import TemplateError
from pyengine.cli.tabwriter import align
from pyengine.humanize import human_duration

_DECIMAL_UNITS = ("B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB")


def human_size(size: float, precision: int = 3) -> str:
    """Docker's HumanSizeWithPrecision: decimal units, ``precision`` significant digits (4.26MB)."""
    size = float(size)
    unit = 0
    while size >= 1000.0 and unit < len(_DECIMAL_UNITS) - 1:
        size /= 1000.0
        unit += 1
    return f"{size:.{precision}g}{_DECIMAL_UNITS[unit]}"


def since(timestamp: float, now: float | None = None) -> str:
    """ "5 minutes ago" for a unix timestamp."""
    now = time.time() if now is None else now
    return human_duration(max(0.0, now - timestamp)) + " ago"


def go_time_string(timestamp: float) -> str:
    """Go's ``time.Unix(t, 0).String()`` in the local zone: ``2026-11-22 18:05:57 +0000 UTC``."""
    return time.strftime("%Y-%m-%d %H:%M:%S %z %Z", time.localtime(timestamp))


def truncate_id(identifier: str) -> str:
    """Docker's TruncateID: drop an ``algo:`` prefix, keep 12 characters."""
    _, colon, rest = identifier.partition(":")
    return (rest if colon else identifier)[:12]


def ellipsis(text: str, width: int) -> str:
    """Shorten to ``width`` characters ending in "…" (Docker's formatter.Ellipsis)."""
    if len(text) <= width:
        return text
    if width <= 0:
        return ""
    return text[: width - 1] + "…"


def _join_host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def displayable_ports(ports: Iterable[Mapping[str, Any]]) -> str:
    """The PORTS column: ``0.0.0.0:8080->80/tcp, 53/udp``; consecutive ports collapse to ranges."""
    ordered = sorted(
        ports,
        key=lambda p: (p.get("PrivatePort", 0), p.get("IP", ""), p.get("PublicPort", 0), p.get("Type", "")),
    )
    groups: dict[str, list[int]] = {}  # key ("tcp" or "ip/tcp") -> [first, last], in insertion order
    result: list[str] = []
    mappings: list[str] = []
    for port in ordered:
        private = int(port.get("PrivatePort", 0))
        kind = port.get("Type", "tcp")
        ip = port.get("IP", "")
        key = kind
        if ip:
            public = int(port.get("PublicPort", 0))
            if public != private:
                mappings.append(f"{_join_host_port(ip, public)}->{private}/{kind}")
                continue
            key = f"{ip}/{kind}"
        group = groups.get(key)
        if group is None:
            groups[key] = [private, private]
        elif private == group[1] + 1:
            group[1] = private
        else:
            result.append(_port_group(key, *group))
            groups[key] = [private, private]
    result.extend(_port_group(key, *group) for key, group in groups.items())
    return ", ".join(result + mappings)


def _port_group(key: str, first: int, last: int) -> str:
    ip, slash, kind = key.rpartition("/")
    span = str(first) if first == last else f"{first}-{last}"
    if slash and ip:
        span = f"{ip}:{span}->{span}"
    return f"{span}/{kind or key}"


class RowContext(dict):
    """A row's fields; ``{{.Label "k"}}`` reads one label (a method, so ``json .`` leaves it out).

    An unknown field is an error naming Docker's Go type, as ``docker ps --format`` reports it.
    """

    labels: Mapping[str, str]
    go_type_name = "*formatter.Context"

    def Label(self, name: str) -> str:  # noqa: N802 - Docker's template name
        return self.labels.get(name, "")

    def go_json(self) -> str:
        """What ``{{json .}}`` prints: Docker marshals its row contexts as a map, so keys come sorted,
        and with Go's default HTML escaping."""
        text = json.dumps(dict(sorted(self.items())), ensure_ascii=False, separators=(",", ":"))
        return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


class HeaderRow(dict):
    """The header row's context: field names map to column titles."""

    def Label(self, _name: str) -> str:  # noqa: N802 - Docker's template name
        return "LABEL"


class ContainerRow(RowContext):
    go_type_name = "*formatter.ContainerContext"


class ImageRow(RowContext):
    go_type_name = "*formatter.ImageContext"


class HistoryRow(RowContext):
    go_type_name = "*image.historyContext"


def container_row(container: Mapping[str, Any], truncate: bool, now: float | None = None) -> RowContext:
    """Docker's ContainerContext fields for one entry of ``GET /containers/json``."""
    names = [name.lstrip("/") for name in container.get("Names") or []]
    if truncate:
        names = [name for name in names if "/" not in name][:1] or names[:1]
    image = container.get("Image") or ""
    image_id = container.get("ImageID") or ""
    if not image:
        image = "<no image>"
    elif truncate:
        if truncate_id(image_id) == truncate_id(image):
            image = truncate_id(image)
        elif "@" in image:
            image = image.split("@", 1)[0]
    command = container.get("Command") or ""
    labels = container.get("Labels") or {}
    mounts = []
    for mount in container.get("Mounts") or []:
        name = mount.get("Name") or mount.get("Source") or ""
        mounts.append(ellipsis(name, 15) if truncate else name)
    networks = sorted(((container.get("NetworkSettings") or {}).get("Networks") or {}).keys())
    created = float(container.get("Created") or 0)
    size = human_size(container.get("SizeRw") or 0)
    if container.get("SizeRootFs"):
        size = f"{size} (virtual {human_size(container['SizeRootFs'])})"
    row = ContainerRow(
        ID=truncate_id(container.get("Id", "")) if truncate else container.get("Id", ""),
        Image=image,
        Command=json.dumps(ellipsis(command, 20) if truncate else command, ensure_ascii=False),
        CreatedAt=go_time_string(created),
        RunningFor=since(created, now),
        Ports=displayable_ports(container.get("Ports") or []),
        State=container.get("State", ""),
        Status=container.get("Status", ""),
        Size=size,
        Names=",".join(names),
        Labels=",".join(f"{key}={value}" for key, value in sorted(labels.items())),
        Mounts=",".join(mounts),
        LocalVolumes=str(sum(1 for m in container.get("Mounts") or [] if m.get("Driver") == "local")),
        Networks=",".join(networks),
    )
    row.labels = labels
    return row


CONTAINER_HEADERS = {
    "ID": "CONTAINER ID",
    "Image": "IMAGE",
    "Command": "COMMAND",
    "CreatedAt": "CREATED AT",
    "RunningFor": "CREATED",
    "Ports": "PORTS",
    "State": "STATE",
    "Status": "STATUS",
    "Size": "SIZE",
    "Names": "NAMES",
    "Labels": "LABELS",
    "Mounts": "MOUNTS",
    "LocalVolumes": "LOCAL VOLUMES",
    "Networks": "NETWORKS",
}
CONTAINER_TABLE = (
    "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}"
)


def _split_reference(reference: str) -> tuple[str, str]:
    """``repo:tag`` -> (repo, tag); the colon of a registry port is not a tag separator."""
    repo, colon, tag = reference.rpartition(":")
    if not colon or "/" in tag:
        return reference, "<none>"
    return repo, tag


def image_rows(image: Mapping[str, Any], truncate: bool, now: float | None = None) -> list[RowContext]:
    """One row per tag (``<none>`` rows for an untagged image), Docker's ImageContext fields."""
    digests: dict[str, str] = {}
    for entry in image.get("RepoDigests") or []:
        repo, _, digest = entry.partition("@")
        digests.setdefault(repo, digest)
    pairs = [_split_reference(tag) for tag in image.get("RepoTags") or [] if tag != "<none>:<none>"]
    if not pairs:
        pairs = [(repo, "<none>") for repo in digests] or [("<none>", "<none>")]
    image_id = image.get("Id", "")
    created = float(image.get("Created") or 0)
    shared = image.get("SharedSize", -1)
    containers = image.get("Containers", -1)
    rows = []
    for repo, tag in pairs:
        row = ImageRow(
            Repository=repo,
            Tag=tag,
            ID=truncate_id(image_id) if truncate else image_id,
            Digest=digests.get(repo, "<none>"),
            CreatedSince=since(created, now),
            CreatedAt=go_time_string(created),
            Size=human_size(image.get("Size") or 0),
            VirtualSize=human_size(image.get("VirtualSize") or image.get("Size") or 0, 4),
            SharedSize="N/A" if shared is None or shared < 0 else human_size(shared),
            UniqueSize="N/A"
            if shared is None or shared < 0
            else human_size((image.get("Size") or 0) - shared),
            Containers="N/A" if containers is None or containers < 0 else str(containers),
        )
        row.labels = image.get("Labels") or {}
        rows.append(row)
    return rows


IMAGE_HEADERS = {
    "ID": "IMAGE ID",
    "Repository": "REPOSITORY",
    "Tag": "TAG",
    "Digest": "DIGEST",
    "CreatedSince": "CREATED",
    "CreatedAt": "CREATED AT",
    "Size": "SIZE",
    "VirtualSize": "VIRTUAL SIZE",
    "SharedSize": "SHARED SIZE",
    "UniqueSize": "UNIQUE SIZE",
    "Containers": "CONTAINERS",
}
IMAGE_TABLE = "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"


def history_row(
    layer: Mapping[str, Any], truncate: bool, human: bool = True, now: float | None = None
) -> RowContext:
    """Docker's HistoryContext fields for one entry of ``GET /images/{name}/history``."""
    layer_id = layer.get("Id") or "<missing>"
    created = float(layer.get("Created") or 0)
    created_by = (layer.get("CreatedBy") or "").replace("\t", " ")
    size = int(layer.get("Size") or 0)
    row = HistoryRow(
        ID=truncate_id(layer_id) if truncate and layer_id != "<missing>" else layer_id,
        CreatedSince=since(created, now)
        if human
        else time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(created)),
        CreatedAt=time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(created)),
        CreatedBy=ellipsis(created_by, 45) if truncate else created_by,
        Size=human_size(size) if human else str(size),
        Comment=layer.get("Comment") or "",
        Tags=", ".join(layer.get("Tags") or []),
    )
    row.labels = {}
    return row


HISTORY_HEADERS = {
    "ID": "IMAGE",
    "CreatedSince": "CREATED",
    "CreatedAt": "CREATED AT",
    "CreatedBy": "CREATED BY",
    "Size": "SIZE",
    "Comment": "COMMENT",
    "Tags": "TAGS",
}
HISTORY_TABLE = "table {{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}"


def _header_functions() -> dict[str, Any]:
    """Docker renders the header row with these functions returning their first argument as is."""
    identity = lambda value, *_rest: value  # noqa: E731
    return {
        name: identity for name in ("json", "split", "join", "title", "lower", "upper", "pad", "truncate")
    }


def render_rows(
    format_text: str, rows: Iterable[Mapping[str, Any]], headers: Mapping[str, str], default_table: str
) -> str:
    """Render rows with a ``--format`` value as the docker CLI does.

    ``table ...`` prints a header row then aligns everything with the tabwriter; ``json`` is
    ``{{json .}}``; any other text is a template rendered once per row, each followed by a newline.
    """
    if format_text in ("", "table"):
        format_text = default_table
    elif format_text == "json":
        format_text = "{{json .}}"
    table = format_text.startswith("table")
    if table:
        format_text = format_text[len("table") :].strip(" ")
    try:
        template = parse_template(format_text)
        header = parse_template(format_text, _header_functions()) if table else None
    except TemplateError as exc:
        raise TemplateError(f"failed to parse template: {exc}") from None
    out: list[str] = []
    try:
        if header is not None:
            out.append(header.render(HeaderRow(headers)) + "\n")
        for row in rows:
            out.append(template.render(row) + "\n")
    except TemplateError as exc:
        raise TemplateError(f"failed to execute template: {exc}") from None
    text = "".join(out)
    return align(text) if table else text


def parse_template(
    format_text: str, functions: dict[str, Any] | None = None, missing_key_error: bool = False
) -> Template:
    """A template for ``--format``: ``\\t`` and ``\\n`` typed literally become tab and newline."""
    return Template(format_text.replace("\\t", "\t").replace("\\n", "\n"), functions, missing_key_error)
