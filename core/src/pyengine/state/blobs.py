"""A content-addressed blob store in the OCI image layout: ``<root>/blobs/sha256/<hex>``.

Every blob is written to a temporary file in the same directory, verified against its digest while it
streams in, fsynced and renamed into place: a crash leaves the old state or the new one, never a torn
blob under a real digest. Readers never see a blob that failed verification.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO

from pyengine.errors import InvalidArgument, NotFound

_DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
_CHUNK = 1 << 20


def check_digest(digest: str) -> str:
    if not _DIGEST_RE.match(digest):
        raise InvalidArgument(f"invalid digest: {digest!r}")
    return digest


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class BlobStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._dir = self.root / "blobs" / "sha256"
        self._dir.mkdir(parents=True, exist_ok=True)
        layout = self.root / "oci-layout"
        if not layout.exists():
            layout.write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))

    def path(self, digest: str) -> Path:
        return self._dir / check_digest(digest).split(":", 1)[1]

    def exists(self, digest: str) -> bool:
        return self.path(digest).exists()

    def size(self, digest: str) -> int:
        try:
            return self.path(digest).stat().st_size
        except FileNotFoundError as exc:
            raise NotFound(f"blob {digest} not found") from exc

    def read(self, digest: str) -> bytes:
        try:
            return self.path(digest).read_bytes()
        except FileNotFoundError as exc:
            raise NotFound(f"blob {digest} not found") from exc

    def open(self, digest: str) -> BinaryIO:
        try:
            return open(self.path(digest), "rb")
        except FileNotFoundError as exc:
            raise NotFound(f"blob {digest} not found") from exc

    def put(self, data: bytes, expected: str | None = None) -> str:
        """Store bytes; return their digest. Raises InvalidArgument if ``expected`` does not match."""
        return self.put_chunks([data], expected)

    def put_chunks(self, chunks: Iterable[bytes], expected: str | None = None) -> str:
        """Store a stream of chunks atomically and return its digest (verified if ``expected``)."""
        if expected is not None:
            check_digest(expected)
        hasher = hashlib.sha256()
        fd, tmp = _mkstemp(self._dir)
        try:
            with os.fdopen(fd, "wb") as out:
                for chunk in chunks:
                    hasher.update(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            digest = "sha256:" + hasher.hexdigest()
            if expected is not None and digest != expected:
                raise InvalidArgument(f"digest mismatch: expected {expected}, got {digest}")
            os.rename(tmp, self.path(digest))
            fsync_dir(self._dir)
            return digest
        except BaseException:
            _unlink_quietly(tmp)
            raise

    def put_file(self, stream: BinaryIO, expected: str | None = None) -> str:
        return self.put_chunks(iter(lambda: stream.read(_CHUNK), b""), expected)

    def delete(self, digest: str) -> None:
        _unlink_quietly(str(self.path(digest)))

    def cleanup_temporaries(self) -> None:
        """Remove temporary files left by a crash mid-write."""
        for entry in self._dir.glob(".tmp-*"):
            _unlink_quietly(str(entry))


def _mkstemp(directory: Path) -> tuple[int, str]:
    import tempfile

    return tempfile.mkstemp(prefix=".tmp-", dir=directory)


def fsync_dir(directory: Path) -> None:
    """Make a rename or create in ``directory`` durable (fsync of the directory itself)."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
