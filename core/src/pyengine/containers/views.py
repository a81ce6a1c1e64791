"""Docker's JSON shapes for containers: inspect, list (ps) items, and the ps filters."""

from __future__ import annotations

import json
import time
from typing import Any

from pyengine.containers import health
from pyengine.errors import InvalidArgument
from pyengine.filters import label_matches
from pyengine.humanize import human_duration
from pyengine.model.base import parse_rfc3339
from pyengine.model.container import Container, ContainerStatus


def status_text(container: Container, now: float | None = None) -> str:
    now = time.time() if now is None else now
    state = container.State
    if state.Status == ContainerStatus.RUNNING:
        return f"Up {human_duration(now - parse_rfc3339(state.StartedAt))}{health.status_suffix(container)}"
    if state.Status == ContainerStatus.PAUSED:
        return f"Up {human_duration(now - parse_rfc3339(state.StartedAt))} (Paused)"
    if state.Status == ContainerStatus.RESTARTING:
        return f"Restarting ({state.ExitCode}) {human_duration(now - parse_rfc3339(state.FinishedAt))} ago"
    if state.Status == ContainerStatus.EXITED:
        if parse_rfc3339(state.FinishedAt) == 0:
            return "Created"
        return f"Exited ({state.ExitCode}) {human_duration(now - parse_rfc3339(state.FinishedAt))} ago"
    if state.Status == ContainerStatus.REMOVING:
        return "Removal In Progress"
    if state.Status == ContainerStatus.DEAD:
        return "Dead"
    return "Created"


def inspect_json(container: Container) -> dict[str, Any]:
    """Docker's ``GET /containers/{id}/json`` (ContainerInspectResponse) shape."""
    host_config = container.HostConfig.model_dump(mode="json")
    host_config.setdefault("LogConfig", {"Type": "json-file", "Config": {}})
    return {
        "Id": container.Id,
        "Created": container.Created,
        "Path": container.Path,
        "Args": container.Args,
        "State": container.State.docker_json(),
        "Image": container.Image,
        "ResolvConfPath": container.ResolvConfPath,
        "HostnamePath": container.HostnamePath,
        "HostsPath": container.HostsPath,
        "LogPath": container.LogPath,
        "Name": "/" + container.Name,
        "RestartCount": container.RestartCount,
        "Driver": container.Driver,
        "Platform": "linux",
        "MountLabel": "",
        "ProcessLabel": "",
        "AppArmorProfile": "",
        "ExecIDs": None,
        "HostConfig": host_config,
        "GraphDriver": {"Name": container.Driver, "Data": None},
        "Mounts": [m.docker_json() for m in container.MountPoints if m.Listed],
        "Config": container.Config.model_dump(mode="json"),
        "NetworkSettings": network_settings(container),
    }


def network_settings(container: Container) -> dict[str, Any]:
    """Docker's NetworkSettings: the first network's address at the top level, as Docker fills it
    for the default bridge."""
    kept = container.NetworkSettings or {}
    networks = kept.get("Networks") or {}
    first = next(iter(networks.values()), {})
    return {
        "Bridge": "",
        "SandboxID": "",
        "HairpinMode": False,
        "LinkLocalIPv6Address": "",
        "LinkLocalIPv6PrefixLen": 0,
        "Ports": kept.get("Ports") or {},
        "SandboxKey": kept.get("SandboxKey") or "",
        "SecondaryIPAddresses": None,
        "SecondaryIPv6Addresses": None,
        "EndpointID": first.get("EndpointID", ""),
        "Gateway": first.get("Gateway", ""),
        "GlobalIPv6Address": "",
        "GlobalIPv6PrefixLen": 0,
        "IPAddress": first.get("IPAddress", ""),
        "IPPrefixLen": first.get("IPPrefixLen", 0),
        "IPv6Gateway": "",
        "MacAddress": first.get("MacAddress", ""),
        "Networks": networks,
    }


def summary_json(container: Container, now: float | None = None) -> dict[str, Any]:
    """Docker's ``GET /containers/json`` item shape."""
    command = " ".join([container.Path, *container.Args])
    return {
        "Id": container.Id,
        "Names": ["/" + container.Name],
        "Image": container.ImageName or container.Image,
        "ImageID": container.Image,
        "Command": command,
        "Created": int(parse_rfc3339(container.Created)),
        "Ports": port_list(container),
        "Labels": container.Config.Labels or {},
        "State": container.State.Status.value,
        "Status": status_text(container, now),
        "HostConfig": {"NetworkMode": container.HostConfig.NetworkMode},
        "NetworkSettings": {"Networks": (container.NetworkSettings or {}).get("Networks") or {}},
        "Mounts": [m.docker_json() for m in container.MountPoints if m.Listed],
    }


def port_list(container: Container) -> list[dict[str, Any]]:
    """``ps``'s Ports: one item per published binding, and the exposed ports without one."""
    out: list[dict[str, Any]] = []
    for key, bindings in ((container.NetworkSettings or {}).get("Ports") or {}).items():
        port, _, proto = key.partition("/")
        if not bindings:
            out.append({"PrivatePort": int(port), "Type": proto})
        for b in bindings or []:
            out.append(
                {"IP": b["HostIp"], "PrivatePort": int(port), "PublicPort": int(b["HostPort"]), "Type": proto}
            )
    return out


def parse_filters(text: str | None) -> dict[str, list[str]]:
    """Docker's ``filters`` query value: ``{"name":{"x":true}}`` or the old ``{"name":["x"]}``."""
    if not text:
        return {}
    try:
        raw = json.loads(text)
    except ValueError as exc:
        raise InvalidArgument(f"invalid filter: {exc}") from exc
    if not isinstance(raw, dict):
        raise InvalidArgument("invalid filter: expected an object")
    out: dict[str, list[str]] = {}
    for key, value in raw.items():
        if isinstance(value, dict):
            out[key] = [k for k, on in value.items() if on]
        elif isinstance(value, list):
            out[key] = [str(v) for v in value]
        else:
            raise InvalidArgument(f"invalid filter '{key}'")
    return out


CONTAINER_FILTERS = (
    "id",
    "name",
    "status",
    "label",
    "exited",
    "ancestor",
    "before",
    "since",
    "health",
    "network",
    "volume",
    "publish",
    "expose",
    "isolation",
    "is-task",
)


def matches(container: Container, filters: dict[str, list[str]], image_ids: dict[str, str]) -> bool:
    """Whether a container passes ps filters (OR within one key, AND across keys).

    ``image_ids`` maps image references the user may name to image IDs, for ``ancestor``.
    """
    for key, values in filters.items():
        if key not in CONTAINER_FILTERS:
            raise InvalidArgument(f"invalid filter '{key}'")
        if not values:
            continue
        if key == "id" and not any(container.Id.startswith(v) for v in values):
            return False
        if key == "name" and not any(v.lstrip("/") in container.Name for v in values):
            return False
        if key == "status" and container.State.Status.value not in values:
            return False
        if key == "exited":
            if container.State.Status != ContainerStatus.EXITED:
                return False
            if str(container.State.ExitCode) not in values:
                return False
        if key == "health" and ((container.State.Health or {}).get("Status") or "none") not in values:
            return False
        if key == "label":
            labels = container.Config.Labels or {}
            if not all(label_matches(labels, wanted) for wanted in values):
                return False
        if key == "ancestor" and not any(
            container.ImageName == v
            or image_ids.get(v) == container.Image
            or container.Image.startswith(v if v.startswith("sha256:") else "sha256:" + v)
            for v in values
        ):
            return False
        if key == "volume" and not any(
            v in (m.Name, m.Source, m.Destination) for m in container.MountPoints for v in values
        ):
            return False
    return True
