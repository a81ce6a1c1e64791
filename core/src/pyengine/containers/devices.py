"""Host devices in a container: ``--device``, ``--device-cgroup-rule`` and ``--privileged``'s /dev.

Docker's semantics (moby daemon/oci_linux.go WithDevices, oci/devices_linux.go):

* each ``HostConfig.Devices`` entry becomes OCI ``linux.devices`` nodes (type, numbers, mode and
  owner read from the host node; a directory gives every device node below it) plus one allow rule
  per node in ``linux.resources.devices`` with the entry's permissions (``rwm`` by default);
* each ``HostConfig.DeviceCgroupRules`` entry (``"c 1:3 mr"``) is an allow rule after Docker's
  default rules;
* a privileged container gets every device node of the host's /dev (the devices cgroup already
  allows all); a mapping to another path in the container is added too, one to the same path is
  already there.

:func:`check_host_config` runs at create (a 400 naming the device, nothing created);
:func:`apply_to_spec` when the bundle is written at each start, reading the host nodes again.
"""

from __future__ import annotations

import os
import re
import stat
from typing import Any

from pyengine.errors import InvalidArgument
from pyengine.runtime.cgroups.common import DEFAULT_DEVICE_RULES

_CGROUP_RULE = re.compile(r"([acb]) ([0-9]+|\*):([0-9]+|\*) ([rwm]{1,3})")
# Directories of /dev that are the container's own mounts or not devices (runc's GetDevices).
_SKIPPED_DEV_DIRS = frozenset({"pts", "shm", "fd", "mqueue", ".lxc", ".lxd-mounts", ".udev"})
_ALL_PERMISSIONS = "rwm"


def valid_device_mode(mode: str) -> bool:
    """A non-empty combination of r, w and m, each at most once."""
    return bool(mode) and all(c in _ALL_PERMISSIONS for c in mode) and len(set(mode)) == len(mode)


def parse_cgroup_rule(rule: str) -> dict[str, Any]:
    """``"c 1:3 mr"`` -> an OCI allow rule; ``*`` is -1 (any). ``"a"`` alone means ``"a *:* rwm"``."""
    text = "a *:* rwm" if rule == "a" else rule
    match = _CGROUP_RULE.fullmatch(text)
    if match is None:
        raise InvalidArgument(f"invalid device cgroup rule format: '{rule}'")
    kind, major, minor, access = match.groups()
    return {
        "allow": True,
        "type": kind,
        "major": -1 if major == "*" else int(major),
        "minor": -1 if minor == "*" else int(minor),
        "access": access,
    }


def device_node(path: str) -> dict[str, Any] | None:
    """The OCI device of the node at ``path`` (not followed if a symlink), None if not a device.

    OSError when ``path`` cannot be stat'ed.
    """
    info = os.lstat(path)
    if stat.S_ISCHR(info.st_mode):
        kind = "c"
    elif stat.S_ISBLK(info.st_mode):
        kind = "b"
    else:
        return None
    return {
        "path": path,
        "type": kind,
        "major": os.major(info.st_rdev),
        "minor": os.minor(info.st_rdev),
        "fileMode": stat.S_IMODE(info.st_mode) & 0o777,
        "uid": info.st_uid,
        "gid": info.st_gid,
    }


def _cgroup_rule_for(device: dict[str, Any], permissions: str) -> dict[str, Any]:
    return {
        "allow": True,
        "type": device["type"],
        "major": device["major"],
        "minor": device["minor"],
        "access": permissions,
    }


def devices_from_path(
    path_on_host: str, path_in_container: str, permissions: str
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(OCI devices, cgroup allow rules) for one ``--device``; InvalidArgument in Docker's words.

    A symlink on the host is followed (``/dev/disk/by-id/...``); a directory gives every device
    node below it, at the same place under ``path_in_container``.
    """
    resolved = path_on_host
    if os.path.islink(path_on_host):
        resolved = os.path.realpath(path_on_host)
    try:
        node = device_node(resolved)
        reason = "not a device node"
    except OSError as exc:
        node, reason = None, (os.strerror(exc.errno).lower() if exc.errno else str(exc))
    if node is not None:
        node["path"] = path_in_container
        return [node], [_cgroup_rule_for(node, permissions)]
    devices: list[dict[str, Any]] = []
    if os.path.isdir(resolved):
        for directory, subdirectories, names in os.walk(resolved):
            subdirectories.sort()
            for name in sorted(names):
                host_path = os.path.join(directory, name)
                try:
                    child = device_node(host_path)
                except OSError:
                    continue
                if child is not None:
                    child["path"] = path_in_container + host_path[len(resolved) :]
                    devices.append(child)
    if not devices:
        raise InvalidArgument(
            f'error gathering device information while adding custom device "{path_on_host}": {reason}'
        )
    return devices, [_cgroup_rule_for(device, permissions) for device in devices]


def host_devices(root: str = "/dev") -> list[dict[str, Any]]:
    """Every character and block device node under the host's ``root``, for a privileged container
    (symlinks, /dev/console and the directories the container mounts itself are left out)."""
    found: list[dict[str, Any]] = []
    try:
        entries = sorted(os.scandir(root), key=lambda entry: entry.name)
    except OSError:
        return found
    for entry in entries:
        if entry.is_dir(follow_symlinks=False):
            if entry.name not in _SKIPPED_DEV_DIRS:
                found.extend(host_devices(entry.path))
            continue
        if entry.name == "console" or entry.is_symlink():
            continue
        try:
            node = device_node(entry.path)
        except OSError:
            continue  # gone since the listing
        if node is not None:
            found.append(node)
    return found


def _mapping_fields(mapping: Any) -> tuple[str, str, str]:
    """(host path, container path, permissions) with the docker CLI's defaults for empty fields."""
    host = mapping.PathOnHost
    return host, mapping.PathInContainer or host, mapping.CgroupPermissions or _ALL_PERMISSIONS


def _check_mapping(host: str, container: str, permissions: str) -> None:
    if not valid_device_mode(permissions):
        raise InvalidArgument(
            f'invalid device mode: "{permissions}" for device "{host}" '
            "(CgroupPermissions is a combination of r, w and m)"
        )
    if not host.startswith("/"):
        # The daemon's working directory is no place to look for the user's device.
        raise InvalidArgument(f'invalid device "{host}": {host} is not an absolute path')
    if not container.startswith("/"):
        raise InvalidArgument(f'invalid device "{host}": {container} is not an absolute path')


def check_host_config(host_config: Any) -> None:
    """Raise InvalidArgument for a device mapping or cgroup rule that cannot work."""
    for mapping in host_config.Devices or ():
        host, container, permissions = _mapping_fields(mapping)
        _check_mapping(host, container, permissions)
        if host_config.Privileged and host == container:
            continue  # a privileged container has every host device already
        devices_from_path(host, container, permissions)
    for rule in host_config.DeviceCgroupRules or ():
        parse_cgroup_rule(rule)


def apply_to_spec(spec: dict[str, Any], host_config: Any) -> None:
    """Add the container's devices to ``linux.devices`` and their rules to ``linux.resources``."""
    linux = spec["linux"]
    resources = linux.setdefault("resources", {})
    devices: list[dict[str, Any]] = []
    if host_config.Privileged:
        devices.extend(host_devices())
        for mapping in host_config.Devices or ():
            host, container, _ = _mapping_fields(mapping)
            if host != container:
                devices.extend(devices_from_path(host, container, _ALL_PERMISSIONS)[0])
        resources["devices"] = [{"allow": True, "access": _ALL_PERMISSIONS}]
    else:
        rules = list(resources.get("devices") or DEFAULT_DEVICE_RULES)
        for mapping in host_config.Devices or ():
            host, container, permissions = _mapping_fields(mapping)
            _check_mapping(host, container, permissions)
            mapped, allowed = devices_from_path(host, container, permissions)
            devices.extend(mapped)
            rules.extend(allowed)
        rules.extend(parse_cgroup_rule(rule) for rule in host_config.DeviceCgroupRules or ())
        resources["devices"] = rules
    if devices:
        linux["devices"] = [*(linux.get("devices") or []), *devices]
