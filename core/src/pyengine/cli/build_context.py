"""The build context as ``pyengine build`` sends it: a tar of what .dockerignore keeps.

Two forms:

- **full**: headers written here (plain ustar, tarfile only for what ustar cannot hold) and each
  file's content handed to the kernel with ``sendfile``, framed as HTTP chunks;
- **by digest** (pyengine's daemon only, see pyengine.build.tarstream): each regular file's content
  replaced by PAX records with its digest (pyengine.build.digests) and size. The daemon answers a
  fully cached build from it without the files ever being sent; otherwise it asks for the full form.

Digests come from a per-context cache keyed by each file's (size, mtime, ctime, inode, device,
mode), as git's index does: rewriting a file changes its ctime even when its size and mtime are put
back (``touch -r``, ``os.utime``), and nobody can set ctime. A file whose ctime is less than
:data:`RACY_SECONDS` old when it is hashed is not cached (it could still change within the same
timestamp tick).
"""

from __future__ import annotations

import hashlib
import os
import stat
import time

from pyengine.build.ignore import ALWAYS_SENT, read_dockerignore, walk_included
from pyengine.cli import fastjson as json

# pyengine.build.tarstream's PAX records of a context sent by digest (not imported: tarfile is slow
# to import, and most builds need no tarfile here)
DIGEST_TYPE = b"P"
DIGEST_RECORD = "PYENGINE.digest"
SIZE_RECORD = "PYENGINE.size"

TYPE_CHECKING = False
if TYPE_CHECKING:
    import socket
    from collections.abc import Iterator

RACY_SECONDS = 2.0
_BLOCK = 512
_END = b"\0" * (2 * _BLOCK)


class ContextError(Exception):
    """A file of the context could not be read (the message says which)."""


def context_entries(root: str, name: str) -> list[tuple[str, os.stat_result]]:
    """(relative path, lstat) of everything the context holds, parents before children, sorted;
    ``name`` (the Dockerfile) is kept whatever .dockerignore says. Sockets and devices are left out."""
    matcher = read_dockerignore(root)
    entries = []
    for rel in walk_included(root, matcher, (*ALWAYS_SENT, name)):
        try:
            st = os.lstat(os.path.join(root, rel))
        except OSError as exc:
            raise ContextError(f"error checking context: {exc}") from exc
        if stat.S_ISDIR(st.st_mode) or stat.S_ISLNK(st.st_mode) or stat.S_ISREG(st.st_mode):
            entries.append((rel, st))
        elif stat.S_ISFIFO(st.st_mode):
            entries.append((rel, st))
    return entries


# ---- tar headers ------------------------------------------------------------------------------
def _octal(value: int, width: int) -> bytes | None:
    text = b"%0*o\0" % (width - 1, value)
    return text if len(text) == width else None


def header(
    rel: str,
    st: os.stat_result | None,
    size: int,
    *,
    linkname: str = "",
    pax: dict[str, str] | None = None,
    by_digest: bool = False,
) -> bytes:
    """The tar header block(s) of one entry (``st`` None: a plain file with mode 0644), with PAX
    records ``pax`` before it when given; ``by_digest``: a regular file sent by its digest."""
    mode = stat.S_IMODE(st.st_mode) if st is not None else 0o644
    kind = stat.S_IFMT(st.st_mode) if st is not None else stat.S_IFREG
    uid, gid, mtime = (st.st_uid, st.st_gid, int(st.st_mtime)) if st is not None else (0, 0, 0)
    if kind == stat.S_IFDIR:
        typeflag, rel = b"5", rel + "/"
    elif kind == stat.S_IFLNK:
        typeflag = b"2"
    elif kind == stat.S_IFIFO:
        typeflag = b"6"
    else:
        typeflag = DIGEST_TYPE if by_digest else b"0"
    block = _ustar(rel, mode, uid, gid, size, mtime, typeflag, linkname)
    if block is None:
        return _tarfile_header(rel, mode, uid, gid, size, mtime, typeflag, linkname, pax)
    return (_pax_header(pax) if pax else b"") + block


def _ustar(
    rel: str, mode: int, uid: int, gid: int, size: int, mtime: int, typeflag: bytes, linkname: str
) -> bytes | None:
    """A plain ustar header block, or None when the entry does not fit one (long or non-ASCII
    names, large numbers)."""
    try:
        name = rel.encode("ascii")
        link = linkname.encode("ascii")
    except UnicodeEncodeError:
        return None
    fields = [_octal(mode, 8), _octal(uid, 8), _octal(gid, 8), _octal(size, 12), _octal(mtime, 12)]
    if len(name) > 100 or len(link) > 100 or None in fields:
        return None
    block = bytearray(_BLOCK)
    block[0 : len(name)] = name
    block[100:148] = b"".join(fields)  # type: ignore[arg-type]
    block[148:156] = b" " * 8
    block[156:157] = typeflag
    block[157 : 157 + len(link)] = link
    block[257:265] = b"ustar\x0000"
    block[148:156] = b"%06o\0 " % sum(block)
    return bytes(block)


def _tarfile_header(
    rel: str,
    mode: int,
    uid: int,
    gid: int,
    size: int,
    mtime: int,
    typeflag: bytes,
    linkname: str,
    pax: dict[str, str] | None,
) -> bytes:
    import tarfile

    info = tarfile.TarInfo(rel)
    info.mode, info.uid, info.gid, info.size, info.mtime = mode, uid, gid, size, mtime
    info.type, info.linkname = typeflag, linkname
    info.pax_headers = dict(pax or {})
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


def _pax_header(records: dict[str, str]) -> bytes:
    data = b""
    for key, value in records.items():
        record = f" {key}={value}\n".encode()
        length = len(record) + 1
        while len(str(length)) + len(record) != length:
            length = len(str(length)) + len(record)
        data += str(length).encode() + record
    return _ustar("././@PaxHeader", 0o644, 0, 0, len(data), 0, b"x", "") + data + _padding(len(data))


def _padding(size: int) -> bytes:
    return b"\0" * (-size % _BLOCK)


# ---- digests ----------------------------------------------------------------------------------
class DigestCache:
    """Digests of the context's files, remembered across builds by each file's stat (see above)."""

    def __init__(self, root: str) -> None:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        key = hashlib.sha256(os.path.realpath(root).encode(errors="surrogateescape")).hexdigest()[:32]
        self.path = os.path.join(base, "pyengine", "build-context", key + ".json")
        self.known: dict[str, list] = {}
        self.fresh: dict[str, list] = {}
        try:
            with open(self.path, "rb") as handle:
                known = json.loads(handle.read()).get("files", {})
        except (OSError, ValueError, AttributeError):
            known = {}
        self.known = known if isinstance(known, dict) else {}

    def digest(self, rel: str, path: str, st: os.stat_result) -> str:
        key = [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev, st.st_mode]
        from pyengine.build.digests import ALGORITHM, file_digest

        known = self.known.get(rel)
        if isinstance(known, list) and known[:-1] == key and str(known[-1]).startswith(ALGORITHM + ":"):
            self.fresh[rel] = known
            return known[-1]
        try:
            hexdigest = f"{ALGORITHM}:{file_digest(path).hex()}"
        except OSError as exc:
            raise ContextError(f"error checking context: {exc}") from exc
        if time.time_ns() - st.st_ctime_ns > RACY_SECONDS * 1e9:
            self.fresh[rel] = [*key, hexdigest]
        return hexdigest

    def save(self) -> None:
        """Keep the digests of this context's current files (only when something changed)."""
        if self.fresh == self.known:
            return
        try:
            os.makedirs(os.path.dirname(self.path), mode=0o700, exist_ok=True)
            temp = f"{self.path}.{os.getpid()}.tmp"
            with open(temp, "w") as handle:
                handle.write(json.dumps({"files": self.fresh}))
            os.replace(temp, self.path)
        except OSError:
            pass  # a cache that cannot be written only costs hashing next time


def digest_tar(root: str, entries: list[tuple[str, os.stat_result]], name: str, extra: bytes | None) -> bytes:
    """The context by digest: every regular file as PAX records (digest, size) without content,
    except the Dockerfile and .dockerignore, which the daemon reads."""
    cache = DigestCache(root)
    pieces = []
    for rel, st in entries:
        path = os.path.join(root, rel)
        if stat.S_ISREG(st.st_mode):
            if rel in (name, ".dockerignore"):
                pieces.append(_whole_file(rel, path, st))
                continue
            records = {DIGEST_RECORD: cache.digest(rel, path, st), SIZE_RECORD: str(st.st_size)}
            pieces.append(header(rel, st, 0, pax=records, by_digest=True))
        else:
            pieces.append(_special(rel, path, st))
    if extra is not None:
        pieces.append(header(name, None, len(extra)) + extra + _padding(len(extra)))
    pieces.append(_END)
    cache.save()
    return b"".join(pieces)


def _whole_file(rel: str, path: str, st: os.stat_result) -> bytes:
    try:
        with open(path, "rb") as handle:
            data = handle.read(st.st_size)
    except OSError as exc:
        raise ContextError(f"error checking context: {exc}") from exc
    if len(data) != st.st_size:
        raise ContextError(f"error sending the build context: {path} shrank while being sent")
    return header(rel, st, len(data)) + data + _padding(len(data))


def _special(rel: str, path: str, st: os.stat_result) -> bytes:
    if stat.S_ISLNK(st.st_mode):
        try:
            return header(rel, st, 0, linkname=os.readlink(path))
        except OSError as exc:
            raise ContextError(f"error checking context: {exc}") from exc
    return header(rel, st, 0)


# ---- the full context -------------------------------------------------------------------------
class FullContext:
    """The full context tar as a chunked request body, file contents sent with ``sendfile``."""

    def __init__(self, root: str, entries: list[tuple[str, os.stat_result]], name: str, extra: bytes | None):
        self.root = root
        self.entries = entries
        self.name = name
        self.extra = extra

    def pieces(self) -> Iterator[bytes | tuple[str, int]]:
        """Bytes to send as they are, and (path, size) for file contents."""
        for rel, st in self.entries:
            path = os.path.join(self.root, rel)
            if stat.S_ISREG(st.st_mode):
                yield header(rel, st, st.st_size)
                if st.st_size:
                    yield path, st.st_size
                    yield _padding(st.st_size)
            else:
                yield _special(rel, path, st)
        if self.extra is not None:
            yield header(self.name, None, len(self.extra)) + self.extra + _padding(len(self.extra))
        yield _END

    def send_to(self, sock: socket.socket) -> None:
        """Write the body in HTTP chunks (the caller ends it with the last chunk)."""
        pending: list[bytes] = []

        def flush() -> None:
            data = b"".join(pending)
            pending.clear()
            if data:
                sock.sendall(b"%x\r\n%s\r\n" % (len(data), data))

        for piece in self.pieces():
            if isinstance(piece, bytes):
                pending.append(piece)
                continue
            path, size = piece
            flush()
            try:
                with open(path, "rb") as handle:
                    sock.sendall(b"%x\r\n" % size)
                    sent = _sendfile(sock, handle.fileno(), size)
            except OSError as exc:
                if isinstance(exc, (BrokenPipeError, ConnectionResetError)):
                    raise
                raise ContextError(f"error sending the build context: {exc}") from exc
            if sent != size:
                raise ContextError(f"error sending the build context: {path} shrank while being sent")
            sock.sendall(b"\r\n")
        flush()


def _sendfile(sock: socket.socket, fd: int, size: int) -> int:
    """Send ``size`` bytes of ``fd`` from its start; fewer only when the file ended early."""
    sent = 0
    while sent < size:
        count = os.sendfile(sock.fileno(), fd, sent, size - sent)
        if count == 0:
            break
        sent += count
    return sent
