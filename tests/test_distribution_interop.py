"""Pull, push, save and load against real peers, all on loopback: the reference registry
(docker-registry), a private Docker daemon, and the real docker CLI against our daemon.

Only ``127.0.0.1:PORT/...`` names are used: nothing may go to Docker Hub.
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from pathlib import Path

import pytest
from pyengine.testing import dockerd as dockerd_harness
from pyengine.testing.reference_registry import reference_registry, registry_available

pytestmark = pytest.mark.skipif(not registry_available(), reason="docker-registry is not installed")
DOCKER = "/usr/local/bin/docker" if os.path.exists("/usr/local/bin/docker") else "docker"


@pytest.fixture(scope="module")
def registry():
    with reference_registry() as instance:
        yield instance


@pytest.fixture(scope="module")
def real_docker(busybox_tar, tmp_path_factory):
    """A private dockerd with busybox imported; ``real_docker(*args)`` runs the docker CLI on it."""
    if not dockerd_harness.dockerd_available():
        pytest.skip("dockerd is not installed")
    config_dir = tmp_path_factory.mktemp("dockercfg")
    with dockerd_harness.private_dockerd() as daemon:
        env = {**os.environ, "DOCKER_CONFIG": str(config_dir), "DOCKER_HOST": daemon.host}
        env.pop("DOCKER_BUILDKIT", None)

        def run(*args: str, check: bool = True) -> subprocess.CompletedProcess:
            result = subprocess.run([DOCKER, *args], capture_output=True, text=True, env=env, timeout=180)
            if check:
                assert result.returncode == 0, f"docker {' '.join(args)}: {result.stderr}"
            return result

        run("import", "-c", 'CMD ["sh"]', str(busybox_tar), "busybox:latest")
        yield run


def unique(registry, name: str) -> str:
    return f"{registry.address}/{name}-{uuid.uuid4().hex[:8]}"


def test_push_to_the_reference_registry_then_pull_and_run(cli, busybox, registry):
    ref = unique(registry, "team/bb") + ":1"
    assert cli("tag", busybox, ref).returncode == 0
    pushed = cli("push", ref)
    assert pushed.returncode == 0, pushed.stderr
    assert "Pushed" in pushed.stdout and "digest: sha256:" in pushed.stdout
    digest = pushed.stdout.split("digest: ")[1].split()[0]
    assert cli("rmi", ref).returncode == 0
    pulled = cli("pull", ref)
    assert pulled.returncode == 0, pulled.stderr
    assert f"Digest: {digest}" in pulled.stdout
    assert "Status: Downloaded newer image" in pulled.stdout
    run = cli("run", "--rm", ref, "echo", "ok")
    assert run.stdout == "ok\n", run.stderr
    inspect = json.loads(cli("inspect", ref).stdout)[0]
    assert f"{ref.rsplit(':', 1)[0]}@{digest}" in inspect["RepoDigests"]
    again = cli("pull", ref)
    assert "Status: Image is up to date" in again.stdout
    assert cli("rmi", ref).returncode == 0


def test_push_skips_existing_blobs_and_mounts_across_repositories(cli, busybox, registry):
    first = unique(registry, "a/bb") + ":1"
    second = unique(registry, "b/bb") + ":1"
    cli("tag", busybox, first)
    assert cli("push", first).returncode == 0
    again = cli("push", first)
    assert "Layer already exists" in again.stdout, again.stdout
    cli("pull", first)  # records the repo digest: the registry holds its blobs in that repository
    cli("tag", first, second)
    mounted = cli("push", second)
    assert mounted.returncode == 0, mounted.stderr
    assert "Mounted from" in mounted.stdout, mounted.stdout
    cli("rmi", first, second)


def test_docker_pulls_what_we_pushed_and_runs_it(cli, busybox, registry, real_docker):
    ref = unique(registry, "ours/bb") + ":v1"
    cli("tag", busybox, ref)
    assert cli("push", ref).returncode == 0
    pulled = real_docker("pull", ref)
    assert "Downloaded newer image" in pulled.stdout
    run = real_docker("run", "--rm", "--network", "none", ref, "echo", "from-pyengine")
    assert run.stdout == "from-pyengine\n"
    cli("rmi", ref)


def test_we_pull_what_docker_pushed_and_run_it(cli, daemon, registry, real_docker):
    ref = unique(registry, "theirs/bb") + ":v1"
    real_docker("tag", "busybox:latest", ref)
    real_docker("push", ref)
    pulled = cli("pull", ref)
    assert pulled.returncode == 0, pulled.stderr
    run = cli("run", "--rm", ref, "sh", "-c", "echo from-docker")
    assert run.stdout == "from-docker\n", run.stderr
    cli("rmi", ref)


def test_docker_save_loads_into_pyengine_and_runs(cli, real_docker, tmp_path):
    archive = tmp_path / "docker-save.tar"
    real_docker("tag", "busybox:latest", "127.0.0.1:1/saved/bb:1")
    real_docker("save", "-o", str(archive), "127.0.0.1:1/saved/bb:1")
    loaded = cli("load", "-i", str(archive))
    assert loaded.returncode == 0, loaded.stderr
    assert "Loaded image: 127.0.0.1:1/saved/bb:1" in loaded.stdout
    run = cli("run", "--rm", "127.0.0.1:1/saved/bb:1", "echo", "loaded")
    assert run.stdout == "loaded\n", run.stderr
    cli("rmi", "127.0.0.1:1/saved/bb:1")


def test_our_save_loads_into_docker_and_runs(cli, busybox, real_docker, tmp_path):
    archive = tmp_path / "pyengine-save.tar"
    cli("tag", busybox, "127.0.0.1:1/ours-saved/bb:1")
    saved = cli("save", "-o", str(archive), "127.0.0.1:1/ours-saved/bb:1")
    assert saved.returncode == 0, saved.stderr
    loaded = real_docker("load", "-i", str(archive))
    assert "127.0.0.1:1/ours-saved/bb:1" in loaded.stdout
    run = real_docker("run", "--rm", "--network", "none", "127.0.0.1:1/ours-saved/bb:1", "echo", "ok")
    assert run.stdout == "ok\n"
    cli("rmi", "127.0.0.1:1/ours-saved/bb:1")


def test_save_then_load_round_trip_keeps_the_image_id(cli, busybox, tmp_path):
    archive = tmp_path / "roundtrip.tar"
    image_id = cli("inspect", "-f", "{{.Id}}", busybox).stdout.strip()
    cli("tag", busybox, "roundtrip:1")
    assert cli("save", "-o", str(archive), "roundtrip:1").returncode == 0
    assert cli("rmi", "roundtrip:1").returncode == 0
    assert cli("load", "-i", str(archive)).returncode == 0
    assert cli("inspect", "-f", "{{.Id}}", "roundtrip:1").stdout.strip() == image_id
    cli("rmi", "roundtrip:1")


def test_oci_layout_without_manifest_json_loads(cli, busybox, tmp_path):
    import tarfile

    archive, oci_only = tmp_path / "full.tar", tmp_path / "oci.tar"
    cli("tag", busybox, "ocilayout:1")
    assert cli("save", "-o", str(archive), "ocilayout:1").returncode == 0
    with tarfile.open(archive) as source, tarfile.open(oci_only, "w") as target:
        for member in source.getmembers():
            if member.name not in ("manifest.json", "repositories"):
                target.addfile(member, source.extractfile(member))
    cli("rmi", "ocilayout:1")
    loaded = cli("load", "-i", str(oci_only))
    assert "Loaded image: ocilayout:1" in loaded.stdout, loaded.stderr
    assert cli("run", "--rm", "ocilayout:1", "true").returncode == 0
    cli("rmi", "ocilayout:1")


@pytest.mark.docker_cli
def test_docker_cli_pushes_and_pulls_through_our_daemon(docker, busybox, registry):
    ref = unique(registry, "dockercli/bb") + ":1"
    assert docker("tag", busybox, ref).returncode == 0
    pushed = docker("push", ref)
    assert pushed.returncode == 0, pushed.stderr
    assert "digest: sha256:" in pushed.stdout
    assert docker("rmi", ref).returncode == 0
    pulled = docker("pull", ref)
    assert pulled.returncode == 0, pulled.stderr
    assert "Status: Downloaded newer image" in pulled.stdout
    assert docker("run", "--rm", ref, "echo", "hi").stdout == "hi\n"
    missing = docker("pull", f"{registry.address}/no/such:1")
    assert missing.returncode == 1 and "not found" in missing.stderr
    docker("rmi", ref)


@pytest.mark.docker_sdk
def test_sdk_pull_and_push(sdk, busybox, registry):
    repository = unique(registry, "sdk/bb")
    sdk.images.get(busybox).tag(repository, "1")
    lines = list(sdk.images.push(repository, tag="1", stream=True, decode=True))
    assert any("aux" in line for line in lines), lines
    sdk.images.remove(f"{repository}:1")
    image = sdk.images.pull(repository, tag="1")
    assert f"{repository}:1" in image.tags
    assert any(d.startswith(repository + "@sha256:") for d in image.attrs["RepoDigests"])
    sdk.images.remove(f"{repository}:1")


def test_login_logout_against_htpasswd_registry(cli, busybox, tmp_path):
    env_config = tmp_path / "dockercfg"
    with reference_registry(users={"alice": "s3cret"}) as locked:
        ref = f"{locked.address}/private/bb:1"
        cli("tag", busybox, ref)
        env = {"DOCKER_CONFIG": str(env_config)}
        denied = cli_with_env(cli, env, "push", ref)
        assert denied.returncode == 1 and "no basic auth credentials" in denied.stderr
        bad = cli_with_env(
            cli, env, "login", "-u", "alice", "--password-stdin", locked.address, input="wrong\n"
        )
        assert bad.returncode == 1 and "401 Unauthorized" in bad.stderr
        good = cli_with_env(
            cli, env, "login", "-u", "alice", "--password-stdin", locked.address, input="s3cret\n"
        )
        assert good.returncode == 0 and "Login Succeeded" in good.stdout, good.stderr
        stored = json.loads((env_config / "config.json").read_text())
        assert locked.address in stored["auths"]
        assert cli_with_env(cli, env, "push", ref).returncode == 0
        cli("rmi", ref)
        assert cli_with_env(cli, env, "pull", ref).returncode == 0
        out = cli_with_env(cli, env, "logout", locked.address)
        assert f"Removing login credentials for {locked.address}" in out.stdout
        assert locked.address not in json.loads((env_config / "config.json").read_text())["auths"]
        cli("rmi", ref)
        assert cli_with_env(cli, env, "pull", ref).returncode == 1


def cli_with_env(cli, extra: dict[str, str], *args: str, input: str | None = None):
    return subprocess.run(
        [*cli.argv, *args], input=input, capture_output=True, text=True, timeout=120, env={**cli.env, **extra}
    )


def test_pull_shows_live_layer_bars_on_a_terminal(cli, daemon, registry, run_in_pty, tmp_path):
    import io
    import tarfile

    layer = tmp_path / "layer.tar"
    with tarfile.open(layer, "w") as tar:  # a layer of its own: nothing of it is present locally
        info = tarfile.TarInfo("payload.bin")
        info.size = 3 << 20
        tar.addfile(info, io.BytesIO(os.urandom(info.size)))
    ref = unique(registry, "tty/bb") + ":1"
    assert cli("import", str(layer), ref).returncode == 0
    assert cli("push", ref).returncode == 0
    cli("rmi", ref)
    output, _status = run_in_pty([*cli.argv, "pull", ref], [], env=cli.env)
    # (the pty harness may report -1 when the pty closes before it reaps the client: check the output)
    assert output.rstrip().endswith(ref.encode()), output
    assert b"Downloading [" in output and b"Pull complete" in output
    assert b"\x1b[" in output  # the layer's line is redrawn in place
    cli("rmi", ref)


def test_pull_by_digest(cli, busybox, registry):
    ref = unique(registry, "bydigest/bb")
    cli("tag", busybox, f"{ref}:1")
    pushed = cli("push", f"{ref}:1")
    digest = pushed.stdout.split("digest: ")[1].split()[0]
    cli("rmi", f"{ref}:1")
    pulled = cli("pull", f"{ref}@{digest}")
    assert pulled.returncode == 0, pulled.stderr
    assert pulled.stdout.rstrip().endswith(f"{ref}@{digest}")
    assert cli("run", "--rm", f"{ref}@{digest}", "echo", "pinned").stdout == "pinned\n"
    wrong = cli("pull", f"{ref}@sha256:{'0' * 64}")
    assert wrong.returncode == 1
    removed = cli("rmi", f"{ref}@{digest}")
    assert f"Untagged: {ref}@{digest}" in removed.stdout, removed.stderr
    assert cli("inspect", "--type", "image", busybox).returncode == 0  # only the digest reference went


def test_image_prune_removes_dangling_then_unused(cli, busybox_tar):
    dangling = cli("import", str(busybox_tar)).stdout.strip()
    cli("import", "-c", "LABEL keep=1", str(busybox_tar), "prune-tagged:1")
    in_use = cli("import", str(busybox_tar), "prune-in-use:1")
    assert in_use.returncode == 0
    container = cli("create", "prune-in-use:1", "true").stdout.strip()
    pruned = cli("image", "prune", "-f")
    assert pruned.returncode == 0, pruned.stderr
    assert f"deleted: {dangling}" in pruned.stdout
    assert cli("inspect", "--type", "image", "prune-tagged:1").returncode == 0
    kept = cli("image", "prune", "-a", "-f", "--filter", "label=keep=2")
    assert cli("inspect", "--type", "image", "prune-tagged:1").returncode == 0, kept.stdout
    everything = cli("image", "prune", "-a", "-f", "--filter", "label=keep")
    assert "untagged: prune-tagged:1" in everything.stdout
    assert cli("inspect", "--type", "image", "prune-tagged:1").returncode != 0
    assert cli("inspect", "--type", "image", "prune-in-use:1").returncode == 0  # a container uses it
    cli("rm", container)
    cli("rmi", "prune-in-use:1")


@pytest.mark.docker_cli
def test_docker_cli_save_load_and_prune_against_our_daemon(docker, busybox, tmp_path):
    archive = tmp_path / "via-docker-cli.tar"
    tagged = docker("tag", busybox, "dockercli-save:1")
    assert tagged.returncode == 0, tagged.stderr
    saved = docker("save", "-o", str(archive), "dockercli-save:1")
    assert saved.returncode == 0, saved.stderr
    docker("rmi", "dockercli-save:1")
    loaded = docker("load", "-i", str(archive))
    assert loaded.returncode == 0 and "Loaded image: dockercli-save:1" in loaded.stdout, loaded.stderr
    history = docker("history", "dockercli-save:1")
    assert history.returncode == 0 and "IMAGE" in history.stdout
    pruned = docker("image", "prune", "-f")
    assert pruned.returncode == 0 and "Total reclaimed space" in pruned.stdout, pruned.stderr
    docker("rmi", "dockercli-save:1")


def test_concurrent_pulls_of_one_image_both_succeed(cli, registry, tmp_path):
    import concurrent.futures
    import io
    import tarfile

    layer = tmp_path / "layer.tar"
    with tarfile.open(layer, "w") as tar:
        info = tarfile.TarInfo("payload.bin")
        info.size = 8 << 20
        tar.addfile(info, io.BytesIO(os.urandom(info.size)))
    ref = unique(registry, "concurrent/bb") + ":1"
    assert cli("import", "-c", 'CMD ["sh"]', str(layer), ref).returncode == 0
    assert cli("push", ref).returncode == 0
    assert cli("rmi", ref).returncode == 0
    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        results = list(pool.map(lambda _: cli("pull", ref), range(3)))
    assert all(r.returncode == 0 for r in results), [r.stderr for r in results]
    assert cli("inspect", "--type", "image", ref).returncode == 0
    assert cli("rmi", ref).returncode == 0


def _rss_kib(pid: int, field: str) -> int:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/{pid}/status")


def test_memory_stays_bounded_pushing_and_pulling_a_big_layer(cli, daemon, registry, tmp_path):
    import tarfile

    size = 160 << 20
    payload = tmp_path / "big.bin"
    with open(payload, "wb") as out:
        for _ in range(size >> 20):
            out.write(os.urandom(1 << 20))
    layer = tmp_path / "big.tar"
    with tarfile.open(layer, "w") as tar:
        tar.add(payload, arcname="big.bin")
    payload.unlink()
    ref = unique(registry, "big/layer") + ":1"
    assert cli("import", str(layer), ref).returncode == 0
    pid = daemon.process.pid
    peaks = {}
    for step, args in (("push", ("push", ref)), ("pull", ("pull", ref))):
        if step == "pull":
            assert cli("rmi", ref).returncode == 0
        Path(f"/proc/{pid}/clear_refs").write_text("5")  # resets the peak (VmHWM) to the current RSS
        before = _rss_kib(pid, "VmRSS")
        result = cli(*args, timeout=300)
        assert result.returncode == 0, result.stderr
        peaks[step] = _rss_kib(pid, "VmHWM") - before
    # a 160 MiB layer went through; the daemon's peak grew by far less (streams, bounded queues)
    print("daemon peak RSS growth (KiB):", peaks)
    assert peaks["push"] < 64 << 10 and peaks["pull"] < 64 << 10, peaks
    assert cli("rmi", ref).returncode == 0


def test_push_all_tags_of_a_repository(cli, busybox, registry):
    repository = unique(registry, "alltags/bb")
    for tag in ("1", "2"):
        cli("tag", busybox, f"{repository}:{tag}")
    pushed = cli("push", "--all-tags", repository)
    assert pushed.returncode == 0, pushed.stderr
    assert "1: digest: sha256:" in pushed.stdout and "2: digest: sha256:" in pushed.stdout
    cli("rmi", f"{repository}:1", f"{repository}:2")
    assert cli("pull", f"{repository}:2").returncode == 0
    cli("rmi", f"{repository}:2")
