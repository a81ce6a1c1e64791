"""Volumes: the records (SQLite), their drivers, and which containers use them.

The service owns the model: every volume's record (name, driver, labels, options, creation time) is
a row of the ``volumes`` table; the driver holds the data. Drivers come from the
``pyengine.volume.v1`` entry points (``local``) or, for any other name, from a Docker volume plugin
found in the plugin directories (:mod:`pyengine.volumes.remote`). "In use" is the core's knowledge:
a volume referenced by any container, running or not, cannot be removed (409).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pyengine import ids
from pyengine.drivers import registry
from pyengine.drivers.volume import ENTRY_POINT_NAMESPACE, VolumeDriver
from pyengine.errors import AlreadyExists, Conflict, EngineError, InvalidArgument, NotFound, NotSupported
from pyengine.filters import label_matches
from pyengine.hooks import HookCaller
from pyengine.model.base import now_rfc3339
from pyengine.model.volume import MountPoint, Volume
from pyengine.state.db import Database, dumps, loads
from pyengine.volumes import remote
from pyengine.volumes.mounts import check_volume_name

log = logging.getLogger(__name__)

#: the label Docker (23+) puts on anonymous volumes
ANONYMOUS_LABEL = "com.docker.volume.anonymous"


class VolumeService:
    def __init__(
        self,
        *,
        db: Database,
        hooks: HookCaller,
        volumes_root: Path,
        plugin_dirs: list[Path] | tuple[Path, ...] = remote.DEFAULT_PLUGIN_DIRS,
        factories: dict[str, Any] | None = None,
    ) -> None:
        self.db = db
        self.hooks = hooks
        self.volumes_root = Path(volumes_root)
        self.plugin_dirs = list(plugin_dirs)
        self._factories = factories
        self._drivers: dict[str, VolumeDriver] = {}
        self._lock = threading.RLock()
        #: name -> IDs of the containers referencing the volume; set by the container service
        self.container_users: Callable[[str], list[str]] = lambda name: []
        #: container ID -> volume names, for containers being created (not yet recorded): their
        #: volumes count as in use so that a concurrent ``volume rm`` cannot take them away
        self._pending: dict[str, set[str]] = {}

    def users_of(self, name: str) -> list[str]:
        """IDs of the containers using (or about to use) the volume ``name``."""
        users = self.container_users(name)
        with self._lock:
            pending = [cid for cid, names in self._pending.items() if name in names and cid not in users]
        return users + pending

    # ---- drivers --------------------------------------------------------------------------------
    def driver(self, name: str) -> VolumeDriver:
        """The driver called ``name``: an installed one, else a Docker plugin; NotFound otherwise."""
        name = name or "local"
        with self._lock:
            if name in self._drivers:
                return self._drivers[name]
            if self._factories is None:
                self._factories = registry.installed_factories(ENTRY_POINT_NAMESPACE)
            factory = self._factories.get(name)
            if isinstance(factory, Exception):
                raise NotSupported(f"volume driver {name!r} failed to load: {factory}")
            if factory is not None:
                root = (
                    self.volumes_root
                    if name == "local"
                    else self.volumes_root.parent / "volume-drivers" / name
                )
                driver = factory(root=root, options={})
            else:
                address = remote.find_plugin(name, self.plugin_dirs)
                if address is None:
                    raise NotFound(f'error looking up volume plugin {name}: plugin "{name}" not found')
                driver = remote.activate(name, address)
            self._drivers[name] = driver
            return driver

    def adopt_orphans(self) -> list[str]:
        """At daemon start: record local volumes found on disk without a record (a crash between the
        driver's create and the record), so that they are listed and can be removed; their names."""
        try:
            found = self.driver("local").list()
        except EngineError as exc:
            log.warning("local volumes not checked: %s", exc)
            return []
        adopted = []
        for info in found:
            if self._record(info.name) is not None:
                continue
            record = {
                "Name": info.name,
                "Driver": "local",
                "CreatedAt": info.created_at or now_rfc3339()[:19] + "Z",
                "Labels": {},
                "Options": {},
                "Scope": "local",
            }
            with self.db.transaction() as cur:
                cur.execute(
                    "INSERT OR IGNORE INTO volumes(name, doc) VALUES (?, ?)", (info.name, dumps(record))
                )
            adopted.append(info.name)
        return adopted

    def driver_names(self) -> list[str]:
        """Installed drivers and plugins activated so far, for ``docker info``'s Plugins.Volume."""
        if self._factories is None:
            self._factories = registry.installed_factories(ENTRY_POINT_NAMESPACE)
        return sorted({*self._factories, *self._drivers})

    # ---- records --------------------------------------------------------------------------------
    def _record(self, name: str) -> dict[str, Any] | None:
        row = self.db.query_one("SELECT doc FROM volumes WHERE name=?", (name,))
        return loads(row[0]) if row else None

    def _view(self, record: dict[str, Any]) -> Volume:
        mountpoint, status = record.get("Mountpoint", ""), None
        try:
            info = self.driver(record["Driver"]).get(record["Name"])
            mountpoint = info.mountpoint or mountpoint
            status = info.status or None
        except EngineError as exc:
            log.debug("volume %s: driver unavailable: %s", record["Name"], exc)
        return Volume(
            Name=record["Name"],
            Driver=record["Driver"],
            Mountpoint=mountpoint,
            CreatedAt=record["CreatedAt"],
            Labels=record.get("Labels") or None,
            Options=record.get("Options") or None,
            Scope=record.get("Scope", "local"),
            Status=status,
        )

    def get(self, name: str) -> Volume:
        record = self._record(name)
        if record is None:
            raise NotFound(f"get {name}: no such volume")
        return self._view(record)

    def exists(self, name: str) -> bool:
        return self._record(name) is not None

    def list(self, filters: dict[str, list[str]] | None = None) -> list[Volume]:
        filters = filters or {}
        volumes = []
        for (doc,) in self.db.query("SELECT doc FROM volumes ORDER BY name"):
            record = loads(doc)
            if self._matches(record, filters):
                volumes.append(self._view(record))
        return volumes

    def _matches(self, record: dict[str, Any], filters: dict[str, list[str]]) -> bool:
        for key, values in filters.items():
            if key == "name":
                if not any(value in record["Name"] for value in values):
                    return False
            elif key == "driver":
                if record["Driver"] not in values:
                    return False
            elif key == "dangling":
                wanted = {value.lower() in ("1", "true") for value in values}
                if bool(self.users_of(record["Name"])) in wanted:
                    return False
            elif key in ("label", "label!"):
                labels = record.get("Labels") or {}
                hits = [label_matches(labels, value) for value in values]
                if key == "label" and not all(hits):
                    return False
                if key == "label!" and any(hits):
                    return False
            elif key != "all":
                raise InvalidArgument(f"invalid filter '{key}'")
        return True

    # ---- create / remove --------------------------------------------------------------------------
    def create(
        self,
        name: str | None = None,
        driver: str | None = None,
        options: dict[str, str] | None = None,
        labels: dict[str, str] | None = None,
    ) -> tuple[Volume, bool]:
        """Create a volume (an anonymous one when ``name`` is empty); (volume, whether it is new).

        Creating a name that exists with the same driver returns the existing volume, as Docker does.
        """
        name = name or ids.new_id()
        check_volume_name(name)
        driver_name = driver or "local"
        options = {str(k): str(v) for k, v in (options or {}).items()}
        labels = dict(labels or {})
        with self._lock:
            existing = self._record(name)
            if existing is not None:
                if existing["Driver"] != driver_name:
                    raise AlreadyExists(
                        f"create {name}: volume name must be unique: a volume named {name} already exists "
                        f'with the "{existing["Driver"]}" driver. Choose a different volume name.'
                    )
                return self._view(existing), False
            try:
                backend = self.driver(driver_name)
                backend.create(name, options)
            except EngineError as exc:
                exc.message = f"create {name}: {exc.message}"
                exc.args = (exc.message,)
                raise
            try:
                scope = backend.capabilities().get("Scope", "local")
                record = {
                    "Name": name,
                    "Driver": driver_name,
                    "CreatedAt": now_rfc3339()[:19] + "Z",
                    "Labels": labels,
                    "Options": options,
                    "Scope": scope,
                }
                with self.db.transaction() as cur:
                    cur.execute("INSERT INTO volumes(name, doc) VALUES (?, ?)", (name, dumps(record)))
            except BaseException:
                _quietly(backend.remove, name)
                raise
        volume = self._view(record)
        self.hooks.call("pyengine_volume_post_create", volume=volume)
        return volume, True

    def remove(self, name: str, *, force: bool = False) -> None:
        """Delete a volume: 404 if unknown (ignored with ``force``), 409 while a container uses it."""
        with self._lock:
            record = self._record(name)
            if record is None:
                if force:
                    return
                raise NotFound(f"get {name}: no such volume")
            users = self.users_of(name)
            if users:
                raise Conflict(f"remove {name}: volume is in use - [{' '.join(users)}]")
            try:
                self.driver(record["Driver"]).remove(name)
            except NotFound:
                pass  # the data is already gone: forget the record
            except EngineError as exc:
                if not force:
                    exc.message = f"remove {name}: {exc.message}"
                    exc.args = (exc.message,)
                    raise
                log.warning("volume %s: the driver failed to remove it: %s", name, exc)
            with self.db.transaction() as cur:
                cur.execute("DELETE FROM volumes WHERE name=?", (name,))
        self.hooks.call("pyengine_volume_post_remove", volume=self._view(record))

    def prune(self, filters: dict[str, list[str]] | None = None) -> tuple[list[str], int]:
        """Remove every volume no container uses (API 1.41: named ones too); (names, bytes freed)."""
        filters = dict(filters or {})
        filters.pop("all", None)
        deleted, reclaimed = [], 0
        for volume in self.list(filters):
            if self.users_of(volume.Name):
                continue
            size = _tree_size(volume.Mountpoint) if volume.Driver == "local" else 0
            try:
                self.remove(volume.Name)
            except EngineError as exc:
                log.warning("prune: %s", exc)
                continue
            deleted.append(volume.Name)
            reclaimed += size
        return deleted, reclaimed

    # ---- containers' volumes ---------------------------------------------------------------------
    def prepare(
        self, points: list[MountPoint], create_options: dict[str, dict[str, Any]], owner: str = ""
    ) -> list[str]:
        """Create the volumes a new container's mounts name that do not exist yet, and the host
        directories of ``-v`` binds; fill in names and sources. Returns the volumes created, which
        :meth:`rollback` removes again if the container's creation fails. The volumes count as used
        by ``owner`` (the new container's ID) until :meth:`settle` or :meth:`rollback`."""
        created: list[str] = []
        try:
            for point in points:
                if point.Type != "volume":
                    continue
                extra = create_options.get(point.Destination, {})
                existing = self._record(point.Name) if point.Name else None
                if existing is not None:
                    point.Driver = existing["Driver"]
                    with self._lock:
                        self._pending.setdefault(owner, set()).add(point.Name)
                else:
                    labels = dict(extra.get("Labels") or {})
                    if point.Anonymous:
                        labels[ANONYMOUS_LABEL] = ""
                    volume, new = self.create(point.Name, point.Driver, extra.get("DriverOpts"), labels)
                    point.Name = volume.Name
                    point.Driver = volume.Driver
                    with self._lock:
                        self._pending.setdefault(owner, set()).add(volume.Name)
                    if new:
                        created.append(volume.Name)
                point.Source = self.get(point.Name).Mountpoint
            for point in points:
                if point.Type == "bind" and not os.path.exists(point.Source):
                    os.makedirs(point.Source, mode=0o755, exist_ok=True)  # as Docker's -v does
        except BaseException:
            self.rollback(created, owner)
            raise
        return created

    def settle(self, owner: str) -> None:
        """The container ``owner`` is recorded: its own record now says which volumes it uses."""
        with self._lock:
            self._pending.pop(owner, None)

    def rollback(self, names: list[str], owner: str = "") -> None:
        """The container ``owner`` was not created: remove the volumes made for it."""
        self.settle(owner)
        for name in names:
            _quietly(self.remove, name, force=True)

    def mount(self, point: MountPoint, container_id: str) -> Path:
        record = self._record(point.Name)
        if record is None:
            raise NotFound(f"get {point.Name}: no such volume")
        try:
            return self.driver(record["Driver"]).mount(point.Name, container_id)
        except EngineError as exc:
            exc.message = f"error while mounting volume '{point.Destination}': {exc.message}"
            exc.args = (exc.message,)
            raise

    def unmount(self, point: MountPoint, container_id: str) -> None:
        record = self._record(point.Name)
        if record is None:
            return
        try:
            self.driver(record["Driver"]).unmount(point.Name, container_id)
        except EngineError as exc:
            log.warning("could not unmount volume %s for %s: %s", point.Name, container_id, exc)

    def cleanup(self) -> None:
        for driver in list(self._drivers.values()):
            _quietly(driver.cleanup)


def _tree_size(path: str) -> int:
    total = 0
    for directory, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(directory, name)).st_blocks * 512
            except OSError:
                pass
    return total


def _quietly(func: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
    try:
        func(*args, **kwargs)
    except EngineError as exc:
        log.debug("ignored: %s", exc)
