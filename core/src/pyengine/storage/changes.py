"""Comparing a layer's directory with its parent's: what ``docker diff`` lists."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from pyengine.drivers.storage import Change

# Attributes that describe where a file lives rather than what it is: never part of a layer.
HOST_XATTR_PREFIXES = ("trusted.overlay.", "security.selinux")


def read_xattrs(path: str | bytes) -> dict[str, bytes]:
    """The extended attributes of ``path`` (not following a symlink) that belong in a layer."""
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError as exc:
        if exc.errno in (errno.ENOTSUP, errno.EPERM):
            return {}
        raise
    attrs = {}
    for name in names:
        if name.startswith(HOST_XATTR_PREFIXES):
            continue
        try:
            attrs[name] = os.getxattr(path, name, follow_symlinks=False)
        except OSError as exc:
            if exc.errno != errno.ENODATA:  # removed between list and get
                raise
    return dict(sorted(attrs.items()))


def _same_time(a: os.stat_result, b: os.stat_result) -> bool:
    # A tar without sub-second times gives whole seconds: compare only seconds then.
    if a.st_mtime_ns % 1_000_000_000 == 0 or b.st_mtime_ns % 1_000_000_000 == 0:
        return a.st_mtime_ns // 1_000_000_000 == b.st_mtime_ns // 1_000_000_000
    return a.st_mtime_ns == b.st_mtime_ns


def _entry_changed(lower_path: str, lower: os.stat_result, upper_path: str, upper: os.stat_result) -> bool:
    if (lower.st_mode, lower.st_uid, lower.st_gid, lower.st_rdev) != (
        upper.st_mode,
        upper.st_uid,
        upper.st_gid,
        upper.st_rdev,
    ):
        return True
    # A directory's size and mtime follow its entries; its entries are compared on their own.
    if not stat.S_ISDIR(upper.st_mode) and (lower.st_size != upper.st_size or not _same_time(lower, upper)):
        return True
    if stat.S_ISLNK(upper.st_mode) and os.readlink(lower_path) != os.readlink(upper_path):
        return True
    return read_xattrs(lower_path) != read_xattrs(upper_path)


def _scan(path: str) -> dict[str, os.stat_result]:
    with os.scandir(path) as entries:
        return {entry.name: entry.stat(follow_symlinks=False) for entry in entries}


def _add_tree(upper_dir: str, rel: str, out: list[Change]) -> None:
    for name, st in _scan(upper_dir).items():
        child = f"{rel}/{name}"
        out.append(Change("A", child))
        if stat.S_ISDIR(st.st_mode):
            _add_tree(os.path.join(upper_dir, name), child, out)


def _compare_dir(lower_dir: str | None, upper_dir: str, rel: str, out: list[Change]) -> bool:
    """Append the changes below ``rel``; return whether there were any."""
    upper_entries = _scan(upper_dir)
    lower_entries = _scan(lower_dir) if lower_dir is not None else {}
    changed = False
    for name in sorted(upper_entries.keys() | lower_entries.keys()):
        child = f"{rel}/{name}"
        upper = upper_entries.get(name)
        lower = lower_entries.get(name)
        if upper is None:
            out.append(Change("D", child))
            changed = True
            continue
        upper_path = os.path.join(upper_dir, name)
        if lower is None:
            out.append(Change("A", child))
            changed = True
            if stat.S_ISDIR(upper.st_mode):
                _add_tree(upper_path, child, out)
            continue
        assert lower_dir is not None
        lower_path = os.path.join(lower_dir, name)
        both_dirs = stat.S_ISDIR(upper.st_mode) and stat.S_ISDIR(lower.st_mode)
        inner_changed = both_dirs and _compare_dir(lower_path, upper_path, child, out)
        # like docker diff: a directory whose content changed is itself reported changed
        if inner_changed or _entry_changed(lower_path, lower, upper_path, upper):
            out.append(Change("C", child))
            changed = True
            if stat.S_ISDIR(upper.st_mode) and not both_dirs:
                _add_tree(upper_path, child, out)  # a new directory replaced a file
    return changed


def change_sort_key(change: Change) -> tuple[str, ...]:
    """Order paths as a tree walk does: a directory right before its own entries."""
    return tuple(change.path.split("/"))


def diff_directories(lower: Path | None, upper: Path) -> list[Change]:
    """The changes that turn directory ``lower`` (None: an empty tree) into ``upper``.

    Paths are absolute within the layer ("/etc/passwd"), sorted in tree order. An entry is 'C'
    when its type, mode, owner, device, xattrs, symlink target or (non-directories) size or mtime
    differ, and a directory is also 'C' when anything below it changed. Contents of regular files
    are not read: same size and mtime count as unchanged, as in Docker.
    """
    out: list[Change] = []
    _compare_dir(os.fspath(lower) if lower is not None else None, os.fspath(upper), "", out)
    return sorted(out, key=change_sort_key)
