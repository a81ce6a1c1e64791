"""A thin client of the OCI distribution API on aiohttp: what an engine needs to pull and push.

Authentication follows the challenge flow Docker uses: ``GET /v2/`` answers 401 with a
``WWW-Authenticate`` header; for ``Bearer`` we fetch a token from its realm (with basic credentials
when we have them) for the scopes the operation needs, for ``Basic`` we send the credentials on every
request. Registries on 127.0.0.0/8 and localhost are spoken to over plain HTTP (Docker's default
insecure range), all others over HTTPS. Redirects are followed by hand so that credentials never go to
another host.
"""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
from yarl import URL

from pyengine.distribution.auth import ANONYMOUS, Credentials, parse_challenge
from pyengine.distribution.manifests import ACCEPT, MAX_MANIFEST_BYTES
from pyengine.errors import EngineError, InvalidArgument, NotFound, PermissionDenied, Unavailable
from pyengine.state.blobs import sha256_digest

CHUNK = 1 << 20
_MAX_REDIRECTS = 5


class Unauthorized(PermissionDenied):
    """The registry refused the credentials (Docker answers 401 to a failed login)."""

    status = 401


class RegistryError(EngineError):
    """The registry answered with an error the user should see (its spec code and message)."""

    status = 500


def is_insecure(registry: str) -> bool:
    """Whether to use plain HTTP: localhost and 127.0.0.0/8 (and ::1), as Docker's default."""
    host = registry.rsplit(":", 1)[0] if not registry.endswith("]") else registry
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def base_url(registry: str) -> URL:
    """The registry's root URL; Docker Hub's API lives at registry-1.docker.io."""
    if registry == "docker.io":
        registry = "registry-1.docker.io"
    return URL(f"{'http' if is_insecure(registry) else 'https'}://{registry}")


def _spec_error(body: bytes) -> str:
    try:
        errors = json.loads(body).get("errors") or []
        return "; ".join(f"{e.get('code', '').lower()}: {e.get('message', '')}" for e in errors)
    except (ValueError, AttributeError):
        return body[:200].decode(errors="replace").strip()


class RegistryClient:
    """One repository on one registry, with the credentials and actions of one operation.

    Use as ``async with RegistryClient(...) as client:``; all methods raise pyengine errors.
    """

    def __init__(
        self,
        registry: str,
        repository: str,
        creds: Credentials = ANONYMOUS,
        *,
        push: bool = False,
        extra_pull_scopes: tuple[str, ...] = (),
        connections: int = 8,
    ) -> None:
        self.registry = registry
        self.repository = repository  # the path on the registry, e.g. library/busybox
        self.creds = creds
        self.base = base_url(registry)
        actions = "pull,push" if push else "pull"
        self.scopes = [f"repository:{repository}:{actions}"] + [
            f"repository:{r}:pull" for r in extra_pull_scopes if r != repository
        ]
        self._connections = connections
        self._session: aiohttp.ClientSession | None = None
        self._authorization: str | None = None
        self._challenge_seen = False

    async def __aenter__(self) -> RegistryClient:
        timeout = aiohttp.ClientTimeout(total=None, connect=30, sock_read=300)
        self._session = aiohttp.ClientSession(
            timeout=timeout,
            connector=aiohttp.TCPConnector(limit=self._connections),
            auto_decompress=False,
            headers={"User-Agent": "pyengine (docker-compatible)"},
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()

    @property
    def session(self) -> aiohttp.ClientSession:
        assert self._session is not None, "use RegistryClient as an async context manager"
        return self._session

    # ---- authentication ---------------------------------------------------------------------
    async def login(self) -> None:
        """``GET /v2/`` and answer its challenge; PermissionDenied if the credentials are refused."""
        url = self.base / "v2/"
        response = await self._send("GET", url, auth=False)
        async with response:
            if response.status == 401:
                await self._answer_challenge(response)
            elif response.status >= 400:
                raise RegistryError(f"GET {url}: {response.status} {_spec_error(await response.read())}")
        if self._challenge_seen:
            async with await self._send("GET", url) as again:
                if again.status == 401:
                    if self.creds.anonymous:  # dockerd's words when it has nothing to offer
                        raise Unauthorized(f'Get "{url}": no basic auth credentials')
                    raise Unauthorized(f"login attempt to {url} failed with status: 401 Unauthorized")

    async def _answer_challenge(self, response: aiohttp.ClientResponse) -> None:
        header = response.headers.get("WWW-Authenticate", "")
        challenge = parse_challenge(header)
        self._challenge_seen = True
        if challenge.scheme == "basic":
            if self.creds.username or self.creds.password:
                raw = f"{self.creds.username}:{self.creds.password}".encode()
                self._authorization = "Basic " + base64.b64encode(raw).decode()
            return
        if challenge.scheme != "bearer":
            raise RegistryError(f"unsupported authentication scheme in {header!r}")
        if self.creds.registry_token:
            self._authorization = f"Bearer {self.creds.registry_token}"
            return
        self._authorization = "Bearer " + await self._fetch_token(challenge.params)

    async def _fetch_token(self, params: dict[str, str]) -> str:
        realm = params.get("realm")
        if not realm:
            raise RegistryError("the registry's bearer challenge names no realm")
        token_url = URL(realm)
        query: list[tuple[str, str]] = []
        if params.get("service"):
            query.append(("service", params["service"]))
        query += [("scope", s) for s in self.scopes]
        headers = {}
        if self.creds.identity_token:
            # OAuth2 refresh-token grant, as Docker does for identity tokens.
            form = {
                "grant_type": "refresh_token",
                "refresh_token": self.creds.identity_token,
                "service": params.get("service", ""),
                "scope": " ".join(self.scopes),
                "client_id": "pyengine",
            }
            request = self.session.post(token_url, data=form, allow_redirects=False)
        else:
            if self.creds.username or self.creds.password:
                raw = f"{self.creds.username}:{self.creds.password}".encode()
                headers["Authorization"] = "Basic " + base64.b64encode(raw).decode()
            request = self.session.get(token_url.with_query(query), headers=headers, allow_redirects=False)
        try:
            async with request as response:
                body = await response.content.read(1 << 20)
                if response.status == 401:
                    raise Unauthorized(
                        f"login attempt to {self.base}/v2/ failed with status: 401 Unauthorized"
                    )
                if response.status >= 400:
                    raise RegistryError(f"token request to {token_url} failed: {response.status}")
        except aiohttp.ClientError as exc:
            raise Unavailable(f"token request to {token_url} failed: {exc}") from exc
        try:
            doc = json.loads(body)
        except ValueError as exc:
            raise RegistryError(f"token server {token_url} answered no JSON") from exc
        token = doc.get("token") or doc.get("access_token")
        if not token:
            raise RegistryError(f"token server {token_url} answered no token")
        return str(token)

    async def _send(
        self,
        method: str,
        url: URL,
        *,
        headers: dict[str, str] | None = None,
        data: Any = None,
        auth: bool = True,
        params: Any = None,
    ) -> aiohttp.ClientResponse:
        headers = dict(headers or {})
        if auth and self._authorization:
            headers["Authorization"] = self._authorization
        try:
            return await self.session.request(
                method, url, headers=headers, data=data, allow_redirects=False, params=params
            )
        except aiohttp.ClientConnectorError as exc:
            raise Unavailable(f'{method.title()} "{url}": {exc.os_error or exc}') from exc
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise Unavailable(f'{method.title()} "{url}": {exc or type(exc).__name__}') from exc

    async def request(
        self,
        method: str,
        url: URL,
        *,
        headers: dict[str, str] | None = None,
        data: Any = None,
        params: Any = None,
        replayable: bool = True,
    ) -> aiohttp.ClientResponse:
        """Send one request, answering a 401 challenge once (if the body can be sent again) and
        following same-host redirects with credentials, other-host redirects without."""
        response = await self._send(method, url, headers=headers, data=data, params=params)
        if response.status == 401 and replayable and "WWW-Authenticate" in response.headers:
            await self._answer_challenge(response)
            response.release()
            response = await self._send(method, url, headers=headers, data=data, params=params)
        for _ in range(_MAX_REDIRECTS):
            if response.status not in (301, 302, 303, 307, 308) or method not in ("GET", "HEAD"):
                return response
            target = url.join(URL(response.headers.get("Location", "")))
            response.release()
            same_host = (target.scheme, target.host, target.port) == (url.scheme, url.host, url.port)
            response = await self._send(method, target, headers=headers, auth=same_host)
            url = target
        return response

    # ---- manifests ----------------------------------------------------------------------------
    def _manifest_url(self, reference: str) -> URL:
        return self.base / "v2" / self.repository / "manifests" / reference

    async def get_manifest(self, reference: str) -> tuple[bytes, str, str]:
        """(bytes, content type, digest) of a manifest or index, read within 4 MiB and verified."""
        url = self._manifest_url(reference)
        response = await self.request("GET", url, headers={"Accept": ACCEPT})
        async with response:
            if response.status == 404:
                raise NotFound(
                    f"manifest for {self.registry}/{self.repository}:{reference} not found: "
                    f"{_spec_error(await response.content.read(1 << 16))}"
                )
            await self._raise_for(response, f"GET {url}")
            length = response.content_length
            if length is not None and length > MAX_MANIFEST_BYTES:
                raise InvalidArgument(f"manifest too large: {length} bytes (limit {MAX_MANIFEST_BYTES})")
            data = await response.content.read(MAX_MANIFEST_BYTES + 1)
            if (
                len(data) > MAX_MANIFEST_BYTES
                or not response.content.at_eof()
                and await response.content.read(1)
            ):
                raise InvalidArgument(f"manifest too large: over {MAX_MANIFEST_BYTES} bytes")
            content_type = response.headers.get("Content-Type", "")
            announced = response.headers.get("Docker-Content-Digest", "")
        digest = sha256_digest(data)
        if reference.startswith("sha256:") and digest != reference:
            raise InvalidArgument(f"manifest digest mismatch: asked for {reference}, got {digest}")
        if announced.startswith("sha256:") and announced != digest:
            raise InvalidArgument(
                f"manifest digest mismatch: the registry announced {announced}, got {digest}"
            )
        return data, content_type, digest

    async def put_manifest(self, reference: str, data: bytes, media_type: str) -> str:
        url = self._manifest_url(reference)
        response = await self.request("PUT", url, headers={"Content-Type": media_type}, data=data)
        async with response:
            await self._raise_for(response, f"PUT {url}")
        return sha256_digest(data)

    async def _raise_for(self, response: aiohttp.ClientResponse, what: str) -> None:
        if response.status < 400:
            return
        detail = _spec_error(await response.content.read(1 << 16))
        if response.status in (401, 403):
            raise PermissionDenied(
                f"{what}: {response.status} denied: {detail or 'requested access to the resource is denied'}"
            )
        if response.status == 404:
            raise NotFound(f"{what}: {detail or 'not found'}")
        raise RegistryError(f"{what}: {response.status} {detail}")

    # ---- blobs --------------------------------------------------------------------------------
    def _blob_url(self, digest: str) -> URL:
        return self.base / "v2" / self.repository / "blobs" / digest

    async def blob_chunks(self, digest: str, size_limit: int) -> AsyncIterator[bytes]:
        """The blob's bytes as they arrive; InvalidArgument as soon as more than ``size_limit``
        bytes come (a size that lies). Verification of the digest is the caller's job."""
        url = self._blob_url(digest)
        response = await self.request("GET", url)
        async with response:
            await self._raise_for(response, f"GET {url}")
            if response.content_length is not None and response.content_length > size_limit:
                raise InvalidArgument(
                    f"blob {digest} is {response.content_length} bytes, the manifest says {size_limit}"
                )
            received = 0
            try:
                async for chunk in response.content.iter_chunked(CHUNK):
                    received += len(chunk)
                    if received > size_limit:
                        raise InvalidArgument(
                            f"blob {digest} is larger than the manifest's {size_limit} bytes"
                        )
                    yield chunk
            except (TimeoutError, aiohttp.ClientPayloadError, aiohttp.ClientConnectionError) as exc:
                raise Unavailable(f"download of {digest} interrupted: {exc or type(exc).__name__}") from exc

    async def read_blob(self, digest: str, size: int) -> bytes:
        """A small blob (an image config) in memory, verified against its digest and size."""
        parts = [chunk async for chunk in self.blob_chunks(digest, size)]
        data = b"".join(parts)
        if len(data) != size:
            raise InvalidArgument(f"blob {digest}: got {len(data)} bytes, the manifest says {size}")
        if sha256_digest(data) != digest:
            raise InvalidArgument(f"blob {digest}: digest mismatch (got {sha256_digest(data)})")
        return data

    async def blob_exists(self, digest: str) -> bool:
        url = self._blob_url(digest)
        response = await self.request("HEAD", url)
        async with response:
            if response.status == 404:
                return False
            await self._raise_for(response, f"HEAD {url}")
            return True

    def _uploads_url(self) -> URL:
        return self.base / "v2" / self.repository / "blobs" / "uploads" / ""

    async def mount_blob(self, digest: str, from_repository: str) -> URL | None:
        """Cross-repository mount; None when mounted, else the upload URL the registry opened."""
        url = self._uploads_url()
        response = await self.request("POST", url, params={"mount": digest, "from": from_repository})
        async with response:
            await self._raise_for(response, f"POST {url}")
            if response.status == 201:
                return None
            return url.join(URL(response.headers["Location"]))

    async def start_upload(self) -> URL:
        url = self._uploads_url()
        response = await self.request("POST", url, headers={"Content-Length": "0"})
        async with response:
            await self._raise_for(response, f"POST {url}")
            if "Location" not in response.headers:
                raise RegistryError(f"POST {url}: the registry sent no upload location")
            return url.join(URL(response.headers["Location"]))

    async def upload_blob(
        self,
        digest: str,
        size: int,
        chunks: Callable[[], AsyncIterator[bytes]],
        upload_url: URL | None = None,
        *,
        chunk_size: int | None = None,
    ) -> None:
        """Upload a blob, then ``PUT ?digest=`` to commit it.

        By default one streamed PATCH (chunked transfer encoding), as Docker does. With
        ``chunk_size``, the spec's chunked upload instead: PATCHes of at most that many bytes, each
        with its ``Content-Range``, for registries or proxies that limit the size of one request.
        """
        location = upload_url or await self.start_upload()
        if chunk_size is None:
            location = await self._patch(location, chunks(), None)
        else:
            offset = 0
            async for piece in _regrouped(chunks(), chunk_size):
                location = await self._patch(location, piece, (offset, offset + len(piece) - 1))
                offset += len(piece)
        final = location.update_query({"digest": digest})
        response = await self.request("PUT", final, headers={"Content-Length": "0"})
        async with response:
            await self._raise_for(response, f"PUT {location}")

    async def _patch(self, location: URL, data: Any, byte_range: tuple[int, int] | None) -> URL:
        headers = {"Content-Type": "application/octet-stream"}
        if byte_range is not None:
            headers["Content-Range"] = f"{byte_range[0]}-{byte_range[1]}"
            headers["Content-Length"] = str(byte_range[1] - byte_range[0] + 1)
        response = await self.request("PATCH", location, headers=headers, data=data, replayable=False)
        async with response:
            await self._raise_for(response, f"PATCH {location}")
            return location.join(URL(response.headers.get("Location", str(location))))

    async def upload_bytes(self, data: bytes) -> str:
        digest = sha256_digest(data)
        if await self.blob_exists(digest):
            return digest
        location = await self.start_upload()
        final = location.update_query({"digest": digest})
        response = await self.request(
            "PUT", final, headers={"Content-Type": "application/octet-stream"}, data=data
        )
        async with response:
            await self._raise_for(response, f"PUT {location}")
        return digest


async def _regrouped(chunks: AsyncIterator[bytes], size: int) -> AsyncIterator[bytes]:
    """The same bytes in pieces of exactly ``size`` (the last one shorter)."""
    pending = bytearray()
    async for chunk in chunks:
        pending += chunk
        while len(pending) >= size:
            yield bytes(pending[:size])
            del pending[:size]
    if pending:
        yield bytes(pending)


async def gather_limited(limit: int, jobs: list[Callable[[], Awaitable[Any]]]) -> list[Any]:
    """Run coroutines ``limit`` at a time; the first failure cancels the rest."""
    semaphore = asyncio.Semaphore(limit)

    async def run(job: Callable[[], Awaitable[Any]]) -> Any:
        async with semaphore:
            return await job()

    tasks = [asyncio.ensure_future(run(job)) for job in jobs]
    try:
        return await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
