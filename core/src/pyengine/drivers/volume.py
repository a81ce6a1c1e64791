"""The volume driver interface: where a named volume's data lives and how it is made available.

Vocabulary
----------
name
    The volume's user-visible name (``docker volume create NAME``), unique across all drivers; an
    anonymous volume's name is a random 64-hex string. The core validates it before the driver sees it.
options
    The driver options of ``docker volume create -o KEY=VALUE`` (``DriverOpts``): each driver decides
    which it accepts and refuses others with InvalidArgument.
mount_id
    Who mounts: the core passes the container ID. Mounts are counted per ``mount_id``: the volume is
    made available on the first ``mount`` and released when the last ``mount_id`` unmounts.
mount path
    A directory on the host holding the volume's data while it is mounted, returned by
    :meth:`VolumeDriver.mount`; the core bind-mounts it into the container.

What the driver does *not* do: decide whether a volume is in use. The core knows which containers
reference a volume (also stopped ones) and refuses to remove it (409) before the driver is asked.

Typical flows
-------------
``docker volume create data``, then ``docker run -v data:/data ...``::

    driver.create("data", {})                  # nothing mounted yet
    path = driver.mount("data", container_id)  # at container start: bound into the container
    ...                                        # the container runs
    driver.unmount("data", container_id)       # at container exit
    driver.remove("data")                      # docker volume rm data

Listing: :meth:`list` returns what the driver holds; the core keeps its own records (labels, the
options given, the creation time) and uses the driver to learn the mount point and status.

Errors: :class:`pyengine.errors.NotFound` for an unknown volume, :class:`~pyengine.errors.AlreadyExists`
for creating a volume that exists, :class:`~pyengine.errors.InvalidArgument` for options the driver
does not accept, :class:`~pyengine.errors.Conflict` for removing a mounted volume,
:class:`~pyengine.errors.NotSupported` from the factory when the host cannot run the driver.

Registration: a driver package names a factory in the ``pyengine.volume.v1`` entry-point namespace.
The factory is called as ``factory(root=Path, options=dict)`` and returns a :class:`VolumeDriver`.
Docker's volume plugins (``/VolumeDriver.*`` over HTTP) are adapted to this interface by
:mod:`pyengine.volumes.remote`.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from pathlib import Path

ENTRY_POINT_NAMESPACE = "pyengine.volume.v1"


@dataclass(frozen=True)
class VolumeInfo:
    """What a driver knows about one of its volumes (the plugin protocol's ``Volume`` object).

    ``mountpoint`` may be empty for a driver that has a path only while mounted; ``status`` is
    free-form driver data shown by ``docker volume inspect`` as ``Status``.
    """

    name: str
    mountpoint: str = ""
    created_at: str = ""
    status: dict = field(default_factory=dict)


class VolumeDriver(abc.ABC):
    """A place for volumes' data. See the module docstring for the vocabulary and flows."""

    #: the user-visible name, as in ``docker volume create -d NAME`` and inspect's Driver
    name: str = ""

    @abc.abstractmethod
    def create(self, name: str, options: dict[str, str]) -> None:
        """Create an empty volume. Raises AlreadyExists, or InvalidArgument for bad ``options``;
        on any error nothing of the volume is left behind."""

    @abc.abstractmethod
    def remove(self, name: str) -> None:
        """Delete the volume and its data. Raises NotFound, or Conflict while it is mounted."""

    @abc.abstractmethod
    def mount(self, name: str, mount_id: str) -> Path:
        """Make the volume's data available for ``mount_id`` and return its host path.

        A second mount (any ``mount_id``) returns the same path. Raises NotFound.
        """

    @abc.abstractmethod
    def unmount(self, name: str, mount_id: str) -> None:
        """Release the mount taken by ``mount_id``; the last one releases kernel mounts.

        Unmounting a ``mount_id`` that holds no mount is not an error (after a daemon restart the
        core may release a mount it cannot tell was taken).
        """

    @abc.abstractmethod
    def get(self, name: str) -> VolumeInfo:
        """The volume's information. Raises NotFound."""

    @abc.abstractmethod
    def list(self) -> list[VolumeInfo]:
        """Every volume the driver holds."""

    def capabilities(self) -> dict[str, str]:
        """The plugin protocol's capabilities: ``{"Scope": "local"}`` or ``"global"``."""
        return {"Scope": "local"}

    def cleanup(self) -> None:
        """Release what the driver holds at daemon shutdown; keep the data and running mounts."""
        return None
