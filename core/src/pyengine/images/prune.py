"""``docker image prune``: remove dangling images (no tag), or with ``all`` every image no container
uses; filters ``until`` and ``label`` / ``label!`` as Docker's."""

from __future__ import annotations

import time
from typing import Any

from pyengine.errors import InvalidArgument
from pyengine.images.store import ImageStore
from pyengine.model.base import parse_rfc3339


def _until(value: str) -> float:
    """A timestamp (unix seconds or RFC 3339) or a duration before now (``10m``, ``24h``)."""
    units = {"s": 1, "m": 60, "h": 3600}
    if value and value[-1] in units and value[:-1].replace(".", "", 1).isdigit():
        return time.time() - float(value[:-1]) * units[value[-1]]
    try:
        return float(value)
    except ValueError:
        pass
    try:
        return parse_rfc3339(value if value.endswith("Z") or "+" in value else value + "Z")
    except ValueError as exc:
        raise InvalidArgument(f"invalid filter 'until={value}'") from exc


def _label_match(labels: dict[str, str], wanted: str) -> bool:
    key, sep, value = wanted.partition("=")
    return key in labels and (not sep or labels[key] == value)


def prune(store: ImageStore, filters: dict[str, list[str]], users: dict[str, list[str]]) -> dict[str, Any]:
    """Docker's ``{"ImagesDeleted": [...], "SpaceReclaimed": n}``."""
    for key in filters:
        if key not in ("dangling", "until", "label", "label!"):
            raise InvalidArgument(f"invalid filter '{key}'")
    dangling_only = True
    if filters.get("dangling"):
        dangling_only = filters["dangling"][0].lower() in ("true", "1")
    deleted: list[dict[str, str]] = []
    reclaimed = 0
    for image in store.list():
        if image.id in users:
            continue
        if dangling_only and image.tags:
            continue
        if "until" in filters and not all(parse_rfc3339(image.created) < _until(v) for v in filters["until"]):
            continue
        labels = image.config.config.Labels or {}
        if not all(_label_match(labels, v) for v in filters.get("label", [])):
            continue
        if any(_label_match(labels, v) for v in filters.get("label!", [])):
            continue
        size = image.size
        try:
            report = store.remove(image.id, force=True, users=users)
        except Exception:  # noqa: BLE001 - one image that cannot go does not stop the prune
            continue
        deleted.extend(report)
        reclaimed += size
    return {"ImagesDeleted": deleted or None, "SpaceReclaimed": reclaimed}
