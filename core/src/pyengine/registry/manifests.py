"""Validation of pushed manifests: what a document is, what it references, what it says it is.

A pushed document must be a JSON object of a manifest media type we serve (OCI and Docker schema2
manifests and indexes); its ``mediaType`` field, when present, must agree with the Content-Type it
was sent with; it cannot be both an index (``manifests``) and a manifest (``config``/``layers``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from pyengine.registry import errors, names

MAX_MANIFEST_BYTES = 4 * 1024 * 1024

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
IMAGE_MANIFEST_TYPES = {OCI_MANIFEST, DOCKER_MANIFEST}
INDEX_TYPES = {OCI_INDEX, DOCKER_MANIFEST_LIST}
# Content types that say nothing about the document: the mediaType field (or its shape) decides.
_GENERIC_CONTENT_TYPES = {"", "application/json", "application/octet-stream"}


@dataclass
class Descriptor:
    digest: str
    size: int
    media_type: str
    urls: list[str] = field(default_factory=list)


@dataclass
class ManifestDocument:
    """A validated manifest: its media type, what it references and its ``subject`` (if any)."""

    media_type: str
    is_index: bool
    blobs: list[Descriptor]  # config and layers of an image manifest
    children: list[Descriptor]  # manifests of an index
    subject: str | None
    artifact_type: str | None
    annotations: dict[str, str] | None

    def referrer_descriptor(self, digest: str, size: int) -> dict[str, Any]:
        """The descriptor the referrers API lists for this manifest."""
        descriptor: dict[str, Any] = {"mediaType": self.media_type, "digest": digest, "size": size}
        if self.artifact_type:
            descriptor["artifactType"] = self.artifact_type
        if self.annotations:
            descriptor["annotations"] = self.annotations
        return descriptor


def parse_manifest(body: bytes, content_type: str) -> ManifestDocument:
    """Validate a pushed manifest's bytes against its Content-Type; raise MANIFEST_INVALID/UNSUPPORTED."""
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise errors.manifest_invalid(f"manifest is not valid JSON: {exc}") from None
    if not isinstance(document, dict):
        raise errors.manifest_invalid("manifest is not a JSON object")
    declared = document.get("mediaType")
    if declared is not None and not isinstance(declared, str):
        raise errors.manifest_invalid("mediaType is not a string")
    content_type = content_type.split(";", 1)[0].strip().lower()
    if declared and content_type not in _GENERIC_CONTENT_TYPES and declared != content_type:
        raise errors.manifest_invalid(
            f"the manifest's mediaType {declared!r} disagrees with its Content-Type {content_type!r}",
            {"mediaType": declared, "contentType": content_type},
        )
    has_index_fields = "manifests" in document
    has_manifest_fields = "config" in document or "layers" in document
    if has_index_fields and has_manifest_fields:
        raise errors.manifest_invalid(
            "the document is both an index (manifests) and a manifest (config, layers)"
        )
    media_type = declared or (content_type if content_type not in _GENERIC_CONTENT_TYPES else "")
    if not media_type:
        media_type = OCI_INDEX if has_index_fields else OCI_MANIFEST
    if media_type not in IMAGE_MANIFEST_TYPES | INDEX_TYPES:
        raise errors.unsupported(f"manifest media type {media_type[:120]!r} is not supported", status=415)
    if document.get("schemaVersion") != 2:
        raise errors.manifest_invalid("schemaVersion must be 2")
    is_index = media_type in INDEX_TYPES
    if is_index and has_manifest_fields:
        raise errors.manifest_invalid(f"an index ({media_type}) has config or layers")
    if not is_index and has_index_fields:
        raise errors.manifest_invalid(f"an image manifest ({media_type}) has manifests")
    blobs: list[Descriptor] = []
    children: list[Descriptor] = []
    if is_index:
        children = [_descriptor(d, "manifests[]") for d in _list(document, "manifests")]
    else:
        if "config" not in document:
            raise errors.manifest_invalid("an image manifest needs a config descriptor")
        blobs.append(_descriptor(document["config"], "config"))
        blobs += [_descriptor(d, "layers[]") for d in _list(document, "layers")]
    subject = None
    if document.get("subject") is not None:
        subject = _descriptor(document["subject"], "subject").digest
    artifact_type = document.get("artifactType")
    if artifact_type is not None and not isinstance(artifact_type, str):
        raise errors.manifest_invalid("artifactType is not a string")
    if not artifact_type and not is_index:
        artifact_type = blobs[0].media_type
    annotations = document.get("annotations")
    if annotations is not None and not isinstance(annotations, dict):
        raise errors.manifest_invalid("annotations is not an object")
    return ManifestDocument(media_type, is_index, blobs, children, subject, artifact_type, annotations)


def _list(document: dict, key: str) -> list:
    value = document.get(key, [])
    if not isinstance(value, list):
        raise errors.manifest_invalid(f"{key} is not a list")
    return value


def _descriptor(value: Any, where: str) -> Descriptor:
    if not isinstance(value, dict):
        raise errors.manifest_invalid(f"{where} is not a descriptor object")
    digest, size, media_type = value.get("digest"), value.get("size"), value.get("mediaType", "")
    if not isinstance(digest, str):
        raise errors.manifest_invalid(f"{where} has no digest")
    try:
        names.check_digest(digest)
    except errors.RegistryError as exc:
        raise errors.manifest_invalid(f"{where}: {exc.message}", {"digest": digest[:140]}) from None
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise errors.manifest_invalid(f"{where} {digest} has no valid size")
    if not isinstance(media_type, str):
        raise errors.manifest_invalid(f"{where} {digest} has a mediaType that is not a string")
    urls = value.get("urls") or []
    if not isinstance(urls, list):
        raise errors.manifest_invalid(f"{where} {digest}: urls is not a list")
    return Descriptor(digest, size, media_type, urls)


def check_references(document: ManifestDocument, storage: Any, name: str) -> None:
    """Every blob and child manifest the document names must be in the repository, at its size.

    A layer with ``urls`` (a foreign, "non-distributable" layer) must be here too: the registry
    never fetches those URLs, and holding a manifest whose layers it cannot serve helps nobody.
    Raises MANIFEST_BLOB_UNKNOWN or, for a size that lies, MANIFEST_INVALID.
    """
    for blob in document.blobs:
        if not storage.has_layer(name, blob.digest):
            raise errors.manifest_blob_unknown(blob.digest)
        _check_size(blob, storage.blob_path(blob.digest).stat().st_size)
    for child in document.children:
        if not storage.has_manifest(name, child.digest):
            raise errors.manifest_blob_unknown(child.digest)
        _check_size(child, storage.blob_path(child.digest).stat().st_size)


def _check_size(descriptor: Descriptor, actual: int) -> None:
    if descriptor.size != actual:
        raise errors.manifest_invalid(
            f"descriptor of {descriptor.digest} says {descriptor.size} bytes, the registry holds {actual}",
            {"digest": descriptor.digest, "size": descriptor.size, "actual": actual},
        )
