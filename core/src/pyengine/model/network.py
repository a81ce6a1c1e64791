"""Networks: the record of a network and of a container's endpoint on it."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from pyengine.model.base import DockerModel


class IPAMConfig(DockerModel):
    Subnet: str | None = None
    Gateway: str | None = None
    IPRange: str | None = None


class IPAM(DockerModel):
    Driver: str = "default"
    Options: dict[str, str] | None = None
    Config: list[IPAMConfig] = Field(default_factory=list)


class Network(DockerModel):
    """Docker's network object (``GET /networks/{id}``)."""

    Name: str
    Id: str
    Created: str
    Scope: str = "local"
    Driver: str
    EnableIPv6: bool = False
    IPAM: IPAM = Field(default_factory=IPAM)
    Internal: bool = False
    Attachable: bool = False
    Options: dict[str, str] = Field(default_factory=dict)
    Labels: dict[str, str] = Field(default_factory=dict)


class Endpoint(DockerModel):
    """A container's attachment to a network (``NetworkSettings.Networks[name]``)."""

    NetworkID: str
    EndpointID: str
    Gateway: str = ""
    IPAddress: str = ""
    IPPrefixLen: int = 0
    MacAddress: str = ""
    Aliases: list[str] | None = None
    DriverOpts: dict[str, Any] | None = None
