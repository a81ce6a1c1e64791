"""Layer blobs: storing a download verified and atomically, decompressing, compressing for push.

gzip goes through isal (ISA-L, several times faster than zlib) when it is installed, zlib otherwise;
zstd needs the optional ``zstandard`` package.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import queue
from collections.abc import AsyncIterator, Callable, Iterator
from typing import BinaryIO

from pyengine.errors import InvalidArgument, NotSupported
from pyengine.state.blobs import BlobStore

try:  # pragma: no cover - which one depends on the installation
    from isal import igzip as _gzip
except ImportError:  # pragma: no cover
    import gzip as _gzip  # type: ignore[no-redef]

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_BATCH = 1 << 20
_QUEUE_DEPTH = 8  # at most this many MiB of one download wait in memory for the disk


def sniff_compression(head: bytes) -> str:
    if head.startswith(GZIP_MAGIC):
        return "gzip"
    if head.startswith(ZSTD_MAGIC):
        return "zstd"
    return ""


def decompressed(stream: BinaryIO, compression: str) -> BinaryIO:
    """A readable stream of the uncompressed tar."""
    if compression == "gzip":
        return _gzip.GzipFile(fileobj=stream, mode="rb")  # type: ignore[return-value]
    if compression == "zstd":
        try:
            import zstandard
        except ImportError as exc:
            raise NotSupported("zstd layers need the 'zstandard' package (pip install zstandard)") from exc
        return zstandard.ZstdDecompressor().stream_reader(stream, read_across_frames=True)  # type: ignore[return-value]
    return stream


class HashingReader(io.RawIOBase):
    """Reads through ``stream`` while hashing every byte; ``finish()`` drains the rest and returns
    the digest of the whole stream (the layer's diff ID)."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self._hash = hashlib.sha256()
        self.count = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        data = self._stream.read(size)
        self._hash.update(data)
        self.count += len(data)
        return data

    def readinto(self, buffer) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def finish(self) -> str:
        while self.read(_BATCH):
            pass
        return "sha256:" + self._hash.hexdigest()


def checked_decompress(stream: BinaryIO, compression: str) -> HashingReader:
    try:
        return HashingReader(decompressed(stream, compression))
    except OSError as exc:
        raise InvalidArgument(f"layer is not valid {compression or 'tar'}: {exc}") from exc


async def store_stream(
    blobs: BlobStore,
    chunks: AsyncIterator[bytes],
    expected: str,
    size: int,
    on_progress: Callable[[int], None] | None = None,
) -> str:
    """Write a download into the blob store: a temporary file, verified, renamed (put_chunks).

    A digest mismatch, a short or long stream or any failure of the download leaves nothing stored.
    Memory stays bounded: the download waits when the disk falls behind.
    """
    handoff: queue.Queue = queue.Queue(maxsize=_QUEUE_DEPTH)

    def items() -> Iterator[bytes]:
        while True:
            item = handoff.get()
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    writer = asyncio.ensure_future(asyncio.to_thread(blobs.put_chunks, items(), expected))

    def put(item: object) -> None:
        while True:
            try:
                handoff.put(item, timeout=0.2)
                return
            except queue.Full:
                if writer.done():
                    return  # the writer failed; its exception is raised below

    received = 0
    batch: list[bytes] = []
    batched = 0
    try:
        async for chunk in chunks:
            received += len(chunk)
            batch.append(chunk)
            batched += len(chunk)
            if batched >= _BATCH:
                await asyncio.to_thread(put, b"".join(batch))
                batch, batched = [], 0
                if on_progress:
                    on_progress(received)
                if writer.done():
                    break
        if batch:
            await asyncio.to_thread(put, b"".join(batch))
        if received != size and not writer.done():
            raise InvalidArgument(f"blob {expected}: got {received} bytes, the manifest says {size}")
        await asyncio.to_thread(put, None)
    except BaseException as exc:
        await asyncio.to_thread(put, exc if isinstance(exc, Exception) else InvalidArgument("cancelled"))
        try:
            await writer
        except BaseException:
            pass
        raise
    if on_progress:
        on_progress(received)
    return await writer


def gzip_blob(blobs: BlobStore, digest: str) -> tuple[str, int]:
    """Compress an uncompressed layer blob with gzip into a new blob; (digest, size)."""
    pipe_read, pipe_write = _pipe()
    import threading

    errors: list[BaseException] = []

    def compress() -> None:
        try:
            with (
                blobs.open(digest) as source,
                _gzip.GzipFile(fileobj=pipe_write, mode="wb", compresslevel=1) as out,
            ):
                while chunk := source.read(_BATCH):
                    out.write(chunk)
        except BaseException as exc:  # noqa: BLE001 - re-raised by the reader below
            errors.append(exc)
        finally:
            pipe_write.close()

    thread = threading.Thread(target=compress, daemon=True)
    thread.start()
    try:
        new_digest = blobs.put_chunks(iter(lambda: pipe_read.read(_BATCH), b""))
    finally:
        thread.join()
    if errors:
        blobs.delete(new_digest)
        raise errors[0]
    return new_digest, blobs.size(new_digest)


def _pipe() -> tuple[BinaryIO, BinaryIO]:
    import os

    read_fd, write_fd = os.pipe()
    return os.fdopen(read_fd, "rb"), os.fdopen(write_fd, "wb")
