"""A build context kept as the tar the client sent, indexed, and unpacked only when a step needs its
files: a fully cached build reads the Dockerfile and digests the COPY sources straight from the tar.

The digest of sources taken from the index equals the one :func:`context.checksum_sources` gives for
the unpacked files; whatever the index cannot answer exactly (globs, symlinks on the way, hard links,
implicit directories) is answered from the unpacked files instead.

A context sent by digest (:mod:`pyengine.build.tarstream`) has an index but no files: whatever needs
the files raises :class:`ContextNeeded`, and the client sends the context again in full.
"""

from __future__ import annotations

import os
import stat
import tarfile
from pathlib import Path

from pyengine.build import context as ctx
from pyengine.build.digests import content_hasher
from pyengine.build.ignore import ALWAYS_SENT, ignore_matcher
from pyengine.build.tarstream import Member, normalized_name
from pyengine.errors import EngineError, InvalidArgument


class ContextNeeded(EngineError):
    """The build needs the files of a context that was sent by digest only."""


class BuildContext:
    def __init__(
        self,
        tar_path: Path,
        directory: Path,
        dockerfile: str,
        members: dict[str, Member] | None = None,
        *,
        by_digest: bool = False,
    ) -> None:
        """``tar_path``: the context tar (plain or compressed; a compressed one is unpacked at once);
        ``directory``: where it is unpacked when needed (must not exist yet); ``members``: its index
        when it was made while receiving; ``by_digest``: the tar has digests instead of file data."""
        self.tar_path = tar_path
        self.directory = directory
        self.dockerfile = os.path.normpath(dockerfile)
        self.members: dict[str, Member] | None = None  # None: use the unpacked files
        self.by_digest = by_digest
        self._unpacked = False
        self._extracted: set[str] = set()  # entries unpacked one COPY at a time (root_for)
        if members is not None:
            self._filter(members)
            return
        if by_digest:
            raise InvalidArgument("a context sent by digest must be a plain tar")
        with open(tar_path, "rb") as handle:
            head = handle.read(6)
        if not head:
            directory.mkdir(parents=True)
            self._unpacked = True
        elif head[:2] == b"\x1f\x8b" or head[:3] == b"BZh" or head == b"\xfd7zXZ\x00":
            self.root  # noqa: B018 - unpacks
        else:
            self._index()

    def _index(self) -> None:
        members: dict[str, Member] = {}
        try:
            with tarfile.open(self.tar_path, "r:") as tar:
                for member in tar:
                    name = normalized_name(member.name)
                    if name:
                        members[name] = Member.of(member)
        except tarfile.TarError as exc:
            raise InvalidArgument(f"the build context is not a valid tar archive: {exc}") from exc
        self._filter(members)

    def _filter(self, members: dict[str, Member]) -> None:
        """Keep what .dockerignore keeps (clients filter already; this keeps the daemon right for
        those that do not)."""
        ignore = members.get(".dockerignore")
        if ignore is not None and ignore.isreg():
            matcher = ignore_matcher(self._read_member(ignore).decode(errors="replace").splitlines())
            keep = (*ALWAYS_SENT, self.dockerfile)
            members = {n: m for n, m in members.items() if n in keep or not matcher.matches(n)}
        self.members = members

    def _read_member(self, member: Member) -> bytes:
        if not member.sent:
            raise ContextNeeded(f"the content of {member.name} was not sent")
        with open(self.tar_path, "rb") as handle:
            handle.seek(member.offset_data)
            return handle.read(member.size)

    def _member_digest(self, member: Member) -> bytes:
        if member.digest is not None:
            return member.digest  # hashed while it arrived, or given by the client
        if not member.sent:
            raise ContextNeeded(f"the digest of {member.name} is not one this daemon uses")
        hasher = content_hasher()
        left = member.size
        with open(self.tar_path, "rb") as handle:
            handle.seek(member.offset_data)
            while left > 0:
                chunk = handle.read(min(left, 1 << 20))
                if not chunk:
                    raise InvalidArgument(f"the build context is truncated in {member.name}")
                hasher.update(chunk)
                left -= len(chunk)
        member.digest = hasher.digest()
        return member.digest

    @property
    def root(self) -> Path:
        """The unpacked context (unpacked on first use, .dockerignore applied). ContextNeeded for a
        context sent by digest."""
        if self.by_digest:
            raise ContextNeeded("the build needs the files of the context")
        if not self._unpacked:
            if self._extracted:
                ctx.remove_tree(self.directory)  # a part of it: start again with the whole
            with open(self.tar_path, "rb") as stream:
                ctx.unpack_context(stream, self.directory, self.dockerfile)
            self._unpacked = True
            self.members = None
        return self.directory

    def root_for(self, patterns: list[str]) -> Path:
        """The context directory holding at least what these COPY sources name. When the index says
        exactly which entries those are, only they are unpacked: one changed small file must not
        cost unpacking the whole context. Otherwise the whole context (:attr:`root`)."""
        names = None if self._unpacked or self.by_digest else self._names_for(patterns)
        if names is None:
            return self.root
        wanted = names - self._extracted
        if wanted:
            self._extract(wanted)
        return self.directory

    def _names_for(self, patterns: list[str]) -> set[str] | None:
        if self.checksum(patterns) is None:
            return None  # the index cannot tell exactly (globs, symlinks on the way...)
        members = self.members or {}
        names: set[str] = set()
        for pattern in patterns:
            clean = os.path.normpath(pattern)
            if clean == ".":
                return None  # all of it
            parts = clean.split("/")
            names.update(p for p in ("/".join(parts[:d]) for d in range(1, len(parts))) if p in members)
            names.add(clean)
            if members[clean].isdir():
                names.update(n for n in members if n.startswith(clean + "/"))
        return names

    def _extract(self, names: set[str]) -> None:
        from pyengine.storage.layer_unpacker import LayerUnpacker

        members = self.members or {}
        self.directory.mkdir(parents=True, exist_ok=True)
        unpacker = LayerUnpacker(self.directory, "delete")
        try:
            with tarfile.open(self.tar_path, "r:") as tar:
                for info in tar:
                    name = normalized_name(info.name)
                    # the entry the index holds (a later one of the same name wins, as on unpacking)
                    if name in names and members[name].offset_data == info.offset_data:
                        unpacker.apply(tar, info)
            unpacker.finish()
        finally:
            unpacker.close()
        self._extracted |= names

    def read_dockerfile(self) -> str:
        member = self.members.get(self.dockerfile) if self.members is not None else None
        if member is not None and member.isreg():
            return self._read_member(member).decode("utf-8", errors="replace")
        path = os.path.normpath(os.path.join(self.root, self.dockerfile))
        real = os.path.realpath(path)
        if not real.startswith(os.path.realpath(self.root) + os.sep) or not os.path.isfile(real):
            raise InvalidArgument(f"Cannot locate specified Dockerfile: {self.dockerfile}")
        with open(real, encoding="utf-8", errors="replace") as handle:
            return handle.read()

    def checksum(self, patterns: list[str]) -> str | None:
        """The digest of these COPY sources from the index, or None when only the files can tell."""
        members = self.members
        if members is None:
            return None
        records: list[tuple[str, bytes]] = []
        for pattern in patterns:
            clean = os.path.normpath(pattern)
            if pattern.startswith("/") or clean.startswith("..") or any(c in clean for c in "*?[\\"):
                return None
            if clean == ".":
                names = list(members)
                records += self._records(".", "", names, is_root=True) or [None]  # type: ignore[list-item]
            else:
                parts = clean.split("/")
                for depth in range(1, len(parts)):
                    above = members.get("/".join(parts[:depth]))
                    if above is not None and not above.isdir():
                        return None
                member = members.get(clean)
                if member is None or member.issym():
                    return None  # missing (the files give the error) or followed like on disk
                below = [n for n in members if n.startswith(clean + "/")] if member.isdir() else []
                found = self._records(os.path.basename(clean), clean, [clean, *below], is_root=False)
                if found is None:
                    return None
                records += found
        if any(r is None for r in records):
            return None
        return ctx.digest_records(records)

    def _records(self, name: str, prefix: str, names: list[str], *, is_root: bool) -> list | None:
        members = self.members or {}
        result = []
        present = set(names)
        for member_name in names:
            member = members[member_name]
            kind = member.kind
            if kind is None:
                return None  # hard links, devices: the unpacked files say what they become
            parent = os.path.dirname(member_name)
            if member_name != prefix and parent and parent != prefix and parent not in present:
                return None  # a directory without its own entry: its mode is not known here
            rel = member_name[len(prefix) :].lstrip("/") if prefix else member_name
            shown = f"{name}/{rel}" if rel else name
            if kind == stat.S_IFLNK:
                payload = member.linkname.encode(errors="surrogateescape")
            elif kind == stat.S_IFREG:
                payload = self._member_digest(member)
            else:
                payload = b""
            result.append(ctx.record(shown, kind, stat.S_IMODE(member.mode), payload))
        if is_root:
            result.append(ctx.record(".", stat.S_IFDIR, None, b""))
        return result
