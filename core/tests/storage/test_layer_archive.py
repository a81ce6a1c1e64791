"""Layer tars: unpacking, writing and diffing directories (pyengine.storage.archive). Run as root."""

from __future__ import annotations

import gzip
import io
import os
import shutil
import stat
import subprocess
import tarfile
from pathlib import Path

import pytest
from pyengine.drivers.storage import Change
from pyengine.errors import InvalidArgument
from pyengine.storage import layer_unpacker
from pyengine.storage.archive import (
    apply_layer,
    diff_directories,
    naive_diff,
    tar_directory,
    write_layer,
)
from pyengine.testing.trees import SPARSE_SIZE, build_tar, entry, make_sample_tree, snapshot_tree


@pytest.fixture
def sample(tmp_path: Path) -> Path:
    source = tmp_path / "sample"
    source.mkdir()
    make_sample_tree(source)
    return source


def fresh(tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    path.mkdir()
    return path


def unpack_bytes(data: bytes, target: Path, **kwargs) -> int:
    return apply_layer(io.BytesIO(data), target, **kwargs)


# -- round trips ------------------------------------------------------------------------------


def test_a_tree_survives_tar_and_untar_unchanged(sample: Path, tmp_path: Path) -> None:
    data = b"".join(tar_directory(sample))
    target = fresh(tmp_path, "target")
    assert unpack_bytes(data, target) > SPARSE_SIZE
    assert snapshot_tree(target) == snapshot_tree(sample)
    assert os.lstat(target / "var/sparse.img").st_blocks * 512 < SPARSE_SIZE // 4
    assert b"".join(tar_directory(target)) == data  # the same tree gives the same bytes
    assert diff_directories(sample, target) == []


def test_gzip_layers_are_recognised_by_their_magic(sample: Path, tmp_path: Path) -> None:
    target = fresh(tmp_path, "target")
    unpack_bytes(gzip.compress(b"".join(tar_directory(sample))), target)
    assert snapshot_tree(target) == snapshot_tree(sample)


def coarse(
    snapshot: dict[str, tuple], *, mtime_divisor: int = 1, dirs_only: bool = False, xattrs: bool = True
) -> dict[str, tuple]:
    """A snapshot with mtimes cut to what another tar implementation keeps."""
    result = {}
    for path, info in snapshot.items():
        if path.startswith("<"):
            continue
        mode, uid, gid, mtime, *rest = info
        if not dirs_only or mode.startswith("d"):
            mtime //= mtime_divisor
        result[path] = (mode, uid, gid, mtime, *(rest if xattrs else rest[:-1]))
    return result


@pytest.mark.parametrize("tar_format", ["gnu", "posix"])
def test_gnu_tar_archives_unpack(sample: Path, tmp_path: Path, tar_format: str) -> None:
    options = ["--xattrs", "--xattrs-include=*"] if tar_format == "posix" else []
    made = subprocess.run(
        [
            "tar",
            "--create",
            "--sparse",
            f"--format={tar_format}",
            "--numeric-owner",
            *options,
            "-C",
            sample,
            ".",
        ],
        capture_output=True,
        check=True,
    ).stdout
    target = fresh(tmp_path, "target")
    unpack_bytes(made, target)
    if tar_format == "gnu":  # whole-second mtimes and no xattrs in this format
        assert coarse(snapshot_tree(target), mtime_divisor=10**9, xattrs=False) == coarse(
            snapshot_tree(sample), mtime_divisor=10**9, xattrs=False
        )
    else:
        assert snapshot_tree(target) == snapshot_tree(sample)
    assert os.lstat(target / "var/sparse.img").st_blocks * 512 < SPARSE_SIZE // 4


def test_gnu_tar_reads_our_layers(sample: Path, tmp_path: Path) -> None:
    """Regression: GNU tar takes a sparse file's size from the end of the sparse map, so our
    sparse files that end in a hole came out short until the map got an empty last region."""
    target = fresh(tmp_path, "target")
    subprocess.run(
        [
            "tar",
            "--extract",
            "--xattrs",
            "--xattrs-include=*",
            "--same-permissions",
            "--numeric-owner",
            "-C",
            target,
        ],
        input=b"".join(tar_directory(sample)),
        capture_output=True,
        check=True,
    )
    # GNU tar sets directory mtimes to the microsecond only
    assert coarse(snapshot_tree(target), mtime_divisor=1000, dirs_only=True) == coarse(
        snapshot_tree(sample), mtime_divisor=1000, dirs_only=True
    )
    assert os.lstat(target / "var/sparse.img").st_blocks * 512 < SPARSE_SIZE // 4


def test_fixed_mtime_makes_layers_reproducible(tmp_path: Path) -> None:
    first, second = fresh(tmp_path, "first"), fresh(tmp_path, "second")
    for root, stamp in ((first, 1_000_000_000), (second, 1_700_000_000)):
        (root / "dir").mkdir()
        (root / "dir/file").write_text("same content")
        for path in (root / "dir/file", root / "dir"):
            os.utime(path, (stamp, stamp))
    assert b"".join(write_layer(first)) != b"".join(write_layer(second))
    assert b"".join(write_layer(first, fixed_mtime=0)) == b"".join(write_layer(second, fixed_mtime=0))
    members = tarfile.open(fileobj=io.BytesIO(b"".join(write_layer(first, fixed_mtime=42))))
    assert {member.mtime for member in members} == {42}


# -- applying onto existing content -----------------------------------------------------------


def test_entries_replace_what_the_target_has(tmp_path: Path) -> None:
    target = fresh(tmp_path, "target")
    (target / "was-dir").mkdir()
    (target / "was-dir/inner").write_text("old")
    (target / "was-file").write_text("old")
    (target / "shared").write_text("old")
    os.link(target / "shared", target / "other-name")
    (target / "merged").mkdir(mode=0o700)
    (target / "merged/kept").write_text("kept")
    unpack_bytes(
        build_tar(
            entry("was-dir", data=b"now a file"),
            entry("was-file", tarfile.DIRTYPE, mode=0o755),
            entry("shared", data=b"new"),
            entry("merged", tarfile.DIRTYPE, mode=0o755),
            entry("link-to-target-file", tarfile.LNKTYPE, linkname="merged/kept"),
        ),
        target,
    )
    assert (target / "was-dir").read_bytes() == b"now a file"
    assert (target / "was-file").is_dir()
    assert (target / "other-name").read_text() == "old"  # replacing a name never writes through a link
    assert stat.S_IMODE(os.stat(target / "merged").st_mode) == 0o755
    assert (target / "merged/kept").read_text() == "kept"
    assert os.stat(target / "link-to-target-file").st_ino == os.stat(target / "merged/kept").st_ino


def test_whiteouts_only_hide_what_the_parents_have(tmp_path: Path) -> None:
    target = fresh(tmp_path, "target")
    (target / "a").mkdir()
    (target / "a/from-parent").write_text("parent")
    (target / "c/sub").mkdir(parents=True)
    (target / "c/sub/from-parent").write_text("parent")
    (target / "c/gone").write_text("parent")
    (target / "c/implied").mkdir()
    (target / "c/implied/from-parent").write_text("parent")
    unpack_bytes(
        build_tar(
            entry("a/mine", data=b"this layer"),
            entry("a/.wh.mine"),  # OCI: a whiteout never hides its own layer's entries
            entry("a/.wh.from-parent"),
            entry("c/sub", tarfile.DIRTYPE, mode=0o755),
            entry("c/sub/mine", data=b"this layer"),
            # regression: c/implied has no entry of its own, and the opaque marker below used to
            # prune it as parent content, taking this layer's file with it
            entry("c/implied/mine", data=b"this layer, in a directory the tar has no entry for"),
            entry("c/.wh..wh..opq"),
            entry("c/.wh..wh.plnk"),  # AUFS bookkeeping: ignored
        ),
        target,
    )
    assert sorted(os.listdir(target / "a")) == ["mine"]
    assert sorted(os.listdir(target / "c")) == ["implied", "sub"]
    assert sorted(os.listdir(target / "c/sub")) == ["mine"]
    assert sorted(os.listdir(target / "c/implied")) == ["mine"]


def test_overlay_whiteouts_hide_lower_content_in_a_real_overlay_mount(tmp_path: Path) -> None:
    lower, upper, work, merged = (fresh(tmp_path, name) for name in ("lower", "upper", "work", "merged"))
    (lower / "a").mkdir()
    (lower / "a/hidden").write_text("lower")
    (lower / "a/visible").write_text("lower")
    (lower / "d").mkdir()
    (lower / "d/old").write_text("lower")
    unpack_bytes(
        build_tar(
            entry("a/.wh.hidden"),
            entry("d", tarfile.DIRTYPE, mode=0o755),
            entry("d/.wh..wh..opq"),
            entry("d/new", data=b"upper"),
        ),
        upper,
        whiteouts="overlay",
    )
    whiteout = os.lstat(upper / "a/hidden")
    assert stat.S_ISCHR(whiteout.st_mode) and whiteout.st_rdev == os.makedev(0, 0)
    assert os.getxattr(upper / "d", "trusted.overlay.opaque") == b"y"
    options = f"lowerdir={lower},upperdir={upper},workdir={work}"
    subprocess.run(["mount", "-t", "overlay", "overlay", "-o", options, merged], check=True)
    try:
        assert sorted(os.listdir(merged / "a")) == ["visible"]
        assert sorted(os.listdir(merged / "d")) == ["new"]
        # and back: the upper directory read as a layer gives OCI whiteouts again
        diff = b"".join(write_layer(upper, whiteouts="overlay"))
        names = [member.name for member in tarfile.open(fileobj=io.BytesIO(diff))]
        assert names == ["a", "a/.wh.hidden", "d", "d/.wh..wh..opq", "d/new"]
        copy = fresh(tmp_path, "copy")
        unpack_bytes(b"".join(tar_directory(lower)), copy)
        unpack_bytes(diff, copy)
        assert snapshot_tree(copy) == snapshot_tree(merged)
    finally:
        subprocess.run(["umount", merged], check=True)


# -- staying inside the target ----------------------------------------------------------------


def test_symlinked_parents_resolve_inside_the_target(tmp_path: Path) -> None:
    target = fresh(tmp_path, "target")
    (target / "usr/lib").mkdir(parents=True)
    os.symlink("usr/lib", target / "lib")  # merged /usr, as in Debian images
    os.symlink("/usr/lib", target / "abs")
    os.symlink("../../../../usr/lib", target / "up")
    unpack_bytes(
        build_tar(
            entry("lib/via-relative", data=b"1"),
            entry("abs/via-absolute", data=b"2"),
            entry("up/via-dotdot", data=b"3"),
        ),
        target,
    )
    assert sorted(os.listdir(target / "usr/lib")) == ["via-absolute", "via-dotdot", "via-relative"]
    assert os.path.islink(target / "lib")


def test_without_openat2_symlinked_parents_are_refused(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(layer_unpacker, "_openat2_missing", True)
    target = fresh(tmp_path, "target")
    (target / "usr/lib").mkdir(parents=True)
    os.symlink("usr/lib", target / "lib")
    unpack_bytes(build_tar(entry("usr/lib/plain", data=b"ok")), target)
    with pytest.raises(InvalidArgument, match="lib/file"):
        unpack_bytes(build_tar(entry("lib/file", data=b"x")), target)
    assert sorted(os.listdir(target / "usr/lib")) == ["plain"]


@pytest.mark.parametrize(
    "evil, message",
    [
        (entry("../x", data=b""), "contains '..'"),
        (entry("/etc/x", data=b""), "absolute path"),
        (entry("h", tarfile.LNKTYPE, linkname="../../etc/passwd"), "outside the layer"),
        (entry("h", tarfile.LNKTYPE, linkname="nowhere"), "not in the layer"),
        (entry(".wh..."), "whiteout of '..'"),
        (entry("dev/x", tarfile.BLKTYPE, devmajor=1, devminor=1 << 20), "out of range"),
    ],
)
def test_hostile_entries_are_refused_by_name(tmp_path: Path, evil, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        unpack_bytes(build_tar(evil), fresh(tmp_path, "target"))


def test_owner_out_of_range_is_refused(tmp_path: Path) -> None:
    info, data = entry("file", data=b"x")
    info.uid = 1 << 32
    with pytest.raises(InvalidArgument, match="invalid owner"):
        unpack_bytes(build_tar((info, data)), fresh(tmp_path, "target"))


def test_empty_corrupt_and_truncated_streams(tmp_path: Path) -> None:
    assert unpack_bytes(b"", fresh(tmp_path, "empty")) == 0
    with pytest.raises(InvalidArgument):
        unpack_bytes(os.urandom(4096), fresh(tmp_path, "random"))
    truncated = build_tar(entry("big", data=b"x" * 10_000))[:4096]
    with pytest.raises(InvalidArgument):
        unpack_bytes(truncated, fresh(tmp_path, "truncated"))


# -- diffs ------------------------------------------------------------------------------------


def test_diff_directories_sees_metadata_only_changes(sample: Path, tmp_path: Path) -> None:
    upper = tmp_path / "upper"
    unpack_bytes(b"".join(tar_directory(sample)), fresh(tmp_path, "upper"))
    os.chown(upper / "etc/hostname", 1, 1)
    os.setxattr(upper / "usr/bin/wall", "user.new", b"1")
    os.utime(upper / "bin/su", ns=(0, 5))
    assert diff_directories(sample, upper) == [
        Change("C", "/bin"),
        Change("C", "/bin/su"),
        Change("C", "/etc"),
        Change("C", "/etc/hostname"),
        Change("C", "/usr"),
        Change("C", "/usr/bin"),
        Change("C", "/usr/bin/wall"),
    ]


def test_naive_diff_is_a_tar_of_changes_with_whiteouts(sample: Path, tmp_path: Path) -> None:
    upper = fresh(tmp_path, "upper")
    unpack_bytes(b"".join(tar_directory(sample)), upper)
    shutil.rmtree(upper / "usr")
    (upper / "etc/motd").write_text("hi")
    names = [member.name for member in tarfile.open(fileobj=io.BytesIO(b"".join(naive_diff(sample, upper))))]
    assert names == ["etc", "etc/motd", ".wh.usr"]
    assert b"".join(naive_diff(None, sample)) == b"".join(tar_directory(sample))
    # applying the diff onto a copy of the parent gives the upper tree
    copy = fresh(tmp_path, "copy")
    unpack_bytes(b"".join(tar_directory(sample)), copy)
    unpack_bytes(b"".join(naive_diff(sample, upper)), copy)
    assert snapshot_tree(copy) == snapshot_tree(upper)


def test_implied_parent_directories_are_0755_whatever_the_umask(tmp_path: Path) -> None:
    target = fresh(tmp_path, "target")
    previous = os.umask(0o077)
    try:
        unpack_bytes(build_tar(entry("usr/local/bin/tool", data=b"x", mode=0o755)), target)
    finally:
        os.umask(previous)
    for directory in ("usr", "usr/local", "usr/local/bin"):
        st = os.stat(target / directory)
        assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o755, 0, 0)
