"""`pyengine registry garbage-collect` against a real registry server on loopback: what the API
deleted is freed, what a manifest still needs is kept, a served registry is refused."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys

import pytest
from pyengine.errors import Conflict
from pyengine.registry.gc import collect_garbage, registry_lock
from pyengine.testing.registry import OCI_MANIFEST, RegistryClient, running_registry

INDEX = "application/vnd.oci.image.index.v1+json"


def _gc(root, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pyengine.registry", "garbage-collect", "--root", str(root), *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def _blobs(root) -> set[str]:
    return {f"sha256:{p.name}" for p in (root / "blobs" / "sha256").iterdir() if not p.name.startswith(".")}


def test_collect_frees_what_deleted_manifests_used_and_keeps_shared_layers(tmp_path):
    root = tmp_path / "root"
    shared = b"shared layer bytes" * 100
    with running_registry(root) as server:
        client = RegistryClient(server.url, root)
        keep, keep_digest = client.push_image("team/keep", "v1", layer=shared)
        gone, gone_digest = client.push_image("team/gone", "g1", layer=shared)
        own, own_digest = client.push_image("team/gone", "v2", layer=b"only in v2" * 50)
        assert client.request("DELETE", f"/v2/team/gone/manifests/{gone_digest}").status == 202
        assert client.request("DELETE", f"/v2/team/gone/manifests/{own_digest}").status == 202
        served = _gc(root)
        assert served.returncode != 0 and "is being served" in served.stderr
    before = _blobs(root)
    own_layer = "sha256:" + hashlib.sha256(b"only in v2" * 50).hexdigest()
    expected = {gone_digest, own_digest, gone["config"]["digest"], own["config"]["digest"], own_layer}
    assert expected <= before

    dry = _gc(root, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert _blobs(root) == before  # a dry run deletes nothing
    assert {line.split()[-1] for line in dry.stdout.splitlines() if "would delete blob" in line} == expected

    done = _gc(root)
    assert done.returncode == 0, done.stderr
    assert _blobs(root) == before - expected
    assert keep["layers"][0]["digest"] in _blobs(root)  # the layer both images shared

    with running_registry(root) as server:  # what was kept still pulls whole
        client = RegistryClient(server.url, root)
        manifest = client.request("GET", "/v2/team/keep/manifests/v1", headers={"Accept": OCI_MANIFEST})
        assert manifest.status == 200 and manifest.headers["Docker-Content-Digest"] == keep_digest
        for descriptor in [keep["config"], *keep["layers"]]:
            assert client.request("GET", f"/v2/team/keep/blobs/{descriptor['digest']}").status == 200
        gone_layer = client.request("GET", f"/v2/team/gone/blobs/{own_layer}")
        assert gone_layer.status == 404 and gone_layer.error_code == "BLOB_UNKNOWN"


def test_delete_untagged_keeps_what_tags_reach_through_indexes_and_referrers(tmp_path):
    root = tmp_path / "root"
    with running_registry(root) as server:
        client = RegistryClient(server.url, root)
        child, child_digest = client.push_image("app", "child-tag")
        assert client.request("DELETE", "/v2/app/manifests/child-tag").status == 202  # untagged now
        child_size = len(client.request("GET", f"/v2/app/manifests/{child_digest}").body)
        index = {
            "schemaVersion": 2,
            "mediaType": INDEX,
            "manifests": [{"mediaType": OCI_MANIFEST, "digest": child_digest, "size": child_size}],
        }
        assert client.push_manifest("app", "multi", index, INDEX).status == 201
        signature, signature_digest = client.push_image(
            "app", "sig-tag", subject={"mediaType": OCI_MANIFEST, "digest": child_digest, "size": child_size}
        )
        assert client.request("DELETE", "/v2/app/manifests/sig-tag").status == 202  # untagged referrer
        orphan, orphan_digest = client.push_image("app", "orphan-tag")
        assert client.request("DELETE", "/v2/app/manifests/orphan-tag").status == 202

    plain = collect_garbage(root)  # without -m every revision is kept
    assert plain.blobs == [] and plain.manifests == []
    report = collect_garbage(root, delete_untagged=True)
    assert report.manifests == [("app", orphan_digest)]
    assert set(report.blobs) == {orphan_digest, orphan["config"]["digest"], orphan["layers"][0]["digest"]}
    reached = {child_digest, signature_digest, child["layers"][0]["digest"], signature["config"]["digest"]}
    assert reached <= _blobs(root)
    revisions = root / "repositories" / "app" / "_manifests" / "revisions" / "sha256"
    assert not (revisions / orphan_digest.split(":")[1]).exists()
    assert json.loads((root / "blobs" / "sha256" / child_digest.split(":")[1]).read_bytes()) == child


def test_collection_and_serving_exclude_each_other(tmp_path):
    root = tmp_path / "root"
    with registry_lock(root, exclusive=False):
        with pytest.raises(Conflict, match="being served"):
            collect_garbage(root)
    with registry_lock(root, exclusive=True):
        with pytest.raises(Conflict, match="garbage collection is running"):
            with registry_lock(root, exclusive=False):
                pass
    assert collect_garbage(root).blobs == []
