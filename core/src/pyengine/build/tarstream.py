"""The build context read as it arrives: as each piece of the request body goes to the spool file,
the tar headers are parsed and every regular file's content is hashed. When
the body ends, the index (name -> member with its content digest) is complete, so a fully cached build
neither re-reads nor re-hashes the context.

A context our own CLI sends "by digest" (see :data:`DIGEST_RECORD`) carries, for each regular file,
its digest and size in PAX records instead of its content; the index is the same, only without data
to unpack.

Anything this parser does not follow exactly (GNU sparse files, a compressed context, a malformed
header) makes it stop indexing: the spool is still written in full and the context is indexed from
it afterwards, as before.
"""

from __future__ import annotations

import os
import stat
import tarfile
from typing import Any

from pyengine.build.digests import ALGORITHM, EMPTY_DIGEST, content_hasher

# A regular file of a context sent by digest (pyengine's CLI only) is an entry of this vendor type
# (POSIX leaves 'A'-'Z' to vendors) without data, with PAX records: its content digest
# ("<algorithm>:<hex>", see pyengine.build.digests) and its size. A daemon that does not know the
# type refuses to unpack it rather than take it for an empty file.
DIGEST_TYPE = b"P"
DIGEST_RECORD = "PYENGINE.digest"
SIZE_RECORD = "PYENGINE.size"

_BLOCK = tarfile.BLOCKSIZE
_REGULAR = (tarfile.REGTYPE, tarfile.AREGTYPE, tarfile.CONTTYPE)
_KINDS = {
    tarfile.REGTYPE: stat.S_IFREG,
    tarfile.AREGTYPE: stat.S_IFREG,
    tarfile.CONTTYPE: stat.S_IFREG,
    tarfile.DIRTYPE: stat.S_IFDIR,
    tarfile.SYMTYPE: stat.S_IFLNK,
}


class Member:
    """One entry of the context: what the cache key needs (name, type, mode, link target, content
    digest, see pyengine.build.digests) and where its data is in the spool file."""

    __slots__ = ("name", "type", "mode", "size", "linkname", "offset_data", "digest", "sent")

    def __init__(
        self,
        name: str,
        type: bytes,
        mode: int,
        size: int,
        linkname: str,
        offset_data: int,
        digest: bytes | None = None,
    ) -> None:
        self.name = name
        self.type = type
        self.mode = mode
        self.size = size
        self.linkname = linkname
        self.offset_data = offset_data
        self.digest = digest  # digest of the content (regular files), None until known
        self.sent = True  # False: only the digest of the content came, not the content

    @classmethod
    def of(cls, info: tarfile.TarInfo) -> Member:
        return cls(info.name, info.type, info.mode, info.size, info.linkname, info.offset_data)

    @property
    def kind(self) -> int | None:
        """The stat file type (S_IFREG, S_IFDIR, S_IFLNK), None for hard links and devices."""
        return _KINDS.get(self.type)

    def isreg(self) -> bool:
        return self.type in _REGULAR

    def isdir(self) -> bool:
        return self.type == tarfile.DIRTYPE

    def issym(self) -> bool:
        return self.type == tarfile.SYMTYPE


def normalized_name(name: str) -> str:
    """The name an entry is indexed under ("" for the root and for names that leave the context)."""
    clean = os.path.normpath(name.lstrip("/")) if name else ""
    if clean in ("", ".") or clean == ".." or clean.startswith("../"):
        return ""
    return clean


class StreamIndexer:
    """Indexes the pieces of a context tar in order (the caller writes them to the spool file)."""

    def __init__(self) -> None:
        self.members: dict[str, Member] | None = {}  # None once indexing gave up
        self.by_digest = False  # entries carried digest records instead of data
        self.offset = 0  # bytes of the stream consumed by the parser
        self.written = 0
        self._header = bytearray()  # a header block (or a PAX/GNU data block) being collected
        self._need = _BLOCK  # bytes wanted in _header, 0 while in file data
        self._collecting: tarfile.TarInfo | None = None  # the PAX / long-name entry being read
        self._pax: dict[str, str] = {}
        self._long_name: str | None = None
        self._long_link: str | None = None
        self._data_left = 0  # content bytes of the current member still to come
        self._pad_left = 0
        self._hasher: Any = None
        self._current: Member | None = None
        self._ended = False
        self._first = True

    # ---- input --------------------------------------------------------------------------------
    def feed(self, data: bytes) -> None:
        self.written += len(data)
        if self.members is None or self._ended:
            return
        if self._first:
            self._first = False
            if data[:2] == b"\x1f\x8b" or data[:3] == b"BZh" or data[:6] == b"\xfd7zXZ\x00":
                self.members = None  # compressed: unpacked from the spool instead
                return
        try:
            self._parse(memoryview(data))
        except (tarfile.TarError, ValueError, UnicodeError):
            self.members = None

    def finish(self) -> dict[str, Member] | None:
        """The index, or None when the spool must be indexed by tarfile instead. A last file cut
        short (the docker CLI's ``-f -`` context ends without padding) keeps no digest."""
        if self.members is None:
            return None
        if self._current is not None and self._data_left > 0:
            self._current.digest = None
        elif self._current is not None and self._hasher is not None:
            self._current.digest = self._hasher.digest()
        if self._collecting is not None or (self._header and not self._ended and any(self._header)):
            return None  # ended inside a header: let tarfile say what is wrong
        return self.members

    # ---- parsing ------------------------------------------------------------------------------
    def _parse(self, view: memoryview) -> None:
        pos, end = 0, len(view)
        while pos < end and not self._ended:
            if self._data_left:
                take = min(self._data_left, end - pos)
                if self._hasher is not None:
                    self._hasher.update(view[pos : pos + take])
                self._data_left -= take
                pos += take
                self.offset += take
                if not self._data_left:
                    self._end_member()
                continue
            if self._pad_left:
                take = min(self._pad_left, end - pos)
                self._pad_left -= take
                pos += take
                self.offset += take
                continue
            take = min(self._need - len(self._header), end - pos)
            self._header += view[pos : pos + take]
            pos += take
            self.offset += take
            if len(self._header) == self._need:
                block = bytes(self._header)
                self._header.clear()
                self._need = _BLOCK
                self._on_block(block)

    def _end_member(self) -> None:
        if self._current is not None and self._hasher is not None:
            self._current.digest = self._hasher.digest()
        self._hasher = None
        self._current = None

    def _on_block(self, block: bytes) -> None:
        if self._collecting is not None:
            self._on_extension(self._collecting, block)
            return
        if not any(block):
            self._ended = True  # end of archive (what follows is padding)
            return
        info = tarfile.TarInfo.frombuf(block, "utf-8", "surrogateescape")
        data_offset = self.offset  # the parser stands just after this header block
        if info.type in (tarfile.XHDTYPE, tarfile.XGLTYPE, tarfile.SOLARIS_XHDTYPE) or info.type in (
            tarfile.GNUTYPE_LONGNAME,
            tarfile.GNUTYPE_LONGLINK,
        ):
            if info.size > 1 << 20:
                raise ValueError("extended header too large")
            self._collecting = info
            self._need = _padded(info.size) if info.size else _BLOCK
            if not info.size:
                self._collecting = None
            return
        if info.type == tarfile.GNUTYPE_SPARSE:
            raise ValueError("sparse files are indexed by tarfile")
        pax, self._pax = self._pax, {}
        if any(key.startswith("GNU.sparse") for key in pax):
            raise ValueError("sparse files are indexed by tarfile")
        name = pax.get("path", self._long_name if self._long_name is not None else info.name)
        linkname = pax.get("linkpath", self._long_link if self._long_link is not None else info.linkname)
        self._long_name = self._long_link = None
        size = int(pax["size"]) if "size" in pax else info.size
        if info.type == tarfile.AREGTYPE and name.endswith("/"):
            info.type = tarfile.DIRTYPE
        carries_data = info.type in _REGULAR or info.type not in tarfile.SUPPORTED_TYPES
        member = Member(name, info.type, info.mode, size, linkname, data_offset)
        given = pax.get(DIGEST_RECORD) if info.type == DIGEST_TYPE else None
        if info.type == DIGEST_TYPE:
            if given is None or size:
                raise ValueError("a digest-only entry without its digest, or with data")
            member.type = tarfile.REGTYPE
            algorithm, _, hexdigest = given.partition(":")
            # a digest of another algorithm stays unknown: the files are asked for if needed
            member.digest = bytes.fromhex(hexdigest) if algorithm == ALGORITHM else None
            member.size = int(pax.get(SIZE_RECORD, "0"))
            member.sent = False
            self.by_digest = True
        key = normalized_name(name)
        if key:
            self.members[key] = member  # type: ignore[index]
        if carries_data and size:
            self._data_left = size
            self._pad_left = -size % _BLOCK
            self._current = member
            self._hasher = content_hasher() if info.type in _REGULAR and key else None
        elif info.type in _REGULAR and given is None:
            member.digest = EMPTY_DIGEST

    def _on_extension(self, info: tarfile.TarInfo, block: bytes) -> None:
        self._collecting = None
        data = block[: info.size]
        if info.type == tarfile.GNUTYPE_LONGNAME:
            self._long_name = data.rstrip(b"\0").decode("utf-8", "surrogateescape")
        elif info.type == tarfile.GNUTYPE_LONGLINK:
            self._long_link = data.rstrip(b"\0").decode("utf-8", "surrogateescape")
        elif info.type in (tarfile.XHDTYPE, tarfile.SOLARIS_XHDTYPE):
            self._pax.update(_pax_records(data))
        # global PAX headers (XGLTYPE) carry nothing the index needs


def _pax_records(data: bytes) -> dict[str, str]:
    records: dict[str, str] = {}
    pos = 0
    while pos < len(data) and data[pos] != 0:
        space = data.index(b" ", pos)
        length = int(data[pos:space])
        if length <= 0:
            raise ValueError("bad PAX record length")
        record = data[space + 1 : pos + length - 1]  # without the trailing newline
        key, _, value = record.partition(b"=")
        records[key.decode("utf-8", "surrogateescape")] = value.decode("utf-8", "surrogateescape")
        pos += length
    return records


def _padded(size: int) -> int:
    return size + (-size % _BLOCK)
