"""The pieces of the distribution client that need no network: credentials and headers, challenge
parsing, manifest validation, platform selection, Docker's progress bar and its display."""

from __future__ import annotations

import base64
import io
import json

import pytest
from pyengine.cli.progress_display import display
from pyengine.cli.session import CommandError
from pyengine.distribution import auth, manifests, progress
from pyengine.distribution.registry import base_url, is_insecure
from pyengine.errors import InvalidArgument, NotFound

DIGEST = "sha256:" + "a" * 64
OTHER = "sha256:" + "b" * 64


def test_x_registry_auth_decodes_what_docker_sends():
    assert auth.decode_registry_auth("e30=").anonymous
    assert auth.decode_registry_auth(None).anonymous
    header = (
        base64.urlsafe_b64encode(
            json.dumps({"username": "u", "password": "p~?>", "serveraddress": "127.0.0.1:5000"}).encode()
        )
        .decode()
        .rstrip("=")
    )
    creds = auth.decode_registry_auth(header)
    assert (creds.username, creds.password) == ("u", "p~?>")
    token = auth.decode_registry_auth(auth.encode_registry_auth(auth.Credentials(identity_token="t")))
    assert token.identity_token == "t"
    with pytest.raises(InvalidArgument):
        auth.decode_registry_auth("!!!notbase64json")


def test_credentials_are_stored_like_docker_config_json(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"auths": {}, "credsStore": "", "other": 1}))
    auth.store_credentials("http://127.0.0.1:5000/v2/", auth.Credentials("alice", "pw"), path)
    doc = json.loads(path.read_text())
    assert doc["auths"]["127.0.0.1:5000"] == {"auth": base64.b64encode(b"alice:pw").decode()}
    assert doc["other"] == 1
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert auth.load_credentials("127.0.0.1:5000", path) == auth.Credentials("alice", "pw")
    assert auth.load_credentials("docker.io", path).anonymous
    assert auth.remove_credentials("127.0.0.1:5000", path)
    assert not auth.remove_credentials("127.0.0.1:5000", path)
    assert auth.auth_key("docker.io") == "https://index.docker.io/v1/"


def test_challenge_parsing():
    challenge = auth.parse_challenge(
        'Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push"'
    )
    assert challenge.scheme == "bearer"
    assert challenge.params == {
        "realm": "https://auth.example/token",
        "service": "registry.example",
        "scope": "repository:a/b:pull,push",
    }
    assert auth.parse_challenge('Basic realm="r"').scheme == "basic"


def test_loopback_registries_are_plain_http_others_https():
    assert is_insecure("127.0.0.1:5000") and is_insecure("127.3.4.5:1") and is_insecure("localhost:5000")
    assert is_insecure("[::1]:5000")
    assert not is_insecure("registry.example:5000") and not is_insecure("10.0.0.1:5000")
    assert str(base_url("docker.io")) == "https://registry-1.docker.io"


def _manifest(**changes) -> dict:
    doc = {
        "schemaVersion": 2,
        "mediaType": manifests.DOCKER_MANIFEST,
        "config": {"mediaType": manifests.DOCKER_CONFIG, "digest": DIGEST, "size": 10},
        "layers": [{"mediaType": manifests.DOCKER_LAYER_GZIP, "digest": OTHER, "size": 5}],
    }
    doc.update(changes)
    return doc


def test_manifest_validation():
    parsed = manifests.parse(json.dumps(_manifest()).encode(), manifests.DOCKER_MANIFEST)
    assert isinstance(parsed, manifests.Manifest) and parsed.layers[0].digest == OTHER
    bad = {
        "media type disagrees": (_manifest(), manifests.OCI_MANIFEST),
        "foreign urls": (
            _manifest(
                layers=[
                    {
                        "mediaType": manifests.DOCKER_LAYER_GZIP,
                        "digest": OTHER,
                        "size": 5,
                        "urls": ["https://elsewhere/x"],
                    }
                ]
            ),
            None,
        ),
        "negative size": (
            _manifest(layers=[{"mediaType": manifests.DOCKER_LAYER_GZIP, "digest": OTHER, "size": -1}]),
            None,
        ),
        "bad digest": (
            _manifest(layers=[{"mediaType": manifests.DOCKER_LAYER_GZIP, "digest": "sha256:xyz", "size": 1}]),
            None,
        ),
        "both": ({**_manifest(), "manifests": []}, None),
        "schema 1": (_manifest(schemaVersion=1), None),
        "unknown layer type": (
            _manifest(layers=[{"mediaType": "text/plain", "digest": OTHER, "size": 1}]),
            None,
        ),
    }
    for name, (doc, content_type) in bad.items():
        with pytest.raises(InvalidArgument):
            manifests.parse(json.dumps(doc).encode(), content_type)
            pytest.fail(name)
    with pytest.raises(InvalidArgument, match="too large"):
        manifests.parse(b" " * (manifests.MAX_MANIFEST_BYTES + 1), None)


def test_platform_selection():
    index = manifests.Index(
        manifests.OCI_INDEX,
        [
            manifests.Descriptor(
                manifests.OCI_MANIFEST, DIGEST, 1, {"os": "linux", "architecture": "arm", "variant": "v6"}
            ),
            manifests.Descriptor(
                manifests.OCI_MANIFEST, OTHER, 1, {"os": "linux", "architecture": "arm", "variant": "v7"}
            ),
            manifests.Descriptor(
                manifests.OCI_MANIFEST, "sha256:" + "c" * 64, 1, {"os": "linux", "architecture": "amd64"}
            ),
        ],
    )
    assert manifests.select(index, manifests.parse_platform("linux/arm/v7")).digest == OTHER
    assert manifests.select(index, manifests.parse_platform("linux/x86_64")).digest.startswith("sha256:c")
    with pytest.raises(NotFound, match="no matching manifest for linux/s390x"):
        manifests.select(index, manifests.parse_platform("linux/s390x"))
    with pytest.raises(InvalidArgument):
        manifests.parse_platform("linux//")


def test_progress_bar_is_dockers():
    assert progress.progress_bar(115, 115) == "[" + "=" * 50 + ">]     115B/115B"
    assert progress.progress_bar(19968, 1984172) == "[>" + " " * 50 + "]  19.97kB/1.984MB"
    assert progress.progress_bar(2129920, 1984172) == "[" + "=" * 50 + ">]   2.13MB"
    assert progress.human_size(0) == "0B"


def test_display_redraws_layer_lines_on_a_terminal_and_prints_status_lines_elsewhere():
    messages = [
        progress.status("Pulling from team/bb", "1"),
        progress.status("Pulling fs layer", "aaa"),
        progress.status("Pulling fs layer", "bbb"),
        progress.progress("Downloading", "aaa", 50, 100),
        progress.status("Pull complete", "aaa"),
        progress.status("Digest: sha256:x"),
    ]
    plain = io.StringIO()
    display(messages, plain, tty=False)
    assert plain.getvalue().splitlines() == [
        "1: Pulling from team/bb",
        "aaa: Pulling fs layer",
        "bbb: Pulling fs layer",
        "aaa: Pull complete",
        "Digest: sha256:x",
    ]
    terminal = io.StringIO()
    display(messages, terminal, tty=True)
    assert "\x1b[2A\r\x1b[2Kaaa: Downloading [=========================>" in terminal.getvalue()
    with pytest.raises(CommandError, match="boom"):
        display([progress.error("boom")], io.StringIO(), tty=False)


def _store_stream(tmp_path, chunks, expected, size):
    import asyncio
    import hashlib  # noqa: F401

    from pyengine.distribution.layers import store_stream
    from pyengine.state.blobs import BlobStore

    blobs = BlobStore(tmp_path)

    async def source():
        for chunk in chunks:
            if isinstance(chunk, BaseException):
                raise chunk
            yield chunk

    result = asyncio.run(store_stream(blobs, source(), expected, size))
    return blobs, result


def test_store_stream_verifies_and_leaves_nothing_on_failure(tmp_path):
    from pyengine.state.blobs import sha256_digest

    data = b"x" * (3 << 20) + b"tail"
    digest = sha256_digest(data)
    blobs, stored = _store_stream(tmp_path, [data[: 1 << 20], data[1 << 20 :]], digest, len(data))
    assert stored == digest and blobs.read(digest) == data
    blob_dir = tmp_path / "blobs" / "sha256"
    failures = [
        ([data[:-1] + b"X"], digest, len(data), "digest mismatch"),
        ([data[:100]], digest, len(data), "the manifest says"),
        ([data[: 2 << 20], ConnectionResetError("peer went away")], digest, len(data), "peer went away"),
    ]
    blobs.delete(digest)
    for chunks, expected, size, message in failures:
        with pytest.raises(Exception, match=message):
            _store_stream(tmp_path, chunks, expected, size)
        assert list(blob_dir.iterdir()) == []  # no blob, no temporary file
