"""``--userns-remap``: which host ids the daemon's containers run as, as Docker's daemon does it.

The value is ``default`` or ``USER[:GROUP]`` (names or numeric ids). The user's (and group's)
subordinate ids come from /etc/subuid and /etc/subgid: the first range listed for it, by name or by
number. Container ids 0..size-1 then map to that range, so the container's root is the range's
first id. ``default`` stands for the user ``pyremap``, created (a system user, like Docker's
``dockremap``) with a free 65536-id range when it does not exist yet.
"""

from __future__ import annotations

import grp
import logging
import pwd
import subprocess
from pathlib import Path

from pyengine.errors import InvalidArgument
from pyengine.runtime.idmap import IdMap

log = logging.getLogger(__name__)

DEFAULT_REMAP_USER = "pyremap"
SUBUID_FILE = Path("/etc/subuid")
SUBGID_FILE = Path("/etc/subgid")
_FIRST_SUBORDINATE_ID = 100000
_RANGE_SIZE = 65536


def resolve(value: str | None, *, subuid: Path = SUBUID_FILE, subgid: Path = SUBGID_FILE) -> IdMap | None:
    """The id map ``--userns-remap=value`` stands for (None when remapping is off).

    Raises InvalidArgument naming what is wrong: an unknown user or group, no subordinate range.
    """
    if value is None or value == "":
        return None
    if value == "default":
        _ensure_default_user(subuid, subgid)
        user, group = DEFAULT_REMAP_USER, DEFAULT_REMAP_USER
    else:
        user, _, group = value.partition(":")
        if not user or (":" in value and not group):
            raise InvalidArgument(
                f'invalid --userns-remap value "{value}": expected "default" or USER[:GROUP]'
            )
    user_name, user_id = _lookup_user(user)
    if not group:
        group_name, group_id = user_name, None
        try:
            group_id = grp.getgrnam(user_name).gr_gid
        except KeyError:
            pass
    else:
        group_name, group_id = _lookup_group(group)
    uid_start, uid_size = _first_range(subuid, user_name, user_id, "user")
    gid_start, gid_size = _first_range(subgid, group_name, group_id, "group")
    return IdMap.single(uid_start, gid_start, min(uid_size, gid_size))


def _lookup_user(user: str) -> tuple[str, int]:
    try:
        entry = pwd.getpwuid(int(user)) if user.isdigit() else pwd.getpwnam(user)
    except KeyError:
        raise InvalidArgument(f'--userns-remap: no such user "{user}"') from None
    return entry.pw_name, entry.pw_uid


def _lookup_group(group: str) -> tuple[str, int]:
    try:
        entry = grp.getgrgid(int(group)) if group.isdigit() else grp.getgrnam(group)
    except KeyError:
        raise InvalidArgument(f'--userns-remap: no such group "{group}"') from None
    return entry.gr_name, entry.gr_gid


def _ranges(path: Path) -> list[tuple[str, int, int]]:
    try:
        text = path.read_text()
    except FileNotFoundError:
        return []
    ranges = []
    for line in text.splitlines():
        parts = line.strip().split(":")
        if len(parts) == 3 and parts[1].isdigit() and parts[2].isdigit():
            ranges.append((parts[0], int(parts[1]), int(parts[2])))
    return ranges


def _first_range(path: Path, name: str, number: int | None, kind: str) -> tuple[int, int]:
    for owner, start, size in _ranges(path):
        if size > 0 and (owner == name or (number is not None and owner == str(number))):
            return start, size
    raise InvalidArgument(
        f'--userns-remap: no subordinate {"uid" if kind == "user" else "gid"} range for {kind} "{name}" '
        f"in {path} (add a line like {name}:{_FIRST_SUBORDINATE_ID}:{_RANGE_SIZE})"
    )


def _ensure_default_user(subuid: Path, subgid: Path) -> None:
    """Create ``pyremap`` and its subordinate ranges if missing (what dockerd does for dockremap)."""
    try:
        pwd.getpwnam(DEFAULT_REMAP_USER)
        exists = True
    except KeyError:
        exists = False
    if not exists:
        log.info("creating user %s for --userns-remap=default", DEFAULT_REMAP_USER)
        result = subprocess.run(
            ["useradd", "--system", "--shell", "/bin/false", "--user-group", DEFAULT_REMAP_USER],
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            raise InvalidArgument(
                f"--userns-remap=default: cannot create user {DEFAULT_REMAP_USER}: {result.stderr.strip()}"
            )
    for path in (subuid, subgid):
        ranges = _ranges(path)
        if any(owner == DEFAULT_REMAP_USER for owner, _, _ in ranges):
            continue
        start = max([_FIRST_SUBORDINATE_ID, *(begin + size for _, begin, size in ranges)])
        text = path.read_text() if path.exists() else ""
        if text and not text.endswith("\n"):
            text += "\n"
        path.write_text(f"{text}{DEFAULT_REMAP_USER}:{start}:{_RANGE_SIZE}\n")
