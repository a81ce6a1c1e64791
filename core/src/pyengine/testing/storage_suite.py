"""The conformance suite every storage driver runs.

A driver package's whole test is about ten lines::

    from pyengine.testing.storage_suite import StorageDriverSuite
    from my_driver.plugin import factory

    class TestMyDriver(StorageDriverSuite):
        def make_driver(self, root):
            return factory(root, {})

Each test gets a fresh driver on a fresh directory (real files, real kernel; run as root). Diffs
and changes are tested through the core's adapter (:mod:`pyengine.storage.naive_diff`), as the
engine calls them; a driver declaring the optional NativeDiff capability is also checked to give
the same results as the generic fallback on the same layers. The class attributes below are
quirk flags a driver may turn off, with a reason in its test file.
A driver that needs a particular file system (btrfs, XFS with quotas) overrides the
``driver_root`` fixture to return an empty directory on one, and cleans it up after.
"""

from __future__ import annotations

import ctypes
import io
import os
import stat
import tarfile
import threading
from pathlib import Path

import pytest

from pyengine.drivers.storage import Change, NativeDiff, StorageDriver
from pyengine.errors import AlreadyExists, Conflict, InvalidArgument, NotFound
from pyengine.storage.archive import apply_layer, tar_directory
from pyengine.storage.naive_diff import generic_changes, generic_diff, layer_changes, layer_diff
from pyengine.testing.storage_idmap_suite import IdMappedMountCases
from pyengine.testing.trees import SPARSE_SIZE, build_tar, entry, make_sample_tree, snapshot_tree

_MNT_DETACH = 2


def mounts_under(path: Path) -> list[str]:
    """Mount points at or below ``path``, from /proc/self/mountinfo."""
    prefix = os.path.realpath(path)
    found = []
    with open("/proc/self/mountinfo") as mountinfo:
        for line in mountinfo:
            point = line.split()[4].replace("\\040", " ")
            if point == prefix or point.startswith(prefix + "/"):
                found.append(point)
    return found


def _detach(point: str) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.umount2(os.fsencode(point), _MNT_DETACH)


def _tree(driver: StorageDriver, layer_id: str) -> dict[str, tuple]:
    path = driver.mount(layer_id)
    try:
        return snapshot_tree(path, hard_links=False)
    finally:
        driver.unmount(layer_id)


class StorageDriverSuite(IdMappedMountCases):
    #: the driver keeps device nodes (off for drivers on file systems mounted nodev-only)
    supports_device_nodes = True
    #: holes of sparse files stay holes after apply_diff
    keeps_sparse_files = True
    #: hard links within one layer tar stay hard links
    keeps_hard_links = True
    #: diff() of a layer made by applying another layer's diff gives the same bytes
    diff_is_reproducible = True

    def make_driver(self, root: Path) -> StorageDriver:
        """Return the driver under test, owning the empty directory ``root``."""
        raise NotImplementedError("a driver's test class overrides make_driver(root)")

    # -- fixtures -----------------------------------------------------------------------------

    @pytest.fixture
    def driver_root(self, tmp_path: Path) -> Path:
        root = tmp_path / "driver-root"
        root.mkdir()
        return root

    @pytest.fixture
    def driver(self, driver_root: Path):
        driver = self.make_driver(driver_root)
        yield driver
        driver.cleanup()
        leftover = mounts_under(driver_root)
        for point in reversed(leftover):
            _detach(point)
        assert not leftover, f"driver.cleanup() left mounts behind: {leftover}"

    @pytest.fixture
    def sample_tar(self, tmp_path: Path) -> bytes:
        source = tmp_path / "sample"
        source.mkdir()
        make_sample_tree(source)
        if not self.supports_device_nodes:
            for device in ("dev/null", "dev/loop0", "dev/wide"):
                (source / device).unlink()
        return b"".join(tar_directory(source))

    @staticmethod
    def layer(driver: StorageDriver, layer_id: str, parent_id: str | None, tar: bytes) -> None:
        driver.create(layer_id, parent_id)
        driver.apply_diff(layer_id, io.BytesIO(tar))

    # -- creating, finding and removing layers ------------------------------------------------

    def test_create_exists_remove(self, driver: StorageDriver) -> None:
        assert not driver.exists("base")
        driver.create("base", None)
        assert driver.exists("base")
        driver.remove("base")
        assert not driver.exists("base")

    def test_create_twice_is_already_exists(self, driver: StorageDriver) -> None:
        driver.create("base", None)
        with pytest.raises(AlreadyExists):
            driver.create("base", None)

    def test_unknown_layers_are_not_found(self, driver: StorageDriver) -> None:
        with pytest.raises(NotFound):
            driver.create("child", "missing-parent")
        assert not driver.exists("child")
        for call in (driver.remove, driver.mount, driver.parent):
            with pytest.raises(NotFound):
                call("missing")
        with pytest.raises(NotFound):
            driver.apply_diff("missing", io.BytesIO(build_tar()))
        with pytest.raises(NotFound):
            layer_changes(driver, "missing")
        with pytest.raises(NotFound):
            b"".join(layer_diff(driver, "missing"))

    def test_parent_is_the_layer_created_on(self, driver: StorageDriver) -> None:
        driver.create("base", None)
        driver.create("child", "base")
        driver.create("container", "child", writable=True)
        assert driver.parent("base") is None
        assert driver.parent("child") == "base"
        assert driver.parent("container") == "child"

    def test_parent_with_children_cannot_be_removed(self, driver: StorageDriver) -> None:
        driver.create("base", None)
        driver.create("child", "base")
        with pytest.raises(Conflict):
            driver.remove("base")
        driver.remove("child")
        driver.remove("base")
        assert not driver.exists("base")

    def test_mounted_layer_cannot_be_removed(self, driver: StorageDriver) -> None:
        driver.create("container", None, writable=True)
        driver.mount("container")
        with pytest.raises(Conflict):
            driver.remove("container")
        driver.unmount("container")
        driver.remove("container")

    def test_mounts_are_reference_counted(self, driver: StorageDriver) -> None:
        driver.create("container", None, writable=True)
        first = driver.mount("container")
        second = driver.mount("container")
        assert first == second
        (first / "marker").write_text("still here")
        driver.unmount("container")
        assert (second / "marker").read_text() == "still here"  # one reference remains
        with pytest.raises(Conflict):
            driver.remove("container")
        driver.unmount("container")
        driver.remove("container")

    def test_parent_chain_stacks_content(self, driver: StorageDriver) -> None:
        self.layer(driver, "l1", None, build_tar(entry("one", data=b"1"), entry("shared", data=b"from l1")))
        self.layer(driver, "l2", "l1", build_tar(entry("two", data=b"2"), entry("shared", data=b"from l2")))
        self.layer(driver, "l3", "l2", build_tar(entry("three", data=b"3")))
        top = driver.mount("l3")
        assert sorted(os.listdir(top)) == ["one", "shared", "three", "two"]
        assert (top / "shared").read_bytes() == b"from l2"
        driver.unmount("l3")
        middle = driver.mount("l2")
        assert sorted(os.listdir(middle)) == ["one", "shared", "two"]
        driver.unmount("l2")

    def test_writes_to_a_container_layer_do_not_reach_its_image(self, driver: StorageDriver) -> None:
        self.layer(
            driver,
            "image",
            None,
            build_tar(entry("etc", tarfile.DIRTYPE, mode=0o755), entry("etc/config", data=b"original")),
        )
        driver.create("container", "image", writable=True)
        rootfs = driver.mount("container")
        (rootfs / "etc/config").write_bytes(b"changed by the container")
        (rootfs / "new-file").write_text("new")
        driver.unmount("container")
        image = driver.mount("image")
        assert (image / "etc/config").read_bytes() == b"original"
        assert not (image / "new-file").exists()
        driver.unmount("image")

    def test_layers_survive_a_new_driver_instance(self, driver: StorageDriver, driver_root: Path) -> None:
        self.layer(driver, "base", None, build_tar(entry("kept", data=b"on disk")))
        driver.create("container", "base", writable=True)
        driver.cleanup()
        again = self.make_driver(driver_root)
        try:
            assert again.exists("base") and again.exists("container")
            assert (again.mount("container") / "kept").read_bytes() == b"on disk"
            again.unmount("container")
            with pytest.raises(Conflict):
                again.remove("base")
        finally:
            again.cleanup()

    # -- applying layer tars ------------------------------------------------------------------

    def test_apply_diff_keeps_every_kind_of_entry(
        self, driver: StorageDriver, sample_tar: bytes, tmp_path: Path
    ) -> None:
        driver.create("base", None)
        assert driver.apply_diff("base", io.BytesIO(sample_tar)) > 0
        reference = tmp_path / "reference"
        reference.mkdir()
        apply_layer(io.BytesIO(sample_tar), reference)
        expected = snapshot_tree(reference, hard_links=self.keeps_hard_links)
        rootfs = driver.mount("base")
        try:
            assert snapshot_tree(rootfs, hard_links=self.keeps_hard_links) == expected
            # spot checks of the reference itself, so a bug in both sides cannot hide
            assert stat.S_IMODE(os.lstat(rootfs / "bin/su").st_mode) == 0o4755
            assert stat.S_IMODE(os.lstat(rootfs / "tmp").st_mode) == 0o1777
            assert os.lstat(rootfs / "home/user").st_uid == 1000
            assert os.readlink(rootfs / "etc/mtab") == "/proc/mounts"
            assert os.getxattr(rootfs / "etc/passwd", "user.binary") == b"\xff\x00\x01"
            assert stat.S_ISFIFO(os.lstat(rootfs / "run/fifo").st_mode)
            assert os.lstat(rootfs / "etc/passwd").st_mtime_ns % 1_000_000_000 != 0
            if self.supports_device_nodes:
                assert os.lstat(rootfs / "dev/wide").st_rdev == os.makedev(300, 70000)
            if self.keeps_hard_links:
                assert os.lstat(rootfs / "bin/ls").st_ino == os.lstat(rootfs / "bin/busybox").st_ino
            sparse = os.lstat(rootfs / "var/sparse.img")
            assert sparse.st_size == SPARSE_SIZE
            if self.keeps_sparse_files:
                assert sparse.st_blocks * 512 < SPARSE_SIZE // 4
        finally:
            driver.unmount("base")

    def test_whiteouts_and_opaque_directories_hide_parent_content(self, driver: StorageDriver) -> None:
        self.layer(
            driver,
            "base",
            None,
            build_tar(
                entry("a/file1", data=b"1"),
                entry("a/file2", data=b"2"),
                entry("b/dir/x", data=b"x"),
                entry("c/old1", data=b"o"),
                entry("c/sub/old2", data=b"o"),
            ),
        )
        self.layer(
            driver,
            "child",
            "base",
            build_tar(
                entry("a/.wh.file1"),
                entry(".wh.b"),
                entry("c", tarfile.DIRTYPE, mode=0o755),
                entry("c/early", data=b"made before the opaque marker"),  # the marker must not hide it
                entry("c/.wh..wh..opq"),
                entry("c/late", data=b"made after it"),
                entry("d/.wh.never-existed"),
            ),
        )
        self.layer(driver, "grandchild", "child", build_tar(entry("b/again", data=b"back")))
        child = driver.mount("child")
        try:
            assert sorted(os.listdir(child / "a")) == ["file2"]
            assert not (child / "b").exists()
            assert sorted(os.listdir(child / "c")) == ["early", "late"]
            assert not any(
                name.startswith(".wh.") for _, dirs, files in os.walk(child) for name in dirs + files
            )
        finally:
            driver.unmount("child")
        grandchild = driver.mount("grandchild")
        assert sorted(os.listdir(grandchild / "b")) == ["again"]
        driver.unmount("grandchild")
        base = driver.mount("base")
        assert sorted(os.listdir(base / "a")) == ["file1", "file2"] and (base / "b/dir/x").exists()
        assert sorted(os.listdir(base / "c")) == ["old1", "sub"]
        driver.unmount("base")

    # -- diffs of container layers ------------------------------------------------------------

    def _change_container(self, rootfs: Path) -> None:
        (rootfs / "etc/new.conf").write_text("added")
        with open(rootfs / "etc/passwd", "a") as passwd:
            passwd.write("user:x:1000:1000::/home/user:/bin/sh\n")
        os.chmod(rootfs / "bin/su", 0o755)
        os.unlink(rootfs / "run/fifo")
        for path in sorted((rootfs / "home/user").rglob("*"), reverse=True):
            path.unlink()
        (rootfs / "home/user").rmdir()
        (rootfs / "opt/app").mkdir(parents=True)
        (rootfs / "opt/app/run.sh").write_text("#!/bin/sh\n")
        os.unlink(rootfs / "etc/hostname")
        (rootfs / "etc/hostname").mkdir()
        (rootfs / "etc/hostname/x").write_text("a directory now")
        os.unlink(rootfs / "bin/sh")
        os.symlink("dash", rootfs / "bin/sh")

    expected_changes = [
        Change("C", "/bin"),
        Change("C", "/bin/sh"),
        Change("C", "/bin/su"),
        Change("C", "/etc"),
        Change("C", "/etc/hostname"),
        Change("A", "/etc/hostname/x"),
        Change("A", "/etc/new.conf"),
        Change("C", "/etc/passwd"),
        Change("C", "/home"),
        Change("D", "/home/user"),
        Change("A", "/opt"),
        Change("A", "/opt/app"),
        Change("A", "/opt/app/run.sh"),
        Change("C", "/run"),
        Change("D", "/run/fifo"),
    ]

    def test_changes_and_diff_of_a_container_layer(self, driver: StorageDriver, sample_tar: bytes) -> None:
        self.layer(driver, "image", None, sample_tar)
        driver.create("container", "image", writable=True)
        assert layer_changes(driver, "container") == []
        self._change_container(driver.mount("container"))
        try:
            assert layer_changes(driver, "container") == self.expected_changes
            diff = b"".join(layer_diff(driver, "container"))
            names = [member.name for member in tarfile.open(fileobj=io.BytesIO(diff), mode="r|")]
            assert "home/.wh.user" in names and "run/.wh.fifo" in names
            assert not any(name.startswith("home/user/") for name in names)
            # the diff applied on the image reproduces the container's file system
            driver.create("committed", "image")
            driver.apply_diff("committed", io.BytesIO(diff))
            assert _tree(driver, "committed") == _tree(driver, "container")
            assert layer_changes(driver, "committed") == self.expected_changes
            if self.diff_is_reproducible:
                assert b"".join(layer_diff(driver, "committed")) == diff
        finally:
            driver.unmount("container")

    def test_diff_of_an_unmounted_container_layer_releases_its_mounts(
        self, driver: StorageDriver, driver_root: Path, sample_tar: bytes
    ) -> None:
        self.layer(driver, "image", None, sample_tar)
        driver.create("container", "image", writable=True)
        self._change_container(driver.mount("container"))
        driver.unmount("container")
        assert layer_changes(driver, "container") == self.expected_changes
        assert b"".join(layer_diff(driver, "container"))
        # whatever the adapter mounted was released: both layers can go, no mount stays
        driver.remove("container")
        driver.remove("image")
        assert mounts_under(driver_root) == []

    def test_diff_of_a_base_layer_is_its_whole_tree(self, driver: StorageDriver) -> None:
        self.layer(driver, "base", None, build_tar(entry("etc/os-release", data=b"ID=test\n")))
        diff = b"".join(layer_diff(driver, "base"))
        names = [member.name for member in tarfile.open(fileobj=io.BytesIO(diff))]
        assert names == ["etc", "etc/os-release"]  # tarfile drops the trailing slash
        assert layer_changes(driver, "base") == [Change("A", "/etc"), Change("A", "/etc/os-release")]

    def test_native_diff_agrees_with_the_generic_fallback(
        self, driver: StorageDriver, sample_tar: bytes, tmp_path: Path
    ) -> None:
        """A driver declaring NativeDiff gives what comparing the mounted trees gives."""
        if not isinstance(driver, NativeDiff):
            pytest.skip(f"{type(driver).__name__} declares no NativeDiff: the generic diff is its only one")
        self.layer(driver, "image", None, sample_tar)
        child_tar = build_tar(
            entry("etc/.wh.empty-file"),
            entry("usr", tarfile.DIRTYPE, mode=0o755),
            entry("usr/.wh..wh..opq"),
            entry("usr/local", data=b"a file where a directory was"),
        )
        self.layer(driver, "child", "image", child_tar)
        driver.create("container", "child", writable=True)
        self._change_container(driver.mount("container"))
        layer_tars = {"image": [], "child": [sample_tar], "container": [sample_tar, child_tar]}
        try:
            for layer_id, parent_tars in layer_tars.items():
                assert driver.changes(layer_id) == generic_changes(driver, layer_id), layer_id
                # the two tars may differ in bytes (order, how a whiteout is written) but each,
                # applied on the parent's tree, must give the layer's tree
                expected = _tree(driver, layer_id)
                for name, stream in (
                    ("native", driver.diff(layer_id)),
                    ("generic", generic_diff(driver, layer_id)),
                ):
                    target = tmp_path / f"{layer_id}-{name}"
                    target.mkdir()
                    for parent_tar in parent_tars:
                        apply_layer(io.BytesIO(parent_tar), target)
                    apply_layer(io.BytesIO(b"".join(stream)), target)
                    assert snapshot_tree(target, hard_links=False) == expected, f"{name} diff of {layer_id}"
        finally:
            driver.unmount("container")

    # -- hostile layer tars -------------------------------------------------------------------

    @pytest.mark.parametrize(
        "evil",
        [
            pytest.param([entry("../escaped", data=b"x")], id="dot-dot"),
            pytest.param([entry("sub/../../escaped", data=b"x")], id="nested-dot-dot"),
            pytest.param([entry("/escaped", data=b"x")], id="absolute"),
            pytest.param(
                [entry("link", tarfile.LNKTYPE, linkname="../outside/secret")], id="hardlink-dot-dot"
            ),
            pytest.param([entry("link", tarfile.LNKTYPE, linkname="/etc/passwd")], id="hardlink-absolute"),
            pytest.param([entry("link", tarfile.LNKTYPE, linkname="missing")], id="hardlink-missing"),
            pytest.param([entry(".wh..")], id="whiteout-dot"),
            pytest.param([entry(".wh...")], id="whiteout-dot-dot"),
            pytest.param([entry("sub/.wh.")], id="whiteout-empty"),
            pytest.param(
                [entry("dev/bad", tarfile.CHRTYPE, devmajor=5000, devminor=1)], id="device-overflow"
            ),
        ],
    )
    def test_escaping_tars_are_refused_and_leave_nothing(
        self, driver: StorageDriver, tmp_path: Path, evil: list
    ) -> None:
        outside = tmp_path / "outside"
        outside.mkdir()
        (outside / "secret").write_text("host file")
        self.layer(driver, "base", None, build_tar(entry("keep", data=b"base content")))
        driver.create("layer", "base")
        before = _tree(driver, "layer")
        with pytest.raises(InvalidArgument):
            driver.apply_diff("layer", io.BytesIO(build_tar(entry("applied-first", data=b"x"), *evil)))
        assert driver.exists("layer")
        assert _tree(driver, "layer") == before  # nothing of the refused tar stays
        assert sorted(os.listdir(outside)) == ["secret"] and os.stat(outside / "secret").st_nlink == 1
        assert not (tmp_path / "escaped").exists() and not Path("/escaped").exists()

    @pytest.mark.parametrize("hop", ["absolute", "relative"])
    def test_symlinks_in_the_layer_never_lead_outside(
        self, driver: StorageDriver, tmp_path: Path, hop: str
    ) -> None:
        outside = tmp_path / "outside"
        outside.mkdir()
        (outside / "secret").write_text("host file")
        (outside / "dir").mkdir()
        target = str(outside) if hop == "absolute" else "../" * 40 + str(outside).lstrip("/")
        # the same path inside the layer, so a driver that resolves symlinks in the layer's root
        # (as Docker does) has somewhere to write: what it must never reach is the host's copy
        mirror = str(outside).lstrip("/")
        self.layer(
            driver,
            "base",
            None,
            build_tar(
                entry(f"{mirror}/secret", data=b"layer file"),
                entry(f"{mirror}/dir/in-layer", data=b"layer file"),
                entry("link", tarfile.SYMTYPE, linkname=target),
            ),
        )
        driver.create("layer", "base")
        evil = build_tar(
            entry("link/planted", data=b"x"),
            entry("link/dir/planted", data=b"x"),
            entry("hard", tarfile.LNKTYPE, linkname="link/secret"),
            entry("link/.wh.secret"),
            entry("link/dir/.wh..wh..opq"),
        )
        try:
            driver.apply_diff("layer", io.BytesIO(evil))
        except InvalidArgument:
            pass  # refusing is fine too; writing outside is not
        assert sorted(os.listdir(outside)) == ["dir", "secret"]
        assert os.listdir(outside / "dir") == []
        assert os.stat(outside / "secret").st_nlink == 1

    # -- removal and concurrency --------------------------------------------------------------

    def test_removal_leaves_nothing_behind(self, driver: StorageDriver, driver_root: Path) -> None:
        self.layer(driver, "base", None, build_tar(entry("marker-base", data=b"x")))
        self.layer(driver, "child", "base", build_tar(entry("marker-child", data=b"x")))
        driver.create("container", "child", writable=True)
        (driver.mount("container") / "marker-container").write_text("x")
        driver.unmount("container")
        for layer_id in ("container", "child", "base"):
            driver.remove(layer_id)
            assert not driver.exists(layer_id)
        assert mounts_under(driver_root) == []
        left = [path for path in driver_root.rglob("*") if path.name.startswith("marker-")]
        assert left == []
        for layer_id in ("container", "child", "base"):  # the ids are free again
            driver.create(layer_id, None)

    def test_parallel_mounts_of_one_layer(self, driver: StorageDriver) -> None:
        self.layer(driver, "image", None, build_tar(entry("hello", data=b"world")))
        failures: list[BaseException] = []

        def mount_many() -> None:
            try:
                for _ in range(20):
                    path = driver.mount("image")
                    assert (path / "hello").read_bytes() == b"world"
                    driver.unmount("image")
            except BaseException as exc:  # collected: a thread's assertion would otherwise vanish
                failures.append(exc)

        threads = [threading.Thread(target=mount_many) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert failures == []
        driver.remove("image")  # every reference was released
