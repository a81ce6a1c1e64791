"""The context indexed as it arrives (pyengine.build.tarstream), the CLI's context by digest and its
digest cache (pyengine.cli.build_context), and the click-free build flag parser."""

from __future__ import annotations

import io
import os
import tarfile
import time

import pytest
from pyengine.build import context as ctx
from pyengine.build import tarstream
from pyengine.build.digests import ALGORITHM, content_hasher
from pyengine.build.tarcontext import BuildContext, ContextNeeded
from pyengine.build.tarstream import Member, StreamIndexer, normalized_name
from pyengine.cli import build_context as cli_context
from pyengine.cli.fastbuild import parse_build_args
from pyengine.errors import InvalidArgument


def _tar(fmt: int) -> bytes:
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w", format=fmt) as tar:

        def add(name: str, content: bytes | None = None, **fields) -> None:
            info = tarfile.TarInfo(name)
            for key, value in fields.items():
                setattr(info, key, value)
            if content is not None:
                info.size = len(content)
            tar.addfile(info, io.BytesIO(content) if content is not None else None)

        add("Dockerfile", b"FROM x\n")
        add("dir", type=tarfile.DIRTYPE, mode=0o750)
        add("dir/empty", b"")
        add("dir/block", b"b" * 512, mode=0o600)
        add("dir/big", os.urandom(70_001))
        add("dir/" + "long" * 40, b"long name")
        add("dir/caf\u00e9", b"unicode")
        add("dir/link", type=tarfile.SYMTYPE, linkname="block")
        add("dir/hard", type=tarfile.LNKTYPE, linkname="dir/block")
        add("./dot/../x", b"normalized")
    return data.getvalue()


def _tarfile_index(raw: bytes) -> dict[str, tuple]:
    found = {}
    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        for info in tar:
            name = normalized_name(info.name)
            if not name:
                continue
            digest = None
            if info.isreg():
                hasher = content_hasher()
                hasher.update(tar.extractfile(info).read())
                digest = hasher.digest()
            found[name] = (info.type, info.mode, info.size, info.linkname, info.offset_data, digest)
    return found


def _indexed(raw: bytes, piece: int) -> tuple[dict[str, Member] | None, bytes]:
    spool = io.BytesIO()
    indexer = StreamIndexer()
    for start in range(0, len(raw), piece):
        spool.write(raw[start : start + piece])
        indexer.feed(raw[start : start + piece])
    assert indexer.written == len(raw)
    return indexer.finish(), spool.getvalue()


@pytest.mark.parametrize("fmt", [tarfile.GNU_FORMAT, tarfile.PAX_FORMAT, tarfile.USTAR_FORMAT])
@pytest.mark.parametrize("piece", [1, 511, 512, 4096, 1 << 20])
def test_stream_index_equals_tarfile(fmt, piece):
    if fmt == tarfile.USTAR_FORMAT:
        with pytest.raises(ValueError):  # ustar cannot hold the long name: nothing to compare
            _tar(fmt)
        return
    raw = _tar(fmt)
    members, spooled = _indexed(raw, piece)
    assert spooled == raw and members is not None
    got = {n: (m.type, m.mode, m.size, m.linkname, m.offset_data, m.digest) for n, m in members.items()}
    assert got == _tarfile_index(raw)


def test_stream_index_gives_up_on_what_it_does_not_follow():
    assert _indexed(b"\x1f\x8b\x08" + b"\0" * 600, 512)[0] is None  # gzip: unpacked instead
    raw = _tar(tarfile.PAX_FORMAT)
    assert _indexed(raw[: 1024 + 100], 512)[0] is None  # ends inside a header
    broken = bytearray(raw)
    broken[148:156] = b"0000000\0"  # bad checksum
    assert _indexed(bytes(broken), 512)[0] is None
    # a last file cut short keeps no digest (the docker CLI's `-f -` context has no padding)
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w") as tar:
        info = tarfile.TarInfo("f")
        info.size = 100
        tar.addfile(info, io.BytesIO(b"z" * 100))
    members, _ = _indexed(data.getvalue()[: 512 + 60], 512)
    assert members is not None and members["f"].digest is None


def _context_dir(tmp_path):
    root = tmp_path / "ctx"
    (root / "src" / "sub").mkdir(parents=True)
    (root / "Dockerfile").write_text("FROM x\nCOPY . /\n")
    (root / "a.txt").write_text("a")
    (root / "src" / "run.sh").write_text("echo")
    (root / "src" / "run.sh").chmod(0o750)
    (root / "src" / "sub" / "b").write_bytes(os.urandom(3000))
    (root / "skip.log").write_text("s")
    (root / ".dockerignore").write_text("*.log\n")
    os.symlink("run.sh", root / "src" / "link")
    return root


def _build_context(tmp_path, raw: bytes, name: str) -> BuildContext:
    tar_path = tmp_path / f"{name}.tar"
    tar_path.write_bytes(raw)
    indexer = StreamIndexer()
    indexer.feed(raw)
    return BuildContext(
        tar_path, tmp_path / f"{name}-dir", "Dockerfile", indexer.finish(), by_digest=indexer.by_digest
    )


def test_context_by_digest_gives_the_same_keys_as_the_files(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    root = _context_dir(tmp_path)
    entries = cli_context.context_entries(str(root), "Dockerfile")
    assert [rel for rel, _ in entries] == [
        ".dockerignore",
        "Dockerfile",
        "a.txt",
        "src",
        "src/link",
        "src/run.sh",
        "src/sub",
        "src/sub/b",
    ]
    by_digest = cli_context.digest_tar(str(root), entries, "Dockerfile", None)
    assert (root / "src" / "sub" / "b").read_bytes() not in by_digest  # only the digests of files
    full = io.BytesIO()
    from pyengine.cli.build_run import write_context

    write_context(str(root), "Dockerfile", None, full)
    digests = _build_context(tmp_path, by_digest, "digest")
    files = _build_context(tmp_path, full.getvalue(), "full")
    assert digests.by_digest and not files.by_digest
    assert digests.read_dockerfile() == files.read_dockerfile() == "FROM x\nCOPY . /\n"
    patterns = [["a.txt"], ["src"], ["src/run.sh"], ["."], ["a.txt", "src/sub"]]
    from_digests = [digests.checksum(p) for p in patterns]
    assert all(from_digests)
    assert from_digests == [files.checksum(p) for p in patterns]
    unpacked = files.root
    assert from_digests == [
        ctx.checksum_sources(ctx.resolve_sources(unpacked, p), unpacked) for p in patterns
    ]
    assert digests.checksum(["*.txt"]) is None  # globs need the files...
    with pytest.raises(ContextNeeded):
        digests.root  # noqa: B018 - ...which a context by digest does not have
    # a daemon that knows nothing of digests refuses the entries instead of unpacking empty files
    with pytest.raises(InvalidArgument, match="unsupported type"):
        ctx.unpack_context(io.BytesIO(by_digest), tmp_path / "old-daemon")
    assert (cli_context.DIGEST_TYPE, cli_context.DIGEST_RECORD, cli_context.SIZE_RECORD) == (
        tarstream.DIGEST_TYPE,
        tarstream.DIGEST_RECORD,
        tarstream.SIZE_RECORD,
    )


def _digest(data: bytes) -> str:
    hasher = content_hasher()
    hasher.update(data)
    return f"{ALGORITHM}:{hasher.hexdigest()}"


def test_digest_cache_sees_a_rewrite_that_keeps_size_and_mtime(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(cli_context, "RACY_SECONDS", -1.0)  # cache even files written just now
    root = tmp_path / "ctx"
    root.mkdir()
    path = root / "f"
    path.write_text("one")
    first = os.lstat(path)
    cache = cli_context.DigestCache(str(root))
    assert cache.digest("f", str(path), first) == _digest(b"one")
    cache.save()
    assert cli_context.DigestCache(str(root)).known["f"][-1] == _digest(b"one")
    # the same stat: answered from the cache, the file is not read
    cached = cli_context.DigestCache(str(root))
    assert cached.digest("f", "/nonexistent", first) == _digest(b"one")
    # same size, mtime put back: only ctime tells (and nobody can set it back)
    while os.lstat(path).st_ctime_ns == first.st_ctime_ns:
        time.sleep(0.005)
        path.write_text("two")
    os.utime(path, ns=(first.st_atime_ns, first.st_mtime_ns))
    second = os.lstat(path)
    assert (second.st_size, second.st_mtime_ns) == (first.st_size, first.st_mtime_ns)
    again = cli_context.DigestCache(str(root))
    assert again.digest("f", str(path), second) == _digest(b"two")


def test_digest_cache_skips_files_changed_within_the_racy_window(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    root = tmp_path / "ctx"
    root.mkdir()
    (root / "new").write_text("fresh")
    cache = cli_context.DigestCache(str(root))
    cache.digest("new", str(root / "new"), os.lstat(root / "new"))
    cache.save()
    assert "new" not in cli_context.DigestCache(str(root)).known


def test_fast_build_flags():
    params = parse_build_args(["-t", "a:1", "--tag=b:2", "-tc:3", "-q", "--build-arg", "V=1", "--no-rm", "."])
    assert params is not None
    assert params["tags"] == ["a:1", "b:2", "c:3"] and params["quiet"] and not params["rm"]
    assert params["build_args"] == ["V=1"] and params["path"] == "."
    assert parse_build_args([".", "--target", "final", "-f", "x.Dockerfile"])["target"] == "final"
    for left_to_click in (["--help"], ["-x", "."], ["-t"], [".", "other"], ["-"], ["--quiet=1", "."], []):
        assert parse_build_args(left_to_click) is None


def test_digests_of_another_algorithm_are_never_taken(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(cli_context, "RACY_SECONDS", -1.0)
    root = _context_dir(tmp_path)
    entries = cli_context.context_entries(str(root), "Dockerfile")
    cache = cli_context.DigestCache(str(root))
    for rel, st in entries:
        if rel == "a.txt":
            cache.digest(rel, str(root / rel), st)
    cache.save()
    # a cached digest from another algorithm (the blake3 package removed or added since) is redone
    forged = cli_context.DigestCache(str(root))
    forged.known["a.txt"][-1] = "md5:" + "0" * 32
    forged.fresh = {}
    stat_a = dict(entries)["a.txt"]
    assert forged.digest("a.txt", str(root / "a.txt"), stat_a) == _digest(b"a")
    # and a daemon that hashes otherwise asks for the files rather than guess
    body = cli_context.digest_tar(str(root), entries, "Dockerfile", None)
    record = b"PYENGINE.digest=" + ALGORITHM.encode()
    body = body.replace(record, b"PYENGINE.digest=" + b"z" * len(ALGORITHM))  # same length: valid PAX
    context = _build_context(tmp_path, body, "other")
    assert context.by_digest and context.members["a.txt"].digest is None
    with pytest.raises(ContextNeeded):
        context.checksum(["a.txt"])


def test_copy_sources_are_unpacked_alone_when_the_index_names_them(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    root = _context_dir(tmp_path)
    full = io.BytesIO()
    from pyengine.cli.build_run import write_context

    write_context(str(root), "Dockerfile", None, full)
    context = _build_context(tmp_path, full.getvalue(), "partial")
    unpacked = context.root_for(["src/sub"])
    found = sorted(str(p.relative_to(unpacked)) for p in unpacked.rglob("*"))
    assert found == ["src", "src/sub", "src/sub/b"]
    assert (unpacked / "src" / "sub" / "b").read_bytes() == (root / "src" / "sub" / "b").read_bytes()
    assert context.checksum(["src/sub"]) == ctx.checksum_sources(
        ctx.resolve_sources(unpacked, ["src/sub"]), unpacked
    )
    context.root_for(["a.txt", "src/run.sh"])  # more of it, one COPY at a time
    assert (unpacked / "a.txt").read_text() == "a" and os.stat(
        unpacked / "src" / "run.sh"
    ).st_mode & 0o777 == 0o750
    assert not (unpacked / "Dockerfile").exists()
    # a glob: only the files can tell, so all of it (what .dockerignore keeps)
    assert context.root_for(["*.txt"]) == unpacked
    assert (unpacked / "Dockerfile").exists() and os.readlink(unpacked / "src" / "link") == "run.sh"
    assert not (unpacked / "skip.log").exists()
