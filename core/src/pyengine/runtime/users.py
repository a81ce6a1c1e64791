"""Resolve Docker's ``--user`` value against an image's /etc/passwd and /etc/group.

The files are read inside the container's root file system (symlinks in the image are followed
as if the root file system were ``/``, never onto the host). The rules follow Docker's:

* ``""`` is root: uid 0, gid 0, plus the groups of /etc/group that list ``root`` as a member;
* ``user`` (a name or a number): its uid and primary gid from /etc/passwd, plus the groups that
  list the user's name as a member; a number absent from /etc/passwd is used as-is with gid 0;
* ``user:group`` (names or numbers): the group replaces the primary gid and no supplementary
  groups are added; a number absent from /etc/group is used as-is.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

from pyengine.errors import InvalidArgument
from pyengine.runtime.inroot import read_file_in_root

_MAX_ID = 2**31 - 1


class _PasswdEntry(NamedTuple):
    name: str
    uid: int
    gid: int


class _GroupEntry(NamedTuple):
    name: str
    gid: int
    members: list[str]


def _lines(content: bytes | None) -> list[list[str]]:
    if content is None:
        return []
    rows = []
    for line in content.decode("utf-8", "replace").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            rows.append(line.split(":"))
    return rows


def _parse_passwd(content: bytes | None) -> list[_PasswdEntry]:
    entries = []
    for fields in _lines(content):
        if len(fields) < 4:
            continue
        try:
            entries.append(_PasswdEntry(fields[0], int(fields[2]), int(fields[3])))
        except ValueError:
            continue
    return entries


def _parse_group(content: bytes | None) -> list[_GroupEntry]:
    entries = []
    for fields in _lines(content):
        if len(fields) < 3:
            continue
        try:
            gid = int(fields[2])
        except ValueError:
            continue
        members = [m for m in fields[3].split(",") if m] if len(fields) > 3 else []
        entries.append(_GroupEntry(fields[0], gid, members))
    return entries


def _numeric(value: str) -> int | None:
    if not value.isdigit():
        return None
    number = int(value)
    if number > _MAX_ID:
        raise InvalidArgument(f"uids and gids must be in range 0-{_MAX_ID}")
    return number


def resolve_user(rootfs: Path, user: str) -> tuple[int, int, list[int]]:
    """Return ``(uid, gid, additional_gids)`` for Docker's ``--user`` value inside ``rootfs``.

    Raises InvalidArgument when a named user or group is not in the image's files.
    """
    user_part, _, group_part = user.partition(":")
    user_part = user_part or "0"  # Docker: an empty user is uid 0, looked up like any number
    passwd = _parse_passwd(read_file_in_root(rootfs, "/etc/passwd"))

    uid_number = _numeric(user_part)
    match = next(
        (e for e in passwd if (e.name == user_part if uid_number is None else e.uid == uid_number)), None
    )
    if match is None and uid_number is None:
        raise InvalidArgument(f"unable to find user {user_part}: no matching entries in passwd file")
    uid = match.uid if match else uid_number
    gid = match.gid if match else 0
    matched_name = match.name if match else None

    additional: list[int] = []
    if group_part:
        groups = _parse_group(read_file_in_root(rootfs, "/etc/group"))
        gid_number = _numeric(group_part)
        found = next(
            (g for g in groups if (g.name == group_part if gid_number is None else g.gid == gid_number)), None
        )
        if found is None and gid_number is None:
            raise InvalidArgument(f"unable to find group {group_part}: no matching entries in group file")
        gid = found.gid if found else gid_number
    elif matched_name is not None:
        groups = _parse_group(read_file_in_root(rootfs, "/etc/group"))
        additional = [g.gid for g in groups if matched_name in g.members]
    return uid, gid, additional


def resolve_groups(rootfs: Path, groups: list[str]) -> list[int]:
    """gids of Docker's ``--group-add`` values: numbers as-is, names looked up in the image's /etc/group."""
    entries = None
    gids = []
    for group in groups:
        number = _numeric(group)
        if number is None:
            if entries is None:
                entries = _parse_group(read_file_in_root(rootfs, "/etc/group"))
            found = next((g for g in entries if g.name == group), None)
            if found is None:
                raise InvalidArgument(f"unable to find group {group}: no matching entries in group file")
            number = found.gid
        gids.append(number)
    return gids
