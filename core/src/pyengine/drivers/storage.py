"""The storage driver interface: how layers are kept on disk and turned into root file systems.

Vocabulary
----------
layer_id
    The key of a layer in the driver. The core uses an image layer's *chain ID* (sha256 hex of
    the layer's diff ID chained with its parent's, as in the OCI image spec) for read-only image
    layers, and the container ID for a container's writable layer. A driver treats it as an
    opaque string of ``[0-9a-zA-Z_.-]``.
parent_id
    The layer a layer is created on, or ``None`` for a base layer. A layer never changes its parent.
mount path
    A directory on the host holding the layer's whole file system (its own content over all its
    parents'), returned by :meth:`StorageDriver.mount`. Mounts are reference counted: every
    ``mount`` is matched by one ``unmount``; the last unmount releases kernel mounts.

Typical flows
-------------
Importing an image layer::

    driver.create(chain_id, parent_chain_id)           # empty layer on its parent
    size = driver.apply_diff(chain_id, tar_stream)      # unpack the layer tar (OCI whiteouts)

Preparing a container's root file system::

    driver.create(container_id, top_chain_id, writable=True)
    rootfs = driver.mount(container_id)                 # -> path handed to the runtime
    ...                                                 # the container runs
    driver.unmount(container_id)
    driver.remove(container_id)                         # when the container is removed

Committing a container (through the core's adapter, which every caller uses)::

    stream = layer_diff(driver, container_id)           # tar of the changes, OCI whiteouts
    found = layer_changes(driver, container_id)         # what ``docker diff`` lists

Required and optional parts
---------------------------
:class:`StorageDriver` is the required interface: create a layer on a parent, find its parent,
mount/unmount with reference counts, remove, apply a layer diff, status, cleanup. Optional
capabilities are separate small interfaces a driver class also inherits from, and the core asks
with ``isinstance``:

:class:`NativeDiff`
    The driver computes a layer's diff and changes itself, cheaper than comparing trees (overlay
    reads its upper directory). Without it, :mod:`pyengine.storage.naive_diff` mounts the layer
    and its parent and compares the two trees; that fallback is correct for every driver, so a
    driver declares NativeDiff only to be faster, and must give the same changes.
:class:`Quota`
    The driver can limit the size of a writable layer. No driver in this repository implements
    it yet.
:class:`IdMappedMount`
    The driver can mount a layer with its owners shifted for a user namespace (idmapped mounts),
    which the daemon needs for ``--userns-remap``. Without it, remapped containers cannot be made
    on the driver (the core refuses them with NotSupported).

Errors: :class:`pyengine.errors.NotFound` for an unknown layer, :class:`~pyengine.errors.Conflict`
for removing a layer that has children or is mounted, :class:`~pyengine.errors.AlreadyExists` for
creating a layer that exists, :class:`~pyengine.errors.InvalidArgument` for a layer tar that tries
to leave the layer, :class:`~pyengine.errors.NotSupported` from the factory when the host cannot
run the driver.

Registration: a driver package names a factory in the ``pyengine.storage.v1`` entry-point
namespace. The factory is called as ``factory(root=Path, options=dict)`` and returns a
:class:`StorageDriver`; it raises ``NotSupported`` (with the reason) when the driver cannot work
under ``root`` on this host.
"""

from __future__ import annotations

import abc
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

if TYPE_CHECKING:
    from pyengine.runtime.idmap import IdMap

ENTRY_POINT_NAMESPACE = "pyengine.storage.v1"


@dataclass(frozen=True)
class Change:
    """One path changed by a layer relative to its parent: kind is 'A', 'C' or 'D' (as docker diff).

    ``path`` is absolute within the layer ("/etc/passwd"), as the changes API returns it. A
    directory is 'C' when anything below it changed; a deleted directory is one 'D' (its entries
    are not listed).
    """

    kind: str
    path: str


class StorageDriver(abc.ABC):
    """A way to keep layers on disk. See the module docstring for the vocabulary and flows."""

    #: the user-visible name, as in ``--storage-driver NAME`` and ``docker info``'s Driver
    name: str = ""

    def __init__(self, root: Path) -> None:
        #: the directory the driver owns; nothing outside it is written by the driver
        self.root = Path(root)

    @abc.abstractmethod
    def create(self, layer_id: str, parent_id: str | None, *, writable: bool = False) -> None:
        """Create an empty layer on ``parent_id`` (or a base layer when None).

        ``writable`` marks a container's layer: it is mounted read-write and may be diffed, but
        no other layer is ever created on it. Raises AlreadyExists if ``layer_id`` exists and
        NotFound if the parent does not.
        """

    @abc.abstractmethod
    def remove(self, layer_id: str) -> None:
        """Delete a layer and everything the driver keeps for it.

        Raises NotFound for an unknown layer, Conflict while it is mounted or has child layers.
        Leaves no mount and no directory behind.
        """

    @abc.abstractmethod
    def exists(self, layer_id: str) -> bool:
        """Whether the layer exists (fully created; a half-made layer from a crash does not count)."""

    @abc.abstractmethod
    def parent(self, layer_id: str) -> str | None:
        """The ``parent_id`` the layer was created on, or None for a base layer.

        The generic diff uses it to know what to compare the layer with. Raises NotFound.
        """

    @abc.abstractmethod
    def mount(self, layer_id: str) -> Path:
        """Make the layer's full file system available and return its path.

        Reference counted: a second mount of a mounted layer returns the same path. Raises NotFound.
        """

    @abc.abstractmethod
    def unmount(self, layer_id: str) -> None:
        """Release one reference taken by :meth:`mount`; the last one releases the kernel mount."""

    @abc.abstractmethod
    def apply_diff(self, layer_id: str, stream: BinaryIO) -> int:
        """Unpack an uncompressed layer tar into a layer made by :meth:`create`; return its size.

        OCI whiteouts (``.wh.NAME``, ``.wh..wh..opq``) delete from the parents. Names that would
        leave the layer raise InvalidArgument; on any error nothing of the tar stays applied.
        """

    def status(self) -> list[tuple[str, str]]:
        """Key/value pairs for ``docker info``'s DriverStatus (backing file system, counts)."""
        return []

    def cleanup(self) -> None:
        """Release everything the driver holds at daemon shutdown (mounts); keep the data."""
        return None


class NativeDiff(abc.ABC):
    """Optional capability: the driver produces a layer's diff and changes itself.

    Declare it by inheriting it next to :class:`StorageDriver`
    (``class OverlayDriver(StorageDriver, NativeDiff)``). The core then calls these methods
    instead of mounting the layer and its parent and comparing them (the generic fallback in
    :mod:`pyengine.storage.naive_diff`). The results must equal the fallback's on the same layer:
    the same :class:`Change` list, and a tar that applied on the parent gives the same tree. The
    conformance suite checks that. Neither method needs the layer to be mounted.
    """

    @abc.abstractmethod
    def diff(self, layer_id: str) -> Iterator[bytes]:
        """Yield an uncompressed tar of the layer's changes against its parent, OCI whiteouts.

        A base layer's diff is its whole tree. Raises NotFound for an unknown layer (at the
        latest when the iterator is first advanced).
        """

    @abc.abstractmethod
    def changes(self, layer_id: str) -> list[Change]:
        """List the paths the layer added, changed or deleted against its parent, sorted by path.

        Same rules as :class:`Change`: a changed directory is 'C', a deleted directory one 'D'.
        Raises NotFound for an unknown layer.
        """


class Quota(abc.ABC):
    """Optional capability: the driver can cap how much a writable layer may hold.

    Declared like :class:`NativeDiff`. It needs real support from the backing file system
    (XFS project quotas, btrfs qgroups); a driver that cannot enforce a limit must not declare
    it. No driver in this repository implements it yet, and the core does not call it yet (a
    container's ``StorageOpt`` size is not wired to it).
    """

    @abc.abstractmethod
    def set_quota(self, layer_id: str, size_bytes: int) -> None:
        """Limit the layer's own content (not its parents') to ``size_bytes``.

        Writes beyond it fail in the container with ENOSPC or EDQUOT. Raises NotFound for an
        unknown layer and InvalidArgument for a size of zero or less.
        """


class IdMappedMount(abc.ABC):
    """Optional capability: mount a layer for a container in a user namespace, owners shifted.

    Declared like :class:`NativeDiff`. With ``--userns-remap`` the container's root is an
    unprivileged host uid (``idmap.root_uid``); its root file system must show the image's files as
    owned by that uid, and what the container writes must be stored with the ids it has *inside*
    (uid 0 for root), so that a commit or a diff gives a normal image. Idmapped mounts do both
    without chowning a layer (:mod:`pyengine.runtime.idmap` has the kernel calls).
    """

    @abc.abstractmethod
    def mount_idmapped(self, layer_id: str, idmap: IdMap) -> Path:
        """Like :meth:`StorageDriver.mount`, but seen through ``idmap``; return the path.

        Files owned by id N in the layers show as ``idmap``'s host id for N; files created by a
        host id in the map are stored with the id it stands for. Shares the reference count of
        :meth:`StorageDriver.mount` (released by ``unmount``). While a layer is mounted through one
        map, mounting it through another raises Conflict; mounting it idmapped while it is mounted
        plainly raises Conflict too. A plain ``mount`` meanwhile returns a path showing the ids on
        disk where the driver can (directory drivers), else the mapped path (overlay has one mount
        per layer). Raises NotFound for an unknown layer, NotSupported when the kernel or the file
        system under the driver's root cannot idmap.
        """
