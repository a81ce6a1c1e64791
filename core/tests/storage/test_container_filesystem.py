"""ContainerRoot (docker cp's file access) on a plain directory: paths stay inside the root."""

from __future__ import annotations

import io
import os
import stat
import tarfile
from pathlib import Path

import pytest
from pyengine.containers.filesystem import ContainerRoot, go_file_mode
from pyengine.errors import InvalidArgument, NotFound


@pytest.fixture
def rootfs(tmp_path: Path) -> Path:
    root = tmp_path / "rootfs"
    (root / "etc").mkdir(parents=True)
    (root / "etc/passwd").write_text("root:x:0:0::/root:/bin/sh\n")
    (root / "data/sub").mkdir(parents=True)
    (root / "data/sub/file").write_text("inside\n")
    os.link(root / "data/sub/file", root / "data/hard")
    os.symlink(str(tmp_path / "host"), root / "escape-abs")  # a host path, as the container names it
    os.symlink("../../../../host", root / "data/escape-rel")
    os.mkfifo(root / "data/fifo")
    host = tmp_path / "host"
    host.mkdir()
    (host / "secret").write_text("host only\n")
    return root


def _names(chunks) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(b"".join(chunks))) as tar:
        return {member.name: member for member in tar.getmembers()}


def test_archive_of_a_directory_keeps_links_fifos_and_names(rootfs: Path) -> None:
    with ContainerRoot(str(rootfs)) as root:
        members = _names(root.archive("/data"))
    assert set(members) == {"data", "data/sub", "data/sub/file", "data/hard", "data/escape-rel", "data/fifo"}
    assert members["data/escape-rel"].issym() and members["data/fifo"].isfifo()
    assert members["data/sub/file"].islnk() or members["data/hard"].islnk()


def test_symlinks_resolve_inside_the_root(rootfs: Path, tmp_path: Path) -> None:
    with ContainerRoot(str(rootfs)) as root:
        for path in ("/escape-abs/secret", "/data/escape-rel/secret", "/../../host/secret"):
            with pytest.raises(NotFound):
                root.stat(path)
            with pytest.raises(NotFound):
                root.archive(path)
        # extracting through the symlinks lands inside the root (where the container sees them)
        tar = io.BytesIO()
        with tarfile.open(fileobj=tar, mode="w") as writer:
            info = tarfile.TarInfo("planted")
            info.size = 1
            writer.addfile(info, io.BytesIO(b"x"))
        (rootfs / str(tmp_path / "host").lstrip("/")).mkdir(parents=True)
        tar.seek(0)
        root.extract("/escape-abs", tar)
    assert sorted(os.listdir(tmp_path / "host")) == ["secret"]
    assert (rootfs / str(tmp_path / "host").lstrip("/") / "planted").read_bytes() == b"x"


def test_stat_reports_go_modes_and_link_targets(rootfs: Path) -> None:
    with ContainerRoot(str(rootfs)) as root:
        directory = root.stat("/data")
        link = root.stat("/data/escape-rel")
        top = root.stat("/")
    assert directory["name"] == "data" and directory["mode"] == (1 << 31) | 0o755
    assert link["mode"] & (1 << 27) and link["linkTarget"] == "/host"
    assert top["name"] == "/" and top["mode"] & (1 << 31)
    assert go_file_mode(stat.S_IFREG | stat.S_ISUID | 0o755) == (1 << 23) | 0o755
    assert go_file_mode(stat.S_IFCHR | 0o600) == (1 << 26) | (1 << 21) | 0o600


def test_extract_refuses_a_non_directory_destination_and_escapes(rootfs: Path) -> None:
    tar = io.BytesIO()
    with tarfile.open(fileobj=tar, mode="w") as writer:
        info = tarfile.TarInfo("../../escaped")
        info.size = 1
        writer.addfile(info, io.BytesIO(b"x"))
    with ContainerRoot(str(rootfs)) as root:
        with pytest.raises(InvalidArgument, match="not a directory"):
            root.extract("/etc/passwd", io.BytesIO(b""))
        tar.seek(0)
        with pytest.raises(InvalidArgument, match=r"\.\."):
            root.extract("/data", tar)
    assert not (rootfs.parent / "escaped").exists()
