"""Networks: the record of a network and of a container's endpoint on it."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from pyengine.model.base import DockerModel


class IPAMConfig(DockerModel):
    Subnet: str | None = None
    Gateway: str | None = None
    IPRange: str | None = None


class IPAMSpec(DockerModel):
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
    IPAM: IPAMSpec = Field(default_factory=IPAMSpec)
    Internal: bool = False
    Attachable: bool = False
    Ingress: bool = False
    ConfigFrom: dict[str, str] = Field(default_factory=lambda: {"Network": ""})
    ConfigOnly: bool = False
    Options: dict[str, str] = Field(default_factory=dict)
    Labels: dict[str, str] = Field(default_factory=dict)


class NetworkCreateRequest(DockerModel):
    """The body of ``POST /networks/create`` (as the docker CLI and SDK send it)."""

    Name: str = ""
    Driver: str = "bridge"
    Scope: str | None = None
    IPAM: IPAMSpec | None = None
    Internal: bool = False
    Attachable: bool = False
    Ingress: bool = False
    ConfigOnly: bool = False
    EnableIPv6: bool | None = False
    Options: dict[str, str] | None = None
    Labels: dict[str, str] | None = None
    CheckDuplicate: bool | None = None


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
