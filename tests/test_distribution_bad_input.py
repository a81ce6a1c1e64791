"""A registry that lies: every kind of bad content must end the pull with a clear error, store
nothing (no image, no blob of the bad layer, no temporary file), and leave the daemon serving.

The hostile registry (pyengine.testing.fake_registry) is a small aiohttp server on 127.0.0.1 in a
thread of the test process; each repository name selects one lie about a valid busybox image.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from pyengine.testing import engine_api
from pyengine.testing.fake_registry import HostileRegistry


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="module")
def hostile(busybox_tar):
    server = HostileRegistry(Path(busybox_tar).read_bytes())
    server.start()
    try:
        yield server
    finally:
        server.stop()


def content_files(daemon) -> set[str]:
    return {p.name for p in (daemon.data_path / "content" / "blobs" / "sha256").iterdir()}


def test_the_hostile_registry_serves_a_good_image(cli, hostile):
    ref = f"127.0.0.1:{hostile.port}/bad/ok:1"
    pulled = cli("pull", ref)
    assert pulled.returncode == 0, pulled.stderr
    assert cli("run", "--rm", ref, "echo", "fine").stdout == "fine\n"
    assert cli("rmi", ref).returncode == 0


@pytest.mark.parametrize(
    ("scenario", "message"),
    [
        ("digest-mismatch", "digest mismatch"),
        ("truncated", "the manifest says"),
        ("interrupted", "interrupted"),
        ("size-lies", "the manifest says"),
        ("size-lies-chunked", "larger than the manifest"),
        ("media-type-mismatch", "media type mismatch"),
        ("index-and-manifest", "both an image manifest and an index"),
        ("huge-manifest", "manifest too large"),
        ("foreign-urls", "foreign URLs"),
        ("foreign-media-type", "foreign layer"),
        ("diff-id-mismatch", "diff ID"),
        ("gzip-that-is-not", "not gzip"),
        ("not-json", "not JSON"),
        ("wrong-content-digest", "the registry announced"),
        ("missing", "not found"),
    ],
)
def test_bad_registry_content_is_refused_and_nothing_is_stored(cli, daemon, hostile, scenario, message):
    ref = f"127.0.0.1:{hostile.port}/bad/{scenario}:1"
    before = content_files(daemon)
    result = cli("pull", ref)
    assert result.returncode != 0
    assert message in result.stderr, result.stderr
    assert cli("inspect", "--type", "image", ref).returncode != 0
    after = content_files(daemon)
    assert not [name for name in after if name.startswith(".tmp-")]
    assert sha(hostile.layer)[7:] not in after - before
    assert sha(hostile.plain)[7:] not in after - before
    assert "/elsewhere/layer" not in hostile.requests  # foreign URLs are never followed
    assert engine_api.ping(daemon.socket)


def test_bad_pull_through_the_api_is_a_stream_error_after_the_200(api, hostile):
    status, body = api("POST", f"/images/create?fromImage=127.0.0.1:{hostile.port}/bad/digest-mismatch&tag=1")
    assert status == 200
    lines = [json.loads(line) for line in body.strip().splitlines()] if isinstance(body, str) else [body]
    assert "digest mismatch" in lines[-1]["errorDetail"]["message"]
    assert lines[-1]["error"] == lines[-1]["errorDetail"]["message"]


def test_errors_before_the_stream_are_http_errors(api, hostile):
    status, body = api("POST", f"/images/create?fromImage=127.0.0.1:{hostile.port}/bad/missing&tag=1")
    assert status == 404 and "not found" in body["message"]
    status, body = api("POST", "/images/create?fromImage=127.0.0.1:1/nothing-listens&tag=1")
    assert status == 503 and "127.0.0.1:1" in body["message"]
    status, body = api("POST", "/images/create?fromImage=127.0.0.1:1/UPPER&tag=1")
    assert status == 400
