"""``docker cp``, export, diff and commit of containers in a user namespace (``--userns-remap``).

The container's root is an idmapped mount (host uid 100000+ shows for what is uid 0 on disk), but
the archives carry the ids the container sees, both ways, as Docker's do; what is copied in is
stored with those ids on disk. Daemons and users come from test_userns_remap's harness.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from pyengine.testing.daemon import pyengine_daemon
from test_userns_remap import _RUN, DOCKER, PYENGINE, Remapped, remap_user


@contextmanager
def _remapped_daemon(
    user: str, busybox_tar, storage_driver: str | None = None, parent_dir: str | None = None
) -> Iterator[Remapped]:
    """A daemon remapping to a new ``user``, with busybox; no mount of it may outlive it."""
    with remap_user(user) as start:
        with pyengine_daemon(
            PYENGINE,
            storage_driver=storage_driver,
            extra_args=["--userns-remap", user],
            parent_dir=parent_dir,
        ) as daemon:
            engine = Remapped(daemon, start)
            imported = engine.cli("import", "-c", 'CMD ["sh"]', str(busybox_tar), "busybox:latest")
            assert imported.returncode == 0, imported.stderr
            yield engine
        assert not [
            line for line in Path("/proc/self/mountinfo").read_text().splitlines() if daemon.base_dir in line
        ]


@pytest.fixture(scope="module")
def remapped(busybox_tar):
    with _remapped_daemon(f"pens-remapcpo-{_RUN}", busybox_tar) as engine:
        yield engine


@pytest.fixture(scope="module")
def remapped_vfs(busybox_tar):
    with _remapped_daemon(f"pens-remapcpv-{_RUN}", busybox_tar, "vfs") as engine:
        yield engine


@contextmanager
def _loop_btrfs() -> Iterator[str]:
    """A fresh loop-backed btrfs mounted in a temporary directory (gone afterwards)."""
    base = tempfile.mkdtemp(prefix="pebtrfs-", dir="/tmp")
    image, point = os.path.join(base, "img"), os.path.join(base, "mnt")
    os.mkdir(point)
    with open(image, "wb") as file:
        file.truncate(512 << 20)
    try:
        subprocess.run(["mkfs.btrfs", "-q", image], check=True, capture_output=True)
        found = subprocess.run(
            ["losetup", "--find", "--show", image], check=True, capture_output=True, text=True
        )
        device = found.stdout.strip()
        try:
            subprocess.run(["mount", "-t", "btrfs", device, point], check=True)
            try:
                yield point
            finally:
                subprocess.run(["umount", "-l", point], check=False)
        finally:
            subprocess.run(["losetup", "-d", device], check=False)
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def remapped_btrfs(busybox_tar):
    if shutil.which("mkfs.btrfs") is None:
        pytest.skip("mkfs.btrfs (btrfs-progs) is not installed")
    with _loop_btrfs() as point:
        with _remapped_daemon(f"pens-remapcpb-{_RUN}", busybox_tar, "btrfs", point) as engine:
            yield engine


@pytest.fixture(params=["overlay", "vfs", "btrfs"])
def remapped_on(request):
    """A remapped daemon on each storage driver: overlay idmaps its layers (a plain mount of a
    running container's layer is the mapped view), vfs and btrfs bind the layer's directory."""
    fixture = {"overlay": "remapped", "vfs": "remapped_vfs", "btrfs": "remapped_btrfs"}[request.param]
    return request.param, request.getfixturevalue(fixture)


def _layer_root(engine: Remapped, driver: str, container_id: str) -> Path:
    """Where the driver keeps what the container wrote, with the ids stored on disk."""
    storage = Path(engine.daemon.data_root, "storage", driver)
    inside = {
        "overlay": f"{container_id}/diff",
        "vfs": f"dir/{container_id}",
        "btrfs": f"subvolumes/{container_id}",
    }
    return storage / inside[driver]


def _tar_of(*entries: tuple[str, bytes | None, int, int]) -> bytes:
    """A tar of (name, content or None for a directory, uid, gid) entries."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data, uid, gid in entries:
            info = tarfile.TarInfo(name)
            info.uid, info.gid = uid, gid
            if data is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            else:
                info.size, info.mode = len(data), 0o644
                tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _owners(data: bytes) -> dict[str, tuple[int, int]]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return {member.name.rstrip("/"): (member.uid, member.gid) for member in tar.getmembers()}


_PUT = _tar_of(
    ("put", None, 0, 0),
    ("put/root-file", b"root\n", 0, 0),
    ("put/user-file", b"user\n", 1000, 1001),
    ("put/inner", None, 123, 456),
    ("put/inner/deep", b"deep\n", 123, 456),
)
_PUT_OWNERS = {
    "put": (0, 0),
    "put/root-file": (0, 0),
    "put/user-file": (1000, 1001),
    "put/inner": (123, 456),
    "put/inner/deep": (123, 456),
}


def test_cp_into_and_out_of_a_running_remapped_container(remapped_on):
    driver, engine = remapped_on
    docker_sdk = pytest.importorskip("docker")
    name = f"cprun-{driver}"
    assert engine.cli("run", "-d", "--name", name, "busybox", "sleep", "300").returncode == 0
    client = docker_sdk.DockerClient(base_url=engine.daemon.host)
    try:
        container = client.containers.get(name)
        assert container.put_archive("/tmp", _PUT)
        # inside, the tar's ids (not the host's root, not the shifted ones)
        shown = engine.cli(
            "exec",
            name,
            "sh",
            "-c",
            "cd /tmp && stat -c '%u:%g %n' put put/root-file put/user-file put/inner",
        )
        assert shown.stdout.splitlines() == [
            "0:0 put",
            "0:0 put/root-file",
            "1000:1001 put/user-file",
            "123:456 put/inner",
        ], shown.stderr
        listed = engine.cli("exec", name, "ls", "-n", "/tmp/put/inner/deep").stdout.split()
        assert listed[2:4] == ["123", "456"]
        # on disk, the same ids: container root is uid 0 in the layer, as for what it writes itself
        layer = _layer_root(engine, driver, container.id)
        for path, owner in _PUT_OWNERS.items():
            info = (layer / "tmp" / path).lstat()
            assert (info.st_uid, info.st_gid) == owner, path
        # out: what the container made (as root, or chowned) comes with the ids it has inside
        made = engine.cli(
            "exec", name, "sh", "-c", "echo x > /tmp/put/made; touch /tmp/put/given; chown 7:8 /tmp/put/given"
        )
        assert made.returncode == 0, made.stderr
        chunks, stat_doc = container.get_archive("/tmp/put")
        assert stat_doc["name"] == "put"
        assert _owners(b"".join(chunks)) == {**_PUT_OWNERS, "put/made": (0, 0), "put/given": (7, 8)}
        chunks, _ = container.get_archive("/etc/passwd")
        assert _owners(b"".join(chunks)) == {"passwd": (0, 0)}
        # export of the running container: the image's files are root's, ours as put
        exported = _owners(b"".join(container.export()))
        assert exported["bin/busybox"] == exported["etc"] == (0, 0)
        assert exported["tmp/put/user-file"] == (1000, 1001) and exported["tmp/put/given"] == (7, 8)
        # diff and commit of the running container see the same ids
        changes = engine.cli("diff", name).stdout.splitlines()
        assert "A /tmp/put/user-file" in changes and "C /bin" not in changes, changes
        assert engine.cli("commit", name, f"cprun-{driver}:1").returncode == 0
        try:
            committed = engine.cli(
                "run",
                "--rm",
                "--userns=host",
                f"cprun-{driver}:1",
                "stat",
                "-c",
                "%u:%g",
                "/tmp/put/user-file",
                "/tmp/put/made",
            )
            assert committed.stdout.split() == ["1000:1001", "0:0"], committed.stderr
        finally:
            engine.cli("rmi", f"cprun-{driver}:1")
    finally:
        client.close()
        engine.cli("rm", "-f", name)


def test_cp_into_and_out_of_a_stopped_remapped_container(remapped_on):
    driver, engine = remapped_on
    docker_sdk = pytest.importorskip("docker")
    name = f"cpstopped-{driver}"
    created = engine.cli(
        "create",
        "--name",
        name,
        "busybox",
        "stat",
        "-c",
        "%u:%g %n",
        "/tmp/put/root-file",
        "/tmp/put/user-file",
    )
    assert created.returncode == 0, created.stderr
    client = docker_sdk.DockerClient(base_url=engine.daemon.host)
    try:
        container = client.containers.get(name)
        assert container.put_archive("/tmp", _PUT)
        chunks, _ = container.get_archive("/tmp/put")
        assert _owners(b"".join(chunks)) == _PUT_OWNERS
        layer = _layer_root(engine, driver, container.id)
        assert (layer / "tmp/put/user-file").stat().st_uid == 1000
        exported = _owners(b"".join(container.export()))
        assert exported["bin/busybox"] == (0, 0) and exported["tmp/put/user-file"] == (1000, 1001)
        # the container starts on its idmapped root (also if the copy's mount is not released yet:
        # both take the same idmapped view); the module fixture checks that no mount is left
        started = engine.cli("start", "-a", name)
        assert started.stdout.splitlines() == ["0:0 /tmp/put/root-file", "1000:1001 /tmp/put/user-file"], (
            started.stderr
        )
    finally:
        client.close()
        engine.cli("rm", "-f", name)


def test_cp_archive_mode_gives_the_container_users_ids(remapped, tmp_path):
    """``cp -a`` into a container with a USER: the files are that user's inside (busybox's daemon: 1:1)."""
    name = "cpuser"
    assert engine_run(remapped, "-d", "--name", name, "-u", "daemon", "busybox", "sleep", "300")
    try:
        source = tmp_path / "local"
        source.write_text("mine\n")
        os.chown(source, 4321, 4321)
        copied = remapped.cli("cp", "-a", str(source), f"{name}:/tmp/")
        assert copied.returncode == 0, copied.stderr
        plain = remapped.cli("cp", str(source), f"{name}:/tmp/plain")
        assert plain.returncode == 0, plain.stderr
        shown = remapped.cli("exec", name, "stat", "-c", "%u:%g %n", "/tmp/local", "/tmp/plain")
        assert shown.stdout.splitlines() == ["1:1 /tmp/local", "4321:4321 /tmp/plain"], shown.stderr
        container_id = remapped.inspect(name)["Id"]
        assert (_layer_root(remapped, "overlay", container_id) / "tmp/local").stat().st_uid == 1
    finally:
        remapped.cli("rm", "-f", name)


def engine_run(engine: Remapped, *args: str) -> bool:
    run = engine.cli("run", *args)
    assert run.returncode == 0, run.stderr
    return True


def test_docker_cli_copies_in_and_out_of_a_running_remapped_container(remapped, tmp_path):
    name = "cpdocker"
    assert engine_run(remapped, "-d", "--name", name, "-u", "daemon", "busybox", "sleep", "300")
    try:
        source = tmp_path / "in"
        source.write_text("from the host\n")
        os.chown(source, 2000, 2001)
        assert remapped.docker("cp", str(source), f"{name}:/tmp/in").returncode == 0
        archived = remapped.docker("cp", "-a", str(source), f"{name}:/tmp/in-a")
        assert archived.returncode == 0, archived.stderr
        shown = remapped.docker("exec", name, "stat", "-c", "%u:%g", "/tmp/in", "/tmp/in-a")
        assert shown.stdout.split() == ["2000:2001", "1:1"], shown.stderr
        made = remapped.docker(
            "exec", "-u", "0", name, "sh", "-c", "echo x > /tmp/out && chown 1000:1000 /tmp/out"
        )
        assert made.returncode == 0, made.stderr
        # the docker CLI never chowns what it writes on the host: read the daemon's tar itself ("-")
        env = {**os.environ, "DOCKER_HOST": remapped.daemon.host, "DOCKER_CONFIG": remapped.daemon.base_dir}
        for path, owners in (("/tmp/out", {"out": (1000, 1000)}), ("/etc/passwd", {"passwd": (0, 0)})):
            copied = subprocess.run(
                [DOCKER, "cp", f"{name}:{path}", "-"], capture_output=True, timeout=120, env=env
            )
            assert copied.returncode == 0, copied.stderr
            assert _owners(copied.stdout) == owners
        out = tmp_path / "out"
        assert remapped.docker("cp", f"{name}:/tmp/out", str(out)).returncode == 0
        assert out.read_text() == "x\n"
    finally:
        remapped.cli("rm", "-f", name)


def test_cp_links_and_unmappable_owners_into_a_running_remapped_container(remapped):
    """Symlinks and hard links keep their owners through the idmapped view; an owner the container's
    map cannot express is refused with the id named, not stored as something else."""
    docker_sdk = pytest.importorskip("docker")
    name = "cplinks"
    assert engine_run(remapped, "-d", "--name", name, "busybox", "sleep", "300")
    client = docker_sdk.DockerClient(base_url=remapped.daemon.host)
    try:
        container = client.containers.get(name)
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
            target = tarfile.TarInfo("target")
            target.size, target.uid, target.gid = 3, 1000, 1000
            tar.addfile(target, io.BytesIO(b"hi\n"))
            symlink = tarfile.TarInfo("symlink")
            symlink.type, symlink.linkname, symlink.uid, symlink.gid = tarfile.SYMTYPE, "target", 1000, 1000
            tar.addfile(symlink)
            hardlink = tarfile.TarInfo("hardlink")
            hardlink.type, hardlink.linkname = tarfile.LNKTYPE, "target"
            tar.addfile(hardlink)
        assert container.put_archive("/tmp", buffer.getvalue())
        shown = remapped.cli(
            "exec",
            name,
            "sh",
            "-c",
            "cd /tmp && stat -c '%u:%g %h %n' target symlink hardlink && cat hardlink",
        )
        assert shown.stdout.splitlines() == [
            "1000:1000 2 target",
            "1000:1000 1 symlink",
            "1000:1000 2 hardlink",
            "hi",
        ], shown.stderr
        chunks, _ = container.get_archive("/tmp/symlink")
        assert _owners(b"".join(chunks)) == {"symlink": (1000, 1000)}
        with pytest.raises(docker_sdk.errors.APIError) as caught:
            container.put_archive("/tmp", _tar_of(("far", b"x", 70000, 0)))
        assert caught.value.status_code == 400 and "70000" in str(caught.value.explanation)
        assert remapped.cli("exec", name, "ls", "/tmp/far").returncode != 0
        # replacing a file of the image: overlayfs copies up and whites out as the container's root
        assert container.put_archive("/etc", _tar_of(("group", b"root:x:0:\n", 0, 0), ("bin", None, 0, 2)))
        shown = remapped.cli("exec", name, "sh", "-c", "stat -c '%u:%g' /etc/group /etc/bin; cat /etc/group")
        assert shown.stdout.splitlines() == ["0:0", "0:2", "root:x:0:"], shown.stderr
        upper = _layer_root(remapped, "overlay", container.id) / "etc" / "group"
        assert (upper.stat().st_uid, upper.read_text()) == (0, "root:x:0:\n")
    finally:
        client.close()
        remapped.cli("rm", "-f", name)
