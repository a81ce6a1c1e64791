"""Conformance cases for the optional IdMappedMount storage capability (``--userns-remap``).

Mixed into :class:`pyengine.testing.storage_suite.StorageDriverSuite`: every case is skipped for a
driver that does not declare :class:`~pyengine.drivers.storage.IdMappedMount`. What a declaring
driver must do: show the layers' owners shifted by the map, store what the mapped root writes with
the ids it has inside (uid 0), share the mount's reference count, and leave no mount behind.
"""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest

from pyengine.drivers.storage import IdMappedMount, StorageDriver
from pyengine.errors import Conflict
from pyengine.runtime.idmap import IdMap
from pyengine.storage.naive_diff import layer_changes, layer_diff
from pyengine.testing.trees import build_tar, entry

#: a map no real user has (the tests never create a user for it)
SUITE_IDMAP = IdMap.single(296608, 296608, 65536)
OTHER_IDMAP = IdMap.single(362144, 362144, 65536)


def _owned(name: str, uid: int, gid: int, data: bytes = b"", mode: int = 0o644):
    info, payload = entry(name, data=data, mode=mode)
    info.uid, info.gid = uid, gid
    return info, payload


def _owned_dir(name: str, uid: int = 0, gid: int = 0, mode: int = 0o755):
    info, payload = entry(name, tarfile.DIRTYPE, mode=mode)
    info.uid, info.gid = uid, gid
    return info, payload


def write_as(uid: int, gid: int, directory: Path, actions: list[tuple[str, str]]) -> None:
    """In a child running as ``uid:gid`` (no capabilities), do ``actions`` below ``directory``:
    ("create", name), ("append", name), ("mkdir", name). The directory is opened first by us, so
    its parents need not be reachable for that uid."""
    dir_fd = os.open(directory, os.O_PATH | os.O_DIRECTORY)
    try:
        child = os.fork()
        if child == 0:
            code = 1
            try:
                os.setgroups([])
                os.setgid(gid)
                os.setuid(uid)
                for action, name in actions:
                    if action == "mkdir":
                        os.mkdir(name, 0o755, dir_fd=dir_fd)
                    else:
                        flags = os.O_WRONLY | (os.O_CREAT | os.O_EXCL if action == "create" else os.O_APPEND)
                        fd = os.open(name, flags, 0o644, dir_fd=dir_fd)
                        os.write(fd, b"written inside")
                        os.close(fd)
                code = 0
            finally:
                os._exit(code)
        _, status = os.waitpid(child, 0)
    finally:
        os.close(dir_fd)
    assert os.waitstatus_to_exitcode(status) == 0, f"writing as {uid}:{gid} failed"


class IdMappedMountCases:
    """The IdMappedMount cases of the conformance suite (skipped for drivers without it)."""

    @pytest.fixture
    def mapping_driver(self, driver: StorageDriver) -> StorageDriver:
        if not isinstance(driver, IdMappedMount):
            pytest.skip(f"{type(driver).__name__} does not declare IdMappedMount")
        return driver

    def _image_with_container(self, driver: StorageDriver) -> None:
        tar = build_tar(
            _owned_dir("etc"),
            _owned("etc/by-root", 0, 0, b"root's"),
            _owned("etc/by-user", 1000, 1001, b"user's"),
            _owned_dir("home", 1000, 1001, 0o700),
        )
        driver.create("image", None)
        driver.apply_diff("image", io.BytesIO(tar))
        driver.create("container", "image", writable=True)

    def test_idmapped_mount_shows_owners_shifted(self, mapping_driver: StorageDriver) -> None:
        self._image_with_container(mapping_driver)
        path = mapping_driver.mount_idmapped("container", SUITE_IDMAP)  # type: ignore[attr-defined]
        try:
            root = SUITE_IDMAP.root_uid
            assert (path / "etc" / "by-root").stat().st_uid == root
            assert (path / "etc" / "by-root").stat().st_gid == root
            assert (path / "etc" / "by-user").stat().st_uid == root + 1000
            assert (path / "etc" / "by-user").stat().st_gid == root + 1001
            assert (path / "etc" / "by-root").read_bytes() == b"root's"
        finally:
            mapping_driver.unmount("container")
        plain = mapping_driver.mount("container")
        try:
            assert (plain / "etc" / "by-root").stat().st_uid == 0  # nothing was chowned
        finally:
            mapping_driver.unmount("container")

    def test_writes_of_the_mapped_root_are_stored_as_uid_0(self, mapping_driver: StorageDriver) -> None:
        self._image_with_container(mapping_driver)
        path = mapping_driver.mount_idmapped("container", SUITE_IDMAP)  # type: ignore[attr-defined]
        try:
            write_as(
                SUITE_IDMAP.root_uid,
                SUITE_IDMAP.root_gid,
                path,
                [("create", "new-file"), ("mkdir", "new-dir"), ("append", "etc/by-root")],
            )
            write_as(
                SUITE_IDMAP.host_uid(1000), SUITE_IDMAP.host_gid(1001), path / "home", [("create", "mine")]
            )
        finally:
            mapping_driver.unmount("container")
        changes = {(c.kind, c.path) for c in layer_changes(mapping_driver, "container")}
        assert {("A", "/new-file"), ("A", "/new-dir"), ("C", "/etc/by-root"), ("A", "/home/mine")} <= changes
        members = {}
        with tarfile.open(fileobj=io.BytesIO(b"".join(layer_diff(mapping_driver, "container")))) as tar:
            for member in tar.getmembers():
                members[member.name.rstrip("/")] = member
        for name in ("new-file", "new-dir", "etc/by-root"):
            assert (members[name].uid, members[name].gid) == (0, 0), name
        assert (members["home/mine"].uid, members["home/mine"].gid) == (1000, 1001)
        plain = mapping_driver.mount("container")
        try:
            assert (plain / "etc" / "by-root").read_bytes() == b"root'swritten inside"
        finally:
            mapping_driver.unmount("container")

    def test_idmapped_mounts_are_reference_counted(
        self, mapping_driver: StorageDriver, driver_root: Path
    ) -> None:
        from pyengine.testing.storage_suite import mounts_under

        self._image_with_container(mapping_driver)
        before = set(mounts_under(driver_root))
        first = mapping_driver.mount_idmapped("container", SUITE_IDMAP)  # type: ignore[attr-defined]
        second = mapping_driver.mount_idmapped("container", SUITE_IDMAP)  # type: ignore[attr-defined]
        assert first == second
        mapping_driver.mount("container")  # a plain mount meanwhile shares the reference count
        with pytest.raises(Conflict):
            mapping_driver.mount_idmapped("container", OTHER_IDMAP)  # type: ignore[attr-defined]
        with pytest.raises(Conflict):
            mapping_driver.remove("container")
        for _ in range(2):
            mapping_driver.unmount("container")
        assert (first / "etc" / "by-root").stat().st_uid == SUITE_IDMAP.root_uid  # one reference left
        mapping_driver.unmount("container")
        assert set(mounts_under(driver_root)) == before
        mapping_driver.remove("container")
        mapping_driver.remove("image")
        assert mounts_under(driver_root) == []

    def test_idmapped_mount_survives_a_restart_and_goes_with_its_last_unmount(
        self, mapping_driver: StorageDriver, driver_root: Path
    ) -> None:
        from pyengine.testing.storage_suite import mounts_under

        self._image_with_container(mapping_driver)
        path = mapping_driver.mount_idmapped("container", SUITE_IDMAP)  # type: ignore[attr-defined]
        mapping_driver.cleanup()  # the daemon stops; the remapped container keeps running
        again = self.make_driver(driver_root)  # type: ignore[attr-defined]
        assert (path / "etc" / "by-root").stat().st_uid == SUITE_IDMAP.root_uid
        again.unmount("container")  # the container ended after the restart
        again.remove("container")
        again.remove("image")
        again.cleanup()
        assert mounts_under(driver_root) == []

    def test_plain_mount_in_use_refuses_an_idmapped_one(self, mapping_driver: StorageDriver) -> None:
        self._image_with_container(mapping_driver)
        mapping_driver.mount("container")
        try:
            with pytest.raises(Conflict):
                mapping_driver.mount_idmapped("container", SUITE_IDMAP)  # type: ignore[attr-defined]
        finally:
            mapping_driver.unmount("container")
