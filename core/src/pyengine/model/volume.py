"""Volumes: the record of a named volume."""

from __future__ import annotations

from pydantic import Field

from pyengine.model.base import DockerModel


class Volume(DockerModel):
    """Docker's volume object (``GET /volumes/{name}``)."""

    Name: str
    Driver: str = "local"
    Mountpoint: str
    CreatedAt: str
    Labels: dict[str, str] = Field(default_factory=dict)
    Options: dict[str, str] = Field(default_factory=dict)
    Scope: str = "local"
