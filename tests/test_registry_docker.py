"""A real Docker daemon (Debian's docker.io, private and throw-away) pushes to our registry server,
pulls back what it pushed and runs it; with basic auth, `docker login` and `docker logout` too.
Docker treats registries on 127.0.0.0/8 as insecure (plain HTTP) by default."""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import tempfile

import pytest
from pyengine.registry.manifests import DOCKER_MANIFEST
from pyengine.testing.dockerd import dockerd_available, load_busybox_image, private_dockerd
from pyengine.testing.registry import RegistryClient, running_registry

DOCKER = shutil.which("docker") or "/usr/local/bin/docker"

pytestmark = pytest.mark.skipif(not dockerd_available(), reason="dockerd is not installed (Debian docker.io)")


@pytest.fixture(scope="module")
def dockerd():
    with private_dockerd() as daemon:
        yield daemon


@pytest.fixture
def docker_cli(dockerd):
    config = tempfile.mkdtemp(prefix="pye-regcfg-")
    env = {**os.environ, "DOCKER_CONFIG": config, "DOCKER_CLI_HINTS": "false"}

    def run(*args: str, check: bool = True, input: str | None = None) -> subprocess.CompletedProcess:
        result = subprocess.run([DOCKER, "-H", dockerd.host, *args], capture_output=True, text=True, env=env,
                                input=input, timeout=180)  # fmt: skip
        if check and result.returncode != 0:
            raise AssertionError(f"docker {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
        return result

    yield run
    shutil.rmtree(config, ignore_errors=True)


def test_docker_pushes_pulls_and_runs_through_our_registry(tmp_path, dockerd, docker_cli, busybox_tar):
    with running_registry(tmp_path / "root") as registry:
        ref = f"{registry.address}/team/bb:1"
        load_busybox_image(dockerd.socket, busybox_tar, reference=ref)
        pushed = docker_cli("push", ref)
        assert "digest: sha256:" in pushed.stdout

        client = RegistryClient(registry.url, registry.root)
        assert client.tags("team/bb") == ["1"]
        manifest = client.request("GET", "/v2/team/bb/manifests/1")
        assert manifest.headers["Content-Type"] == DOCKER_MANIFEST
        assert manifest.headers["Docker-Content-Digest"] in pushed.stdout

        docker_cli("rmi", ref)
        pulled = docker_cli("pull", ref)
        assert manifest.headers["Docker-Content-Digest"] in pulled.stdout
        ran = docker_cli("run", "--rm", "--network", "none", ref, "echo", "ok from our registry")
        assert ran.stdout.strip() == "ok from our registry"

        # A second repository: Docker mounts the layer across repositories instead of uploading it.
        other = f"{registry.address}/other/bb:2"
        docker_cli("tag", ref, other)
        assert "Mounted from team/bb" in docker_cli("push", other).stdout
        docker_cli("rmi", ref, other)


def test_docker_login_push_pull_and_logout_with_basic_auth(tmp_path, dockerd, docker_cli, busybox_tar):
    bcrypt = pytest.importorskip("bcrypt")
    hashed = bcrypt.hashpw(b"s3cret", bcrypt.gensalt(rounds=5)).decode().replace("$2b$", "$2y$", 1)
    htpasswd = tmp_path / "htpasswd"
    htpasswd.write_text(f"alice:{hashed}\n")
    with running_registry(tmp_path / "root", htpasswd=htpasswd) as registry:
        ref = f"{registry.address}/team/private:1"
        load_busybox_image(dockerd.socket, busybox_tar, reference=ref)
        refused = docker_cli("push", ref, check=False)
        assert refused.returncode != 0

        login = ("login", "-u", "alice", "--password-stdin", registry.address)
        assert docker_cli(*login, input="wrong", check=False).returncode != 0
        docker_cli(*login, input="s3cret")
        docker_cli("push", ref)
        docker_cli("rmi", ref)
        docker_cli("pull", ref)
        docker_cli("logout", registry.address)
        docker_cli("rmi", ref)
        assert docker_cli("pull", ref, check=False).returncode != 0

        auth = "Basic " + base64.b64encode(b"alice:s3cret").decode()
        assert RegistryClient(registry.url, registry.root, auth=auth).tags("team/private") == ["1"]
