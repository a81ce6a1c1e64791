"""Garbage collection of a registry root: the blobs no manifest refers to any more.

Deleting a manifest or a blob through the API only removes a repository's link (see
:mod:`pyengine.registry.storage`); the bytes stay. ``pyengine registry garbage-collect`` frees them,
in two phases like the reference registry's ``registry garbage-collect``:

- **mark**: every manifest revision of every repository is kept (with ``delete_untagged``: only
  those a tag names, plus what they reach: the children of a kept index and the manifests whose
  subject is kept). A kept manifest marks itself, its config, its layers and its children.
- **sweep**: every blob not marked is deleted, with the repositories' layer links to it; untagged
  manifests that were not kept lose their revision link (and referrer entry) first.

A blob uploaded for a manifest that is not pushed yet looks exactly like garbage, so collection
needs the registry to be idle: the server holds a shared lock on ``<root>/.lock`` while it runs, and
collection takes it exclusively or refuses.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from pyengine.errors import Conflict
from pyengine.registry.storage import RegistryStorage

LOCK_NAME = ".lock"


@contextmanager
def registry_lock(root: Path, *, exclusive: bool) -> Iterator[None]:
    """Hold ``<root>/.lock``: shared while serving, exclusive while collecting. Conflict if taken."""
    root.mkdir(parents=True, exist_ok=True)
    fd = os.open(root / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        try:
            fcntl.flock(fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
        except BlockingIOError:
            if exclusive:
                raise Conflict(f"the registry at {root} is being served: stop it before collecting") from None
            raise Conflict(f"garbage collection is running on {root}: serve it once that is done") from None
        yield
    finally:
        os.close(fd)


@dataclass
class CollectionReport:
    """What a collection removed (or, with dry_run, would remove)."""

    blobs: list[str] = field(default_factory=list)
    bytes_freed: int = 0
    manifests: list[tuple[str, str]] = field(default_factory=list)  # (repository, digest)


def collect_garbage(root: Path, *, dry_run: bool = False, delete_untagged: bool = False) -> CollectionReport:
    """Mark and sweep the registry under ``root`` (see the module docstring); returns the report."""
    with registry_lock(Path(root), exclusive=True):
        storage = RegistryStorage(Path(root))
        repositories = sorted(storage.catalog(1 << 62, None))
        kept: dict[str, set[str]] = {}
        marked: set[str] = set()
        report = CollectionReport()
        for name in repositories:
            revisions = _revisions(storage, name)
            kept[name] = _kept_manifests(storage, name, revisions, delete_untagged)
            for digest in kept[name]:
                marked.add(digest)
                marked.update(_references(storage, digest))
            report.manifests += [(name, digest) for digest in sorted(revisions - kept[name])]
        for digest in sorted(_stored_blobs(storage)):
            if digest not in marked:
                report.blobs.append(digest)
                report.bytes_freed += storage.blob_path(digest).stat().st_size
        if not dry_run:
            for name, digest in report.manifests:
                storage.delete_manifest(name, digest)
            doomed = set(report.blobs)
            for name in repositories:
                for digest in _layer_links(storage, name) & doomed:
                    storage.delete_layer(name, digest)
            for digest in report.blobs:
                storage.blob_path(digest).unlink(missing_ok=True)
        return report


def _revisions(storage: RegistryStorage, name: str) -> set[str]:
    directory = storage.repositories / name / "_manifests" / "revisions" / "sha256"
    return _digests_in(directory)


def _layer_links(storage: RegistryStorage, name: str) -> set[str]:
    return _digests_in(storage.repositories / name / "_layers" / "sha256")


def _stored_blobs(storage: RegistryStorage) -> set[str]:
    return _digests_in(storage.root / "blobs" / "sha256")


def _digests_in(directory: Path) -> set[str]:
    try:
        return {f"sha256:{entry.name}" for entry in os.scandir(directory) if not entry.name.startswith(".")}
    except FileNotFoundError:
        return set()


def _document(storage: RegistryStorage, digest: str) -> dict:
    try:
        document = json.loads(storage.blob_path(digest).read_bytes())
    except (OSError, ValueError):
        return {}
    return document if isinstance(document, dict) else {}


def _references(storage: RegistryStorage, digest: str) -> set[str]:
    """The blobs a manifest or index refers to: config, layers, children (not its subject)."""
    document = _document(storage, digest)
    found = set()
    config = document.get("config")
    if isinstance(config, dict) and isinstance(config.get("digest"), str):
        found.add(config["digest"])
    for key in ("layers", "manifests", "blobs"):
        for descriptor in document.get(key) or ():
            if isinstance(descriptor, dict) and isinstance(descriptor.get("digest"), str):
                found.add(descriptor["digest"])
    return found


def _kept_manifests(
    storage: RegistryStorage, name: str, revisions: set[str], delete_untagged: bool
) -> set[str]:
    if not delete_untagged:
        return set(revisions)
    tags_dir = storage.repositories / name / "_manifests" / "tags"
    kept = set()
    if tags_dir.is_dir():
        for entry in os.scandir(tags_dir):
            if entry.name.startswith("."):
                continue
            digest = Path(entry.path).read_text().strip()
            if digest in revisions:
                kept.add(digest)
    subjects = {
        digest: (_document(storage, digest).get("subject") or {}).get("digest") for digest in revisions
    }
    while True:  # to a fixed point: children of kept indexes, referrers of kept manifests
        reached = {d for d in revisions if subjects.get(d) in kept}
        for digest in kept:
            reached |= _references(storage, digest) & revisions
        if reached <= kept:
            return kept
        kept |= reached
