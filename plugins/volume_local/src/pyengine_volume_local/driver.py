"""Docker's ``local`` volume driver: ``<root>/<name>/_data``, optionally a file system mounted there.

Layout under the driver's root (the data root's ``volumes/``, as Docker's)::

    <name>/_data        the volume's data, or the mount point of its file system
    <name>/opts.json    the options ``type``/``device``/``o`` when given (absent for a plain volume)

A volume with options is mounted (``mount -t TYPE -o O DEVICE _data``) when its first user mounts
it and unmounted when the last one unmounts, so a tmpfs volume's data lives as long as some
container uses it, exactly as with Docker. Creating goes through a temporary directory renamed into
place, so a crash never leaves a half-made volume that looks whole.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import threading
from datetime import UTC, datetime
from pathlib import Path

from pyengine.drivers.volume import VolumeDriver, VolumeInfo
from pyengine.errors import AlreadyExists, Conflict, EngineError, InvalidArgument, NotFound
from pyengine.runtime import syscalls
from pyengine.runtime.mounts import parse_options

_SAFE_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*$")
_TEMPORARY_PREFIX = ".tmp-"
#: option -> the options it needs beside it (moby's local driver has the same rule)
_REQUIRED_WITH = {"type": ("device",), "device": ("type",), "o": ("device",)}


class MountFailed(EngineError):
    """The kernel refused to mount a volume's file system (the message has its reason)."""


def validate_options(options: dict[str, str]) -> None:
    """Refuse what the local driver does not know, as Docker words it."""
    for key in options:
        if key == "size":
            raise InvalidArgument("quota size requested but no quota support")
        if key not in _REQUIRED_WITH:
            raise InvalidArgument(f'invalid option: "{key}"')
    for key, needed in _REQUIRED_WITH.items():
        if key in options:
            for other in needed:
                if other not in options:
                    raise InvalidArgument(f'missing required option: "{other}"')


class LocalVolumeDriver(VolumeDriver):
    name = "local"

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True, mode=0o701)
        self._users: dict[str, set[str]] = {}
        self._lock = threading.Lock()
        self._sweep_temporaries()

    # ---- paths ----------------------------------------------------------------------------------
    def _dir(self, name: str) -> Path:
        if not _SAFE_NAME.match(name):
            raise InvalidArgument(f"invalid volume name: {name!r}")
        return self.root / name

    def _existing(self, name: str) -> Path:
        directory = self._dir(name)
        if not (directory / "_data").is_dir():
            raise NotFound(f"no such volume: {name}")
        return directory

    def _options(self, directory: Path) -> dict[str, str]:
        try:
            return json.loads((directory / "opts.json").read_text())
        except FileNotFoundError:
            return {}

    def _sweep_temporaries(self) -> None:
        for entry in self.root.iterdir():
            if entry.name.startswith(_TEMPORARY_PREFIX):
                shutil.rmtree(entry, ignore_errors=True)

    # ---- the interface --------------------------------------------------------------------------
    def create(self, name: str, options: dict[str, str]) -> None:
        directory = self._dir(name)
        validate_options(options)
        if directory.exists():
            raise AlreadyExists(f"volume {name} already exists")
        temporary = self.root / f"{_TEMPORARY_PREFIX}{name}-{os.getpid()}-{threading.get_ident()}"
        try:
            temporary.mkdir(mode=0o701)
            (temporary / "_data").mkdir(mode=0o755)
            if options:
                (temporary / "opts.json").write_text(json.dumps(options))
            try:
                os.rename(temporary, directory)  # fails if another create won the race
            except OSError as exc:
                raise AlreadyExists(f"volume {name} already exists") from exc
        finally:
            shutil.rmtree(temporary, ignore_errors=True)

    def remove(self, name: str) -> None:
        directory = self._existing(name)
        with self._lock:
            if self._users.get(name):
                raise Conflict(f"volume {name} is mounted by {sorted(self._users[name])}")
            data = directory / "_data"
            if _is_mount_point(data):
                syscalls.umount2(str(data), syscalls.MNT_DETACH)
            shutil.rmtree(directory)

    def mount(self, name: str, mount_id: str) -> Path:
        directory = self._existing(name)
        data = directory / "_data"
        with self._lock:
            users = self._users.setdefault(name, set())
            options = self._options(directory)
            if options and not users and not _is_mount_point(data):
                try:
                    _mount_device(options, data)
                except BaseException:
                    if not users:
                        self._users.pop(name, None)
                    raise
            users.add(mount_id)
        return data

    def unmount(self, name: str, mount_id: str) -> None:
        directory = self._existing(name)
        data = directory / "_data"
        with self._lock:
            users = self._users.get(name, set())
            users.discard(mount_id)
            if users:
                return
            self._users.pop(name, None)
            if self._options(directory) and _is_mount_point(data):
                syscalls.umount2(str(data), syscalls.MNT_DETACH)

    def get(self, name: str) -> VolumeInfo:
        directory = self._existing(name)
        created = datetime.fromtimestamp(directory.stat().st_mtime, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return VolumeInfo(name=name, mountpoint=str(directory / "_data"), created_at=created)

    def list(self) -> list[VolumeInfo]:
        found = []
        for entry in sorted(self.root.iterdir()):
            if entry.name.startswith(_TEMPORARY_PREFIX) or not (entry / "_data").is_dir():
                continue
            try:
                found.append(self.get(entry.name))
            except (NotFound, InvalidArgument):
                continue
        return found

    def options_of(self, name: str) -> dict[str, str]:
        """The ``type``/``device``/``o`` options the volume was created with."""
        return self._options(self._existing(name))

    def is_mounted(self, name: str) -> bool:
        return _is_mount_point(self._existing(name) / "_data")


def _is_mount_point(path: Path | str) -> bool:
    """Whether ``path`` is a mount point (os.path.ismount misses a bind from the same file system)."""
    target = os.path.realpath(path)
    with open("/proc/self/mountinfo") as mountinfo:
        for line in mountinfo:
            if line.split()[4].replace("\\040", " ") == target:
                return True
    return False


def _mount_device(options: dict[str, str], target: Path) -> None:
    flags, _propagation, data = parse_options([o for o in options.get("o", "").split(",") if o])
    fstype = options.get("type") or None
    if fstype == "none":
        fstype = None
    device = options.get("device", "")
    if flags & syscalls.MS_BIND and not os.path.exists(device):
        raise MountFailed(
            f"error while mounting volume '{target}': failed to mount local volume: "
            f"mount {device}:{target}, flags: 0x{flags:x}: no such file or directory"
        )
    try:
        syscalls.mount(device, str(target), fstype, flags, data or None)
    except OSError as exc:
        reason = syscalls.error_text(exc.errno) if exc.errno else str(exc)
        raise MountFailed(
            f"error while mounting volume '{target}': failed to mount local volume: "
            f"mount {device}:{target}, data: {data}: {reason}"
        ) from exc
