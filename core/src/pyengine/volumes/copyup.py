"""Docker's copy-up: a new, empty volume mounted over a directory of the image starts with its content.

The directory is found inside the container's root file system with the runtime's symlink-safe walk
(an image's ``/data`` may be a symlink to the host's ``/etc``), and copied through the resulting
``/proc/self/fd/N`` path without following symlinks below it, keeping owners, modes and times.
"""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

from pyengine.runtime.inroot import open_beneath, resolve


def copy_image_data(rootfs: str | Path, destination: str, volume_path: str | Path) -> bool:
    """Copy the image's ``destination`` into ``volume_path`` if the volume is empty; True if copied.

    Nothing is copied when the image has nothing (or a file) at ``destination``.
    """
    volume_path = Path(volume_path)
    if any(volume_path.iterdir()):
        return False
    root_fd = os.open(rootfs, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        try:
            relative = resolve(root_fd, destination)
            source_fd = open_beneath(root_fd, relative, os.O_RDONLY | os.O_DIRECTORY)
        except (FileNotFoundError, NotADirectoryError):
            return False
        except OSError:
            return False  # a symlink loop or a non-directory on the way: nothing to copy
    finally:
        os.close(root_fd)
    try:
        source = f"/proc/self/fd/{source_fd}"
        info = os.stat(source)
        _copy_metadata_of(info, volume_path)
        with os.scandir(source) as entries:
            for entry in entries:
                _copy_entry(os.path.join(source, entry.name), volume_path / entry.name)
    finally:
        os.close(source_fd)
    return True


def _copy_entry(source: str, target: Path) -> None:
    info = os.lstat(source)
    if stat.S_ISDIR(info.st_mode):
        target.mkdir()
        with os.scandir(source) as entries:
            for entry in entries:
                _copy_entry(os.path.join(source, entry.name), target / entry.name)
        _copy_metadata_of(info, target)
    elif stat.S_ISLNK(info.st_mode):
        os.symlink(os.readlink(source), target)
        os.lchown(target, info.st_uid, info.st_gid)
    elif stat.S_ISREG(info.st_mode):
        shutil.copyfile(source, target, follow_symlinks=False)
        _copy_metadata_of(info, target)
    else:
        # device nodes, fifos and sockets: recreate rather than read them
        os.mknod(target, info.st_mode, info.st_rdev)
        _copy_metadata_of(info, target)


def _copy_metadata_of(info: os.stat_result, target: Path) -> None:
    os.chown(target, info.st_uid, info.st_gid, follow_symlinks=False)
    os.chmod(target, stat.S_IMODE(info.st_mode))
    os.utime(target, ns=(info.st_atime_ns, info.st_mtime_ns), follow_symlinks=False)
