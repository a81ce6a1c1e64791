"""An image as the store knows it (config, manifest digest, layers, tags) and the identities of its
layers: OCI chain IDs and the storage driver's layer ids derived from them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from pyengine.images import reference
from pyengine.model.base import parse_rfc3339
from pyengine.model.image import ImageConfig
from pyengine.state.blobs import sha256_digest

MEDIA_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"


def chain_ids(diff_ids: list[str]) -> list[str]:
    """The OCI chain IDs of a layer stack: chain(0)=diff(0), chain(n)=sha256(chain(n-1)+' '+diff(n))."""
    chains: list[str] = []
    for diff_id in diff_ids:
        if not chains:
            chains.append(diff_id)
        else:
            chains.append(sha256_digest(f"{chains[-1]} {diff_id}".encode()))
    return chains


def layer_key(chain_id: str) -> str:
    """The storage driver's layer_id for a chain ID."""
    return chain_id.split(":", 1)[1]


@dataclass
class Image:
    """An image as the store knows it."""

    id: str  # sha256:<hex> of the config
    config: ImageConfig
    manifest_digest: str
    layers: list[dict[str, Any]]  # [{digest, diff_id, size, mediaType}]
    size: int  # bytes unpacked, all layers
    tags: list[str]  # normalized references
    parent: str = ""  # the image a build step made this one from ("" for none)
    repo_digests: list[str] = dataclasses.field(default_factory=list)  # normalized repo@digest

    @property
    def top_layer(self) -> str | None:
        """The driver layer_id containers are created on, or None for an image with no layers."""
        chains = chain_ids(self.config.rootfs.diff_ids)
        return layer_key(chains[-1]) if chains else None

    @property
    def created(self) -> str:
        return self.config.created or "1970-01-01T00:00:00Z"

    def inspect_json(self, driver_name: str) -> dict[str, Any]:
        """Docker's ``GET /images/{name}/json`` shape."""
        run = self.config.config.model_dump(exclude_none=False)
        return {
            "Id": self.id,
            "RepoTags": [reference.familiar(t) for t in self.tags],
            "RepoDigests": [reference.familiar(d) for d in self.repo_digests],
            "Parent": self.parent,
            "Comment": (self.config.history[-1].comment or "") if self.config.history else "",
            "Created": self.created,
            "Container": "",
            "ContainerConfig": {},
            "DockerVersion": "",
            "Author": self.config.author or "",
            "Config": {
                "Hostname": "",
                "Domainname": "",
                "AttachStdin": False,
                "AttachStdout": False,
                "AttachStderr": False,
                "Tty": False,
                "OpenStdin": False,
                "StdinOnce": False,
                "Image": "",
                **run,
            },
            "Architecture": self.config.architecture,
            "Os": self.config.os,
            "Size": self.size,
            "VirtualSize": self.size,
            "GraphDriver": {"Name": driver_name, "Data": None},
            "RootFS": {"Type": "layers", "Layers": list(self.config.rootfs.diff_ids)},
            "Metadata": {"LastTagTime": "0001-01-01T00:00:00Z"},
        }

    def summary_json(self) -> dict[str, Any]:
        """Docker's ``GET /images/json`` item shape."""
        return {
            "Containers": -1,
            "Created": int(parse_rfc3339(self.created)),
            "Id": self.id,
            "Labels": self.config.config.Labels or {},
            "ParentId": self.parent,
            "RepoDigests": [reference.familiar(d) for d in self.repo_digests],
            "RepoTags": [reference.familiar(t) for t in self.tags],
            "SharedSize": -1,
            "Size": self.size,
            "VirtualSize": self.size,
        }
