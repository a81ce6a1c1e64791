"""A registry that lies, for tests: an aiohttp server on 127.0.0.1 in a thread of the test process.

Each repository's last path component selects one lie about a valid one-layer image (``ok`` tells
none). With ``token_auth``, it also plays a bearer-token registry: ``GET /v2/`` answers 401 with a
``Bearer realm=.../token`` challenge, the token endpoint gives ``tok-<user>`` for good basic
credentials (``users``) and ``tok-anonymous`` otherwise, and repositories under ``private/`` need a
user's token.
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import hashlib
import json
import socket
import threading

from aiohttp import web

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
GZIP_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class HostileRegistry:
    def __init__(
        self, layer_tar: bytes, *, token_auth: bool = False, users: dict[str, str] | None = None
    ) -> None:
        self.token_auth = token_auth
        self.users = users or {}
        self.token_requests: list[dict[str, str]] = []
        self.cdn_authorization: list[str | None] = []
        self.layer = gzip.compress(layer_tar, compresslevel=1)
        self.plain = layer_tar
        self.diff_id = sha(layer_tar)
        self.requests: list[str] = []
        self.blobs: dict[str, bytes] = {}
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None

    def config(self, diff_id: str | None = None) -> bytes:
        return json.dumps(
            {
                "architecture": "amd64",
                "os": "linux",
                "config": {"Cmd": ["sh"]},
                "rootfs": {"type": "layers", "diff_ids": [diff_id or self.diff_id]},
            }
        ).encode()

    def manifest(
        self,
        config: bytes,
        layer: bytes,
        *,
        size: int | None = None,
        media: str = GZIP_LAYER,
        extra_layer: dict | None = None,
    ) -> bytes:
        self.blobs[sha(config)] = config
        self.blobs[sha(layer)] = layer
        layer_doc = {"mediaType": media, "digest": sha(layer), "size": len(layer) if size is None else size}
        if extra_layer:
            layer_doc.update(extra_layer)
        return json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": DOCKER_MANIFEST,
                "config": {
                    "mediaType": "application/vnd.docker.container.image.v1+json",
                    "digest": sha(config),
                    "size": len(config),
                },
                "layers": [layer_doc],
            }
        ).encode()

    def _challenge(self) -> web.Response:
        return web.json_response(
            {"errors": [{"code": "UNAUTHORIZED", "message": "authentication required"}]},
            status=401,
            headers={
                "WWW-Authenticate": f'Bearer realm="http://127.0.0.1:{self.port}/token",service="hostile"'
            },
        )

    def _denied(self, request: web.Request) -> web.Response | None:
        if not self.token_auth:
            return None
        token = request.headers.get("Authorization", "")
        if not token.startswith("Bearer tok-"):
            return self._challenge()
        if request.match_info["repo"].startswith("private/") and token == "Bearer tok-anonymous":
            return self._challenge()
        return None

    async def handle_token(self, request: web.Request) -> web.Response:
        self.token_requests.append(dict(request.query))
        user = "anonymous"
        header = request.headers.get("Authorization", "")
        if header.startswith("Basic "):
            name, _, password = base64.b64decode(header[6:]).decode().partition(":")
            if self.users.get(name) != password:
                return web.json_response({"details": "bad credentials"}, status=401)
            user = name
        return web.json_response({"token": f"tok-{user}"})

    async def handle_manifest(self, request: web.Request) -> web.StreamResponse:
        scenario = request.match_info["repo"].split("/")[-1]
        self.requests.append(request.path)
        if (denied := self._denied(request)) is not None:
            return denied
        content_type = DOCKER_MANIFEST
        if scenario == "wrong-content-digest":
            body = self.manifest(self.config(), self.layer)
            return web.Response(
                body=body, headers={"Content-Type": content_type, "Docker-Content-Digest": sha(body + b" ")}
            )
        if scenario in ("ok", "redirect"):
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
            body = self.manifest(
                self.config(),
                self.layer,
                extra_layer={"urls": [f"http://127.0.0.1:{self.port}/elsewhere/layer"]},
            )
        elif scenario == "foreign-media-type":
            body = self.manifest(
                self.config(), self.layer, media="application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
            )
        elif scenario == "diff-id-mismatch":
            body = self.manifest(self.config(sha(b"something else")), self.layer)
        elif scenario == "gzip-that-is-not":
            body = self.manifest(self.config(), self.plain)
        elif scenario == "not-json":
            body = b"{this is not json"
        else:
            return web.json_response(
                {"errors": [{"code": "MANIFEST_UNKNOWN", "message": "manifest unknown"}]}, status=404
            )
        return web.Response(
            body=body, headers={"Content-Type": content_type, "Docker-Content-Digest": sha(body)}
        )

    async def handle_blob(self, request: web.Request) -> web.StreamResponse:
        scenario = request.match_info["repo"].split("/")[-1]
        digest = request.match_info["digest"]
        self.requests.append(request.path)
        if (denied := self._denied(request)) is not None:
            return denied
        data = self.blobs.get(digest)
        if data is None:
            return web.json_response({"errors": [{"code": "BLOB_UNKNOWN"}]}, status=404)
        if data is self.layer or data is self.plain:
            if scenario == "redirect":  # to another host name (a CDN): credentials must not follow
                raise web.HTTPTemporaryRedirect(f"http://localhost:{self.port}/cdn/{digest}")
            if scenario == "digest-mismatch":
                data = data[:100] + bytes([data[100] ^ 0xFF]) + data[101:]
            elif scenario == "truncated":
                data = data[: len(data) // 2]
            elif scenario == "size-lies-chunked":  # no Content-Length: the bytes themselves must be counted
                response = web.StreamResponse()
                response.enable_chunked_encoding()
                await response.prepare(request)
                for start in range(0, len(data), 65536):
                    await response.write(data[start : start + 65536])
                await response.write_eof()
                return response
            elif scenario == "interrupted":
                response = web.StreamResponse(headers={"Content-Length": str(len(data))})
                await response.prepare(request)
                await response.write(data[: len(data) // 2])
                request.transport.close()
                return response
        return web.Response(body=data, headers={"Content-Type": "application/octet-stream"})

    async def handle_cdn(self, request: web.Request) -> web.Response:
        self.requests.append(request.path)
        self.cdn_authorization.append(request.headers.get("Authorization"))
        return web.Response(body=self.blobs[request.match_info["digest"]])

    async def handle_elsewhere(self, request: web.Request) -> web.Response:
        self.requests.append(request.path)
        return web.Response(body=self.layer)

    async def handle_ping(self, request: web.Request) -> web.Response:
        if self.token_auth and not request.headers.get("Authorization", "").startswith("Bearer tok-"):
            return self._challenge()
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
            app.router.add_get("/token", self.handle_token)
            app.router.add_get("/cdn/{digest}", self.handle_cdn)
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
