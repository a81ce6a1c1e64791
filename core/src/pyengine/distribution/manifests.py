"""Manifests and indexes, Docker schema2 and OCI: media types, validation, platform selection.

Everything a registry sends is checked here before anything is stored: the document parses, its media
type agrees with the Content-Type it came with, it is either a manifest or an index (never both), its
descriptors are well formed, and layer media types are ones we can unpack. Foreign layers (``urls``)
are refused: the engine never fetches a blob from anywhere but the registry it is pulling from.
"""

from __future__ import annotations

import json
import platform as host_platform
from dataclasses import dataclass
from typing import Any

from pyengine.errors import InvalidArgument, NotFound
from pyengine.state.blobs import check_digest

MAX_MANIFEST_BYTES = 4 << 20  # the size the OCI distribution spec lets registries and clients refuse

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_FOREIGN_LAYER = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
OCI_NONDIST_PREFIX = "application/vnd.oci.image.layer.nondistributable."

MANIFEST_TYPES = (DOCKER_MANIFEST, OCI_MANIFEST)
INDEX_TYPES = (DOCKER_LIST, OCI_INDEX)
ACCEPT = ", ".join((OCI_INDEX, DOCKER_LIST, OCI_MANIFEST, DOCKER_MANIFEST))

# layer media type -> compression ("" for a plain tar)
LAYER_COMPRESSION = {
    DOCKER_LAYER_GZIP: "gzip",
    OCI_LAYER_GZIP: "gzip",
    OCI_LAYER_ZSTD: "zstd",
    OCI_LAYER_TAR: "",
    "application/vnd.docker.image.rootfs.diff.tar": "",
}
CONFIG_TYPES = (DOCKER_CONFIG, OCI_CONFIG)


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: str
    size: int
    platform: dict[str, Any] | None = None

    def as_json(self) -> dict[str, Any]:
        return {"mediaType": self.media_type, "digest": self.digest, "size": self.size}


@dataclass(frozen=True)
class Manifest:
    media_type: str
    config: Descriptor
    layers: list[Descriptor]


@dataclass(frozen=True)
class Index:
    media_type: str
    manifests: list[Descriptor]


def _descriptor(doc: Any, where: str) -> Descriptor:
    if not isinstance(doc, dict):
        raise InvalidArgument(f"invalid manifest: {where} is not an object")
    media_type, digest, size = doc.get("mediaType"), doc.get("digest"), doc.get("size")
    if not isinstance(media_type, str) or not isinstance(digest, str):
        raise InvalidArgument(f"invalid manifest: {where} lacks mediaType or digest")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise InvalidArgument(f"invalid manifest: {where} has an invalid size {size!r}")
    if doc.get("urls"):
        raise InvalidArgument(f"refusing {where} {digest}: it names foreign URLs, which are never followed")
    try:
        check_digest(digest)
    except InvalidArgument as exc:
        raise InvalidArgument(f"invalid manifest: {where}: {exc.message}") from exc
    plat = doc.get("platform")
    return Descriptor(media_type, digest, size, plat if isinstance(plat, dict) else None)


def parse(data: bytes, content_type: str | None) -> Manifest | Index:
    """Parse a manifest or index as fetched; InvalidArgument for anything we must not trust."""
    if len(data) > MAX_MANIFEST_BYTES:
        raise InvalidArgument(f"manifest too large: {len(data)} bytes (limit {MAX_MANIFEST_BYTES})")
    try:
        doc = json.loads(data)
    except ValueError as exc:
        raise InvalidArgument(f"invalid manifest: not JSON ({exc})") from exc
    if not isinstance(doc, dict):
        raise InvalidArgument("invalid manifest: not a JSON object")
    declared = doc.get("mediaType")
    content_type = (content_type or "").split(";")[0].strip()
    if (
        declared
        and content_type
        and content_type not in ("application/json", "text/plain")
        and (declared != content_type)
    ):
        raise InvalidArgument(
            f"manifest media type mismatch: the document says {declared}, the registry sent {content_type}"
        )
    media_type = declared or content_type
    has_layers, has_manifests = "layers" in doc or "config" in doc, "manifests" in doc
    if has_layers and has_manifests:
        raise InvalidArgument("invalid manifest: it is both an image manifest and an index")
    if doc.get("schemaVersion") != 2:
        raise InvalidArgument(
            f"unsupported manifest schema version {doc.get('schemaVersion')!r} (only schema 2 is supported)"
        )
    if has_manifests or media_type in INDEX_TYPES:
        if media_type and media_type not in INDEX_TYPES:
            raise InvalidArgument(f"invalid index: media type {media_type} is not an index type")
        items = doc.get("manifests")
        if not isinstance(items, list):
            raise InvalidArgument("invalid index: manifests is not a list")
        return Index(media_type or OCI_INDEX, [_descriptor(m, "manifest") for m in items])
    if media_type and media_type not in MANIFEST_TYPES:
        raise InvalidArgument(f"unsupported manifest media type {media_type!r}")
    config = _descriptor(doc.get("config"), "config")
    if config.media_type not in CONFIG_TYPES:
        raise InvalidArgument(f"unsupported image config media type {config.media_type!r}")
    layers_doc = doc.get("layers")
    if not isinstance(layers_doc, list):
        raise InvalidArgument("invalid manifest: layers is not a list")
    layers = [_descriptor(x, "layer") for x in layers_doc]
    for layer in layers:
        if layer.media_type == DOCKER_FOREIGN_LAYER or layer.media_type.startswith(OCI_NONDIST_PREFIX):
            raise InvalidArgument(f"refusing foreign layer {layer.digest}: {layer.media_type}")
        if layer.media_type not in LAYER_COMPRESSION:
            raise InvalidArgument(f"unsupported layer media type {layer.media_type!r}")
    return Manifest(media_type or OCI_MANIFEST, config, layers)


@dataclass(frozen=True)
class Platform:
    os: str
    architecture: str
    variant: str = ""

    def __str__(self) -> str:
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)


_ARCH = {
    "x86_64": "amd64",
    "aarch64": "arm64",
    "armv7l": "arm",
    "i686": "386",
    "ppc64le": "ppc64le",
    "s390x": "s390x",
    "riscv64": "riscv64",
}


def host() -> Platform:
    machine = host_platform.machine()
    return Platform("linux", _ARCH.get(machine, machine), "v7" if machine == "armv7l" else "")


def parse_platform(text: str | None) -> Platform:
    """``linux/amd64[/variant]`` (or ``linux``, or empty for the host's)."""
    if not text:
        return host()
    parts = text.lower().split("/")
    if len(parts) > 3 or not all(parts):
        raise InvalidArgument(f"invalid platform {text!r}: expected os/arch[/variant]")
    if len(parts) == 1:
        return Platform(parts[0], host().architecture)
    return Platform(parts[0], _ARCH.get(parts[1], parts[1]), parts[2] if len(parts) == 3 else "")


def select(index: Index, wanted: Platform) -> Descriptor:
    """The index entry for ``wanted``; NotFound (Docker's wording) when the index has none."""
    candidates = []
    for entry in index.manifests:
        plat = entry.platform or {}
        if entry.media_type not in MANIFEST_TYPES:
            continue
        if plat.get("os") != wanted.os or plat.get("architecture") != wanted.architecture:
            continue
        variant = plat.get("variant", "")
        if wanted.variant and variant and variant != wanted.variant:
            continue
        candidates.append((0 if variant == wanted.variant else 1, entry))
    if not candidates:
        raise NotFound(f"no matching manifest for {wanted} in the manifest list entries")
    candidates.sort(key=lambda pair: pair[0])
    return candidates[0][1]


def image_platform(config: dict[str, Any]) -> Platform:
    return Platform(
        str(config.get("os", "")), str(config.get("architecture", "")), str(config.get("variant", ""))
    )
