"""``docker image prune``: remove dangling images (no tag), or with ``all`` every image no container
uses; filters ``until`` and ``label`` / ``label!`` as Docker's."""

from __future__ import annotations

from typing import Any

from pyengine.errors import InvalidArgument
from pyengine.filters import label_matches, until_timestamp
from pyengine.images.store import ImageStore
from pyengine.model.base import parse_rfc3339


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
        created = parse_rfc3339(image.created)
        if "until" in filters and not all(created < until_timestamp(v) for v in filters["until"]):
            continue
        labels = image.config.config.Labels or {}
        if not all(label_matches(labels, v) for v in filters.get("label", [])):
            continue
        if any(label_matches(labels, v) for v in filters.get("label!", [])):
            continue
        size = image.size
        try:
            report = store.remove(image.id, force=True, users=users)
        except Exception:  # noqa: BLE001 - one image that cannot go does not stop the prune
            continue
        deleted.extend(report)
        reclaimed += size
    return {"ImagesDeleted": deleted or None, "SpaceReclaimed": reclaimed}
