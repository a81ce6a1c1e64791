"""Clean-up commands on the real daemon: ``container prune``, ``system df``, ``builder prune`` and
``system prune``, through our CLI, the docker CLI and the docker SDK.

The daemon is shared by the whole session, so every prune here is scoped by a label unique to the
test: a prune without one would also take other tests' leftovers.
"""

from __future__ import annotations

import json
import re
import uuid
from urllib.parse import quote

import pytest


@pytest.fixture
def made(cli):
    """A unique label and the names to remove at teardown (containers, volumes, images)."""

    class Made:
        def __init__(self) -> None:
            self.token = uuid.uuid4().hex[:10]
            self.label = f"prunetest={self.token}"
            self.containers: list[str] = []
            self.volumes: list[str] = []
            self.images: list[str] = []

        def name(self, prefix: str) -> str:
            name = f"{prefix}-{self.token}"
            self.containers.append(name)
            return name

    made = Made()
    try:
        yield made
    finally:
        for container in made.containers:
            cli("rm", "-f", "-v", container)
        for volume in made.volumes:
            cli("volume", "rm", "-f", volume)
        for image in made.images:
            cli("rmi", "-f", image)


def names(cli) -> set[str]:
    result = cli("ps", "-a", "--format", "{{.Names}}")
    assert result.returncode == 0, result.stderr
    return set(result.stdout.split())


def run_ok(cli, *args: str) -> None:
    result = cli("run", *args)
    assert result.returncode == 0, result.stderr


def stopped_and_running(cli, busybox, made) -> dict[str, str]:
    """Containers under ``made.label``: exited (wrote 3000 bytes), created, running; and one exited
    under another label. Returns name by role."""
    roles = {role: made.name(role) for role in ("exited", "created", "running", "other")}
    run_ok(
        cli,
        "--label",
        made.label,
        "--name",
        roles["exited"],
        busybox,
        "sh",
        "-c",
        "head -c 3000 /dev/zero >/b",
    )
    assert cli("create", "--label", made.label, "--name", roles["created"], busybox, "true").returncode == 0
    started = cli("run", "-d", "--label", made.label, "--name", roles["running"], busybox, "sleep", "300")
    assert started.returncode == 0, started.stderr
    assert cli("run", "--label", "prunetest=other", "--name", roles["other"], busybox, "true").returncode == 0
    return roles


def test_container_prune_removes_only_stopped_containers_with_the_label(cli, busybox, made) -> None:
    roles = stopped_and_running(cli, busybox, made)
    declined = cli("container", "prune", "--filter", f"label={made.label}", input="n\n")
    assert declined.returncode == 0
    assert declined.stdout.startswith(
        "WARNING! This will remove all stopped containers.\nAre you sure you want to continue? [y/N] "
    )
    assert set(roles.values()) <= names(cli)

    result = cli("container", "prune", "-f", "--filter", f"label={made.label}")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Deleted Containers:\n")
    left = names(cli)
    assert roles["exited"] not in left and roles["created"] not in left
    assert roles["running"] in left and roles["other"] in left
    reclaimed = re.search(r"^Total reclaimed space: ([0-9.]+)kB$", result.stdout, re.M)
    assert reclaimed and float(reclaimed.group(1)) >= 3.0, result.stdout


def test_container_prune_api_reports_writable_layer_bytes(api, cli, busybox, made) -> None:
    name = made.name("sized")
    run_ok(
        cli,
        "--label",
        made.label,
        "--name",
        name,
        busybox,
        "sh",
        "-c",
        "head -c 5000 /dev/zero >/a; ln /a /b",
    )
    container_id = cli("inspect", "-f", "{{.Id}}", name).stdout.strip()
    filters = quote(json.dumps({"label": {made.label: True}}))
    status, body = api("POST", f"/v1.41/containers/prune?filters={filters}")
    assert status == 200, body
    assert body["ContainersDeleted"] == [container_id]
    assert 5000 <= body["SpaceReclaimed"] < 6000  # the hard link counts once

    status, body = api("POST", f"/v1.41/containers/prune?filters={quote(json.dumps({'bogus': ['x']}))}")
    assert status == 400 and "invalid filter 'bogus'" in body["message"]
    status, body = api("POST", f"/v1.41/containers/prune?filters={filters}")
    assert status == 200 and body == {"ContainersDeleted": None, "SpaceReclaimed": 0}


def test_system_df_counts_images_containers_volumes(api, cli, busybox, made) -> None:
    used, unused = f"dfused-{made.token}", f"dfunused-{made.token}"
    made.volumes += [used, unused]
    assert cli("volume", "create", unused).returncode == 0
    runner = made.name("dfrun")
    script = "head -c 2000 /dev/zero > /v/data; sleep 300"
    run_ok(cli, "-d", "--name", runner, "-v", f"{used}:/v", busybox, "sh", "-c", script)
    stopped = made.name("dfstopped")
    assert cli("run", "--name", stopped, busybox, "sh", "-c", "head -c 4000 /dev/zero > /x").returncode == 0
    status, usage = api("GET", "/v1.41/system/df")
    assert status == 200, usage
    assert set(usage) == {"LayersSize", "Images", "Containers", "Volumes", "BuildCache"}
    image = next(i for i in usage["Images"] if "busybox:latest" in i["RepoTags"])
    assert image["Containers"] >= 2 and image["Size"] > 0 and usage["LayersSize"] >= image["Size"]
    containers = {c["Names"][0][1:]: c for c in usage["Containers"]}
    assert containers[stopped]["SizeRw"] >= 4000 and containers[stopped]["State"] == "exited"
    assert containers[stopped]["SizeRootFs"] == containers[stopped]["SizeRw"] + image["Size"]
    assert containers[runner]["State"] == "running"
    volumes = {v["Name"]: v["UsageData"] for v in usage["Volumes"]}
    assert volumes[used]["RefCount"] == 1 and volumes[used]["Size"] >= 2000
    assert volumes[unused] == {"Size": 0, "RefCount": 0}

    table = cli("system", "df")
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert re.split(r"\s{2,}", lines[0]) == ["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"]
    rows = {re.split(r"\s{2,}", line)[0]: re.split(r"\s{2,}", line)[1:] for line in lines[1:]}
    status, usage = api("GET", "/v1.41/system/df")
    running = [c for c in usage["Containers"] if c["State"] == "running"]
    assert rows["Containers"][:2] == [str(len(usage["Containers"])), str(len(running))]
    assert rows["Images"][:2] == [
        str(len(usage["Images"])),
        str(sum(1 for i in usage["Images"] if i["Containers"])),
    ]
    in_use = [v for v in usage["Volumes"] if v["UsageData"]["RefCount"]]
    assert rows["Local Volumes"][:2] == [str(len(usage["Volumes"])), str(len(in_use))]
    verbose = cli("system", "df", "-v")
    assert verbose.returncode == 0, verbose.stderr
    assert "Images space usage:" in verbose.stdout and runner in verbose.stdout and unused in verbose.stdout


def build(cli, context, made, tag: str | None = None) -> str:
    (context / "Dockerfile").write_text(
        f"FROM busybox\nLABEL prunetest={made.token}\n"
        f"RUN head -c 7000 /dev/zero > /seven\nRUN echo {made.token} > /t\n"
    )
    args = ["build", "-q", *(["-t", tag] if tag else []), str(context)]
    result = cli(*args)
    assert result.returncode == 0, result.stderr
    image_id = result.stdout.strip().splitlines()[-1]
    made.images.append(tag or image_id)
    return image_id


def test_builder_prune_removes_dangling_build_steps(api, cli, busybox, made, tmp_path) -> None:
    image_id = build(cli, tmp_path, made)
    status, usage = api("GET", "/v1.41/system/df")
    steps = {e["ID"]: e for e in usage["BuildCache"]}
    # the hidden steps (LABEL, first RUN) are cache; their layers are inside the dangling result,
    # which ``system df`` counts as an image: shared, so not counted twice
    assert image_id.removeprefix("sha256:")[:25] not in steps
    ours = [e for e in steps.values() if made.token in e["Description"] or "/seven" in e["Description"]]
    assert len(ours) == 2 and all(e["Shared"] for e in ours) and sum(e["Size"] for e in ours) >= 7000
    label = quote(json.dumps({"label": {made.label: True}}))
    status, body = api("POST", f"/v1.41/build/prune?keep-storage=1000000000&filters={label}")
    assert status == 200 and body == {"CachesDeleted": None, "SpaceReclaimed": 0}  # all of it fits
    result = cli("builder", "prune", "-f", "--filter", f"label=prunetest={made.token}")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Deleted build cache objects:\n")
    assert image_id.removeprefix("sha256:")[:25] in result.stdout
    reclaimed = re.search(r"^Total reclaimed space: ([0-9.]+)kB$", result.stdout, re.M)
    assert reclaimed and 7 <= float(reclaimed.group(1)) < 40, result.stdout  # two small layer tars
    assert cli("inspect", "--type", "image", image_id).returncode != 0


def test_builder_prune_all_forgets_the_cache_of_a_tagged_image(api, cli, busybox, made, tmp_path) -> None:
    tag = f"prunetagged:{made.token}"
    image_id = build(cli, tmp_path, made, tag)
    kept = cli("builder", "prune", "-f", "--filter", f"label=prunetest={made.token}")
    assert kept.returncode == 0 and "Deleted build cache objects" not in kept.stdout
    status, body = api(
        "POST", f"/v1.41/build/prune?all=1&filters={quote(json.dumps({'label': {made.label: True}}))}"
    )
    assert status == 200 and len(body["CachesDeleted"]) >= 2 and body["SpaceReclaimed"] == 0
    assert cli("inspect", "--type", "image", tag).returncode == 0
    rebuilt = build(cli, tmp_path, made, tag)
    assert rebuilt != image_id  # nothing came from the cache: the steps ran again

    status, body = api("POST", "/v1.41/build/prune?keep-storage=-1")
    assert status == 400


def test_docker_cli_container_prune_df_and_system_prune(docker, cli, busybox, made) -> None:
    roles = stopped_and_running(cli, busybox, made)
    result = docker("container", "prune", "-f", "--filter", f"label={made.label}")
    assert result.returncode == 0, result.stderr
    assert "Deleted Containers:" in result.stdout
    left = names(cli)
    assert roles["exited"] not in left and roles["running"] in left and roles["other"] in left

    df = docker("system", "df")
    assert df.returncode == 0, df.stderr
    assert df.stdout.split("\n", 1)[0].split() == ["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"]
    assert {line.split("  ")[0] for line in df.stdout.splitlines()[1:]} >= {"Images", "Containers"}
    verbose = docker("system", "df", "-v")
    assert verbose.returncode == 0, verbose.stderr
    assert roles["running"] in verbose.stdout

    again = made.name("again")
    assert cli("run", "--label", made.label, "--name", again, busybox, "true").returncode == 0
    pruned = docker("system", "prune", "-f", "--filter", f"label={made.label}")
    assert pruned.returncode == 0, pruned.stderr
    assert "Total reclaimed space:" in pruned.stdout
    left = names(cli)
    assert again not in left and roles["running"] in left


def test_sdk_containers_prune_and_df(sdk, cli, busybox, made) -> None:
    roles = stopped_and_running(cli, busybox, made)
    report = sdk.containers.prune(filters={"label": made.label})
    ids = {cli("inspect", "-f", "{{.Id}}", roles[r]).stdout.strip() for r in ("running", "other")}
    assert report["ContainersDeleted"] and not ids & set(report["ContainersDeleted"])
    assert len(report["ContainersDeleted"]) == 2
    usage = sdk.df()
    assert {"LayersSize", "Images", "Containers", "Volumes", "BuildCache"} <= set(usage)
    assert any(c["Names"] == ["/" + roles["running"]] for c in usage["Containers"])


def test_pyengine_system_prune_composes_the_prunes(cli, busybox, made) -> None:
    roles = stopped_and_running(cli, busybox, made)
    volume = f"sysprune-{made.token}"
    made.volumes.append(volume)
    assert cli("volume", "create", "--label", made.label, volume).returncode == 0
    declined = cli("system", "prune", "--volumes", "--filter", f"label={made.label}", input="\n")
    assert declined.stdout.startswith(
        "WARNING! This will remove:\n  - all stopped containers\n"
        "  - all networks not used by at least one container\n"
        "  - all volumes not used by at least one container\n"
    )
    assert roles["exited"] in names(cli)
    result = cli("system", "prune", "-f", "--volumes", "--filter", f"label={made.label}")
    assert result.returncode == 0, result.stderr
    assert "Deleted Containers:" in result.stdout and "Deleted Volumes:\n" + volume in result.stdout
    assert result.stdout.splitlines()[-1].startswith("Total reclaimed space: ")
    left = names(cli)
    assert roles["exited"] not in left and roles["created"] not in left and roles["running"] in left
    assert volume not in cli("volume", "ls", "-q").stdout.split()
