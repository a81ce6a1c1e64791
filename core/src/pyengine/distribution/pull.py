"""Pulling an image: resolve the manifest (choosing the platform from an index), fetch and verify the
config, download the layers in parallel straight into the blob store (verified, atomic), unpack them in
order into the storage driver under their chain IDs, and record the image with its repo digest.

Work before the first progress message (authentication, the manifest, the config) raises ordinary
errors, so the API can still answer with an HTTP error status, as dockerd does.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

from pyengine.distribution import layers as layer_io
from pyengine.distribution import manifests, progress
from pyengine.distribution.auth import Credentials
from pyengine.distribution.registry import RegistryClient, gather_limited
from pyengine.errors import InvalidArgument
from pyengine.images.image import Image, chain_ids
from pyengine.images.reference import Reference
from pyengine.images.store import ImageStore
from pyengine.model.image import ImageConfig

PARALLEL_DOWNLOADS = 3  # dockerd's default max-concurrent-downloads
MAX_CONFIG_BYTES = 32 << 20


@dataclass
class ResolvedImage:
    """What a pull learned before downloading any layer."""

    reference: Reference
    digest: str  # of what the tag points to (an index or a manifest): the repo digest
    manifest_bytes: bytes
    manifest: manifests.Manifest
    config_bytes: bytes
    config: ImageConfig


async def resolve(client: RegistryClient, ref: Reference, wanted: manifests.Platform) -> ResolvedImage:
    """Log in, fetch the manifest (through an index for ``wanted``), fetch and check the config."""
    await client.login()
    data, content_type, digest = await client.get_manifest(ref.digest or ref.tag or "latest")
    document = manifests.parse(data, content_type)
    if isinstance(document, manifests.Index):
        chosen = manifests.select(document, wanted)
        data, content_type, _ = await client.get_manifest(chosen.digest)
        document = manifests.parse(data, content_type)
        if not isinstance(document, manifests.Manifest):
            raise InvalidArgument(f"index entry {chosen.digest} is not an image manifest")
    if ref.digest and ref.digest != digest:
        raise InvalidArgument(f"manifest digest mismatch: asked for {ref.digest}, got {digest}")
    if document.config.size > MAX_CONFIG_BYTES:
        raise InvalidArgument(f"image config too large: {document.config.size} bytes")
    config_bytes = await client.read_blob(document.config.digest, document.config.size)
    try:
        config_doc = json.loads(config_bytes)
        config = ImageConfig.model_validate_json(config_bytes)
    except ValueError as exc:
        raise InvalidArgument(f"invalid image config {document.config.digest}: {exc}") from exc
    if len(config.rootfs.diff_ids) != len(document.layers):
        raise InvalidArgument(
            f"image config lists {len(config.rootfs.diff_ids)} layers, its manifest {len(document.layers)}"
        )
    if not isinstance(config_doc, dict):
        raise InvalidArgument(f"invalid image config {document.config.digest}: not a JSON object")
    return ResolvedImage(ref, digest, data, document, config_bytes, config)


async def pull_layers(
    store: ImageStore, client: RegistryClient, resolved: ResolvedImage, sink: progress.ProgressSink
) -> Image:
    """Download missing layer blobs in parallel, unpack in order, record the image."""
    blobs = store.blobs
    diff_ids = resolved.config.rootfs.diff_ids
    chains = chain_ids(diff_ids)
    descriptors = resolved.manifest.layers
    downloaded: list[asyncio.Future[None]] = [asyncio.get_running_loop().create_future() for _ in descriptors]
    jobs = []
    for index, desc in enumerate(descriptors):
        ident = progress.short_id(desc.digest)
        have_blob = blobs.exists(desc.digest)
        if have_blob:
            _check_stored_media_type(blobs, desc)
        if have_blob and store.layer_exists(chains[index]):
            sink.emit(progress.status("Already exists", ident))
            downloaded[index].set_result(None)
            continue
        if have_blob:
            downloaded[index].set_result(None)
            continue
        sink.emit(progress.status("Pulling fs layer", ident))
        jobs.append(_download_job(blobs, client, desc, ident, sink, downloaded[index]))

    async def download_all() -> None:
        await gather_limited(PARALLEL_DOWNLOADS, jobs)

    downloads = asyncio.ensure_future(download_all())
    known_sizes = {  # what layers we have already take unpacked, for the image's Size
        x["diff_id"]: x["unpacked_size"]
        for image in await asyncio.to_thread(store.list)
        for x in image.layers
        if x.get("unpacked_size")
    }
    total_size = 0
    layer_docs: list[dict[str, Any]] = []
    try:
        for index, desc in enumerate(descriptors):
            await asyncio.wait([downloads, downloaded[index]], return_when=asyncio.FIRST_COMPLETED)
            if not downloaded[index].done():
                await downloads  # raises the download's error
            ident = progress.short_id(desc.digest)
            parent = chains[index - 1] if index else None
            unpacked = known_sizes.get(diff_ids[index], 0)
            if not store.layer_exists(chains[index]):
                try:
                    unpacked = await asyncio.to_thread(
                        _unpack, store, desc, diff_ids[index], parent, ident, sink
                    )
                except BaseException:
                    await asyncio.to_thread(_forget_blob, store, desc.digest)
                    raise
                sink.emit(progress.status("Pull complete", ident))
            total_size += unpacked or desc.size
            layer_docs.append(
                {
                    "digest": desc.digest,
                    "diff_id": diff_ids[index],
                    "size": desc.size,
                    "mediaType": desc.media_type,
                    "unpacked_size": unpacked or desc.size,
                }
            )
        await downloads
    except BaseException:
        downloads.cancel()
        await asyncio.gather(downloads, return_exceptions=True)
        raise
    ref = resolved.reference
    tags = [ref.normalized()] if ref.tag and not ref.digest else []
    return await asyncio.to_thread(
        store.add_image,
        resolved.config,
        layer_docs,
        total_size,
        tags,
        config_bytes=resolved.config_bytes,
        manifest_bytes=resolved.manifest_bytes,
        repo_digests=[f"{ref.repository}@{resolved.digest}"],
    )


def _forget_blob(store: ImageStore, digest: str) -> None:
    """Drop a downloaded blob whose layer could not be unpacked, unless an image uses it."""
    if not any(digest == x["digest"] for image in store.list() for x in image.layers):
        store.blobs.delete(digest)


def _check_stored_media_type(blobs, desc: manifests.Descriptor) -> None:  # type: ignore[no-untyped-def]
    """A blob we hold already (from an import or another image) must be what this manifest says."""
    with blobs.open(desc.digest) as blob:
        got = layer_io.sniff_compression(blob.read(4))
    expected = manifests.LAYER_COMPRESSION[desc.media_type]
    if got != expected:
        raise InvalidArgument(
            f"layer {desc.digest} is declared {desc.media_type} but its content is "
            f"{'not ' + expected if expected else got + '-compressed'}"
        )


async def _checked_media_type(chunks, desc: manifests.Descriptor):  # type: ignore[no-untyped-def]
    """Pass the chunks on, refusing a blob whose first bytes contradict its declared compression
    (before anything of it is stored)."""
    expected = manifests.LAYER_COMPRESSION[desc.media_type]
    head = b""
    async for chunk in chunks:
        if len(head) < 4:
            head += chunk[: 4 - len(head)]
            if len(head) >= 4 or not chunk:
                got = layer_io.sniff_compression(head)
                if got != expected and (expected or got):
                    raise InvalidArgument(
                        f"layer {desc.digest} is declared {desc.media_type} but its content is "
                        f"{'not ' + expected if expected else got + '-compressed'}"
                    )
        yield chunk


def _download_job(blobs, client, desc, ident, sink, done):  # type: ignore[no-untyped-def]
    async def job() -> None:
        def on_progress(received: int) -> None:
            sink.throttled("Downloading", ident, received, desc.size)

        await layer_io.store_stream(
            blobs,
            _checked_media_type(client.blob_chunks(desc.digest, desc.size), desc),
            desc.digest,
            desc.size,
            on_progress,
        )
        sink.emit(progress.status("Verifying Checksum", ident))
        sink.emit(progress.status("Download complete", ident))
        done.set_result(None)

    return job


def _unpack(
    store: ImageStore,
    desc: manifests.Descriptor,
    diff_id: str,
    parent: str | None,
    ident: str,
    sink: progress.ProgressSink,
) -> int:
    compression = manifests.LAYER_COMPRESSION[desc.media_type]
    with store.blobs.open(desc.digest) as raw:
        head = raw.read(4)
        raw.seek(0)
        if layer_io.sniff_compression(head) != compression and compression:
            raise InvalidArgument(
                f"layer {desc.digest} is declared {desc.media_type} but its content is not {compression}"
            )
        counting = _Counting(raw, desc.size, ident, sink)
        reader = layer_io.checked_decompress(counting, compression)  # type: ignore[arg-type]

        def verify() -> None:
            got = reader.finish()
            if got != diff_id:
                raise InvalidArgument(
                    f"layer {desc.digest}: its content has diff ID {got}, the config says {diff_id}"
                )

        try:
            return store.add_layer(diff_id, parent, reader, verify)  # type: ignore[arg-type]
        except (OSError, EOFError) as exc:
            raise InvalidArgument(f"layer {desc.digest} could not be unpacked: {exc}") from exc


class _Counting:
    """Reports how much of the compressed blob has been read, as dockerd's Extracting bar does."""

    def __init__(self, raw, total: int, ident: str, sink: progress.ProgressSink) -> None:  # type: ignore[no-untyped-def]
        self._raw = raw
        self._total = total
        self._ident = ident
        self._sink = sink
        self._read = 0

    def read(self, size: int = -1) -> bytes:
        data = self._raw.read(size)
        self._read += len(data)
        self._sink.throttled("Extracting", self._ident, self._read, self._total, thread=True)
        return data

    def readinto(self, buffer) -> int:  # type: ignore[no-untyped-def]
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False


async def pull(
    store: ImageStore,
    ref: Reference,
    creds: Credentials,
    wanted: manifests.Platform,
    sink: progress.ProgressSink,
) -> tuple[Image, ResolvedImage, bool]:
    """The whole pull; (image, what was resolved, whether anything new was stored)."""
    async with RegistryClient(ref.registry, ref.path, creds) as client:
        resolved = await resolve(client, ref, wanted)
        sink.emit(progress.status(f"Pulling from {ref.path}", ref.tag or ref.digest or "latest"))
        before = {i.id: set(i.repo_digests) | set(i.tags) for i in await asyncio.to_thread(store.list)}
        image = await pull_layers(store, client, resolved, sink)
        fresh = image.id not in before or not (set(image.tags) | set(image.repo_digests)) <= before[image.id]
        return image, resolved, fresh
