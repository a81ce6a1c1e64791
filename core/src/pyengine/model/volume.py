"""Volumes: the record of a named volume, and a container's mount points."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from pyengine.model.base import DockerModel


class Volume(DockerModel):
    """Docker's volume object (``GET /volumes/{name}``)."""

    Name: str
    Driver: str = "local"
    Mountpoint: str
    CreatedAt: str
    Labels: dict[str, str] | None = None
    Options: dict[str, str] | None = None
    Scope: str = "local"
    Status: dict[str, Any] | None = None


class MountPoint(DockerModel):
    """One mount of a container (a volume, a bind or a tmpfs), as inspect's ``Mounts`` items show it,
    plus what the engine needs to set it up at every start."""

    Type: str  # "volume", "bind" or "tmpfs"
    Name: str = ""
    Source: str = ""  # bind: the host path; volume: the volume's mount point once known
    Destination: str
    Driver: str = ""
    Mode: str = ""
    RW: bool = True
    Propagation: str = ""
    #: an anonymous volume (image VOLUME, ``-v /path``, ``--mount type=volume`` without a source),
    #: removed with the container by ``rm -v`` and ``--rm``
    Anonymous: bool = False
    #: copy the image's content at Destination into the volume at the next start if it is empty
    #: (Docker's copy-up; cleared after the first start, never set with ``nocopy``)
    CopyImageData: bool = False
    #: tmpfs options (``size=16m``, ``mode=1777``...) for a tmpfs mount
    TmpfsOptions: list[str] = Field(default_factory=list)
    #: whether inspect lists it (``--tmpfs`` mounts are not listed by Docker; ``--mount`` ones are)
    Listed: bool = True

    def docker_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"Type": self.Type}
        if self.Type == "volume":
            doc["Name"] = self.Name
        doc.update(Source=self.Source, Destination=self.Destination)
        if self.Type == "volume":
            doc["Driver"] = self.Driver
        doc.update(Mode=self.Mode, RW=self.RW, Propagation=self.Propagation)
        return doc
