"""Containers in a user namespace (OCI linux.uidMappings), on an idmapped root file system."""

from __future__ import annotations

import contextlib
import os
import subprocess
from pathlib import Path

import pytest
from conftest import run_container, write
from pyengine.runtime import idmap

HOST_ROOT = 231072  # far from the ranges the other tests (and /etc/subuid) use
IDMAP = idmap.IdMap.single(HOST_ROOT, HOST_ROOT, 65536)


@contextlib.contextmanager
def idmapped_root(bundle_dir: Path):
    """rootfs/ mounted idmapped at mapped/ (so that root-owned files are the container root's)."""
    target = bundle_dir / "mapped"
    target.mkdir()
    idmap.mount_idmapped(bundle_dir / "rootfs", target, idmap.user_namespace_fd(IDMAP))
    try:
        yield "mapped"
    finally:
        idmap.detach(target)
        target.rmdir()


def remapped(spec: dict, root: str) -> dict:
    spec["root"]["path"] = root
    spec["linux"]["namespaces"].append({"type": "user"})
    spec["linux"].update(IDMAP.oci())
    return spec


def run_remapped(bundle, script: str, extra_mounts: list | None = None):
    bundle_dir, spec = bundle(["sh", "-c", script])
    spec["mounts"].extend(extra_mounts or [])
    with idmapped_root(bundle_dir) as root:
        return run_container(write(bundle_dir, remapped(spec, root)))


def test_idmap_ranges_and_oci_shape():
    mapping = idmap.IdMap.single(100000, 200000, 65536)
    assert mapping.root_uid == 100000 and mapping.root_gid == 200000
    assert mapping.host_uid(1000) == 101000
    with pytest.raises(ValueError):
        mapping.host_uid(65536)
    assert mapping.oci()["uidMappings"] == [{"containerID": 0, "hostID": 100000, "size": 65536}]
    assert idmap.IdMap.from_oci(mapping.oci()) == mapping
    assert mapping.uid_map_text() == "0 100000 65536\n"


def test_user_namespace_fd_is_cached_and_carries_the_map():
    fd = idmap.user_namespace_fd(IDMAP)
    assert idmap.user_namespace_fd(IDMAP) == fd
    assert os.readlink(f"/proc/self/fd/{fd}").startswith("user:[")
    # a process that joins it sees the map
    out = subprocess.run(
        ["nsenter", f"--user=/proc/{os.getpid()}/fd/{fd}", "cat", "/proc/self/uid_map"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert out == ["0", str(HOST_ROOT), "65536"]
    other = idmap.make_user_namespace(idmap.IdMap.single(HOST_ROOT + 65536, HOST_ROOT + 65536, 10))
    try:
        assert os.readlink(f"/proc/self/fd/{other}") != os.readlink(f"/proc/self/fd/{fd}")
    finally:
        os.close(other)


def test_idmapped_bind_shifts_owners_both_ways(tmp_path):
    source, target = tmp_path / "source", tmp_path / "target"
    source.mkdir()
    target.mkdir()
    os.chmod(source, 0o777)
    (source / "file").write_text("x")
    idmap.mount_idmapped(source, target, idmap.user_namespace_fd(IDMAP))
    try:
        assert (target / "file").stat().st_uid == HOST_ROOT
        assert (target / "file").stat().st_gid == HOST_ROOT
        directory = os.open(target, os.O_PATH | os.O_DIRECTORY)  # tmp_path is 0700: open it as root
        child = os.fork()
        if child == 0:  # host uid HOST_ROOT+5 creates a file through the mount: it is uid 5 on disk
            code = 1
            try:
                os.setgid(HOST_ROOT + 5)
                os.setuid(HOST_ROOT + 5)
                os.close(os.open("new", os.O_CREAT | os.O_WRONLY, 0o644, dir_fd=directory))
                code = 0
            finally:
                os._exit(code)
        assert os.waitstatus_to_exitcode(os.waitpid(child, 0)[1]) == 0
        os.close(directory)
    finally:
        idmap.detach(target)
    assert (source / "new").stat().st_uid == 5
    assert not os.path.ismount(target)


def test_root_in_the_container_is_the_mapped_user(bundle):
    run = run_remapped(
        bundle,
        "id -u; id -g; cat /proc/self/uid_map /proc/self/gid_map; stat -c %u /bin/busybox; touch /made",
    )
    assert run.error is None, run.error
    lines = run.stdout.split("\n")
    assert lines[0] == "0" and lines[1] == "0"
    assert lines[2].split() == ["0", str(HOST_ROOT), "65536"]
    assert lines[3].split() == ["0", str(HOST_ROOT), "65536"]
    assert lines[4] == "0", "the image's files must be owned by the container's root"
    assert run.exit_code == 0, run.stderr


def test_host_root_files_stay_out_of_reach(bundle, tmp_path):
    secret = tmp_path / "secret"
    secret.mkdir(mode=0o700)
    (secret / "key").write_text("host only")
    run = run_remapped(
        bundle,
        "cat /secret/key; echo status=$?; cat /proc/self/status | grep CapEff; "
        "mount -t tmpfs t /mnt 2>&1; echo mount=$?",
        extra_mounts=[
            {"destination": "/secret", "type": "bind", "source": str(secret), "options": ["rbind"]}
        ],
    )
    assert run.error is None, run.error
    assert "host only" not in run.stdout
    assert "status=1" in run.stdout
    assert "mount=0" not in run.stdout  # no CAP_SYS_ADMIN, even in its own namespace


def test_devices_proc_sys_and_terminal_work(bundle):
    run = run_remapped(
        bundle,
        "echo x > /dev/null && head -c 3 /dev/zero | wc -c && test -c /dev/urandom && "
        "ls /sys/kernel >/dev/null && cat /proc/1/status | grep -c Name && "
        "stat -c %u /dev/mqueue /dev/shm /dev/pts && readlink /proc/self/ns/ipc && echo ok",
    )
    assert run.error is None, run.error
    words = run.stdout.split()
    assert words[:5] == ["3", "1", "0", "0", "0"] and words[-1] == "ok", run.stdout + run.stderr
    assert words[5] != os.readlink("/proc/self/ns/ipc")  # an IPC namespace of its own


def test_mappings_without_a_user_namespace_are_refused(bundle):
    bundle_dir, spec = bundle(["true"])
    spec["linux"].update(IDMAP.oci())
    run = run_container(write(bundle_dir, spec))
    assert run.error and "no new user namespace" in run.error


def test_user_namespace_without_mappings_is_refused(bundle):
    bundle_dir, spec = bundle(["true"])
    spec["linux"]["namespaces"].append({"type": "user"})
    run = run_container(write(bundle_dir, spec))
    assert run.error and "uidMappings" in run.error
