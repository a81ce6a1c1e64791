"""Bad input gets Docker's status codes and messages, and loses nothing: the daemon keeps serving and
no half-written image, container or mount is left behind."""

from __future__ import annotations

import gzip
import io
import tarfile


def test_unknown_image_is_404(api, busybox):
    status, body = api("POST", "/v1.41/containers/create", {"Image": "nosuchimage:1"})
    assert status == 404
    assert body == {"message": "No such image: nosuchimage:1"}


def test_unknown_container_is_404(api):
    for method, path in [
        ("GET", "/containers/nosuch/json"),
        ("POST", "/containers/nosuch/start"),
        ("DELETE", "/containers/nosuch"),
        ("GET", "/containers/nosuch/logs?stdout=1"),
    ]:
        status, body = api(method, path)
        assert status == 404, path
        assert body["message"] == "No such container: nosuch"


def test_malformed_json_is_400(api, busybox):
    status, body = api("POST", "/containers/create", raw=b"{not json")
    assert status == 400 and "invalid JSON" in body["message"]
    status, body = api("POST", "/containers/create", {"Image": "busybox", "Cmd": 5})
    assert status == 400 and "Cmd" in body["message"]
    status, body = api(
        "POST", "/containers/create", {"Image": "busybox", "HostConfig": {"AutoRemove": "maybe"}}
    )
    assert status == 400


def test_unknown_fields_are_ignored(api, busybox):
    status, body = api("POST", "/containers/create", {"Image": "busybox", "Cmd": ["true"], "NoSuchField": 1})
    assert status == 201
    assert api("DELETE", f"/containers/{body['Id']}")[0] == 204


def test_invalid_name_and_no_command(api, busybox, empty_image):
    status, body = api("POST", "/containers/create?name=x", {"Image": "busybox"})
    assert status == 400 and "Invalid container name (x)" in body["message"]
    status, body = api("POST", "/containers/create", {"Image": empty_image})
    assert status == 400 and body["message"] == "No command specified"


def test_bad_wait_condition_and_versions(api, busybox):
    status, body = api("POST", "/containers/create", {"Image": "busybox", "Cmd": ["true"]})
    cid = body["Id"]
    try:
        assert api("POST", f"/containers/{cid}/wait?condition=bogus")[0] == 400
        assert api("GET", "/v9.99/version")[0] == 400
        assert api("GET", "/v1.41/version")[0] == 200
        status, body = api("GET", "/v1.41/no/such/route")
        assert status == 404 and body == {"message": "page not found"}
    finally:
        api("DELETE", f"/containers/{cid}")


def test_stop_of_stopped_is_304_and_kill_of_stopped_is_409(api, busybox):
    status, body = api("POST", "/containers/create", {"Image": "busybox", "Cmd": ["true"]})
    cid = body["Id"]
    try:
        assert api("POST", f"/containers/{cid}/stop")[0] == 304
        status, body = api("POST", f"/containers/{cid}/kill")
        assert status == 409 and "is not running" in body["message"]
    finally:
        api("DELETE", f"/containers/{cid}")


def _import(api, data: bytes, repo: str):
    return api(
        "POST", f"/images/create?fromSrc=-&repo={repo}&tag=1", raw=data, content_type="application/x-tar"
    )


def _image_count(api) -> int:
    return len(api("GET", "/images/json")[1])


def test_corrupt_or_truncated_tarball_stores_nothing(api, busybox_tar, daemon, storage_driver):
    before = _image_count(api)
    blobs = sorted((daemon.data_path / "content" / "blobs" / "sha256").iterdir())
    layers = sorted((daemon.data_path / "storage" / storage_driver).rglob("*"))
    whole = busybox_tar.read_bytes()
    for bad in (b"this is not a tar archive" * 100, whole[: len(whole) // 2], gzip.compress(whole)[:5000]):
        status, body = _import(api, bad, "broken")
        assert status == 400, body
        assert "tar archive" in body["message"]
    assert _image_count(api) == before
    assert sorted((daemon.data_path / "content" / "blobs" / "sha256").iterdir()) == blobs
    assert sorted((daemon.data_path / "storage" / storage_driver).rglob("*")) == layers
    assert api("GET", "/_ping")[0] == 200


def test_escaping_tarball_is_refused(api, daemon):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        info = tarfile.TarInfo("../../escaped-by-pyengine-test")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"bad"))
    status, body = _import(api, buffer.getvalue(), "escape")
    assert status == 400
    assert not (daemon.data_path.parent / "escaped-by-pyengine-test").exists()
    assert api("GET", "/_ping")[0] == 200


def test_remove_image_in_use_is_409(api, busybox):
    status, body = api("POST", "/containers/create", {"Image": "busybox", "Cmd": ["true"]})
    cid = body["Id"]
    try:
        status, body = api("DELETE", "/images/busybox")
        assert status == 409 and "is using its referenced image" in body["message"]
    finally:
        api("DELETE", f"/containers/{cid}")
