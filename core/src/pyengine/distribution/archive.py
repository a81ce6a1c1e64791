"""``docker save`` / ``docker load`` archives, and the OCI image layout, both ways.

What ``save`` writes is both at once, as Docker 25 does: an OCI image layout (``oci-layout``,
``index.json``, ``blobs/sha256/...``) plus Docker's ``manifest.json`` and ``repositories`` pointing
into the same blobs. Layers go out as stored (gzip blobs from a pull are not recompressed); Docker's
loader accepts compressed layer files. ``load`` takes either format (and Docker 20.10's
``<id>/layer.tar`` directories), verifies every layer against the config's diff IDs while unpacking,
and stores nothing of an image that fails.
"""

from __future__ import annotations

import io
import json
import tarfile
import time
from collections.abc import Callable
from typing import IO, Any

from pyengine.distribution import layers as layer_io
from pyengine.distribution import manifests
from pyengine.errors import InvalidArgument
from pyengine.images import reference
from pyengine.images.image import Image, chain_ids, layer_key
from pyengine.images.store import ImageStore
from pyengine.model.image import ImageConfig
from pyengine.state.blobs import sha256_digest

MAX_METADATA_BYTES = 32 << 20
_MEDIA_BY_COMPRESSION = {
    "gzip": manifests.OCI_LAYER_GZIP,
    "zstd": manifests.OCI_LAYER_ZSTD,
    "": manifests.OCI_LAYER_TAR,
}


# ---- save --------------------------------------------------------------------------------------
def save(store: ImageStore, names: list[str], out: IO[bytes]) -> None:
    """Write the named images (references or IDs) as one tar archive to ``out``."""
    images: list[tuple[Image, list[str]]] = []
    for name in names:
        image = store.resolve(name)
        try:
            ref = reference.parse(name)
            wanted = [ref.normalized()] if ref.normalized() in image.tags else []
        except InvalidArgument:
            wanted = []
        if not wanted and not name.startswith("sha256:") and not _looks_like_id(name, image):
            wanted = list(image.tags)
        images.append((image, wanted))
    written: set[str] = set()
    docker_manifest: list[dict[str, Any]] = []
    index: list[dict[str, Any]] = []
    repositories: dict[str, dict[str, str]] = {}
    now = time.time()
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as archive:
        _add_bytes(archive, "oci-layout", json.dumps({"imageLayoutVersion": "1.0.0"}).encode(), now)
        for image, tags in images:
            for digest in [image.id, *[x["digest"] for x in image.layers], image.manifest_digest]:
                if digest not in written:
                    _add_blob(archive, store, digest, now)
                    written.add(digest)
            manifest_bytes = store.blobs.read(image.manifest_digest)
            media_type = json.loads(manifest_bytes).get("mediaType") or manifests.OCI_MANIFEST
            familiar = [reference.familiar(t) for t in tags]
            docker_manifest.append(
                {
                    "Config": _blob_path(image.id),
                    "RepoTags": familiar or None,
                    "Layers": [_blob_path(x["digest"]) for x in image.layers],
                }
            )
            descriptor = {
                "mediaType": media_type,
                "digest": image.manifest_digest,
                "size": len(manifest_bytes),
            }
            for tag in tags or [None]:
                entry = dict(descriptor)
                if tag:
                    parsed = reference.parse(tag)
                    entry["annotations"] = {
                        "io.containerd.image.name": tag,
                        "org.opencontainers.image.ref.name": parsed.tag or "latest",
                    }
                    repositories.setdefault(parsed.familiar_repository(), {})[parsed.tag or "latest"] = (
                        image.id.split(":", 1)[1]
                    )
                index.append(entry)
        _add_bytes(
            archive,
            "index.json",
            json.dumps({"schemaVersion": 2, "mediaType": manifests.OCI_INDEX, "manifests": index}).encode(),
            now,
        )
        _add_bytes(archive, "manifest.json", json.dumps(docker_manifest).encode(), now)
        if repositories:
            _add_bytes(archive, "repositories", json.dumps(repositories).encode(), now)


def _looks_like_id(name: str, image: Image) -> bool:
    return image.id.split(":", 1)[1].startswith(name)


def _blob_path(digest: str) -> str:
    return "blobs/sha256/" + digest.split(":", 1)[1]


def _add_bytes(archive: tarfile.TarFile, name: str, data: bytes, mtime: float) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = int(mtime)
    info.mode = 0o644
    archive.addfile(info, io.BytesIO(data))


def _add_blob(archive: tarfile.TarFile, store: ImageStore, digest: str, mtime: float) -> None:
    info = tarfile.TarInfo(_blob_path(digest))
    info.size = store.blobs.size(digest)
    info.mtime = int(mtime)
    info.mode = 0o644
    with store.blobs.open(digest) as blob:
        archive.addfile(info, blob)


# ---- load --------------------------------------------------------------------------------------
def load(store: ImageStore, archive_file: IO[bytes], report: Callable[[str], None]) -> list[Image]:
    """Load every image of a docker-save or OCI-layout tar (plain or compressed, seekable file)."""
    try:
        archive = tarfile.open(fileobj=archive_file, mode="r:*")
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise InvalidArgument(f"invalid tar archive: {exc}") from exc
    with archive:
        names = set(archive.getnames())
        if "manifest.json" in names:
            return _load_docker(store, archive, report)
        if "index.json" in names:
            return _load_oci(store, archive, report)
    raise InvalidArgument("invalid archive: neither manifest.json (docker save) nor index.json (OCI layout)")


def _member(archive: tarfile.TarFile, name: str, limit: int | None = None) -> IO[bytes]:
    name = name.lstrip("/")
    try:
        member = archive.getmember(name)
    except KeyError as exc:
        raise InvalidArgument(f"invalid archive: {name} is missing") from exc
    handle = archive.extractfile(member)
    if handle is None:
        raise InvalidArgument(f"invalid archive: {name} is not a file")
    if limit is not None and member.size > limit:
        raise InvalidArgument(f"invalid archive: {name} is too large ({member.size} bytes)")
    return handle


def _read_json(archive: tarfile.TarFile, name: str) -> Any:
    try:
        return json.loads(_member(archive, name, MAX_METADATA_BYTES).read())
    except ValueError as exc:
        raise InvalidArgument(f"invalid archive: {name} is not JSON: {exc}") from exc


def _load_docker(store: ImageStore, archive: tarfile.TarFile, report: Callable[[str], None]) -> list[Image]:
    entries = _read_json(archive, "manifest.json")
    if not isinstance(entries, list):
        raise InvalidArgument("invalid archive: manifest.json is not a list")
    loaded = []
    for entry in entries:
        if not isinstance(entry, dict) or not isinstance(entry.get("Layers"), list):
            raise InvalidArgument("invalid archive: a manifest.json entry lacks Config or Layers")
        config_bytes = _member(archive, str(entry.get("Config", "")), MAX_METADATA_BYTES).read()
        tags = [reference.parse(t).normalized() for t in entry.get("RepoTags") or []]
        sources = [(str(path), None) for path in entry["Layers"]]
        loaded.append(_import(store, archive, config_bytes, sources, None, tags, report))
    return loaded


def _load_oci(store: ImageStore, archive: tarfile.TarFile, report: Callable[[str], None]) -> list[Image]:
    index = _read_json(archive, "index.json")
    loaded = []
    for entry in (index.get("manifests") or []) if isinstance(index, dict) else []:
        descriptor = manifests._descriptor(entry, "index entry")
        data = _member(archive, _blob_path(descriptor.digest), manifests.MAX_MANIFEST_BYTES).read()
        if sha256_digest(data) != descriptor.digest:
            raise InvalidArgument(f"invalid archive: manifest {descriptor.digest} does not match its digest")
        document = manifests.parse(data, descriptor.media_type)
        if isinstance(document, manifests.Index):
            chosen = manifests.select(document, manifests.host())
            data = _member(archive, _blob_path(chosen.digest), manifests.MAX_MANIFEST_BYTES).read()
            if sha256_digest(data) != chosen.digest:
                raise InvalidArgument(f"invalid archive: manifest {chosen.digest} does not match its digest")
            document = manifests.parse(data, chosen.media_type)
            assert isinstance(document, manifests.Manifest)
        config_bytes = _member(archive, _blob_path(document.config.digest), MAX_METADATA_BYTES).read()
        if sha256_digest(config_bytes) != document.config.digest:
            raise InvalidArgument(
                f"invalid archive: config {document.config.digest} does not match its digest"
            )
        annotations = entry.get("annotations") or {}
        name = annotations.get("io.containerd.image.name") or ""
        tags = [reference.parse(name).normalized()] if name else []
        sources = [(_blob_path(layer.digest), layer) for layer in document.layers]
        loaded.append(_import(store, archive, config_bytes, sources, data, tags, report))
    return loaded


def _import(
    store: ImageStore,
    archive: tarfile.TarFile,
    config_bytes: bytes,
    sources: list[tuple[str, manifests.Descriptor | None]],
    manifest_bytes: bytes | None,
    tags: list[str],
    report: Callable[[str], None],
) -> Image:
    try:
        config = ImageConfig.model_validate_json(config_bytes)
    except ValueError as exc:
        raise InvalidArgument(f"invalid archive: image config is not valid: {exc}") from exc
    diff_ids = config.rootfs.diff_ids
    if len(diff_ids) != len(sources):
        raise InvalidArgument(
            f"invalid archive: the config lists {len(diff_ids)} layers, the manifest {len(sources)}"
        )
    chains = chain_ids(diff_ids)
    new_blobs: list[str] = []
    new_chains: list[str] = []
    try:
        return _import_layers(
            store,
            archive,
            config,
            config_bytes,
            sources,
            manifest_bytes,
            tags,
            report,
            chains,
            new_blobs,
            new_chains,
        )
    except BaseException:
        # nothing of a failed image stays: its new layers and blobs go (others' stay untouched)
        for chain in reversed(new_chains):
            store._remove_layer_quietly(layer_key(chain))
        used = {x["digest"] for other in store.list() for x in other.layers}
        for digest in new_blobs:
            if digest not in used:
                store.blobs.delete(digest)
        raise


def _import_layers(
    store,
    archive,
    config,
    config_bytes,
    sources,
    manifest_bytes,
    tags,
    report,  # type: ignore[no-untyped-def]
    chains,
    new_blobs,
    new_chains,
) -> Image:
    diff_ids = config.rootfs.diff_ids
    layer_docs = []
    for index, (path, descriptor) in enumerate(sources):
        handle = _member(archive, path)
        known = descriptor is not None and store.blobs.exists(descriptor.digest)
        digest = store.blobs.put_file(handle, expected=descriptor.digest if descriptor else None)
        if not known:
            new_blobs.append(digest)
        with store.blobs.open(digest) as raw:
            compression = layer_io.sniff_compression(raw.read(4))
        media_type = descriptor.media_type if descriptor else _MEDIA_BY_COMPRESSION[compression]
        if descriptor and manifests.LAYER_COMPRESSION.get(media_type) != compression:
            raise InvalidArgument(f"invalid archive: layer {digest} is not {media_type}")
        if not store.layer_exists(chains[index]):
            with store.blobs.open(digest) as raw:
                reader = layer_io.checked_decompress(raw, compression)

                def verify(reader=reader, expected=diff_ids[index], path=path) -> None:  # type: ignore[no-untyped-def]
                    got = reader.finish()
                    if got != expected:
                        raise InvalidArgument(
                            f"invalid archive: layer {path} has diff ID {got}, the config says {expected}"
                        )

                new_chains.append(chains[index])
                try:
                    store.add_layer(diff_ids[index], chains[index - 1] if index else None, reader, verify)
                except (OSError, EOFError) as exc:
                    raise InvalidArgument(f"invalid archive: layer {path}: {exc}") from exc
        layer_docs.append(
            {
                "digest": digest,
                "diff_id": diff_ids[index],
                "size": store.blobs.size(digest),
                "mediaType": media_type,
            }
        )
    image = store.add_image(
        config, layer_docs, 0, tags, config_bytes=config_bytes, manifest_bytes=manifest_bytes
    )
    for tag in tags:
        report(f"Loaded image: {reference.familiar(tag)}\n")
    if not tags:
        report(f"Loaded image ID: {image.id}\n")
    return image
