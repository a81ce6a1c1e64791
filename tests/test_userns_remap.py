"""``--userns-remap``: a daemon whose containers run in user namespaces, as Docker's does.

Each daemon here is our own (own data root), started with a test user whose subordinate ranges
the test writes into /etc/subuid and /etc/subgid; the user and the lines are removed afterwards,
also when a test fails.
"""

from __future__ import annotations

import io
import json
import os
import pwd
import signal
import subprocess
import sys
import tarfile
import tempfile
from contextlib import contextmanager
from pathlib import Path

import pytest
from pyengine.testing import engine_api
from pyengine.testing.daemon import pyengine_daemon, wait_for_ping

PYENGINE = [sys.executable, "-m", "pyengine"]
DOCKER = "/usr/local/bin/docker"
#: users are host-wide and the suite may run twice at once on a host (several checkouts): each
#: run names its own
_RUN = os.getpid()
REMAP_USER = f"pens-remap-{_RUN}"
SUBID_FILES = (Path("/etc/subuid"), Path("/etc/subgid"))


def _free_start() -> int:
    """A subordinate range start after every range already listed (and far from the usual 100000)."""
    end = 600000
    for path in SUBID_FILES:
        if path.exists():
            for line in path.read_text().splitlines():
                parts = line.split(":")
                if len(parts) == 3 and parts[1].isdigit() and parts[2].isdigit():
                    end = max(end, int(parts[1]) + int(parts[2]))
    return end


def _drop_lines(owner: str) -> None:
    for path in SUBID_FILES:
        if path.exists():
            kept = [line for line in path.read_text().splitlines() if not line.startswith(f"{owner}:")]
            path.write_text("".join(f"{line}\n" for line in kept))


@contextmanager
def remap_user(name: str, *, with_ranges: bool = True):
    """A system user ``name`` with a 65536-id subordinate range; yields the range's start."""
    subprocess.run(
        ["useradd", "--system", "--no-create-home", "--shell", "/bin/false", "--user-group", name],
        check=True,
        capture_output=True,
    )
    try:
        start = _free_start()
        if with_ranges:
            for path in SUBID_FILES:
                with open(path, "a") as file:
                    file.write(f"{name}:{start}:65536\n")
        yield start
    finally:
        _drop_lines(name)
        subprocess.run(["userdel", name], check=False, capture_output=True)


class Remapped:
    def __init__(self, daemon, start: int) -> None:
        self.daemon = daemon
        self.start = start

    def cli(self, *args: str, input: str | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(
            [*PYENGINE, "-H", self.daemon.host, *args],
            capture_output=True,
            text=True,
            timeout=120,
            input=input,
        )

    def docker(self, *args: str) -> subprocess.CompletedProcess:
        env = {**os.environ, "DOCKER_HOST": self.daemon.host, "DOCKER_CONFIG": self.daemon.base_dir}
        return subprocess.run([DOCKER, *args], capture_output=True, text=True, timeout=120, env=env)

    def inspect(self, name: str) -> dict:
        return json.loads(self.cli("inspect", name).stdout)[0]


@pytest.fixture(scope="module")
def remapped(busybox_tar):
    with remap_user(REMAP_USER) as start:
        with pyengine_daemon(PYENGINE, extra_args=["--userns-remap", REMAP_USER]) as daemon:
            engine = Remapped(daemon, start)
            imported = engine.cli("import", "-c", 'CMD ["sh"]', str(busybox_tar), "busybox:latest")
            assert imported.returncode == 0, imported.stderr
            yield engine
        assert not [
            line for line in Path("/proc/self/mountinfo").read_text().splitlines() if daemon.base_dir in line
        ]


def test_container_root_is_the_first_subordinate_id(remapped):
    run = remapped.cli(
        "run",
        "--rm",
        "busybox",
        "sh",
        "-c",
        "id -u; id -g; cat /proc/self/uid_map /proc/self/gid_map; "
        "stat -c %u:%g /bin/busybox /etc/passwd; echo x > /etc/hosts && echo hosts-writable; "
        "ls /sys/kernel | grep -c ^mm$; ls /sys/fs/cgroup | wc -l",
    )
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert lines[:2] == ["0", "0"]
    assert lines[2].split() == lines[3].split() == ["0", str(remapped.start), "65536"]
    assert lines[4:6] == ["0:0", "0:0"]  # the image's files are root's inside
    assert lines[6] == "hosts-writable"
    assert lines[7:] == [
        "1",
        "0",
    ]  # a sysfs (the host's, bound: the network namespace is not ours), no cgroups


def test_process_runs_as_the_subordinate_uid_on_the_host_and_exec_joins(remapped):
    assert remapped.cli("run", "-d", "--name", "sleeper", "busybox", "sleep", "300").returncode == 0
    try:
        pid = remapped.inspect("sleeper")["State"]["Pid"]
        status = Path(f"/proc/{pid}/status").read_text()
        uids = next(line for line in status.splitlines() if line.startswith("Uid:")).split()[1:]
        gids = next(line for line in status.splitlines() if line.startswith("Gid:")).split()[1:]
        assert uids == [str(remapped.start)] * 4 and gids == [str(remapped.start)] * 4
        assert os.readlink(f"/proc/{pid}/ns/user") != os.readlink("/proc/self/ns/user")
        run = remapped.docker(
            "exec", "sleeper", "sh", "-c", "id -u; cat /proc/self/uid_map; ls -n /proc/1/exe"
        )
        assert run.returncode == 0, run.stderr
        assert run.stdout.splitlines()[0] == "0"
        assert run.stdout.splitlines()[1].split() == ["0", str(remapped.start), "65536"]
        as_user = remapped.docker("exec", "-u", "1000", "sleeper", "id", "-u")
        assert as_user.stdout.strip() == "1000", as_user.stderr
        with_tty = remapped.cli("exec", "sleeper", "sh", "-c", "cat /proc/self/uid_map")
        assert with_tty.stdout.split() == ["0", str(remapped.start), "65536"]
    finally:
        remapped.cli("rm", "-f", "sleeper")


def test_writes_are_stored_as_uid_0_and_commit_gives_a_normal_image(remapped, tmp_path):
    run = remapped.cli(
        "run",
        "--name",
        "writer",
        "busybox",
        "sh",
        "-c",
        "echo new > /made; mkdir /dir; echo more >> /etc/passwd",
    )
    assert run.returncode == 0, run.stderr
    try:
        container_id = remapped.inspect("writer")["Id"]
        upper = Path(remapped.daemon.data_root, "storage", "overlay", container_id, "diff")
        for name in ("made", "dir", "etc/passwd"):
            info = (upper / name).stat()
            assert (info.st_uid, info.st_gid) == (0, 0), name
        assert remapped.cli("commit", "writer", "written:1").returncode == 0
        saved = tmp_path / "image.tar"
        assert remapped.cli("save", "-o", str(saved), "written:1").returncode == 0
        owners = {}
        with tarfile.open(saved) as image:
            manifest = json.load(image.extractfile("manifest.json"))
            top = image.extractfile(manifest[0]["Layers"][-1]).read()
        with tarfile.open(fileobj=io.BytesIO(top)) as layer:
            for member in layer.getmembers():
                owners[member.name.rstrip("/")] = (member.uid, member.gid)
        assert owners["made"] == owners["dir"] == owners["etc/passwd"] == (0, 0)
        # the image runs the same on the remapped daemon
        again = remapped.cli("run", "--rm", "written:1", "stat", "-c", "%u %n", "/made")
        assert again.stdout == "0 /made\n", again.stderr
    finally:
        remapped.cli("rm", "-f", "writer")
        remapped.cli("rmi", "written:1")


def test_userns_host_opts_out(remapped):
    run = remapped.docker("run", "--rm", "--userns=host", "busybox", "cat", "/proc/self/uid_map")
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["0", "0", "4294967295"]


def test_container_root_cannot_read_host_root_files(remapped, tmp_path):
    secret = tmp_path / "secret"
    secret.mkdir(mode=0o700)
    (secret / "key").write_text("host only")
    os.chmod(tmp_path, 0o755)
    run = remapped.cli(
        "run",
        "--rm",
        "-v",
        f"{secret}:/secret",
        "busybox",
        "sh",
        "-c",
        "cat /secret/key; echo status=$?; touch /secret/new; echo touch=$?; stat -c %u /secret",
    )
    assert "host only" not in run.stdout
    assert "status=1" in run.stdout and "touch=1" in run.stdout
    assert run.stdout.splitlines()[-1] == "65534"  # host root is nobody inside
    assert not (secret / "new").exists()


def test_named_volume_is_the_container_roots(remapped):
    run = remapped.cli(
        "run", "--rm", "-v", "remapvol:/data", "busybox", "sh", "-c", "echo hi > /data/f && ls -n /data"
    )
    assert run.returncode == 0, run.stderr
    try:
        data = Path(remapped.daemon.data_root, "volumes", "remapvol", "_data")
        assert data.stat().st_uid == remapped.start
        assert (data / "f").stat().st_uid == remapped.start
        assert " 0 " in run.stdout.splitlines()[-1]  # uid 0 inside
    finally:
        remapped.cli("volume", "rm", "remapvol")


def test_bad_userns_modes_and_incompatible_options_are_400(remapped):
    socket = remapped.daemon.socket
    for host_config, message in (
        ({"UsernsMode": "private"}, "invalid USER mode"),
        ({"Privileged": True}, "privileged mode is incompatible with user namespaces"),
        ({"NetworkMode": "host"}, "cannot share the host's network namespace"),
    ):
        with pytest.raises(engine_api.EngineAPIError) as caught:
            engine_api.request(
                socket,
                "POST",
                "/containers/create",
                body={"Image": "busybox", "Cmd": ["true"], "HostConfig": host_config},
            )
        assert caught.value.status == 400 and message in caught.value.message
    assert engine_api.list_containers(socket) == []
    privileged = remapped.cli("run", "--rm", "--privileged", "--userns", "host", "busybox", "true")
    assert privileged.returncode == 0, privileged.stderr


def test_info_lists_userns_and_sdk_runs_remapped(remapped):
    docker_sdk = pytest.importorskip("docker")
    client = docker_sdk.DockerClient(base_url=remapped.daemon.host)
    try:
        assert "name=userns" in client.info()["SecurityOptions"]
        output = client.containers.run("busybox", ["cat", "/proc/self/uid_map"], remove=True)
        assert output.decode().split() == ["0", str(remapped.start), "65536"]
    finally:
        client.close()
    shown = remapped.docker("info", "--format", "{{json .SecurityOptions}}")
    assert "name=userns" in json.loads(shown.stdout)


def test_build_steps_run_remapped(remapped, tmp_path):
    (tmp_path / "Dockerfile").write_text("FROM busybox\nRUN cat /proc/self/uid_map > /map && touch /built\n")
    built = remapped.cli("build", "-t", "remapbuild:1", str(tmp_path))
    assert built.returncode == 0, built.stderr + built.stdout
    try:
        run = remapped.cli(
            "run", "--rm", "--userns=host", "remapbuild:1", "sh", "-c", "cat /map; stat -c %u /built"
        )
        lines = run.stdout.splitlines()
        assert lines[0].split() == ["0", str(remapped.start), "65536"]
        assert lines[1] == "0"
    finally:
        remapped.cli("rmi", "remapbuild:1")


def test_vfs_daemon_remaps_through_an_idmapped_bind(busybox_tar):
    with remap_user(f"pens-remapvfs-{_RUN}") as start:
        with pyengine_daemon(
            PYENGINE,
            storage_driver="vfs",
            extra_args=["--userns-remap", f"pens-remapvfs-{_RUN}:pens-remapvfs-{_RUN}"],
        ) as daemon:
            engine = Remapped(daemon, start)
            assert (
                engine.cli("import", "-c", 'CMD ["sh"]', str(busybox_tar), "busybox:latest").returncode == 0
            )
            run = engine.cli(
                "run", "--name", "onvfs", "busybox", "sh", "-c", "id -u; stat -c %u /bin; touch /made"
            )
            assert run.returncode == 0, run.stderr
            assert run.stdout.split() == ["0", "0"]
            container_id = engine.inspect("onvfs")["Id"]
            layer = Path(daemon.data_root, "storage", "vfs", "dir", container_id)
            assert (layer / "made").stat().st_uid == 0
            idmapped = Path(daemon.data_root, "storage", "vfs", "idmapped", container_id)
            assert not idmapped.exists()
            # running: the root is the idmapped bind; diff and commit still see the ids on disk
            assert engine.cli("start", "onvfs").returncode == 0
            engine.cli("exec", "onvfs", "true")  # (the container may already have ended again)
            assert engine.cli("commit", "onvfs", "onvfs:1").returncode == 0
            shown = engine.cli("run", "--rm", "--userns=host", "onvfs:1", "stat", "-c", "%u", "/made", "/bin")
            assert shown.stdout.split() == ["0", "0"], shown.stderr
            assert engine.cli("run", "-d", "--name", "sleeping", "busybox", "sleep", "300").returncode == 0
            sleeping = engine.inspect("sleeping")["Id"]
            assert Path(daemon.data_root, "storage", "vfs", "idmapped", sleeping).is_dir()
            changes = engine.cli("diff", "sleeping").stdout.splitlines()
            assert "C /bin" not in changes and "C /etc/passwd" not in changes, changes
            assert engine.cli("rm", "-f", "sleeping", "onvfs").returncode == 0
            assert not Path(daemon.data_root, "storage", "vfs", "idmapped", sleeping).exists()


def _daemon_refuses(*remap_args: str) -> subprocess.CompletedProcess:
    base = tempfile.mkdtemp(prefix="pe-nsbad-")
    try:
        return subprocess.run(
            [
                *PYENGINE,
                "daemon",
                "--data-root",
                f"{base}/data",
                "--exec-root",
                f"{base}/exec",
                "-H",
                f"unix://{base}/s.sock",
                *remap_args,
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        subprocess.run(["rm", "-rf", base], check=False)


def test_daemon_refuses_a_bad_remap_setting():
    unknown = _daemon_refuses("--userns-remap", "no-such-user-pens")
    assert unknown.returncode != 0 and 'no such user "no-such-user-pens"' in unknown.stderr
    with remap_user(f"pens-noranges-{_RUN}", with_ranges=False):
        no_range = _daemon_refuses("--userns-remap", f"pens-noranges-{_RUN}")
        assert no_range.returncode != 0 and "no subordinate uid range" in no_range.stderr
        bad_group = _daemon_refuses("--userns-remap", f"pens-noranges-{_RUN}:no-such-group-pens")
        assert bad_group.returncode != 0 and "no such group" in bad_group.stderr


def test_default_creates_the_pyremap_user(busybox_tar):
    try:
        pwd.getpwnam("pyremap")
        pytest.skip("a pyremap user exists already on this host; the test would not create it")
    except KeyError:
        pass
    try:
        with pyengine_daemon(PYENGINE, extra_args=["--userns-remap", "default"]) as daemon:
            entry = pwd.getpwnam("pyremap")
            assert entry.pw_shell == "/bin/false"
            line = next(
                line for line in Path("/etc/subuid").read_text().splitlines() if line.startswith("pyremap:")
            )
            start = int(line.split(":")[1])
            engine = Remapped(daemon, start)
            assert (
                engine.cli("import", "-c", 'CMD ["sh"]', str(busybox_tar), "busybox:latest").returncode == 0
            )
            run = engine.cli("run", "--rm", "busybox", "cat", "/proc/self/uid_map")
            assert run.stdout.split() == ["0", str(start), "65536"], run.stderr
    finally:
        _drop_lines("pyremap")
        subprocess.run(["userdel", "pyremap"], check=False, capture_output=True)


def test_remapped_container_outlives_a_daemon_kill(busybox_tar):
    """Live restore: the idmapped root stays for the running container and goes when it ends."""
    with remap_user(f"pens-remaplr-{_RUN}") as start:
        with pyengine_daemon(PYENGINE, extra_args=["--userns-remap", f"pens-remaplr-{_RUN}"]) as daemon:
            engine = Remapped(daemon, start)
            assert (
                engine.cli("import", "-c", 'CMD ["sh"]', str(busybox_tar), "busybox:latest").returncode == 0
            )
            assert engine.cli("run", "-d", "--name", "keeper", "busybox", "sleep", "300").returncode == 0
            container_id = engine.inspect("keeper")["Id"]
            merged = Path(daemon.data_root, "storage", "overlay", container_id, "merged")
            os.kill(daemon.pid, signal.SIGKILL)
            os.waitpid(daemon.pid, 0)  # the harness's child: reap it (its Popen copes with that)
            args = [*PYENGINE, "daemon", "--data-root", daemon.data_root, "--exec-root", daemon.exec_root]
            args += ["-H", daemon.host, "--userns-remap", f"pens-remaplr-{_RUN}"]
            with open(daemon.log_path, "ab") as log:
                again = subprocess.Popen(
                    args, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True
                )
            try:
                wait_for_ping(daemon.socket, again, 30.0, daemon.log_path)
                assert engine.inspect("keeper")["State"]["Running"]
                assert os.path.ismount(merged)
                run = engine.cli("exec", "keeper", "sh", "-c", "cat /proc/self/uid_map; touch /after")
                assert run.stdout.split() == ["0", str(start), "65536"], run.stderr
                upper = Path(daemon.data_root, "storage", "overlay", container_id, "diff", "after")
                assert upper.stat().st_uid == 0
                assert engine.cli("stop", "-t", "1", "keeper").returncode == 0
                assert not os.path.ismount(merged)
                assert engine.cli("start", "keeper").returncode == 0  # mapped again by the new daemon
                assert engine.cli("exec", "keeper", "stat", "-c", "%u", "/after").stdout.strip() == "0"
                assert engine.cli("rm", "-f", "keeper").returncode == 0
                assert not Path(daemon.data_root, "storage", "overlay", container_id).exists()
            finally:
                again.terminate()
                again.wait(30)
