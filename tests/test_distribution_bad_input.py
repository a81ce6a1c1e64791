"""A registry that lies: every kind of bad content must end the pull with a clear error, store
nothing (no image, no blob of the bad layer, no temporary file), and leave the daemon serving.

The hostile registry is a small aiohttp server on 127.0.0.1 in a thread of the test process; each
repository name selects one lie about a valid busybox image.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import json
import socket
import threading
from pathlib import Path

import pytest
from aiohttp import web

from pyengine.testing import engine_api

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
GZIP_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class HostileRegistry:
    def __init__(self, layer_tar: bytes) -> None:
        self.layer = gzip.compress(layer_tar, compresslevel=1)
        self.plain = layer_tar
        self.diff_id = sha(layer_tar)
        self.requests: list[str] = []
        self.blobs: dict[str, bytes] = {}
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None

    def config(self, diff_id: str | None = None) -> bytes:
        return json.dumps({"architecture": "amd64", "os": "linux", "config": {"Cmd": ["sh"]},
                           "rootfs": {"type": "layers", "diff_ids": [diff_id or self.diff_id]}}).encode()

    def manifest(self, config: bytes, layer: bytes, *, size: int | None = None, media: str = GZIP_LAYER,
                 extra_layer: dict | None = None) -> bytes:
        self.blobs[sha(config)] = config
        self.blobs[sha(layer)] = layer
        layer_doc = {"mediaType": media, "digest": sha(layer), "size": len(layer) if size is None else size}
        if extra_layer:
            layer_doc.update(extra_layer)
        return json.dumps({"schemaVersion": 2, "mediaType": DOCKER_MANIFEST,
                           "config": {"mediaType": "application/vnd.docker.container.image.v1+json",
                                      "digest": sha(config), "size": len(config)},
                           "layers": [layer_doc]}).encode()

    async def handle_manifest(self, request: web.Request) -> web.StreamResponse:
        scenario = request.match_info["repo"].split("/")[-1]
        self.requests.append(request.path)
        content_type = DOCKER_MANIFEST
        if scenario == "ok":
            body = self.manifest(self.config(), self.layer)
        elif scenario in ("digest-mismatch", "truncated", "interrupted"):
            body = self.manifest(self.config(), self.layer)
        elif scenario in ("size-lies", "size-lies-chunked"):
            body = self.manifest(self.config(), self.layer, size=len(self.layer) - 1000)
        elif scenario == "media-type-mismatch":
            body, content_type = self.manifest(self.config(), self.layer), OCI_INDEX
        elif scenario == "index-and-manifest":
            doc = json.loads(self.manifest(self.config(), self.layer))
            doc["manifests"] = []
            doc.pop("mediaType")
            body = json.dumps(doc).encode()
        elif scenario == "huge-manifest":
            doc = json.loads(self.manifest(self.config(), self.layer))
            doc["annotations"] = {"padding": "x" * (5 << 20)}
            body = json.dumps(doc).encode()
        elif scenario == "foreign-urls":
            body = self.manifest(self.config(), self.layer, extra_layer={
                "urls": [f"http://127.0.0.1:{self.port}/elsewhere/layer"]})
        elif scenario == "foreign-media-type":
            body = self.manifest(self.config(), self.layer,
                                 media="application/vnd.docker.image.rootfs.foreign.diff.tar.gzip")
        elif scenario == "diff-id-mismatch":
            body = self.manifest(self.config(sha(b"something else")), self.layer)
        elif scenario == "gzip-that-is-not":
            body = self.manifest(self.config(), self.plain)
        elif scenario == "not-json":
            body = b"{this is not json"
        else:
            return web.json_response({"errors": [{"code": "MANIFEST_UNKNOWN", "message": "manifest unknown"}]},
                                     status=404)
        return web.Response(body=body, headers={"Content-Type": content_type,
                                                "Docker-Content-Digest": sha(body)})

    async def handle_blob(self, request: web.Request) -> web.StreamResponse:
        scenario = request.match_info["repo"].split("/")[-1]
        digest = request.match_info["digest"]
        self.requests.append(request.path)
        data = self.blobs.get(digest)
        if data is None:
            return web.json_response({"errors": [{"code": "BLOB_UNKNOWN"}]}, status=404)
        if data is self.layer or data is self.plain:
            if scenario == "digest-mismatch":
                data = data[:100] + bytes([data[100] ^ 0xFF]) + data[101:]
            elif scenario == "truncated":
                data = data[: len(data) // 2]
            elif scenario == "size-lies-chunked":  # no Content-Length: the bytes themselves must be counted
                response = web.StreamResponse()
                response.enable_chunked_encoding()
                await response.prepare(request)
                for start in range(0, len(data), 65536):
                    await response.write(data[start:start + 65536])
                await response.write_eof()
                return response
            elif scenario == "interrupted":
                response = web.StreamResponse(headers={"Content-Length": str(len(data))})
                await response.prepare(request)
                await response.write(data[: len(data) // 2])
                request.transport.close()
                return response
        return web.Response(body=data, headers={"Content-Type": "application/octet-stream"})

    async def handle_elsewhere(self, request: web.Request) -> web.Response:
        self.requests.append(request.path)
        return web.Response(body=self.layer)

    async def handle_ping(self, request: web.Request) -> web.Response:
        return web.json_response({})

    def start(self) -> None:
        ready = threading.Event()
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]

        def serve() -> None:
            self._loop = asyncio.new_event_loop()
            app = web.Application()
            app.router.add_get("/v2/", self.handle_ping)
            app.router.add_route("*", "/v2/{repo:.+}/manifests/{ref}", self.handle_manifest)
            app.router.add_route("*", "/v2/{repo:.+}/blobs/{digest}", self.handle_blob)
            app.router.add_get("/elsewhere/layer", self.handle_elsewhere)
            self._runner = web.AppRunner(app)
            self._loop.run_until_complete(self._runner.setup())
            self._loop.run_until_complete(web.TCPSite(self._runner, "127.0.0.1", self.port).start())
            ready.set()
            self._loop.run_forever()
            self._loop.run_until_complete(self._runner.cleanup())
            self._loop.close()

        self._thread = threading.Thread(target=serve, daemon=True)
        self._thread.start()
        ready.wait(10)

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)


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
