"""The registry's API driven over HTTP like a client would: pull, push in every style, mounts,
listings with pagination, referrers and deletes, against a real server on loopback."""

from __future__ import annotations

import hashlib
import json
import os
from urllib.parse import urlsplit

from pyengine.registry.manifests import OCI_INDEX, OCI_MANIFEST


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def test_base_endpoint_says_it_is_a_registry(client):
    reply = client.request("GET", "/v2/")
    assert reply.status == 200
    assert reply.headers["Docker-Distribution-API-Version"] == "registry/2.0"


def test_monolithic_upload_then_get_head_and_range(client):
    data = os.urandom(3 * 1024 * 1024 + 17)
    digest = client.push_blob("team/blobs", data)

    reply = client.request("GET", f"/v2/team/blobs/blobs/{digest}")
    assert reply.status == 200 and reply.body == data
    assert reply.headers["Docker-Content-Digest"] == digest
    head = client.request("HEAD", f"/v2/team/blobs/blobs/{digest}")
    assert head.status == 200 and head.body == b""
    assert head.headers["Content-Length"] == str(len(data))
    partial = client.request("GET", f"/v2/team/blobs/blobs/{digest}", headers={"Range": "bytes=100-199"})
    assert partial.status == 206 and partial.body == data[100:200]


def test_streamed_upload_in_one_patch_then_put(client):
    data = os.urandom(2 * 1024 * 1024 + 5)
    started = client.request("POST", "/v2/team/streamed/blobs/uploads/")
    assert started.status == 202
    location = started.headers["Location"]
    assert started.headers["Docker-Upload-UUID"] in location

    # What `docker push` does: one PATCH with a chunked body and no Content-Range.
    patched = client.request(
        "PATCH",
        location,
        iter([data[:1000], data[1000:]]),
        {"Content-Type": "application/octet-stream"},
        chunked=True,
    )
    assert patched.status == 202
    assert patched.headers["Range"] == f"0-{len(data) - 1}"
    finished = client.request("PUT", f"{patched.headers['Location']}?digest={digest_of(data)}")
    assert finished.status == 201
    assert finished.headers["Docker-Content-Digest"] == digest_of(data)
    assert client.request("GET", urlsplit(finished.headers["Location"]).path).body == data
    assert started.headers["Docker-Upload-UUID"] not in client.open_uploads()


def test_chunked_upload_in_order_with_status_and_out_of_order_refused(client):
    data = os.urandom(300_000)
    location = client.request("POST", "/v2/team/chunked/blobs/uploads/").headers["Location"]

    first = client.request(
        "PATCH",
        location,
        data[:100_000],
        {"Content-Range": "0-99999", "Content-Type": "application/octet-stream"},
    )
    assert first.status == 202 and first.headers["Range"] == "0-99999"
    # A chunk that skips ahead: 416, and the upload stays as it was.
    skipped = client.request("PATCH", location, data[200_000:], {"Content-Range": "200000-299999"})
    assert skipped.status == 416
    assert skipped.error_code == "BLOB_UPLOAD_INVALID"
    status = client.request("GET", location)
    assert status.status == 204 and status.headers["Range"] == "0-99999"

    second = client.request("PATCH", location, data[100_000:200_000], {"Content-Range": "100000-199999"})
    assert second.status == 202 and second.headers["Range"] == "0-199999"
    # The last chunk comes with the PUT that finishes the upload.
    done = client.request(
        "PUT",
        f"{location}?digest={digest_of(data)}",
        data[200_000:],
        {"Content-Range": "200000-299999", "Content-Type": "application/octet-stream"},
    )
    assert done.status == 201
    assert client.request("GET", f"/v2/team/chunked/blobs/{digest_of(data)}").body == data


def test_cancelled_upload_leaves_nothing(client):
    started = client.request("POST", "/v2/team/cancel/blobs/uploads/")
    upload_id = started.headers["Docker-Upload-UUID"]
    client.request("PATCH", started.headers["Location"], b"x" * 5000)
    assert upload_id in client.open_uploads()

    assert client.request("DELETE", started.headers["Location"]).status == 204
    assert upload_id not in client.open_uploads()
    gone = client.request("GET", started.headers["Location"])
    assert gone.status == 404 and gone.error_code == "BLOB_UPLOAD_UNKNOWN"


def test_cross_repository_mount(client):
    digest = client.push_blob("team/source", b"shared layer bytes")
    mounted = client.request("POST", f"/v2/team/target/blobs/uploads/?mount={digest}&from=team/source")
    assert mounted.status == 201
    assert mounted.headers["Docker-Content-Digest"] == digest
    assert client.request("GET", f"/v2/team/target/blobs/{digest}").body == b"shared layer bytes"

    # A blob the source does not have: a new upload instead (202).
    missing = digest_of(b"nowhere")
    fallback = client.request("POST", f"/v2/team/target/blobs/uploads/?mount={missing}&from=team/source")
    assert fallback.status == 202 and "/blobs/uploads/" in fallback.headers["Location"]
    client.request("DELETE", fallback.headers["Location"])


def test_blob_of_another_repository_is_unknown_here(client):
    digest = client.push_blob("team/private", b"only here")
    reply = client.request("GET", f"/v2/team/elsewhere/blobs/{digest}")
    assert reply.status == 404 and reply.error_code == "BLOB_UNKNOWN"


def test_push_manifest_then_get_by_tag_and_digest(client):
    manifest, digest = client.push_image("team/app", "v1")
    by_tag = client.request("GET", "/v2/team/app/manifests/v1", headers={"Accept": OCI_MANIFEST})
    assert by_tag.status == 200
    assert by_tag.headers["Content-Type"] == OCI_MANIFEST
    assert by_tag.headers["Docker-Content-Digest"] == digest == digest_of(by_tag.body)
    assert json.loads(by_tag.body) == manifest
    by_digest = client.request("GET", f"/v2/team/app/manifests/{digest}")
    assert by_digest.body == by_tag.body
    head = client.request("HEAD", "/v2/team/app/manifests/v1")
    assert head.status == 200 and head.headers["Content-Length"] == str(len(by_tag.body))
    unknown = client.request("GET", "/v2/team/app/manifests/nope")
    assert unknown.status == 404 and unknown.error_code == "MANIFEST_UNKNOWN"


def test_index_of_manifests_and_index_with_unknown_child(client):
    manifest, digest = client.push_image("team/multi", "amd64")
    size = len(client.request("GET", f"/v2/team/multi/manifests/{digest}").body)
    index = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [
            {
                "mediaType": OCI_MANIFEST,
                "digest": digest,
                "size": size,
                "platform": {"architecture": "amd64", "os": "linux"},
            }
        ],
    }
    pushed = client.push_manifest("team/multi", "latest", index, OCI_INDEX)
    assert pushed.status == 201
    assert client.request("GET", "/v2/team/multi/manifests/latest").headers["Content-Type"] == OCI_INDEX

    index["manifests"][0]["digest"] = digest_of(b"no such manifest")
    refused = client.push_manifest("team/multi", "broken", index, OCI_INDEX)
    assert refused.status == 400 and refused.error_code == "MANIFEST_BLOB_UNKNOWN"
    assert "broken" not in client.tags("team/multi")


def test_manifest_referencing_a_missing_blob_is_refused(client):
    config = b"{}"
    document = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": client.push_blob("team/holes", config),
            "size": 2,
        },
        "layers": [
            {
                "mediaType": "application/vnd.oci.image.layer.v1.tar",
                "digest": digest_of(b"never pushed"),
                "size": 12,
            }
        ],
    }
    reply = client.push_manifest("team/holes", "v1", document)
    assert reply.status == 400 and reply.error_code == "MANIFEST_BLOB_UNKNOWN"
    assert reply.json()["errors"][0]["detail"]["digest"] == digest_of(b"never pushed")
    assert client.tags("team/holes") == []


def test_push_by_digest_with_tags(client):
    manifest, _ = client.push_image("team/bydigest", "first")
    body = json.dumps({**manifest, "annotations": {"k": "v"}}).encode()
    reply = client.request(
        "PUT",
        f"/v2/team/bydigest/manifests/{digest_of(body)}?tag=a&tag=b",
        body,
        {"Content-Type": OCI_MANIFEST},
    )
    assert reply.status == 201
    assert client.tags("team/bydigest") == ["a", "b", "first"]


def test_tags_list_pagination(client):
    manifest, digest = client.push_image("team/paged", "t0")
    body = client.request("GET", f"/v2/team/paged/manifests/{digest}").body
    names = [f"t{i}" for i in range(1, 7)]
    query = "&".join(f"tag={n}" for n in names)
    assert (
        client.request(
            "PUT", f"/v2/team/paged/manifests/{digest}?{query}", body, {"Content-Type": OCI_MANIFEST}
        ).status
        == 201
    )
    expected = sorted(["t0", *names])

    page = client.request("GET", "/v2/team/paged/tags/list?n=3")
    assert page.json() == {"name": "team/paged", "tags": expected[:3]}
    collected, link = page.json()["tags"], page.headers["Link"]
    while link:
        next_path = link.split(";")[0].strip("<>")
        page = client.request("GET", next_path)
        collected += page.json()["tags"]
        link = page.headers.get("Link")
    assert collected == expected

    after = client.request("GET", "/v2/team/paged/tags/list?last=t4")
    assert after.json()["tags"] == ["t5", "t6"] and "Link" not in after.headers
    empty = client.request("GET", "/v2/team/paged/tags/list?n=0")
    assert empty.json()["tags"] == [] and "Link" not in empty.headers
    unknown = client.request("GET", "/v2/team/nothing-here/tags/list")
    assert unknown.status == 404 and unknown.error_code == "NAME_UNKNOWN"


def test_a_page_holds_at_most_a_thousand_tags_however_large_n_is(client):
    manifest, digest = client.push_image("team/many", "base")
    body = client.request("GET", f"/v2/team/many/manifests/{digest}").body
    for start in range(0, 1005, 200):
        query = "&".join(f"tag=x{i:04d}" for i in range(start, min(start + 200, 1005)))
        assert (
            client.request(
                "PUT", f"/v2/team/many/manifests/{digest}?{query}", body, {"Content-Type": OCI_MANIFEST}
            ).status
            == 201
        )
    page = client.request("GET", f"/v2/team/many/tags/list?n={10**18}")
    assert page.status == 200
    assert len(page.json()["tags"]) == 1000
    assert 'rel="next"' in page.headers["Link"]
    rest = client.request("GET", page.headers["Link"].split(";")[0].strip("<>"))
    assert len(rest.json()["tags"]) == 6  # 1005 x-tags + "base"


def test_catalog_pagination(client):
    for name in ("cat/a", "cat/b", "cat/b/nested", "cat/c"):
        client.push_blob(name, b"catalog " + name.encode())
    everything = client.request("GET", "/v2/_catalog").json()["repositories"]
    ours = [r for r in everything if r.startswith("cat/")]
    assert ours == ["cat/a", "cat/b", "cat/b/nested", "cat/c"]
    assert everything == sorted(everything)

    first = client.request("GET", "/v2/_catalog?n=2&last=cat/")
    assert first.json()["repositories"] == ["cat/a", "cat/b"]
    second = client.request("GET", first.headers["Link"].split(";")[0].strip("<>"))
    assert second.json()["repositories"][:2] == ["cat/b/nested", "cat/c"]


def test_referrers_list_manifests_whose_subject_is_the_digest(client):
    subject_manifest, subject = client.push_image("team/signed", "v1")
    subject_size = len(client.request("GET", f"/v2/team/signed/manifests/{subject}").body)
    subject_descriptor = {"mediaType": OCI_MANIFEST, "digest": subject, "size": subject_size}
    empty = client.push_blob("team/signed", b"{}")
    for artifact_type, note in (
        ("application/vnd.example.sbom", "sbom"),
        ("application/vnd.example.signature", "sig"),
    ):
        artifact = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": artifact_type,
            "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty, "size": 2},
            "layers": [],
            "subject": subject_descriptor,
            "annotations": {"note": note},
        }
        body = json.dumps(artifact).encode()
        pushed = client.push_manifest("team/signed", digest_of(body), body)
        assert pushed.status == 201
        assert pushed.headers["OCI-Subject"] == subject

    listed = client.request("GET", f"/v2/team/signed/referrers/{subject}")
    assert listed.status == 200 and listed.headers["Content-Type"] == OCI_INDEX
    found = {d["artifactType"]: d for d in listed.json()["manifests"]}
    assert set(found) == {"application/vnd.example.sbom", "application/vnd.example.signature"}
    assert found["application/vnd.example.sbom"]["annotations"] == {"note": "sbom"}

    filtered = client.request(
        "GET", f"/v2/team/signed/referrers/{subject}?artifactType=application/vnd.example.sbom"
    )
    assert filtered.headers["OCI-Filters-Applied"] == "artifactType"
    assert [d["annotations"]["note"] for d in filtered.json()["manifests"]] == ["sbom"]
    nothing = client.request("GET", f"/v2/team/signed/referrers/{digest_of(b'none')}")
    assert nothing.status == 200 and nothing.json()["manifests"] == []
    bad = client.request("GET", "/v2/team/signed/referrers/sha256:short")
    assert bad.status == 400 and bad.error_code == "DIGEST_INVALID"


def test_delete_tag_manifest_and_blob(client):
    manifest, digest = client.push_image("team/gone", "v1")
    client.push_manifest("team/gone", "v2", manifest)
    assert client.request("DELETE", "/v2/team/gone/manifests/v2").status == 202
    assert client.tags("team/gone") == ["v1"]

    assert client.request("DELETE", f"/v2/team/gone/manifests/{digest}").status == 202
    assert client.request("GET", f"/v2/team/gone/manifests/{digest}").status == 404
    assert client.request("GET", "/v2/team/gone/manifests/v1").status == 404
    assert client.tags("team/gone") == []

    layer = manifest["layers"][0]["digest"]
    assert client.request("DELETE", f"/v2/team/gone/blobs/{layer}").status == 202
    reply = client.request("GET", f"/v2/team/gone/blobs/{layer}")
    assert reply.status == 404 and reply.error_code == "BLOB_UNKNOWN"
    assert client.request("DELETE", f"/v2/team/gone/blobs/{layer}").status == 404
