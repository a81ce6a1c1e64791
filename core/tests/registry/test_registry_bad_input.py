"""Bad input to the registry: each gets the spec's error code and status, nothing is stored, and the
server keeps serving."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import time

import pytest
from pyengine.registry.manifests import OCI_INDEX, OCI_MANIFEST


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@pytest.fixture(autouse=True)
def still_serving(client):
    yield
    assert client.request("GET", "/v2/").status == 200


def wait_for(condition, what: str, deadline: float = 30.0) -> None:
    """Wait until ``condition()`` holds (the server notices a dropped connection asynchronously)."""
    end = time.monotonic() + deadline
    while not condition():
        if time.monotonic() > end:
            raise AssertionError(f"never happened: {what}")
        time.sleep(0.05)


def send_truncated(client, request_head: bytes, partial_body: bytes) -> None:
    """Send a request whose body stops short of its Content-Length, then hang up."""
    with socket.create_connection((client.host, client.port)) as sock:
        sock.sendall(request_head + partial_body)
        sock.shutdown(socket.SHUT_WR)


def test_blob_whose_bytes_do_not_match_its_digest(client):
    before = client.stored_blobs()
    data = os.urandom(100_000)
    claimed = digest_of(b"something else")
    reply = client.request("POST", f"/v2/team/bad/blobs/uploads/?digest={claimed}", data)
    assert reply.status == 400 and reply.error_code == "DIGEST_INVALID"
    assert client.stored_blobs() == before
    assert client.open_uploads() == set()
    assert client.request("HEAD", f"/v2/team/bad/blobs/{claimed}").status == 404


def test_chunked_upload_finished_with_the_wrong_digest_is_dropped(client):
    before = client.stored_blobs()
    location = client.request("POST", "/v2/team/bad/blobs/uploads/").headers["Location"]
    client.request("PATCH", location, b"a" * 10_000)
    reply = client.request("PUT", f"{location}?digest={digest_of(b'b' * 10_000)}")
    assert reply.status == 400 and reply.error_code == "DIGEST_INVALID"
    assert client.stored_blobs() == before
    assert client.request("GET", location).error_code == "BLOB_UPLOAD_UNKNOWN"


def test_truncated_monolithic_upload_stores_nothing(client):
    before = client.stored_blobs()
    data = os.urandom(200_000)
    head = (
        f"POST /v2/team/bad/blobs/uploads/?digest={digest_of(data)} HTTP/1.1\r\n"
        f"Host: {client.host}\r\nContent-Length: {len(data)}\r\n\r\n"
    ).encode()
    send_truncated(client, head, data[:50_000])
    wait_for(lambda: client.open_uploads() == set(), "the truncated upload is removed")
    assert client.stored_blobs() == before
    assert client.request("HEAD", f"/v2/team/bad/blobs/{digest_of(data)}").status == 404


def test_truncated_chunk_rolls_the_upload_back(client):
    location = client.request("POST", "/v2/team/bad/blobs/uploads/").headers["Location"]
    assert client.request("PATCH", location, b"x" * 1000, {"Content-Range": "0-999"}).status == 202
    head = (
        f"PATCH {location} HTTP/1.1\r\nHost: {client.host}\r\nContent-Range: 1000-100999\r\n"
        "Content-Length: 100000\r\n\r\n"
    ).encode()
    send_truncated(client, head, b"y" * 30_000)
    # The upload goes back to its 1000 bytes, and a client can resume from there.
    wait_for(lambda: client.request("GET", location).headers["Range"] == "0-999", "the upload is rolled back")
    assert client.request("PATCH", location, b"y" * 1000, {"Content-Range": "1000-1999"}).status == 202
    done = client.request("PUT", f"{location}?digest={digest_of(b'x' * 1000 + b'y' * 1000)}")
    assert done.status == 201


def test_a_chunk_whose_length_lies(client):
    location = client.request("POST", "/v2/team/bad/blobs/uploads/").headers["Location"]
    # Content-Range says 100 bytes, Content-Length says 50.
    reply = client.request("PATCH", location, b"z" * 50, {"Content-Range": "0-99"})
    assert reply.status == 400 and reply.error_code == "SIZE_INVALID"
    # Content-Range says 100 bytes, a chunked body brings 50.
    reply = client.request("PATCH", location, iter([b"z" * 50]), {"Content-Range": "0-99"}, chunked=True)
    assert reply.status == 400 and reply.error_code == "SIZE_INVALID"
    assert client.request("GET", location).headers["Range"] == "0-0"
    client.request("DELETE", location)


def test_manifest_whose_media_type_disagrees_with_its_content_type(client):
    manifest, _ = client.push_image("team/typed", "good")
    reply = client.push_manifest("team/typed", "bad", manifest, "application/vnd.oci.image.index.v1+json")
    assert reply.status == 400 and reply.error_code == "MANIFEST_INVALID"
    assert client.tags("team/typed") == ["good"]


def test_document_that_is_both_index_and_manifest(client):
    manifest, digest = client.push_image("team/both", "good")
    both = {**manifest, "manifests": [{"mediaType": OCI_MANIFEST, "digest": digest, "size": 10}]}
    del both["mediaType"]
    for content_type in (OCI_MANIFEST, OCI_INDEX):
        reply = client.push_manifest("team/both", "bad", both, content_type)
        assert reply.status == 400 and reply.error_code == "MANIFEST_INVALID"
    assert client.tags("team/both") == ["good"]


def test_manifest_over_four_mebibytes(client):
    manifest, _ = client.push_image("team/huge", "good")
    huge = json.dumps({**manifest, "annotations": {"pad": "x" * (4 * 1024 * 1024)}}).encode()
    before = client.stored_blobs()
    reply = client.push_manifest("team/huge", "bad", huge)
    assert reply.status == 413 and reply.error_code == "SIZE_INVALID"
    # Without a Content-Length the limit is enforced while reading.
    chunks = iter([huge[i : i + 65536] for i in range(0, len(huge), 65536)])
    reply = client.request(
        "PUT", "/v2/team/huge/manifests/bad", chunks, {"Content-Type": OCI_MANIFEST}, chunked=True
    )
    assert reply.status == 413 and reply.error_code == "SIZE_INVALID"
    assert client.stored_blobs() == before
    assert client.tags("team/huge") == ["good"]


def test_descriptor_size_that_lies(client):
    manifest, _ = client.push_image("team/liar", "good")
    manifest["layers"][0]["size"] += 1
    reply = client.push_manifest("team/liar", "bad", manifest)
    assert reply.status == 400 and reply.error_code == "MANIFEST_INVALID"
    assert client.tags("team/liar") == ["good"]


@pytest.mark.parametrize(
    "body, content_type, code, status",
    [
        (b"not json", OCI_MANIFEST, "MANIFEST_INVALID", 400),
        (b"[1, 2]", OCI_MANIFEST, "MANIFEST_INVALID", 400),
        (
            json.dumps({"schemaVersion": 1, "mediaType": OCI_MANIFEST, "config": {}}).encode(),
            OCI_MANIFEST,
            "MANIFEST_INVALID",
            400,
        ),
        (
            json.dumps(
                {"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v1+json"}
            ).encode(),
            "application/vnd.docker.distribution.manifest.v1+json",
            "UNSUPPORTED",
            415,
        ),
        (
            json.dumps(
                {"schemaVersion": 2, "config": {"digest": "sha256:nothex", "size": 2}, "layers": []}
            ).encode(),
            OCI_MANIFEST,
            "MANIFEST_INVALID",
            400,
        ),
    ],
)
def test_malformed_manifests(client, body, content_type, code, status):
    reply = client.request("PUT", "/v2/team/malformed/manifests/v1", body, {"Content-Type": content_type})
    assert (reply.status, reply.error_code) == (status, code)
    assert client.tags("team/malformed") == []


def test_manifest_pushed_under_a_digest_it_does_not_have(client):
    manifest, _ = client.push_image("team/wrongdigest", "good")
    reply = client.push_manifest("team/wrongdigest", digest_of(b"other"), manifest)
    assert reply.status == 400 and reply.error_code == "DIGEST_INVALID"


@pytest.mark.parametrize("n", ["-1", "abc", "1e3"])
def test_page_size_that_is_not_a_count(client, n):
    reply = client.request("GET", f"/v2/_catalog?n={n}")
    assert reply.status == 400 and reply.json()["errors"][0]["code"]


def test_huge_page_size_on_catalog_is_capped(client):
    reply = client.request("GET", f"/v2/_catalog?n={10**30}")
    assert reply.status == 200 and isinstance(reply.json()["repositories"], list)


@pytest.mark.parametrize(
    "name",
    [
        "Team/upper",
        "team//double",
        "-lead",
        "team/trail-",
        "a" * 300,
        "team/../escape",
        "team/.hidden",
        "team/_layers",
    ],
)
def test_invalid_repository_names(client, name):
    for method, path in (
        ("GET", f"/v2/{name}/tags/list"),
        ("POST", f"/v2/{name}/blobs/uploads/"),
        ("GET", f"/v2/{name}/manifests/latest"),
    ):
        reply = client.request(method, path)
        assert (reply.status, reply.error_code) == (400, "NAME_INVALID"), (method, path)
    assert client.open_uploads() == set()


@pytest.mark.parametrize(
    "digest, code",
    [
        ("sha256:abc", "DIGEST_INVALID"),
        ("md5:" + "0" * 32, "DIGEST_INVALID"),
        ("sha512:" + "0" * 128, "DIGEST_INVALID"),
    ],
)
def test_invalid_digests(client, digest, code):
    reply = client.request("GET", f"/v2/team/digests/blobs/{digest}")
    assert (reply.status, reply.error_code) == (400, code)
    reply = client.request("POST", f"/v2/team/digests/blobs/uploads/?digest={digest}", b"data")
    assert (reply.status, reply.error_code) == (400, code)
    assert client.open_uploads() == set()


def test_out_of_order_first_chunk_and_unknown_upload(client):
    location = client.request("POST", "/v2/team/bad/blobs/uploads/").headers["Location"]
    reply = client.request("PATCH", location, b"q" * 10, {"Content-Range": "5-14"})
    assert reply.status == 416
    client.request("DELETE", location)
    unknown = client.request("PATCH", "/v2/team/bad/blobs/uploads/00000000-0000-0000-0000-000000000000", b"q")
    assert unknown.status == 404 and unknown.error_code == "BLOB_UPLOAD_UNKNOWN"
    traversal = client.request("GET", "/v2/team/bad/blobs/uploads/..")
    assert traversal.status in (400, 404)


def test_method_not_allowed(client):
    reply = client.request("PATCH", "/v2/team/bad/manifests/latest", b"")
    assert reply.status == 405 and reply.error_code == "UNSUPPORTED"


def test_foreign_layer_urls_are_not_followed_and_the_layer_must_be_here(client):
    manifest, _ = client.push_image("team/foreign", "good")
    missing = "sha256:" + hashlib.sha256(b"foreign layer").hexdigest()
    manifest["layers"].append(
        {"mediaType": "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip", "digest": missing,
         "size": 13, "urls": ["http://127.0.0.1:9/layer"]}
    )  # fmt: skip
    reply = client.push_manifest("team/foreign", "bad", manifest)
    assert reply.status == 400 and reply.error_code == "MANIFEST_BLOB_UNKNOWN"
    assert client.tags("team/foreign") == ["good"]


def peak_rss_mib(pid: int) -> float:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


def test_memory_stays_bounded_for_a_blob_larger_than_it(registry, client):
    """A 256 MiB blob goes in (streamed PATCH) and out (GET) without the server holding it."""
    chunk = os.urandom(1 << 20)
    total = 256
    hasher = hashlib.sha256()
    for _ in range(total):
        hasher.update(chunk)
    digest = "sha256:" + hasher.hexdigest()
    location = client.request("POST", "/v2/team/big/blobs/uploads/").headers["Location"]
    patched = client.request("PATCH", location, (chunk for _ in range(total)), chunked=True)
    assert patched.status == 202
    assert client.request("PUT", f"{location}?digest={digest}").status == 201

    connection = client.connection()
    connection.request("GET", f"/v2/team/big/blobs/{digest}")
    response = connection.getresponse()
    received = hashlib.sha256()
    while block := response.read(1 << 20):
        received.update(block)
    connection.close()
    assert "sha256:" + received.hexdigest() == digest
    peak = peak_rss_mib(registry.process.pid)
    (registry.root / "blobs" / "sha256" / digest.split(":")[1]).unlink()  # 256 MiB less in /tmp
    assert peak < total / 2, f"the server peaked at {peak:.0f} MiB"
