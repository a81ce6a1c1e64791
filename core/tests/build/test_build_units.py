"""Unit tests of the build's parser adapter, substitution, .dockerignore, source lookup and cache keys."""

from __future__ import annotations

import io
import os
import tarfile

import pytest
from pyengine.build import context as ctx
from pyengine.build import dockerfile as df
from pyengine.build.cache import BuildCache, step_key
from pyengine.build.layers import CopyEntry, write_copy_tar
from pyengine.errors import InvalidArgument, NotFound
from pyengine.state.db import Database


def test_stages_meta_args_and_targets():
    parsed = df.parse(
        "# syntax=docker/dockerfile:1\nARG BASE=busybox\nFROM --platform=linux/amd64 ${BASE} AS build\n"
        "RUN echo a\nFROM scratch AS final\nCOPY --from=build /a /a\n"
    )
    assert [a.args for a in parsed.meta_args] == [["BASE=busybox"]]
    assert [(s.base, s.name, s.platform) for s in parsed.stages] == [
        ("${BASE}", "build", "linux/amd64"),
        ("scratch", "final", None),
    ]
    assert parsed.stages[1].instructions[0].flags == {"from": "build"}
    assert len(parsed.select("build")) == 1
    with pytest.raises(InvalidArgument, match="failed to reach build target nope"):
        parsed.select("nope")


def test_errors_name_the_line_and_instruction():
    with pytest.raises(InvalidArgument, match="line 2: unknown instruction: FROOM"):
        df.parse("FROM busybox\nFROOM x\n")
    with pytest.raises(InvalidArgument, match="line 2: COPY: Unknown flag: bogus"):
        df.parse("FROM busybox\nCOPY --bogus=1 a b\n")
    with pytest.raises(InvalidArgument, match="line 1: RUN instruction before the first FROM"):
        df.parse("RUN true\n")
    with pytest.raises(InvalidArgument, match="no FROM"):
        df.parse("# just a comment\n")


def test_continuations_comments_heredocs_and_escape_directive():
    parsed = df.parse("# escape=`\nFROM busybox\n# a comment\nRUN echo a `\n  b\nRUN <<EOT\necho hi\nEOT\n")
    run1, run2 = parsed.stages[0].instructions
    assert parsed.escape == "`"
    assert run1.rest == "echo a   b"
    assert [(h.name, h.content) for h in run2.heredocs] == [("EOT", "echo hi\n")]


def test_substitution_follows_docker_rules():
    env = {"A": "x", "EMPTY": ""}
    assert df.expand("${A:-d}/${B:-d}/${A:+set}/${B:+set}", env) == "x/d/set/"
    assert df.expand("${EMPTY:-d}${EMPTY-e}", env) == "d"
    assert df.expand(r"\$A '$A' \"$A\"", env) == '$A $A "x"'
    assert df.expand("$B", env) == ""
    assert df.expand_words('$A "b c" d', env) == ["x", "b c", "d"]


def test_env_and_label_pairs_are_substituted():
    ins = df.parse('FROM x\nENV A=1 B="two words" C=${A}\n').stages[0].instructions[0]
    assert df.key_values(ins, {"A": "9"}, "\\") == [("A", "1"), ("B", "two words"), ("C", "9")]
    old = df.parse("FROM x\nENV OLD style value\n").stages[0].instructions[0]
    assert df.key_values(old, {}, "\\") == [("OLD", "style value")]


def test_onbuild_trigger_is_parsed_on_its_own():
    ins = df.parse("FROM x\nONBUILD RUN echo hi\n").stages[0].instructions[0]
    assert ins.rest == "RUN echo hi"
    trigger = df.parse_trigger(ins.rest, 2)
    assert (trigger.name, trigger.rest) == ("RUN", "echo hi")
    with pytest.raises(InvalidArgument, match="ONBUILD"):
        df.parse_trigger("ONBUILD RUN x", 2)


def test_dockerignore_with_exceptions(tmp_path):
    for name in ("a.txt", "b.log", "keep.log", "dir/x.log", "dir/sub/y.txt", "Dockerfile"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(name)
    (tmp_path / ".dockerignore").write_text("*.log\n!keep.log\ndir\n!dir/sub/y.txt\nDockerfile\n")
    matcher = ctx.read_dockerignore(tmp_path)
    kept = list(ctx.walk_included(tmp_path, matcher, ctx.ALWAYS_SENT))
    assert "b.log" not in kept and "dir/x.log" not in kept
    assert {"a.txt", "keep.log", "dir/sub/y.txt", "Dockerfile", ".dockerignore"} <= set(kept)


def test_sources_cannot_leave_the_context(tmp_path):
    root = tmp_path / "ctx"
    root.mkdir()
    (root / "f.txt").write_text("x")
    (tmp_path / "outside").write_text("secret")
    os.symlink("../outside", root / "link")
    assert ctx.resolve_sources(root, ["f.txt"]) == [root / "f.txt"]
    assert ctx.resolve_sources(root, ["*.txt"]) == [root / "f.txt"]
    for bad in ("../outside", "/etc/passwd", "link"):
        with pytest.raises(InvalidArgument, match="outside the build context"):
            ctx.resolve_sources(root, [bad])
    with pytest.raises(NotFound, match="missing.txt"):
        ctx.resolve_sources(root, ["missing.txt"])


def test_source_checksum_covers_content_and_mode_not_mtime(tmp_path):
    path = tmp_path / "f"
    path.write_text("one")
    first = ctx.checksum_sources([path])
    os.utime(path, (1, 1))
    assert ctx.checksum_sources([path]) == first
    path.chmod(0o700)
    second = ctx.checksum_sources([path])
    assert second != first
    path.write_text("two")
    assert ctx.checksum_sources([path]) != second


def test_step_keys_and_cache_index(tmp_path):
    key = step_key("RUN echo", {"A": "1"})
    assert key == step_key("RUN echo", {"A": "1"})
    assert key != step_key("RUN echo", {"A": "2"})
    assert key != step_key("RUN echo ", {"A": "1"})
    assert step_key("COPY a b", {}, "sha256:1") != step_key("COPY a b", {}, "sha256:2")
    db = Database(tmp_path / "db.sqlite")
    try:
        cache = BuildCache(db)
        assert cache.lookup("", key) is None
        cache.record("", key, "sha256:img1")
        cache.record("sha256:img1", key, "sha256:img2")
        assert cache.lookup("", key) == "sha256:img1"
        assert cache.ancestry("sha256:img2") == {"sha256:img1", "sha256:img2"}
    finally:
        db.close()


def test_copy_tar_is_sorted_and_reproducible(tmp_path):
    src = tmp_path / "file"
    src.write_text("data")
    entries = [
        CopyEntry("app/file", str(src), 0o640, 1000, 1000),
        CopyEntry("app", None, 0o755, 1000, 1000),
        CopyEntry("app/note", None, None, 0, 0, data=b"hi"),
    ]
    out = io.BytesIO()
    write_copy_tar(entries, 1700000000, out)
    first = out.getvalue()
    os.utime(src, (5, 5))
    again = io.BytesIO()
    write_copy_tar(list(reversed(entries)), 1700000000, again)
    assert again.getvalue() == first
    with tarfile.open(fileobj=io.BytesIO(first)) as tar:
        members = tar.getmembers()
    assert [m.name for m in members] == ["app", "app/file", "app/note"]
    assert {m.mtime for m in members} == {1700000000}
    assert (members[1].mode, members[1].uid) == (0o640, 1000)


def _context_tar(tmp_path, files: dict[str, str]):
    from pyengine.cli.build import write_context

    source = tmp_path / "src-ctx"
    for name, content in files.items():
        path = source / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
    (source / "src" / "run.sh").chmod(0o750)
    os.symlink("run.sh", source / "src" / "link")
    tar_path = tmp_path / "context.tar"
    with open(tar_path, "wb") as out:
        write_context(str(source), "Dockerfile", None, out)
    return tar_path


def test_tar_context_digests_equal_the_unpacked_files(tmp_path):
    from pyengine.build.tarcontext import BuildContext

    files = {
        "Dockerfile": "FROM x\n",
        "a.txt": "a",
        "src/run.sh": "echo",
        "src/sub/b": "b",
        "skip.log": "s",
        ".dockerignore": "*.log\n",
    }
    context = BuildContext(_context_tar(tmp_path, files), tmp_path / "unpacked", "Dockerfile")
    assert context.read_dockerfile() == "FROM x\n"
    patterns = [["a.txt"], ["src"], ["src/run.sh"], ["."], ["a.txt", "src/sub"]]
    from_index = [context.checksum(p) for p in patterns]
    assert all(from_index) and not (tmp_path / "unpacked").exists()  # answered without unpacking
    assert context.checksum(["src/link"]) is None and context.checksum(["*.txt"]) is None
    root = context.root
    assert not (root / "skip.log").exists()
    from_files = [ctx.checksum_sources(ctx.resolve_sources(root, p), root) for p in patterns]
    assert from_index == from_files
    assert len(set(from_files)) == len(from_files)


def test_cli_full_context_is_a_complete_tar(tmp_path):
    import socket

    from pyengine.cli.build_context import FullContext, context_entries

    (tmp_path / "Dockerfile").write_text("FROM x\n")
    (tmp_path / "empty").write_bytes(b"")
    (tmp_path / "block").write_bytes(b"x" * 512)
    (tmp_path / "odd").write_bytes(b"y" * 1001)
    (tmp_path / "dir").mkdir()
    os.symlink("block", tmp_path / "dir" / "link")
    long_name = "n" * 120
    (tmp_path / long_name).write_text("long")
    context = FullContext(str(tmp_path), context_entries(str(tmp_path), "Dockerfile"), "Dockerfile", None)
    sender, receiver = socket.socketpair()
    with sender, receiver:
        context.send_to(sender)
        sender.sendall(b"0\r\n\r\n")
        sender.shutdown(socket.SHUT_WR)
        raw = b""
        while chunk := receiver.recv(1 << 16):
            raw += chunk
    data = b""
    while True:  # undo the HTTP chunked framing
        size_line, raw = raw.split(b"\r\n", 1)
        size = int(size_line, 16)
        if not size:
            break
        data, raw = data + raw[:size], raw[size + 2 :]
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        members = {m.name: m for m in tar.getmembers()}
        assert tar.extractfile("block").read() == b"x" * 512
        assert tar.extractfile("odd").read() == b"y" * 1001
        assert tar.extractfile(long_name).read() == b"long"
    assert set(members) == {"Dockerfile", "empty", "block", "odd", "dir", "dir/link", long_name}
    assert members["dir/link"].linkname == "block" and members["empty"].size == 0
    assert members["dir"].isdir() and members["odd"].mode == (tmp_path / "odd").stat().st_mode & 0o7777
