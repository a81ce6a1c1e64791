"""The registry's file-system storage: content-addressed blobs and repositories of link files.

Layout under the root::

    blobs/sha256/<hex>                      every blob and manifest, once (pyengine.state.blobs.BlobStore)
    uploads/<uuid>/{data,repository}        uploads in progress (see :mod:`pyengine.registry.uploads`)
    repositories/<name>/
        _layers/sha256/<hex>                the repository holds this blob (empty file)
        _manifests/revisions/sha256/<hex>   the repository holds this manifest (file: its media type)
        _manifests/tags/<tag>               file: the digest the tag points at
        _referrers/sha256/<subject>/sha256/<hex>   file: JSON descriptor of a manifest whose subject
                                                   is <subject>

Repository name components start with a letter or digit, so ``_layers`` and friends never collide
with a nested repository. Blob data is written to a temporary file, verified, fsynced and renamed;
link files are written to a temporary file and renamed. Deleting a blob or manifest removes the
repository's link; blob data nothing refers to any more stays until a garbage collection
(:mod:`pyengine.registry.gc`).
"""

from __future__ import annotations

import heapq
import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from pyengine.registry import errors
from pyengine.state.blobs import BlobStore, fsync_dir, sha256_digest

_REPO_MARKERS = ("_manifests", "_layers")
# Docker's registry purges uploads a week old; so do we, when the server starts.
STALE_UPLOAD_SECONDS = 7 * 24 * 3600


class RegistryStorage:
    """Blobs, manifests, tags and referrers of every repository under ``root``. Synchronous."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.blobs = BlobStore(self.root)
        self.repositories = self.root / "repositories"
        self.uploads = self.root / "uploads"
        self.repositories.mkdir(parents=True, exist_ok=True)
        self.uploads.mkdir(parents=True, exist_ok=True)
        self.blobs.cleanup_temporaries()
        self.purge_stale_uploads()

    def purge_stale_uploads(self, max_age: float = STALE_UPLOAD_SECONDS) -> None:
        """Remove uploads nobody touched for ``max_age`` seconds (abandoned by their clients)."""
        now = time.time()
        for entry in os.scandir(self.uploads):
            try:
                if now - os.stat(os.path.join(entry.path, "data")).st_mtime > max_age:
                    shutil.rmtree(entry.path, ignore_errors=True)
            except FileNotFoundError:
                shutil.rmtree(entry.path, ignore_errors=True)

    # -- paths -------------------------------------------------------------------------------------
    def _repo(self, name: str) -> Path:
        return self.repositories / name

    @staticmethod
    def _hex(digest: str) -> str:
        return digest.split(":", 1)[1]

    def _layer_link(self, name: str, digest: str) -> Path:
        return self._repo(name) / "_layers" / "sha256" / self._hex(digest)

    def _revision_link(self, name: str, digest: str) -> Path:
        return self._repo(name) / "_manifests" / "revisions" / "sha256" / self._hex(digest)

    def _tags_dir(self, name: str) -> Path:
        return self._repo(name) / "_manifests" / "tags"

    def _referrers_dir(self, name: str, subject: str) -> Path:
        return self._repo(name) / "_referrers" / "sha256" / self._hex(subject) / "sha256"

    # -- repositories ------------------------------------------------------------------------------
    def repository_exists(self, name: str) -> bool:
        repo = self._repo(name)
        return any((repo / marker).is_dir() for marker in _REPO_MARKERS)

    def catalog(self, n: int, last: str | None) -> list[str]:
        """Up to ``n`` repository names after ``last`` in lexical order (memory: O(n))."""
        names = self._walk_repositories(self.repositories, "")
        return heapq.nsmallest(n, (r for r in names if last is None or r > last))

    def _walk_repositories(self, directory: Path, prefix: str) -> Iterator[str]:
        try:
            entries = list(os.scandir(directory))
        except FileNotFoundError:
            return
        names = {entry.name for entry in entries if entry.is_dir()}
        if prefix and any(marker in names for marker in _REPO_MARKERS):
            yield prefix
        for entry_name in names:
            if not entry_name.startswith("_"):
                yield from self._walk_repositories(
                    directory / entry_name, f"{prefix}/{entry_name}".lstrip("/")
                )

    # -- blobs -------------------------------------------------------------------------------------
    def blob_size(self, name: str, digest: str) -> int:
        """Size of a blob the repository holds (as a layer or a manifest); BLOB_UNKNOWN otherwise."""
        if not (self._layer_link(name, digest).exists() or self._revision_link(name, digest).exists()):
            raise errors.blob_unknown(digest)
        try:
            return self.blobs.path(digest).stat().st_size
        except FileNotFoundError:
            raise errors.blob_unknown(digest) from None

    def blob_path(self, digest: str) -> Path:
        return self.blobs.path(digest)

    def has_layer(self, name: str, digest: str) -> bool:
        return self._layer_link(name, digest).exists() and self.blobs.exists(digest)

    def link_layer(self, name: str, digest: str) -> None:
        _write_link(self._layer_link(name, digest), b"")

    def delete_layer(self, name: str, digest: str) -> None:
        try:
            os.unlink(self._layer_link(name, digest))
        except FileNotFoundError:
            raise errors.blob_unknown(digest) from None

    def adopt_blob(self, verified_file: Path, digest: str) -> None:
        """Move a file whose bytes were verified against ``digest`` into the blob store."""
        target = self.blobs.path(digest)
        if target.exists():
            os.unlink(verified_file)
            return
        os.rename(verified_file, target)
        fsync_dir(target.parent)

    # -- manifests ---------------------------------------------------------------------------------
    def resolve(self, name: str, reference: str) -> str:
        """The digest a tag or digest reference names in the repository; MANIFEST_UNKNOWN if none."""
        if ":" in reference:
            digest = reference
        else:
            try:
                digest = (self._tags_dir(name) / reference).read_text().strip()
            except (FileNotFoundError, NotADirectoryError):
                raise errors.manifest_unknown(reference) from None
        if not self._revision_link(name, digest).exists():
            raise errors.manifest_unknown(reference)
        return digest

    def manifest(self, name: str, digest: str) -> tuple[str, bytes]:
        """(media type, bytes) of a manifest the repository holds."""
        try:
            media_type = self._revision_link(name, digest).read_text()
            return media_type, self.blobs.read(digest)
        except FileNotFoundError:
            raise errors.manifest_unknown(digest) from None
        except Exception as exc:  # NotFound from the blob store
            raise errors.manifest_unknown(digest) from exc

    def has_manifest(self, name: str, digest: str) -> bool:
        return self._revision_link(name, digest).exists()

    def put_manifest(
        self,
        name: str,
        body: bytes,
        media_type: str,
        tags: list[str],
        referrer: dict | None,
        subject: str | None,
    ) -> str:
        """Store a validated manifest, tag it, and index it as a referrer of ``subject``."""
        digest = self.blobs.put(body, sha256_digest(body))
        _write_link(self._revision_link(name, digest), media_type.encode())
        for tag in tags:
            _write_link(self._tags_dir(name) / tag, digest.encode())
        if subject is not None and referrer is not None:
            _write_link(self._referrers_dir(name, subject) / self._hex(digest), json.dumps(referrer).encode())
        return digest

    def delete_tag(self, name: str, tag: str) -> None:
        try:
            os.unlink(self._tags_dir(name) / tag)
        except (FileNotFoundError, NotADirectoryError):
            raise errors.manifest_unknown(tag) from None

    def delete_manifest(self, name: str, digest: str) -> None:
        """Remove the manifest from the repository with every tag on it and its referrer entry."""
        media_type, body = self.manifest(name, digest)
        try:
            subject = json.loads(body).get("subject", {}).get("digest")
        except (ValueError, AttributeError):
            subject = None
        tags_dir = self._tags_dir(name)
        if tags_dir.is_dir():
            for entry in os.scandir(tags_dir):
                try:
                    if Path(entry.path).read_text().strip() == digest:
                        os.unlink(entry.path)
                except FileNotFoundError:
                    pass
        if isinstance(subject, str) and ":" in subject:
            try:
                os.unlink(self._referrers_dir(name, subject) / self._hex(digest))
            except FileNotFoundError:
                pass
        os.unlink(self._revision_link(name, digest))

    def tags(self, name: str, n: int, last: str | None) -> list[str]:
        """Up to ``n`` tags after ``last`` in lexical order; NAME_UNKNOWN for no such repository."""
        if not self.repository_exists(name):
            raise errors.name_unknown(name)
        try:
            entries = os.scandir(self._tags_dir(name))
        except FileNotFoundError:
            return []
        with entries:
            candidates = (
                e.name for e in entries if not e.name.startswith(".") and (last is None or e.name > last)
            )
            return heapq.nsmallest(n, candidates)

    def referrers(self, name: str, subject: str) -> list[dict]:
        """Descriptors of the repository's manifests whose ``subject`` is ``subject``."""
        directory = self._referrers_dir(name, subject)
        found = []
        try:
            entries = sorted(os.scandir(directory), key=lambda e: e.name)
        except FileNotFoundError:
            return []
        for entry in entries:
            if entry.name.startswith("."):
                continue
            try:
                found.append(json.loads(Path(entry.path).read_bytes()))
            except (FileNotFoundError, ValueError):
                continue
        return found


def _write_link(path: Path, content: bytes) -> None:
    """Write a small file atomically (temporary file + rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(content)
        os.rename(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
