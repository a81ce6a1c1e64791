"""The native diff of overlay: reading a layer's changes straight from its upper (diff) directory.

In an overlayfs upper directory everything present was added or changed, a 0/0 character device is
a deleted path (a whiteout) and a directory with ``trusted.overlay.opaque=y`` hides everything of
the same directory below it. Whether a path is an addition or a change is decided by looking it up
in the lower layers' diff directories, top first, the way overlayfs itself does. No directory of
the layer's parents is walked, so the cost follows the size of the change, not of the image.
"""

from __future__ import annotations

import os
import stat

from pyengine.drivers.storage import Change
from pyengine.storage.archive import is_overlay_opaque
from pyengine.storage.changes import change_sort_key

_PRESENT, _ABSENT, _HIDDEN = "present", "absent", "hidden"


def is_whiteout(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def _lstat(path: str) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None


def _probe(lower: str, rel: str) -> tuple[str, os.stat_result | None]:
    """What one lower diff directory says about ``rel``: present, absent or hidden below it."""
    parts = rel.split("/")
    path = lower
    for part in parts[:-1]:  # ancestors first: lstat would follow a symlinked ancestor
        path = os.path.join(path, part)
        st = _lstat(path)
        if st is None:
            return _ABSENT, None
        if is_whiteout(st) or not stat.S_ISDIR(st.st_mode) or is_overlay_opaque(path):
            return _HIDDEN, None
    st = _lstat(os.path.join(path, parts[-1]))
    if st is None:
        return _ABSENT, None
    if is_whiteout(st):
        return _HIDDEN, None
    return _PRESENT, st


def lookup(lowers: list[str], rel: str) -> os.stat_result | None:
    """The stat of ``rel`` in the merged view of ``lowers`` (top first), None when it is not there."""
    for lower in lowers:
        state, st = _probe(lower, rel)
        if state == _PRESENT:
            return st
        if state == _HIDDEN:
            return None
    return None


def merged_names(lowers: list[str], rel: str) -> set[str]:
    """The names directory ``rel`` holds in the merged view of ``lowers``."""
    names: set[str] = set()
    hidden: set[str] = set()
    for lower in lowers:
        state, st = _probe(lower, rel) if rel else (_PRESENT, os.lstat(lower))
        if state == _HIDDEN or (state == _PRESENT and not stat.S_ISDIR(st.st_mode)):  # type: ignore[union-attr]
            break
        if state == _ABSENT:
            continue
        directory = os.path.join(lower, rel) if rel else lower
        with os.scandir(directory) as entries:
            for entry in entries:
                if entry.name in names or entry.name in hidden:
                    continue
                if is_whiteout(entry.stat(follow_symlinks=False)):
                    hidden.add(entry.name)
                else:
                    names.add(entry.name)
        if rel and is_overlay_opaque(directory):
            break
    return names


def upper_changes(upper: str, lowers: list[str], *, for_tar: bool = False) -> list[Change]:
    """The changes an upper directory makes over ``lowers`` (diff dirs, top first), sorted.

    An opaque directory that replaced a lower directory lists the lower entries it hides as
    deleted; ``for_tar`` leaves those out, because the tar's opaque marker already says so.
    """
    out: list[Change] = []

    def walk(rel: str) -> None:
        directory = os.path.join(upper, rel) if rel else upper
        with os.scandir(directory) as entries:
            children = sorted((entry.name, entry.stat(follow_symlinks=False)) for entry in entries)
        for name, st in children:
            child = f"{rel}/{name}" if rel else name
            below = lookup(lowers, child)
            if is_whiteout(st):
                if below is not None:
                    out.append(Change("D", "/" + child))
                continue
            out.append(Change("A" if below is None else "C", "/" + child))
            if not stat.S_ISDIR(st.st_mode):
                continue
            path = os.path.join(upper, child)
            if not for_tar and below is not None and stat.S_ISDIR(below.st_mode) and is_overlay_opaque(path):
                kept = set(os.listdir(path))
                for gone in sorted(merged_names(lowers, child) - kept):
                    out.append(Change("D", f"/{child}/{gone}"))
            walk(child)

    walk("")
    out.sort(key=change_sort_key)
    return out
