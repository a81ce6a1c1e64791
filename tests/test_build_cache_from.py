"""``--cache-from`` with a loaded image (no local build chain behind it), and ``rmi`` taking a build's
hidden intermediate images with it (``--no-prune`` keeping them)."""

from __future__ import annotations

import json

import pytest

DOCKERFILE = 'FROM busybox\nENV A=1\nRUN echo hi > /hi\nCOPY f.txt /f.txt\nCMD ["cat", "/f.txt"]\n'


def all_images(cli) -> set[str]:
    return set(cli("images", "-a", "-q", "--no-trunc").stdout.split())


def parent_of(cli, image: str) -> str:
    return json.loads(cli("inspect", "--type", "image", image).stdout)[0]["Parent"]


def chain(cli, image: str, stop: str) -> list[str]:
    """``image``'s parents up to (without) ``stop``, nearest first."""
    found = []
    current = parent_of(cli, image)
    while current and current != stop:
        found.append(current)
        current = parent_of(cli, current)
    return found


@pytest.fixture
def classic_docker(docker):
    return type(docker)(docker.argv, {**docker.env, "DOCKER_BUILDKIT": "0"})


@pytest.mark.docker_cli
def test_cache_from_a_saved_deleted_and_loaded_image(cli, classic_docker, busybox, tmp_path):
    busybox_id = json.loads(cli("inspect", "--type", "image", "busybox").stdout)[0]["Id"]
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "Dockerfile").write_text(DOCKERFILE)
    (context / "f.txt").write_text("one\n")
    built = cli("build", "-q", "-t", "bt-cfl:1", str(context))
    assert built.returncode == 0, built.stderr
    image_id = built.stdout.strip()
    intermediates = chain(cli, image_id, busybox_id)
    assert len(intermediates) == 3  # ENV, RUN, COPY
    archive = tmp_path / "saved.tar"
    assert cli("save", "-o", str(archive), "bt-cfl:1").returncode == 0

    removed = cli("rmi", "bt-cfl:1")
    assert removed.returncode == 0, removed.stderr
    assert removed.stdout.splitlines() == [
        "Untagged: bt-cfl:1",
        *(f"Deleted: {i}" for i in [image_id, *intermediates]),
    ]
    assert not ({image_id, *intermediates} & all_images(cli)) and busybox_id in all_images(cli)

    loaded = cli("load", "-i", str(archive))
    assert loaded.returncode == 0, loaded.stderr
    assert parent_of(cli, "bt-cfl:1") == ""  # a loaded image: no build chain behind it
    plain = cli("build", "-t", "bt-cfl:plain", str(context))  # not a cache source unless named
    assert plain.returncode == 0 and "Using cache" not in plain.stdout, plain.stdout
    assert cli("rmi", "bt-cfl:plain").returncode == 0
    reused = cli("build", "--cache-from", "bt-cfl:1", "-t", "bt-cfl:2", str(context))
    assert reused.returncode == 0, reused.stderr
    steps = reused.stdout.split("Step ")[1:]
    assert ["Using cache" in s for s in steps] == [False, True, True, True, True], reused.stdout
    assert "Running in" not in reused.stdout
    assert json.loads(cli("inspect", "--type", "image", "bt-cfl:2").stdout)[0]["Id"] == image_id
    assert chain(cli, image_id, busybox_id) == intermediates  # restored, with their parents

    # the docker CLI, with a changed COPY source: ENV and RUN come from the cache, COPY reruns
    assert cli("rmi", "bt-cfl:2").returncode == 0
    removed = classic_docker("rmi", "bt-cfl:1")  # the docker CLI's rmi prunes the same way
    assert removed.returncode == 0, removed.stderr
    assert [line for line in removed.stdout.splitlines() if line.startswith("Deleted: ")] == [
        f"Deleted: {i}" for i in [image_id, *intermediates]
    ]
    assert not ({image_id, *intermediates} & all_images(cli))
    assert cli("load", "-i", str(archive)).returncode == 0
    (context / "f.txt").write_text("two\n")
    changed = classic_docker("build", "--cache-from", "bt-cfl:1", "-t", "bt-cfl:3", str(context))
    assert changed.returncode == 0, changed.stderr
    steps = changed.stdout.split("Step ")[1:]
    assert ["Using cache" in s for s in steps] == [False, True, True, False, False], changed.stdout
    assert cli("run", "--rm", "bt-cfl:3").stdout == "two\n"
    assert cli("rmi", "bt-cfl:3", "bt-cfl:1").returncode == 0
    assert busybox_id in all_images(cli)


def test_rmi_prunes_untagged_parents_unless_told_not_to(cli, busybox, tmp_path):
    busybox_id = json.loads(cli("inspect", "--type", "image", "busybox").stdout)[0]["Id"]
    for name in ("a", "b"):
        context = tmp_path / name
        context.mkdir()
        (context / "Dockerfile").write_text(f"FROM busybox\nRUN echo shared > /s\nLABEL which={name}\n")
        result = cli("build", "-q", "-t", f"bt-prune:{name}", str(context))
        assert result.returncode == 0, result.stderr
    image_a = json.loads(cli("inspect", "--type", "image", "bt-prune:a").stdout)[0]["Id"]
    image_b = json.loads(cli("inspect", "--type", "image", "bt-prune:b").stdout)[0]["Id"]
    shared = parent_of(cli, image_a)
    assert parent_of(cli, image_b) == shared and parent_of(cli, shared) == busybox_id

    # the shared RUN image has another child: it stays
    assert cli("rmi", "bt-prune:a").stdout.splitlines() == ["Untagged: bt-prune:a", f"Deleted: {image_a}"]
    assert shared in all_images(cli)
    # --no-prune keeps the parent even once it has no child left
    kept = cli("rmi", "--no-prune", "bt-prune:b")
    assert kept.stdout.splitlines() == ["Untagged: bt-prune:b", f"Deleted: {image_b}"]
    assert shared in all_images(cli)
    # a tagged parent stops the pruning; busybox (tagged) is never taken
    assert cli("tag", shared, "bt-prune:shared").returncode == 0
    removed = cli("rmi", "bt-prune:shared")
    assert removed.stdout.splitlines() == ["Untagged: bt-prune:shared", f"Deleted: {shared}"]
    assert busybox_id in all_images(cli)
