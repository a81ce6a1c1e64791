"""Unpacking tars into a directory: OCI layers (:func:`apply_layer`) and ``docker cp`` archives
(:func:`extract_archive`). Every entry goes through :class:`~pyengine.storage.layer_unpacker.LayerUnpacker`,
which never writes outside the target.
"""

from __future__ import annotations

import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from pyengine.errors import InvalidArgument
from pyengine.storage.layer_unpacker import LayerUnpacker


def extract_archive(
    stream: BinaryIO,
    root_fd: int,
    prefix: str,
    *,
    no_overwrite_dir_non_dir: bool = False,
    owner: tuple[int, int] | None = None,
    owner_to_target: Callable[[int, int], tuple[int, int]] | None = None,
) -> int:
    """Unpack a plain tar (``docker cp`` into a container) below ``prefix`` of the root ``root_fd``.

    Every path is resolved inside ``root_fd`` as in :func:`apply_layer`, but ``.wh.`` names are
    ordinary files here. ``no_overwrite_dir_non_dir`` refuses to replace a directory by a
    non-directory or the reverse; ``owner`` (uid, gid) replaces the tar's ownership;
    ``owner_to_target`` translates owners for an idmapped view (see LayerUnpacker). Returns the
    bytes of file content written; what was written before an error stays (as with Docker).
    """
    unpacker = LayerUnpacker(
        root_fd,
        "keep",
        prefix=prefix,
        no_overwrite_dir_non_dir=no_overwrite_dir_non_dir,
        owner=owner,
        owner_to_target=owner_to_target,
    )
    try:
        _unpack_stream(stream, unpacker, "archive")
        return unpacker.size
    finally:
        unpacker.close()


def _unpack_stream(stream: BinaryIO, unpacker: LayerUnpacker, subject: str) -> None:
    """Feed every member of the tar stream to ``unpacker``, then finish it. ``subject`` names the
    tar in errors ("layer", "archive")."""
    try:
        tar = tarfile.open(fileobj=stream, mode="r|*")
    except tarfile.ReadError as exc:
        if str(exc) == "empty file":
            return  # like Go's archive/tar: no bytes at all is an empty tar
        raise InvalidArgument(f"{subject} is not a valid tar archive: {exc}") from exc
    with tar:
        while True:
            try:
                member = tar.next()
                if member is None:
                    break
                unpacker.apply(tar, member)
            except tarfile.TarError as exc:
                raise InvalidArgument(f"{subject} tar is corrupt: {exc}") from exc
            tar.members.clear()  # the stream reader would otherwise keep every header
    unpacker.finish()


def apply_layer(stream: BinaryIO, target: Path, *, whiteouts: str = "delete") -> int:
    """Unpack a layer tar (uncompressed, or gzip/bzip2/xz by its magic) into ``target``.

    Returns the number of bytes of file content unpacked. ``whiteouts`` says what OCI whiteouts
    do: ``"delete"`` removes the hidden paths from ``target`` (for drivers that unpack onto a copy
    of the parent, like vfs); ``"overlay"`` records them the way overlayfs reads them in an upper
    directory (a 0/0 character device, ``trusted.overlay.opaque=y``).

    Raises InvalidArgument for an entry that would leave ``target`` or cannot be made; on any error
    ``target`` is left partly written and the caller must throw it away.
    """
    if whiteouts not in ("delete", "overlay"):
        raise ValueError(f"whiteouts must be 'delete' or 'overlay', not {whiteouts!r}")
    unpacker = LayerUnpacker(target, whiteouts)
    try:
        _unpack_stream(stream, unpacker, "layer")
        return unpacker.size
    finally:
        unpacker.close()
