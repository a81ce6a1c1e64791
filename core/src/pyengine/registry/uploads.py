"""Blob uploads in progress: one temporary file per upload, hashed as it streams in.

An upload lives in ``<root>/uploads/<uuid>/`` (``data`` and ``repository``) until it is finished
(the bytes are verified against the client's digest, fsynced and renamed into the blob store) or
cancelled (the directory goes). The running sha256 of each open upload is kept in memory; after a
restart it is rebuilt by reading the file again. A request that fails half-way (a truncated
stream, a length that lies) is rolled back to where the upload stood before it, so a client can
ask for the upload's status and resume. Memory is bounded: at most ``FLUSH_BYTES`` of a request
body is held at a time.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import StreamReader

from pyengine.registry import errors
from pyengine.registry.storage import RegistryStorage

FLUSH_BYTES = 1 << 20
_UPLOAD_ID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_CONTENT_RANGE_RE = re.compile(r"(?:bytes[ =])?(\d+)-(\d+)(?:/(?:\d+|\*))?")


@dataclass
class Upload:
    id: str
    repository: str
    directory: Path
    size: int = 0
    hasher: Any = field(default_factory=hashlib.sha256)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def data(self) -> Path:
        return self.directory / "data"

    def range_header(self) -> str:
        """Docker's ``Range`` value for the bytes received so far (``0-0`` when none)."""
        return f"0-{max(self.size - 1, 0)}"


def parse_content_range(value: str) -> tuple[int, int]:
    """``start-end`` (inclusive) from a Content-Range header; 416 if it does not parse."""
    match = _CONTENT_RANGE_RE.fullmatch(value.strip())
    if not match:
        raise errors.range_invalid(f"invalid Content-Range {value[:80]!r}")
    start, end = int(match.group(1)), int(match.group(2))
    if end < start:
        raise errors.range_invalid(f"invalid Content-Range {value[:80]!r}: end before start")
    return start, end


class UploadManager:
    """Starts, appends to, finishes and cancels uploads in one :class:`RegistryStorage`."""

    def __init__(self, storage: RegistryStorage) -> None:
        self.storage = storage
        self._open: dict[str, Upload] = {}

    def start(self, repository: str) -> Upload:
        upload_id = str(uuid.uuid4())
        directory = self.storage.uploads / upload_id
        directory.mkdir(parents=True)
        (directory / "repository").write_text(repository)
        (directory / "data").touch()
        upload = Upload(upload_id, repository, directory)
        self._open[upload_id] = upload
        return upload

    async def get(self, repository: str, upload_id: str) -> Upload:
        """The open upload ``upload_id`` of ``repository``; BLOB_UPLOAD_UNKNOWN if there is none."""
        if not _UPLOAD_ID_RE.fullmatch(upload_id):
            raise errors.blob_upload_unknown(upload_id[:80])
        upload = self._open.get(upload_id)
        if upload is None:
            upload = await asyncio.to_thread(self._reopen, upload_id)
        if upload is None or upload.repository != repository:
            raise errors.blob_upload_unknown(upload_id)
        return upload

    def _reopen(self, upload_id: str) -> Upload | None:
        """Rebuild an upload left on disk by an earlier run of the server (hash the bytes so far)."""
        directory = self.storage.uploads / upload_id
        try:
            repository = (directory / "repository").read_text()
            upload = Upload(upload_id, repository, directory)
            with open(upload.data, "rb") as data:
                while chunk := data.read(FLUSH_BYTES):
                    upload.hasher.update(chunk)
                    upload.size += len(chunk)
        except FileNotFoundError:
            return None
        return self._open.setdefault(upload_id, upload)

    async def append(self, upload: Upload, stream: StreamReader, expected_length: int | None) -> int:
        """Append a request body to the upload; return the number of bytes appended.

        ``expected_length`` (from Content-Range or Content-Length) must match what arrives, else
        SIZE_INVALID. On any failure the upload is rolled back to where it stood.
        """
        start, saved_hasher = upload.size, upload.hasher.copy()
        loop = asyncio.get_running_loop()
        received = 0
        out = open(upload.data, "r+b")
        try:
            out.seek(start)
            pending: list[bytes] = []
            pending_bytes = 0
            while chunk := await stream.readany():
                received += len(chunk)
                if expected_length is not None and received > expected_length:
                    raise errors.size_invalid(f"more than the {expected_length} bytes declared arrived")
                pending.append(chunk)
                pending_bytes += len(chunk)
                if pending_bytes >= FLUSH_BYTES:
                    await loop.run_in_executor(None, _write_and_hash, out, upload.hasher, pending)
                    pending, pending_bytes = [], 0
            if pending:
                await loop.run_in_executor(None, _write_and_hash, out, upload.hasher, pending)
            if expected_length is not None and received != expected_length:
                raise errors.size_invalid(f"{received} bytes arrived, {expected_length} were declared")
            upload.size = start + received
            return received
        except BaseException:
            out.truncate(start)
            upload.hasher, upload.size = saved_hasher, start
            raise
        finally:
            out.close()

    async def finish(self, upload: Upload, digest: str) -> None:
        """Verify the upload against ``digest`` and move it into the blob store and the repository.

        On a mismatch the upload is cancelled (nothing is stored) and DIGEST_INVALID raised.
        """
        actual = "sha256:" + upload.hasher.hexdigest()
        if actual != digest:
            self.cancel(upload)
            raise errors.digest_invalid(
                "provided digest did not match uploaded content", {"expected": digest, "actual": actual}
            )
        await asyncio.to_thread(self._commit, upload, digest)

    def _commit(self, upload: Upload, digest: str) -> None:
        fd = os.open(upload.data, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        self.storage.adopt_blob(upload.data, digest)
        self.storage.link_layer(upload.repository, digest)
        self.cancel(upload)

    def cancel(self, upload: Upload) -> None:
        self._open.pop(upload.id, None)
        shutil.rmtree(upload.directory, ignore_errors=True)


def _write_and_hash(out: Any, hasher: Any, chunks: list[bytes]) -> None:
    # Off the event loop: hashlib releases the GIL on large buffers, so hashing overlaps with I/O.
    for chunk in chunks:
        hasher.update(chunk)
        out.write(chunk)
