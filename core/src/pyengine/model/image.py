"""Images: the OCI image config and the engine's record of an image."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from pyengine.model.base import DockerModel


class ImageRunConfig(DockerModel):
    """The ``config`` of an OCI image config: defaults for containers made from the image."""

    User: str = ""
    ExposedPorts: dict[str, dict] | None = None
    Env: list[str] | None = None
    Entrypoint: list[str] | None = None
    Cmd: list[str] | None = None
    Volumes: dict[str, dict] | None = None
    WorkingDir: str = ""
    Labels: dict[str, str] | None = None
    StopSignal: str | None = None
    Healthcheck: dict[str, Any] | None = None
    OnBuild: list[str] | None = None
    Shell: list[str] | None = None


class RootFS(DockerModel):
    type: str = "layers"
    diff_ids: list[str] = Field(default_factory=list)


class HistoryEntry(DockerModel):
    created: str | None = None
    created_by: str | None = None
    author: str | None = None
    comment: str | None = None
    empty_layer: bool | None = None


class ImageConfig(DockerModel):
    """An OCI image config (application/vnd.oci.image.config.v1+json); its sha256 is the image ID."""

    created: str | None = None
    author: str | None = None
    architecture: str = "amd64"
    os: str = "linux"
    config: ImageRunConfig = Field(default_factory=ImageRunConfig)
    rootfs: RootFS = Field(default_factory=RootFS)
    history: list[HistoryEntry] = Field(default_factory=list)
