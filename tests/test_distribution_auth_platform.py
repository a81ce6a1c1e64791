"""Bearer-token authentication (the challenge flow Docker Hub uses) and platform selection from a
multi-platform index, both on loopback."""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path

import pytest
from pyengine.distribution.manifests import DOCKER_MANIFEST, OCI_INDEX
from pyengine.distribution.registry import RegistryClient
from pyengine.images.reference import parse
from pyengine.testing.fake_registry import HostileRegistry
from pyengine.testing.reference_registry import reference_registry, registry_available


@pytest.fixture(scope="module")
def token_registry(busybox_tar):
    server = HostileRegistry(Path(busybox_tar).read_bytes(), token_auth=True, users={"bob": "hunter2"})
    server.start()
    try:
        yield server
    finally:
        server.stop()


def run_cli(cli, config_dir: Path, *args: str, input: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*cli.argv, *args],
        input=input,
        capture_output=True,
        text=True,
        timeout=120,
        env={**cli.env, "DOCKER_CONFIG": str(config_dir)},
    )


def test_bearer_token_flow_anonymous_and_with_login(cli, token_registry, tmp_path):
    address = f"127.0.0.1:{token_registry.port}"
    public = f"{address}/public/ok:1"
    assert run_cli(cli, tmp_path, "pull", public).returncode == 0
    scopes = [r.get("scope") for r in token_registry.token_requests]
    assert "repository:public/ok:pull" in scopes
    assert all(r.get("service") == "hostile" for r in token_registry.token_requests)
    private = f"{address}/private/ok:1"
    denied = run_cli(cli, tmp_path, "pull", private)
    assert denied.returncode == 1 and "denied" in denied.stderr.lower(), denied.stderr
    bad = run_cli(cli, tmp_path, "login", "-u", "bob", "--password-stdin", address, input="nope\n")
    assert bad.returncode == 1 and "401 Unauthorized" in bad.stderr
    good = run_cli(cli, tmp_path, "login", "-u", "bob", "--password-stdin", address, input="hunter2\n")
    assert good.returncode == 0, good.stderr
    stored = json.loads((tmp_path / "config.json").read_text())["auths"][address]["auth"]
    assert stored == "Ym9iOmh1bnRlcjI="  # base64 of bob:hunter2, as the docker CLI stores it
    pulled = run_cli(cli, tmp_path, "pull", private)
    assert pulled.returncode == 0, pulled.stderr
    assert cli("run", "--rm", private, "echo", "authorized").stdout == "authorized\n"
    cli("rmi", public, private)


def test_x_registry_auth_from_the_docker_cli(docker, token_registry, tmp_path):
    address = f"127.0.0.1:{token_registry.port}"
    private = f"{address}/private/ok:2"
    env_cfg = {"DOCKER_CONFIG": str(tmp_path)}
    login = subprocess.run(
        [*docker.argv, "login", "-u", "bob", "--password-stdin", address],
        input="hunter2\n",
        capture_output=True,
        text=True,
        env={**docker.env, **env_cfg},
        timeout=60,
    )
    assert login.returncode == 0, login.stderr
    pulled = subprocess.run(
        [*docker.argv, "pull", private],
        capture_output=True,
        text=True,
        env={**docker.env, **env_cfg},
        timeout=120,
    )
    assert pulled.returncode == 0, pulled.stderr
    subprocess.run([*docker.argv, "rmi", private], capture_output=True, env={**docker.env, **env_cfg})


async def _make_multi_platform(address: str, path: str) -> tuple[str, str]:
    """From the pushed ``path:amd64``, add an arm64 variant (same layers, another config) and an
    OCI index of both under the tag ``multi``; return (amd64 config digest, arm64 config digest)."""
    async with RegistryClient(address, path, push=True) as client:
        await client.login()
        data, _, digest = await client.get_manifest("amd64")
        manifest = json.loads(data)
        config = json.loads(await client.read_blob(manifest["config"]["digest"], manifest["config"]["size"]))
        config["architecture"] = "arm64"
        arm_config = json.dumps(config).encode()
        arm_config_digest = await client.upload_bytes(arm_config)
        arm_manifest = dict(
            manifest, config={**manifest["config"], "digest": arm_config_digest, "size": len(arm_config)}
        )
        arm_bytes = json.dumps(arm_manifest).encode()
        arm_digest = await client.put_manifest("arm64", arm_bytes, DOCKER_MANIFEST)
        index = {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [
                {
                    "mediaType": DOCKER_MANIFEST,
                    "digest": arm_digest,
                    "size": len(arm_bytes),
                    "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"},
                },
                {
                    "mediaType": DOCKER_MANIFEST,
                    "digest": digest,
                    "size": len(data),
                    "platform": {"os": "linux", "architecture": "amd64"},
                },
            ],
        }
        await client.put_manifest("multi", json.dumps(index).encode(), OCI_INDEX)
        return manifest["config"]["digest"], arm_config_digest


@pytest.mark.skipif(not registry_available(), reason="docker-registry is not installed")
def test_platform_is_chosen_from_a_multi_platform_index(cli, busybox):
    with reference_registry() as registry:
        repository = f"{registry.address}/multi/bb"
        cli("tag", busybox, f"{repository}:amd64")
        assert cli("push", f"{repository}:amd64").returncode == 0
        amd_config, arm_config = asyncio.run(_make_multi_platform(registry.address, parse(repository).path))
        arm = cli("pull", "--platform", "linux/arm64", f"{repository}:multi")
        assert arm.returncode == 0, arm.stderr
        assert cli("inspect", "-f", "{{.Id}} {{.Architecture}}", f"{repository}:multi").stdout.split() == [
            arm_config,
            "arm64",
        ]
        host = cli("pull", f"{repository}:multi")
        assert host.returncode == 0, host.stderr
        assert cli("inspect", "-f", "{{.Id}} {{.Architecture}}", f"{repository}:multi").stdout.split() == [
            amd_config,
            "amd64",
        ]
        assert cli("run", "--rm", f"{repository}:multi", "echo", "native").stdout == "native\n"
        none = cli("pull", "--platform", "linux/s390x", f"{repository}:multi")
        assert none.returncode == 1 and "no matching manifest for linux/s390x" in none.stderr
        cli("rmi", f"{repository}:multi", f"{repository}:amd64")


def test_credentials_are_not_sent_along_a_redirect_to_another_host(cli, token_registry, tmp_path):
    address = f"127.0.0.1:{token_registry.port}"
    login = run_cli(cli, tmp_path, "login", "-u", "bob", "--password-stdin", address, input="hunter2\n")
    assert login.returncode == 0, login.stderr
    ref = f"{address}/private/redirect:1"
    pulled = run_cli(cli, tmp_path, "pull", ref)
    assert pulled.returncode == 0, pulled.stderr
    assert token_registry.cdn_authorization == [None]  # the blob came from the other host, anonymously
    cli("rmi", ref)


@pytest.mark.docker_sdk
def test_sdk_login_and_authenticated_pull(sdk, token_registry):
    import docker

    address = f"127.0.0.1:{token_registry.port}"
    with pytest.raises(docker.errors.APIError) as refused:
        sdk.login(username="bob", password="wrong", registry=address, reauth=True)
    assert refused.value.response.status_code == 401
    answer = sdk.login(username="bob", password="hunter2", registry=address, reauth=True)
    assert answer["Status"] == "Login Succeeded"
    image = sdk.images.pull(f"{address}/private/ok", tag="3")  # the SDK sends the login's X-Registry-Auth
    assert f"{address}/private/ok:3" in image.tags
    sdk.images.remove(f"{address}/private/ok:3")
