"""A container root seen through an idmapped mount (``--userns-remap``): ``docker cp`` and export
keep the container's ids both ways, and writes are stored with them on disk."""

from __future__ import annotations

import io
import os
import tarfile
import threading
from pathlib import Path

import pytest
from pyengine.containers.filesystem import ContainerRoot
from pyengine.errors import InvalidArgument
from pyengine.runtime import idmap

HOST_ROOT = 296608  # away from /etc/subuid's usual 100000 and the runtime tests' 231072
IDMAP = idmap.IdMap.single(HOST_ROOT, HOST_ROOT + 7, 65536)


def test_idmap_translates_host_ids_back():
    mapping = idmap.IdMap(
        (idmap.IdRange(0, 100000, 1000), idmap.IdRange(1000, 500000, 10)),
        (idmap.IdRange(0, 200000, 65536),),
    )
    assert mapping.container_uid(100000) == 0 and mapping.container_uid(100999) == 999
    assert mapping.container_uid(500003) == 1003 and mapping.host_uid(1003) == 500003
    assert mapping.container_gid(200005) == 5
    for host_uid in (0, 99999, 101000, 500010):
        with pytest.raises(ValueError):
            mapping.container_uid(host_uid)


def _fs_ids() -> tuple[str, str]:
    status = Path("/proc/thread-self/status").read_text().splitlines()
    uid = next(line for line in status if line.startswith("Uid:")).split()[4]
    gid = next(line for line in status if line.startswith("Gid:")).split()[4]
    return uid, gid


def test_filesystem_ids_are_per_thread_and_restored(tmp_path):
    """Threads already running keep their ids (a thread started inside the block would inherit
    them: clone copies the credentials)."""
    seen: list[tuple[str, str]] = []
    inside = threading.Event()
    other = threading.Thread(target=lambda: (inside.wait(), seen.append(_fs_ids())))
    other.start()
    with idmap.filesystem_ids(HOST_ROOT, HOST_ROOT + 7):
        assert _fs_ids() == (str(HOST_ROOT), str(HOST_ROOT + 7))
        inside.set()
        other.join()
        os.close(os.open(tmp_path / "made", os.O_CREAT | os.O_WRONLY, 0o644))
        (tmp_path / "root-only").write_text("capabilities kept")  # tmp_path is root's, 0700
    assert seen == [("0", "0")]
    assert _fs_ids() == ("0", "0")
    made = (tmp_path / "made").stat()
    assert (made.st_uid, made.st_gid) == (HOST_ROOT, HOST_ROOT + 7)


@pytest.fixture
def mapped_root(tmp_path):
    """(on-disk directory, a ContainerRoot on its idmapped bind)."""
    disk, view = tmp_path / "disk", tmp_path / "view"
    disk.mkdir()
    view.mkdir()
    (disk / "etc").mkdir()
    (disk / "etc" / "passwd").write_text("root:x:0:0::/root:/bin/sh\n")
    (disk / "home").mkdir()
    os.chown(disk / "home", 1000, 1000)
    (disk / "far").write_text("an id the map has not")
    os.chown(disk / "far", 70000, 70000)
    idmap.mount_idmapped(disk, view, idmap.user_namespace_fd(IDMAP))
    try:
        root = ContainerRoot(str(view), IDMAP)
        try:
            yield disk, root
        finally:
            root.close()
    finally:
        idmap.detach(view)


def _tar(*entries: tuple[str, bytes | None, int, int]) -> io.BytesIO:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data, uid, gid in entries:
            info = tarfile.TarInfo(name)
            info.uid, info.gid = uid, gid
            if data is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            else:
                info.size, info.mode = len(data), 0o4755
                tar.addfile(info, io.BytesIO(data))
    buffer.seek(0)
    return buffer


def _owners(chunks) -> dict[str, tuple[int, int]]:
    with tarfile.open(fileobj=io.BytesIO(b"".join(chunks))) as tar:
        return {member.name.rstrip("/"): (member.uid, member.gid) for member in tar.getmembers()}


def test_archive_gives_container_ids(mapped_root):
    disk, root = mapped_root
    assert (Path(root.rootfs) / "etc" / "passwd").stat().st_uid == HOST_ROOT  # the view is shifted
    owners = _owners(root.archive("/."))
    assert owners["etc"] == owners["etc/passwd"] == (0, 0)
    assert owners["home"] == (1000, 1000)
    assert owners["far"] == (65534, 65534)  # unmapped: the overflow id, as the container sees it


def test_extract_stores_container_ids_on_disk(mapped_root):
    disk, root = mapped_root
    root.extract(
        "/home",
        _tar(
            ("dir", None, 0, 0),
            ("dir/mine", b"x", 1000, 1000),
            ("dir/setuid", b"y", 0, 5),
            ("implied/f", b"z", 3, 3),
        ),
    )
    for path, owner in (
        ("dir", (0, 0)),
        ("dir/mine", (1000, 1000)),
        ("dir/setuid", (0, 5)),
        ("implied", (0, 0)),
    ):
        info = (disk / "home" / path).stat()
        assert (info.st_uid, info.st_gid) == owner, path
    assert (disk / "home" / "dir" / "setuid").stat().st_mode & 0o7777 == 0o4755  # kept after the chown
    assert _owners(root.archive("/home/dir")) == {
        "dir": (0, 0),
        "dir/mine": (1000, 1000),
        "dir/setuid": (0, 5),
    }
    root.extract("/home", _tar(("given", b"x", 1000, 1000)), owner=(33, 33))  # cp -a with a USER
    assert (disk / "home" / "given").stat().st_uid == 33
    assert _fs_ids() == ("0", "0")


def test_extract_refuses_an_owner_the_map_cannot_express(mapped_root):
    disk, root = mapped_root
    with pytest.raises(InvalidArgument, match="70000"):
        root.extract("/home", _tar(("far-away", b"x", 70000, 0)))
    assert not (disk / "home" / "far-away").exists()
    assert _fs_ids() == ("0", "0")
