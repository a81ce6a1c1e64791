"""A container's mounts from its create request: ``Binds``, ``Mounts``, ``Tmpfs``, ``Volumes`` and the
image's ``VOLUME``s, validated with Docker's rules and messages into :class:`MountPoint` records.

Pure functions apart from looking at bind sources on the host; creating volumes and host directories
is the volume service's job (:mod:`pyengine.volumes.service`), after everything here passed.

Precedence, as Docker's: ``Binds``, ``Mounts`` and ``Tmpfs`` may not share a destination ("Duplicate
mount point"); ``Config.Volumes`` and the image's volumes become anonymous volumes only where none of
those already mounts something.
"""

from __future__ import annotations

import os
import posixpath
import re
from typing import Any

from pyengine.errors import InvalidArgument
from pyengine.model.volume import MountPoint

VOLUME_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$")
PROPAGATIONS = ("shared", "rshared", "slave", "rslave", "private", "rprivate")
_LABEL_MODES = ("z", "Z")
DEFAULT_TMPFS_OPTIONS = ["noexec", "nosuid", "nodev"]


def check_volume_name(name: str) -> None:
    """Docker's rule for a local volume name, with its message."""
    if len(name) == 1 and name.isalnum():
        raise InvalidArgument(
            f"create {name}: volume name is too short, names should be at least two alphanumeric characters"
        )
    if not VOLUME_NAME.match(name):
        raise InvalidArgument(
            f'create {name}: "{name}" includes invalid characters for a local volume name, only '
            '"[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended to pass a host directory, use '
            "absolute path"
        )


def _mount_error(kind: str, message: str) -> InvalidArgument:
    return InvalidArgument(f'invalid mount config for type "{kind}": {message}')


def _absolute_target(kind: str, target: str) -> str:
    if not target:
        raise _mount_error(kind, "field Target must not be empty")
    if not target.startswith("/"):
        raise _mount_error(kind, f"invalid mount path: '{target}' mount path must be absolute")
    cleaned = posixpath.normpath(target)
    if cleaned == "/":
        raise _mount_error(kind, "invalid specification: destination can't be '/'")
    return cleaned


def parse_mode(mode: str, kind: str) -> tuple[bool, str, bool]:
    """``ro,rslave,nocopy`` -> (read-write, propagation, copy image data); InvalidArgument otherwise."""
    rw, propagation, copy = True, "", kind == "volume"
    seen_rw = seen_label = False
    for item in mode.split(",") if mode else []:
        if item in ("ro", "rw") and not seen_rw:
            rw, seen_rw = item == "rw", True
        elif item in PROPAGATIONS and not propagation:
            propagation = item
        elif item in _LABEL_MODES and not seen_label:
            seen_label = True  # SELinux relabelling: nothing to do without SELinux
        elif item == "nocopy" and kind == "volume" and copy:
            copy = False
        else:
            raise InvalidArgument(f"invalid mode: {mode}")
    return rw, propagation, copy


def parse_bind(spec: str) -> MountPoint:
    """One ``Binds`` entry (``-v``): ``/host:/ctr[:mode]``, ``name:/ctr[:mode]`` or ``/ctr``."""
    parts = spec.split(":")
    if len(parts) == 1:
        source, target, mode = "", parts[0], ""
    elif len(parts) == 2:
        (source, target), mode = parts, ""
    elif len(parts) == 3:
        source, target, mode = parts
    else:
        raise InvalidArgument(f"invalid volume specification: '{spec}'")
    kind = "bind" if source.startswith("/") else "volume"
    if not target:
        raise InvalidArgument(f"invalid volume specification: '{spec}'")
    try:
        destination = _absolute_target(kind, target)
    except InvalidArgument as exc:
        raise InvalidArgument(f"invalid volume specification: '{spec}': {exc.message}") from None
    if kind == "bind" and "nocopy" in mode.split(","):
        raise InvalidArgument(
            f"invalid volume specification: '{spec}': "
            f"{_mount_error('bind', 'field VolumeOptions must not be specified').message}"
        )
    rw, propagation, copy = parse_mode(mode, kind)
    if kind == "bind":
        return MountPoint(
            Type="bind",
            Source=posixpath.normpath(source),
            Destination=destination,
            Mode=mode,
            RW=rw,
            Propagation=propagation or "rprivate",
        )
    if source:
        check_volume_name(source)
    return MountPoint(
        Type="volume",
        Name=source,
        Destination=destination,
        Mode=mode or "z",
        RW=rw,
        Anonymous=not source,
        CopyImageData=copy,
    )


def parse_mount(item: dict[str, Any]) -> tuple[MountPoint, dict[str, Any]]:
    """One ``HostConfig.Mounts`` entry (``--mount``) -> (mount point, volume create options)."""
    kind = str(item.get("Type") or "")
    source = str(item.get("Source") or "")
    read_only = bool(item.get("ReadOnly"))
    bind_options = item.get("BindOptions") or None
    volume_options = item.get("VolumeOptions") or None
    tmpfs_options = item.get("TmpfsOptions") or None
    if kind not in ("bind", "volume", "tmpfs"):
        raise _mount_error(kind, "mount type unknown")
    destination = _absolute_target(kind, str(item.get("Target") or ""))
    for name, value, allowed in (
        ("BindOptions", bind_options, "bind"),
        ("VolumeOptions", volume_options, "volume"),
        ("TmpfsOptions", tmpfs_options, "tmpfs"),
    ):
        if value and kind != allowed:
            raise _mount_error(kind, f"field {name} must not be specified")
    if kind == "bind":
        if not source:
            raise _mount_error(kind, "field Source must not be empty")
        if not source.startswith("/"):
            raise _mount_error(kind, f"invalid mount path: '{source}' mount path must be absolute")
        create = bool((bind_options or {}).get("CreateMountpoint"))
        if not create and not os.path.exists(source):
            raise _mount_error(kind, f"bind source path does not exist: {source}")
        propagation = str((bind_options or {}).get("Propagation") or "")
        if propagation and propagation not in PROPAGATIONS:
            raise _mount_error(kind, f"invalid propagation mode: {propagation}")
        point = MountPoint(
            Type="bind",
            Source=posixpath.normpath(source),
            Destination=destination,
            RW=not read_only,
            Propagation=propagation or "rprivate",
        )
        return point, {}
    if kind == "tmpfs":
        if source:
            raise _mount_error(kind, "field Source must not be specified")
        options = []
        size = (tmpfs_options or {}).get("SizeBytes")
        if size:
            if int(size) < 0:
                raise _mount_error(kind, f"invalid tmpfs size: {size}")
            options.append(f"size={int(size) // 1024}k" if int(size) % 1024 == 0 else f"size={int(size)}")
        mode = (tmpfs_options or {}).get("Mode")
        if mode:
            options.append(f"mode={int(mode) & 0o7777:o}")
        point = MountPoint(Type="tmpfs", Destination=destination, RW=not read_only, TmpfsOptions=options)
        return point, {}
    if source:
        check_volume_name(source)
    volume_options = volume_options or {}
    driver_config = volume_options.get("DriverConfig") or {}
    point = MountPoint(
        Type="volume",
        Name=source,
        Destination=destination,
        Driver=str(driver_config.get("Name") or ""),
        Mode="z",
        RW=not read_only,
        Anonymous=not source,
        CopyImageData=not volume_options.get("NoCopy"),
    )
    create = {"DriverOpts": dict(driver_config.get("Options") or {}), "Labels": volume_options.get("Labels")}
    return point, create


def parse_tmpfs(destination: str, options: str) -> MountPoint:
    """One ``HostConfig.Tmpfs`` entry (``--tmpfs /run:size=16m,mode=1777``); not listed by inspect."""
    target = _absolute_target("tmpfs", destination)
    items = [o for o in (options or "").split(",") if o]
    rw = True
    for item in items:
        if item in ("ro", "rw"):
            rw = item == "rw"
    return MountPoint(
        Type="tmpfs",
        Destination=target,
        RW=rw,
        TmpfsOptions=[o for o in items if o not in ("ro", "rw")],
        Listed=False,
    )


def plan_mounts(
    binds: list[str] | None,
    mounts: list[dict[str, Any]] | None,
    tmpfs: dict[str, str] | None,
    config_volumes: dict[str, Any] | None,
    image_volumes: dict[str, Any] | None,
    volume_driver: str = "",
) -> tuple[list[MountPoint], dict[str, dict[str, Any]]]:
    """All mounts of a new container, validated; and create options per destination of ``--mount``
    volumes (``{"DriverOpts": ..., "Labels": ...}``)."""
    points: list[MountPoint] = []
    create_options: dict[str, dict[str, Any]] = {}
    taken: set[str] = set()

    def add(point: MountPoint) -> None:
        if point.Destination in taken:
            raise InvalidArgument(f"Duplicate mount point: {point.Destination}")
        taken.add(point.Destination)
        points.append(point)

    for spec in binds or []:
        add(parse_bind(spec))
    for item in mounts or []:
        if not isinstance(item, dict):
            raise InvalidArgument("invalid value for HostConfig.Mounts: expected objects")
        point, options = parse_mount(item)
        add(point)
        create_options[point.Destination] = options
    for destination, options in (tmpfs or {}).items():
        add(parse_tmpfs(destination, options))
    for destination in [*(config_volumes or {}), *(image_volumes or {})]:
        target = _absolute_target("volume", destination)
        if target in taken:
            continue
        taken.add(target)
        points.append(
            MountPoint(Type="volume", Destination=target, Mode="", Anonymous=True, CopyImageData=True)
        )
    for point in points:
        if point.Type == "volume" and not point.Driver:
            point.Driver = volume_driver or "local"
    return points, create_options


def mount_order(points: list[MountPoint]) -> list[MountPoint]:
    """Parents before children (``/a`` before ``/a/b``), as the runtime must mount them."""
    return sorted(points, key=lambda p: p.Destination.rstrip("/").count("/"))


def spec_mount(point: MountPoint, source: str) -> dict[str, Any]:
    """The OCI runtime spec entry of a prepared mount point (``source`` is the host path to bind)."""
    if point.Type == "tmpfs":
        options = [*DEFAULT_TMPFS_OPTIONS, *point.TmpfsOptions]
        if not point.RW:
            options.append("ro")
        return {"destination": point.Destination, "type": "tmpfs", "source": "tmpfs", "options": options}
    options = ["rbind", point.Propagation or "rprivate"]
    if not point.RW:
        options.append("ro")
    return {"destination": point.Destination, "type": "bind", "source": source, "options": options}
