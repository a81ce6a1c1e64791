"""Volumes and mounts through our CLI: named volumes that outlive containers, read-only mounts, binds,
tmpfs limits, copy-up from an image's VOLUME, anonymous volume cleanup, and bad input that leaves
nothing behind. Every test removes its containers and volumes, even when it fails."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest
from pyengine.testing.volume_suite import mounts_under


@pytest.fixture
def made(cli):
    """Names to clean up: ``made.containers`` and ``made.volumes`` (removed at teardown, force)."""

    class Made:
        containers: list[str] = []
        volumes: list[str] = []

        def name(self, prefix: str) -> str:
            return f"{prefix}-{uuid.uuid4().hex[:8]}"

    made = Made()
    made.containers, made.volumes = [], []
    try:
        yield made
    finally:
        for container in made.containers:
            cli("rm", "-f", "-v", container)
        for volume in made.volumes:
            cli("volume", "rm", "-f", volume)


def volume_names(cli) -> set[str]:
    result = cli("volume", "ls", "-q")
    assert result.returncode == 0, result.stderr
    return set(result.stdout.split())


def test_data_in_a_named_volume_outlives_its_container(cli, busybox, made) -> None:
    volume = made.name("data")
    made.volumes.append(volume)
    assert cli("volume", "create", volume).stdout.strip() == volume
    first = cli("run", "--rm", "-v", f"{volume}:/data", busybox, "sh", "-c", "echo 1 > /data/x")
    assert first.returncode == 0, first.stderr
    second = cli("run", "--rm", "-v", f"{volume}:/data:ro", busybox, "cat", "/data/x")
    assert second.returncode == 0, second.stderr
    assert second.stdout == "1\n"
    mountpoint = cli("volume", "inspect", "-f", "{{.Mountpoint}}", volume).stdout.strip()
    assert Path(mountpoint, "x").read_text() == "1\n"
    assert volume in volume_names(cli)


def test_a_read_only_mount_refuses_writes(cli, busybox, made, tmp_path: Path) -> None:
    volume = made.name("ro")
    made.volumes.append(volume)
    result = cli("run", "--rm", "-v", f"{volume}:/data:ro", busybox, "sh", "-c", "echo no > /data/x")
    assert result.returncode != 0
    assert "Read-only file system" in result.stderr
    (tmp_path / "site").mkdir()
    result = cli(
        "run",
        "--rm",
        "--mount",
        f"type=bind,source={tmp_path / 'site'},target=/www,readonly",
        busybox,
        "touch",
        "/www/x",
    )
    assert result.returncode != 0 and "Read-only file system" in result.stderr
    assert list((tmp_path / "site").iterdir()) == []


def test_a_bind_mount_is_visible_both_ways(cli, busybox, tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "in").write_text("from the host\n")
    result = cli("run", "--rm", "-v", f"{shared}:/h", busybox, "sh", "-c", "cat /h/in; echo back > /h/out")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "from the host\n"
    assert (shared / "out").read_text() == "back\n"
    assert mounts_under(shared) == []


def test_v_creates_a_missing_bind_source_as_docker_does(cli, busybox, tmp_path: Path) -> None:
    source = tmp_path / "made" / "by" / "run"
    result = cli("run", "--rm", "-v", f"{source}:/x", busybox, "touch", "/x/f")
    assert result.returncode == 0, result.stderr
    assert (source / "f").exists()


@pytest.mark.parametrize("flag", ["--mount=type=tmpfs,target=/t,tmpfs-size=1m", "--tmpfs=/t:size=1m"])
def test_tmpfs_size_is_enforced(cli, busybox, flag: str) -> None:
    result = cli(
        "run",
        "--rm",
        flag,
        busybox,
        "sh",
        "-c",
        "dd if=/dev/zero of=/t/big bs=1k count=2048 2>&1; grep ' /t ' /proc/mounts",
    )
    assert "No space left on device" in result.stdout
    assert "tmpfs /t tmpfs" in result.stdout and "nosuid" in result.stdout


def test_a_volume_in_use_cannot_be_removed(cli, busybox, made) -> None:
    volume, container = made.name("busy"), made.name("user")
    made.volumes.append(volume)
    made.containers.append(container)
    created = cli("create", "--name", container, "-v", f"{volume}:/d", busybox, "true")
    assert created.returncode == 0, created.stderr
    container_id = created.stdout.strip()
    refused = cli("volume", "rm", volume)
    assert refused.returncode == 1
    assert f"remove {volume}: volume is in use - [{container_id}]" in refused.stderr
    assert volume in volume_names(cli)
    assert cli("rm", container).returncode == 0
    assert cli("volume", "rm", volume).returncode == 0
    assert volume not in volume_names(cli)


def test_a_new_volume_starts_with_the_image_content(cli, busybox_tar, made) -> None:
    image = f"withvol-{uuid.uuid4().hex[:6]}:1"
    imported = cli("import", "-c", 'CMD ["sh"]', "-c", "VOLUME /etc", str(busybox_tar), image)
    assert imported.returncode == 0, imported.stderr
    container = made.name("copyup")
    made.containers.append(container)
    try:
        before = volume_names(cli)
        run = cli("run", "--name", container, image, "sh", "-c", "cat /etc/passwd; cat /etc/hostname")
        assert run.returncode == 0, run.stderr
        assert "root:" in run.stdout  # copied from the image
        new = volume_names(cli) - before
        assert len(new) == 1
        anonymous = new.pop()
        mountpoint = cli("volume", "inspect", "-f", "{{.Mountpoint}}", anonymous).stdout.strip()
        assert "root:" in Path(mountpoint, "passwd").read_text()
        mounts = cli(
            "inspect", "-f", "{{range .Mounts}}{{.Type}} {{.Name}} {{.Destination}}{{end}}", container
        )
        assert mounts.stdout.strip() == f"volume {anonymous} /etc"
        assert cli("rm", "-v", container).returncode == 0
        assert anonymous not in volume_names(cli)
    finally:
        cli("rm", "-f", "-v", container)
        cli("rmi", image)


def test_run_rm_removes_anonymous_volumes_and_keeps_named_ones(cli, busybox, made) -> None:
    named = made.name("keep")
    made.volumes.append(named)
    before = volume_names(cli)
    result = cli("run", "--rm", "-v", "/scratch", "-v", f"{named}:/named", busybox, "touch", "/scratch/x")
    assert result.returncode == 0, result.stderr
    assert volume_names(cli) - before == {named}  # created on first use, kept


def test_a_tmpfs_volume_lives_while_a_container_uses_it(cli, busybox, made) -> None:
    volume, container = made.name("mem"), made.name("memuser")
    made.volumes.append(volume)
    made.containers.append(container)
    created = cli("volume", "create", "-o", "type=tmpfs", "-o", "device=tmpfs", "-o", "o=size=1m", volume)
    assert created.returncode == 0, created.stderr
    mountpoint = cli("volume", "inspect", "-f", "{{.Mountpoint}}", volume).stdout.strip()
    started = cli("run", "-d", "--name", container, "-v", f"{volume}:/m", busybox, "sleep", "300")
    assert started.returncode == 0, started.stderr
    assert mounts_under(Path(mountpoint)) == [mountpoint]
    full = cli(
        "run",
        "--rm",
        "-v",
        f"{volume}:/m",
        busybox,
        "sh",
        "-c",
        "dd if=/dev/zero of=/m/f bs=1k count=2048 2>&1",
    )
    assert "No space left on device" in full.stdout
    kept = cli("run", "--rm", "-v", f"{volume}:/m", busybox, "ls", "/m")
    assert kept.stdout == "f\n"  # the first container still holds the tmpfs: its data stays
    assert mounts_under(Path(mountpoint)) == [mountpoint]
    assert cli("stop", "-t", "0", container).returncode == 0
    assert mounts_under(Path(mountpoint)) == []


def test_prune_removes_unused_volumes_only(cli, busybox, made) -> None:
    unused, used, other = made.name("unused"), made.name("used"), made.name("other")
    container = made.name("pruneuser")
    made.volumes += [unused, used, other]
    made.containers.append(container)
    cli("volume", "create", "--label", "prunetest=yes", unused)
    cli("volume", "create", "--label", "prunetest=yes", used)
    cli("volume", "create", other)
    assert cli("create", "--name", container, "-v", f"{used}:/d", busybox).returncode == 0
    result = cli("volume", "prune", "-f", "--filter", "label=prunetest=yes")
    assert result.returncode == 0, result.stderr
    assert unused in result.stdout and used not in result.stdout
    names = volume_names(cli)
    assert unused not in names and used in names and other in names


def test_ls_filters_and_labels(cli, made) -> None:
    volume = made.name("labelled")
    made.volumes.append(volume)
    cli("volume", "create", "--label", "tier=db", volume)
    listed = cli("volume", "ls", "-q", "-f", "label=tier=db")
    assert listed.stdout.split() == [volume]
    labels = cli("volume", "inspect", "-f", "{{json .Labels}}", volume)
    assert labels.stdout.strip() == '{"tier":"db"}'


# ---- bad input ----------------------------------------------------------------------------------
def test_a_missing_bind_source_with_mount_is_refused(cli, busybox, tmp_path: Path) -> None:
    missing = tmp_path / "missing"
    result = cli("run", "--rm", "--mount", f"type=bind,source={missing},target=/x", busybox, "true")
    assert result.returncode == 125
    assert (
        f'invalid mount config for type "bind": bind source path does not exist: {missing}' in result.stderr
    )
    assert not missing.exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["-v", "VOL:/data:xyz"], "invalid mode: xyz"),
        (["-v", "VOL:/data:ro,rw"], "invalid mode: ro,rw"),
        (["-v", "VOL:data"], "invalid volume specification: 'VOL:data'"),
        (["-v", "VOL:/d", "-v", "VOL2:/d"], "Duplicate mount point: /d"),
        (["--mount", "type=volume,source=VOL,target=/d,volume-opt=foo=1"], 'invalid option: "foo"'),
        (
            ["--mount", "type=volume,source=VOL,target=/d,volume-driver=nosuchdriver"],
            'error looking up volume plugin nosuchdriver: plugin "nosuchdriver" not found',
        ),
        (["-v", "VOL:/a", "-v", "bad/name:/b"], "includes invalid characters for a local volume name"),
        (["--mount", "type=tmpfs,target=/d,source=x"], "field Source must not be specified"),
        (["--mount", "type=bind,target=/d"], "field Source must not be empty"),
    ],
)
def test_bad_mounts_create_nothing(cli, busybox, made, args: list[str], message: str) -> None:
    volume, second = made.name("half"), made.name("half2")
    made.volumes += [volume, second]
    args = [a.replace("VOL2", second).replace("VOL", volume) for a in args]
    before = volume_names(cli)
    containers_before = cli("ps", "-aq").stdout
    result = cli("run", "--rm", *args, busybox, "true")
    assert result.returncode == 125
    assert message.replace("VOL", volume) in result.stderr
    assert volume_names(cli) == before  # no volume left half-created
    assert cli("ps", "-aq").stdout == containers_before


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["-d", "nosuchdriver", "VOL"],
            'create VOL: error looking up volume plugin nosuchdriver: plugin "nosuchdriver" not found',
        ),
        (["-o", "foo=1", "VOL"], 'create VOL: invalid option: "foo"'),
        (["-o", "type=tmpfs", "VOL"], 'create VOL: missing required option: "device"'),
        (["bad/name"], 'create bad/name: "bad/name" includes invalid characters'),
        (["x"], "create x: volume name is too short"),
    ],
)
def test_bad_volume_create_is_refused(cli, daemon, made, args: list[str], message: str) -> None:
    volume = made.name("refused")
    made.volumes.append(volume)
    result = cli("volume", "create", *[a.replace("VOL", volume) for a in args])
    assert result.returncode == 1
    assert message.replace("VOL", volume) in result.stderr
    assert volume not in volume_names(cli)
    assert not (daemon.data_path / "volumes" / volume).exists()


def test_unknown_volumes_are_not_found(cli) -> None:
    for command in (["volume", "inspect", "nosuchvol"], ["volume", "rm", "nosuchvol"]):
        result = cli(*command)
        assert result.returncode == 1
        assert "get nosuchvol: no such volume" in result.stderr
    assert cli("volume", "rm", "-f", "nosuchvol").returncode == 0


def test_no_mount_is_left_after_the_containers_are_gone(cli, busybox, daemon) -> None:
    # after every other scenario of this module (it runs last in it): nothing mounted in volumes/
    assert [p for p in mounts_under(daemon.data_path / "volumes")] == []
    assert os.path.isdir(daemon.data_path / "volumes")


def test_volume_mounts_survive_a_daemon_crash(cli, busybox, daemon, made) -> None:
    volume, keeper, ender = made.name("crash"), made.name("keeper"), made.name("ender")
    made.volumes.append(volume)
    made.containers += [keeper, ender]
    cli("volume", "create", "-o", "type=tmpfs", "-o", "device=tmpfs", "-o", "o=size=1m", volume)
    mountpoint = cli("volume", "inspect", "-f", "{{.Mountpoint}}", volume).stdout.strip()
    assert cli("run", "-d", "--name", keeper, "-v", f"{volume}:/m", busybox, "sleep", "300").returncode == 0
    assert cli("run", "-d", "--name", ender, "-v", f"{volume}:/m", busybox, "sleep", "300").returncode == 0
    daemon.restart(kill=True)
    # both containers still hold the tmpfs; stopping one keeps it for the other, the last releases it
    assert cli("stop", "-t", "0", ender).returncode == 0
    assert mounts_under(Path(mountpoint)) == [mountpoint]
    assert cli("run", "--rm", "-v", f"{volume}:/m", busybox, "touch", "/m/still").returncode == 0
    assert cli("stop", "-t", "0", keeper).returncode == 0
    assert mounts_under(Path(mountpoint)) == []
    assert cli("volume", "inspect", "-f", "{{.Name}}", volume).stdout.strip() == volume


def test_tmpfs_mode_and_a_volume_in_a_read_only_container(cli, busybox, made) -> None:
    volume = made.name("rw")
    made.volumes.append(volume)
    result = cli(
        "run",
        "--rm",
        "--read-only",
        "-v",
        f"{volume}:/data",
        "--mount",
        "type=tmpfs,target=/t,tmpfs-mode=1770",
        busybox,
        "sh",
        "-c",
        "stat -c %a /t; echo ok > /data/f && cat /data/f; touch /x",
    )
    assert result.stdout == "1770\nok\n"
    assert "Read-only file system" in result.stderr


def test_a_file_bind_and_bind_propagation(cli, busybox, made, tmp_path: Path) -> None:
    conf = tmp_path / "app.conf"
    conf.write_text("setting=1\n")
    container = made.name("prop")
    made.containers.append(container)
    result = cli(
        "run",
        "--name",
        container,
        "-v",
        f"{conf}:/etc/app.conf:ro",
        "--mount",
        f"type=bind,source={tmp_path},target=/host,bind-propagation=rslave",
        busybox,
        "sh",
        "-c",
        "cat /etc/app.conf; ls /host",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "setting=1\napp.conf\n"
    mounts = cli(
        "inspect", "-f", "{{range .Mounts}}{{.Destination}} {{.RW}} {{.Propagation}};{{end}}", container
    )
    assert mounts.stdout.strip() == "/etc/app.conf false rprivate;/host true rslave;"
