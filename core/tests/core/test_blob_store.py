"""The blob store writes atomically and verifies digests: a mismatch or a crash stores nothing."""

from __future__ import annotations

import hashlib

import pytest
from pyengine.errors import InvalidArgument, NotFound
from pyengine.state.blobs import BlobStore


def test_put_and_read_back(tmp_path):
    store = BlobStore(tmp_path)
    digest = store.put(b"hello")
    assert digest == "sha256:" + hashlib.sha256(b"hello").hexdigest()
    assert store.read(digest) == b"hello"
    assert (tmp_path / "oci-layout").exists()


def test_digest_mismatch_stores_nothing(tmp_path):
    store = BlobStore(tmp_path)
    wrong = "sha256:" + "0" * 64
    with pytest.raises(InvalidArgument, match="digest mismatch"):
        store.put_chunks([b"a", b"b"], expected=wrong)
    assert list((tmp_path / "blobs" / "sha256").iterdir()) == []
    with pytest.raises(NotFound):
        store.read(wrong)


def test_interrupted_stream_leaves_no_temporary(tmp_path):
    store = BlobStore(tmp_path)

    def chunks():
        yield b"partial"
        raise ConnectionResetError("peer went away")

    with pytest.raises(ConnectionResetError):
        store.put_chunks(chunks())
    assert list((tmp_path / "blobs" / "sha256").iterdir()) == []


def test_startup_removes_temporaries_of_a_crash(tmp_path):
    store = BlobStore(tmp_path)
    (tmp_path / "blobs" / "sha256" / ".tmp-crashed").write_bytes(b"torn")
    store.cleanup_temporaries()
    assert list((tmp_path / "blobs" / "sha256").iterdir()) == []


def test_invalid_digest_is_refused(tmp_path):
    with pytest.raises(InvalidArgument):
        BlobStore(tmp_path).path("sha256:../../etc/passwd")
