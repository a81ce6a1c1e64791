"""Pushing an image: layers that the registry has are skipped (HEAD), layers it has in another
repository are mounted, the rest are streamed from the blob store as they are (gzip blobs from a pull
go out unchanged; uncompressed layers of images made here are gzipped once, with isal, and kept).
Then the config and the manifest."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from pyengine.distribution import layers as layer_io
from pyengine.distribution import manifests, progress
from pyengine.distribution.auth import Credentials
from pyengine.distribution.registry import RegistryClient, gather_limited
from pyengine.errors import NotFound
from pyengine.images import reference as references
from pyengine.images.image import Image
from pyengine.images.reference import Reference
from pyengine.images.store import ImageStore

PARALLEL_UPLOADS = 5  # dockerd's default max-concurrent-uploads
_READ = 1 << 20


def _compressed_layers(store: ImageStore, image: Image) -> Image:
    """Gzip the layers that are stored uncompressed, once; the image keeps the gzip blobs."""
    changed = False
    layers: list[dict[str, Any]] = []
    for layer in image.layers:
        if manifests.LAYER_COMPRESSION.get(layer["mediaType"], "gzip") == "":
            digest, size = layer_io.gzip_blob(store.blobs, layer["digest"])
            layer = {**layer, "digest": digest, "size": size, "mediaType": manifests.DOCKER_LAYER_GZIP}
            changed = True
        layers.append(layer)
    if not changed:
        return image
    old = [x["digest"] for x in image.layers]
    image = store.update_distribution(
        image.id, layers=layers, manifest_bytes=_docker_manifest(store, image.id, layers)
    )
    still_used = {x["digest"] for other in store.list() for x in other.layers}
    for digest in old:
        if digest not in still_used:
            store.blobs.delete(digest)
    return image


def _docker_manifest(store: ImageStore, image_id: str, layers: list[dict[str, Any]]) -> bytes:
    """Docker schema2 when every layer is a Docker gzip layer (what Docker 20.10 pulls best), else an
    OCI manifest (zstd and other OCI layer types have no schema2 spelling)."""
    docker = all(x["mediaType"] == manifests.DOCKER_LAYER_GZIP for x in layers)
    oci_name = {manifests.DOCKER_LAYER_GZIP: manifests.OCI_LAYER_GZIP}
    doc = {
        "schemaVersion": 2,
        "mediaType": manifests.DOCKER_MANIFEST if docker else manifests.OCI_MANIFEST,
        "config": {
            "mediaType": manifests.DOCKER_CONFIG if docker else manifests.OCI_CONFIG,
            "size": store.blobs.size(image_id),
            "digest": image_id,
        },
        "layers": [
            {
                "mediaType": x["mediaType"] if docker else oci_name.get(x["mediaType"], x["mediaType"]),
                "size": x["size"],
                "digest": x["digest"],
            }
            for x in layers
        ],
    }
    return json.dumps(doc, indent=3).encode()


def _manifest_for(store: ImageStore, image: Image) -> tuple[bytes, str]:
    """The stored manifest when it describes exactly our blobs (a pulled image keeps its digest),
    else a Docker schema2 manifest."""
    try:
        data = store.blobs.read(image.manifest_digest)
        document = manifests.parse(data, None)
        if (
            isinstance(document, manifests.Manifest)
            and [d.digest for d in document.layers] == [x["digest"] for x in image.layers]
            and document.config.digest == image.id
        ):
            return data, document.media_type
    except Exception:  # noqa: BLE001 - any doubt: build a fresh one
        pass
    data = _docker_manifest(store, image.id, image.layers)
    return data, json.loads(data)["mediaType"]


def _mount_sources(image: Image, ref: Reference) -> list[str]:
    """Repositories on the same registry that already hold this image's blobs."""
    sources = []
    for repo_digest in image.repo_digests:
        repository = references.parse(repo_digest.split("@", 1)[0], default_tag=None)
        if repository.registry == ref.registry and repository.path != ref.path:
            sources.append(repository.path)
    return sources


async def _file_chunks(
    store: ImageStore, digest: str, ident: str, size: int, sink: progress.ProgressSink
) -> AsyncIterator[bytes]:
    handle = await asyncio.to_thread(store.blobs.open, digest)
    sent = 0
    try:
        while chunk := await asyncio.to_thread(handle.read, _READ):
            sent += len(chunk)
            sink.throttled("Pushing", ident, sent, size)
            yield chunk
    finally:
        handle.close()


async def push(
    store: ImageStore,
    ref: Reference,
    creds: Credentials,
    sink: progress.ProgressSink,
) -> tuple[str, int]:
    """Push the image tagged ``ref``; return (manifest digest, manifest size)."""
    image = await asyncio.to_thread(store.resolve, ref.normalized())
    sources = _mount_sources(image, ref)
    async with RegistryClient(
        ref.registry, ref.path, creds, push=True, extra_pull_scopes=tuple(sources)
    ) as client:
        sink.emit(progress.status(f"The push refers to repository [{ref.familiar_repository()}]"))
        await client.login()
        for layer in reversed(image.layers):
            sink.emit(progress.status("Preparing", progress.short_id(layer["diff_id"])))
        image = await asyncio.to_thread(_compressed_layers, store, image)

        def job(layer: dict[str, Any]):  # type: ignore[no-untyped-def]
            async def run() -> None:
                ident = progress.short_id(layer["diff_id"])
                digest, size = layer["digest"], layer["size"]
                if not store.blobs.exists(digest):
                    raise NotFound(
                        f"layer blob {digest} of {ref.familiar()} is missing from the content store"
                    )
                if await client.blob_exists(digest):
                    sink.emit(progress.status("Layer already exists", ident))
                    return
                upload_url = None
                for source in sources:
                    upload_url = await client.mount_blob(digest, source)
                    if upload_url is None:
                        sink.emit(progress.status(f"Mounted from {source}", ident))
                        return
                    break
                await client.upload_blob(
                    digest, size, lambda: _file_chunks(store, digest, ident, size, sink), upload_url
                )
                sink.emit(progress.status("Pushed", ident))

            return run

        await gather_limited(PARALLEL_UPLOADS, [job(layer) for layer in reversed(image.layers)])
        await client.upload_bytes(await asyncio.to_thread(store.blobs.read, image.id))
        manifest_bytes, media_type = await asyncio.to_thread(_manifest_for, store, image)
        tag = ref.tag or "latest"
        digest = await client.put_manifest(tag, manifest_bytes, media_type)
    await asyncio.to_thread(store.update_distribution, image.id, repo_digest=f"{ref.repository}@{digest}")
    sink.emit(progress.status(f"{tag}: digest: {digest} size: {len(manifest_bytes)}"))
    sink.emit({"progressDetail": {}, "aux": {"Tag": tag, "Digest": digest, "Size": len(manifest_bytes)}})
    return digest, len(manifest_bytes)
