"""Volumes and mounts through the real docker CLI and the docker SDK against our daemon."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import docker as docker_sdk
import pytest


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def cleanup(cli):
    containers: list[str] = []
    volumes: list[str] = []
    try:
        yield containers, volumes
    finally:
        for container in containers:
            cli("rm", "-f", "-v", container)
        for volume in volumes:
            cli("volume", "rm", "-f", volume)


def test_docker_cli_volume_lifecycle(docker, busybox, cleanup) -> None:
    containers, volumes = cleanup
    volume, holder = unique("dkvol"), unique("dkholder")
    volumes.append(volume)
    containers.append(holder)
    assert docker("volume", "create", "--label", "app=web", volume).stdout.strip() == volume
    listed = docker("volume", "ls", "--format", "{{.Driver}} {{.Name}}")
    assert f"local {volume}" in listed.stdout.splitlines()
    inspected = json.loads(docker("volume", "inspect", volume).stdout)
    assert inspected[0]["Name"] == volume and inspected[0]["Labels"] == {"app": "web"}
    assert inspected[0]["Mountpoint"].endswith(f"/volumes/{volume}/_data")

    wrote = docker("run", "--rm", "-v", f"{volume}:/data", busybox, "sh", "-c", "echo hi > /data/f")
    assert wrote.returncode == 0, wrote.stderr
    read = docker(
        "run",
        "--rm",
        "--mount",
        f"type=volume,source={volume},target=/data,readonly",
        busybox,
        "sh",
        "-c",
        "cat /data/f; touch /data/g",
    )
    assert read.stdout == "hi\n" and "Read-only file system" in read.stderr

    assert docker("create", "--name", holder, "-v", f"{volume}:/data", busybox).returncode == 0
    mounts = json.loads(docker("inspect", "-f", "{{json .Mounts}}", holder).stdout)
    assert mounts == [
        {
            "Type": "volume",
            "Name": volume,
            "Source": inspected[0]["Mountpoint"],
            "Destination": "/data",
            "Driver": "local",
            "Mode": "z",
            "RW": True,
            "Propagation": "",
        }
    ]
    assert (
        docker("ps", "-a", "--filter", f"name={holder}", "--format", "{{.Mounts}}").stdout.strip() == volume
    )
    by_volume = docker("ps", "-a", "--filter", f"volume={volume}", "--format", "{{.Names}}")
    assert by_volume.stdout.split() == [holder]
    busy = docker("volume", "rm", volume)
    assert busy.returncode == 1 and "volume is in use" in busy.stderr
    assert docker("rm", holder).returncode == 0
    assert docker("volume", "rm", volume).stdout.strip() == volume
    assert volume not in docker("volume", "ls", "-q").stdout.split()


def test_docker_cli_binds_tmpfs_and_errors(docker, busybox, tmp_path: Path) -> None:
    (tmp_path / "in").write_text("host\n")
    result = docker(
        "run",
        "--rm",
        "-v",
        f"{tmp_path}:/h:ro",
        "--tmpfs",
        "/run:size=1m",
        busybox,
        "sh",
        "-c",
        "cat /h/in; grep ' /run ' /proc/mounts",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("host\ntmpfs /run tmpfs ") and "size=1024k" in result.stdout
    missing = tmp_path / "missing"
    refused = docker("run", "--rm", "--mount", f"type=bind,source={missing},target=/x", busybox, "true")
    assert refused.returncode == 125
    assert f"bind source path does not exist: {missing}" in refused.stderr
    assert not missing.exists()
    bad_mode = docker("run", "--rm", "-v", f"{tmp_path}:/h:nope", busybox, "true")
    assert bad_mode.returncode == 125 and "invalid mode: nope" in bad_mode.stderr


def test_docker_cli_rm_v_and_prune(docker, busybox, cleanup) -> None:
    containers, volumes = cleanup
    container, unused = unique("dkanon"), unique("dkunused")
    containers.append(container)
    volumes.append(unused)
    assert docker("run", "--name", container, "-v", "/anon", busybox, "touch", "/anon/x").returncode == 0
    anonymous = json.loads(docker("inspect", "-f", "{{json .Mounts}}", container).stdout)[0]["Name"]
    assert anonymous in docker("volume", "ls", "-q").stdout.split()
    assert docker("rm", "-v", container).returncode == 0
    assert anonymous not in docker("volume", "ls", "-q").stdout.split()
    docker("volume", "create", "--label", "dkprune=1", unused)
    pruned = docker("volume", "prune", "-f", "--filter", "label=dkprune=1")
    assert pruned.returncode == 0, pruned.stderr
    assert f"Deleted Volumes:\n{unused}\n" in pruned.stdout


def test_sdk_volumes(sdk, busybox, cleanup) -> None:
    containers, volumes = cleanup
    name, container_name = unique("sdkvol"), unique("sdkholder")
    volumes.append(name)
    containers.append(container_name)
    volume = sdk.volumes.create(name, labels={"team": "a"})
    assert volume.name == name and volume.attrs["Labels"] == {"team": "a"}
    assert name in [v.name for v in sdk.volumes.list(filters={"label": "team=a"})]
    output = sdk.containers.run(
        busybox,
        ["sh", "-c", "echo sdk > /v/f; cat /v/f"],
        volumes={name: {"bind": "/v", "mode": "rw"}},
        remove=True,
    )
    assert output == b"sdk\n"
    holder = sdk.containers.create(busybox, "true", name=container_name, volumes=[f"{name}:/v:ro"])
    with pytest.raises(docker_sdk.errors.APIError) as refused:
        sdk.volumes.get(name).remove()
    assert refused.value.status_code == 409
    holder.remove(v=True)
    with pytest.raises(docker_sdk.errors.NotFound):
        sdk.volumes.get("sdk-no-such-volume")
    sdk.volumes.get(name).remove()
    assert name not in [v.name for v in sdk.volumes.list()]
    unused = unique("sdkprune")
    volumes.append(unused)
    sdk.volumes.create(unused, labels={"sdkprune": "1"})
    report = sdk.volumes.prune(filters={"label": "sdkprune=1"})
    assert report["VolumesDeleted"] == [unused]


def test_volume_events(docker, cleanup) -> None:
    _containers, volumes = cleanup
    name = unique("evvol")
    volumes.append(name)
    start = int(time.time()) - 1
    docker("volume", "create", name)
    docker("volume", "rm", name)
    events = docker(
        "events", "--since", str(start), "--until", str(int(time.time()) + 1),
        "--filter", "type=volume", "--format", "{{.Action}} {{.Actor.ID}} {{.Actor.Attributes.driver}}",
    )
    assert events.returncode == 0, events.stderr
    assert [line for line in events.stdout.splitlines() if name in line] == [
        f"create {name} local",
        f"destroy {name} local",
    ]
