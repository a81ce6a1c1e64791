"""skopeo (containers/image, not Docker's code) against our registry server: copy an OCI layout and
a docker-archive in and out, inspect what we serve, with and without TLS and basic auth."""

from __future__ import annotations

import base64
import json
import subprocess

import pytest
from pyengine.testing.registry import RegistryClient, make_oci_layout, running_registry, skopeo_available

pytestmark = pytest.mark.skipif(
    not skopeo_available(), reason="skopeo is not installed (Debian package skopeo)"
)


def skopeo(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(["skopeo", *args], capture_output=True, text=True, timeout=120)
    if check and result.returncode != 0:
        raise AssertionError(f"skopeo {' '.join(args)} failed:\n{result.stderr}")
    return result


def layout_blobs(layout) -> set[str]:
    return {p.name for p in (layout / "blobs" / "sha256").iterdir()}


def test_skopeo_copies_an_oci_layout_in_and_out(tmp_path, busybox_tar):
    source = tmp_path / "layout"
    manifest = make_oci_layout(source, busybox_tar, tag="1")
    with running_registry(tmp_path / "root") as registry:
        ref = f"docker://{registry.address}/team/bb:1"
        skopeo("copy", "--dest-tls-verify=false", f"oci:{source}:1", ref)

        inspected = json.loads(skopeo("inspect", "--tls-verify=false", ref).stdout)
        assert inspected["Digest"] == manifest["_digest"]
        assert inspected["Layers"] == [manifest["layers"][0]["digest"]]
        assert inspected["RepoTags"] == ["1"]
        raw = skopeo("inspect", "--tls-verify=false", "--raw", ref).stdout
        assert json.loads(raw)["config"] == manifest["config"]

        back = tmp_path / "back"
        skopeo("copy", "--src-tls-verify=false", ref, f"oci:{back}:1")
        assert layout_blobs(back) == layout_blobs(source)

        # Through Docker's archive format and into a second repository.
        archive = tmp_path / "bb.tar"
        skopeo("copy", "--src-tls-verify=false", ref, f"docker-archive:{archive}:team/bb:1")
        second = f"docker://{registry.address}/other/bb:2"
        skopeo("copy", "--dest-tls-verify=false", f"docker-archive:{archive}", second)
        inspected = json.loads(skopeo("inspect", "--tls-verify=false", second).stdout)
        assert inspected["Os"] == "linux" and len(inspected["Layers"]) == 1
        tags = json.loads(
            skopeo("list-tags", "--tls-verify=false", f"docker://{registry.address}/other/bb").stdout
        )
        assert tags["Tags"] == ["2"]
        catalog = RegistryClient(registry.url, registry.root).request("GET", "/v2/_catalog").json()
        assert catalog["repositories"] == ["other/bb", "team/bb"]


def test_skopeo_over_tls_with_basic_auth(tmp_path, busybox_tar):
    bcrypt = pytest.importorskip("bcrypt")
    hashed = bcrypt.hashpw(b"s3cret", bcrypt.gensalt(rounds=5)).decode().replace("$2b$", "$2y$", 1)
    htpasswd = tmp_path / "htpasswd"
    htpasswd.write_text(f"alice:{hashed}\n")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    source = tmp_path / "layout"
    manifest = make_oci_layout(source, busybox_tar, tag="1")
    with running_registry(tmp_path / "root", htpasswd=htpasswd, tls=(cert, key)) as registry:
        ref = f"docker://{registry.address}/team/secure:1"
        refused = skopeo("copy", "--dest-tls-verify=false", f"oci:{source}:1", ref, check=False)
        assert refused.returncode != 0
        assert "unauthorized" in refused.stderr.lower() or "authentication required" in refused.stderr.lower()
        skopeo("copy", "--dest-tls-verify=false", "--dest-creds", "alice:s3cret", f"oci:{source}:1", ref)
        inspected = json.loads(skopeo("inspect", "--tls-verify=false", "--creds", "alice:s3cret", ref).stdout)
        assert inspected["Digest"] == manifest["_digest"]
        # The certificate is checked when asked to: with it as the CA, verification passes.
        certs = tmp_path / "certs"
        certs.mkdir()
        (certs / "ca.crt").write_bytes(cert.read_bytes())
        skopeo("inspect", "--cert-dir", str(certs), "--creds", "alice:s3cret", ref)
        auth = "Basic " + base64.b64encode(b"alice:s3cret").decode()
        client = RegistryClient(registry.url, registry.root, auth=auth)
        assert client.tags("team/secure") == ["1"]
