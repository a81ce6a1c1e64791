"""HTTP <-> registry storage: every ``/v2/`` endpoint of the distribution spec.

Repository names contain slashes, so one catch-all route takes ``/v2/...`` and :func:`dispatch`
splits the path itself; a name that breaks the spec's grammar is NAME_INVALID (400), not a 404.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from collections.abc import Awaitable, Callable
from urllib.parse import quote, urlencode

from aiohttp import web

from pyengine.registry import errors, manifests, names
from pyengine.registry.storage import RegistryStorage
from pyengine.registry.uploads import UploadManager, parse_content_range

# A page of tags or repositories holds at most this many names, whatever ``n`` asks for; the
# Link header leads to the rest.
MAX_PAGE = 1000

STORAGE_KEY = web.AppKey("storage", RegistryStorage)
UPLOADS_KEY = web.AppKey("uploads", UploadManager)

Handler = Callable[..., Awaitable[web.StreamResponse]]

_ROUTES: list[tuple[re.Pattern[str], dict[str, str]]] = [
    (
        re.compile(r"(?P<name>.+)/manifests/(?P<reference>[^/]+)"),
        {"GET": "get_manifest", "HEAD": "get_manifest", "PUT": "put_manifest", "DELETE": "delete_manifest"},
    ),
    (re.compile(r"(?P<name>.+)/blobs/uploads/?"), {"POST": "start_upload"}),
    (
        re.compile(r"(?P<name>.+)/blobs/uploads/(?P<upload_id>[^/]+)"),
        {"GET": "upload_status", "PATCH": "patch_upload", "PUT": "finish_upload", "DELETE": "cancel_upload"},
    ),
    (
        re.compile(r"(?P<name>.+)/blobs/(?P<digest>[^/]+)"),
        {"GET": "get_blob", "HEAD": "get_blob", "DELETE": "delete_blob"},
    ),
    (re.compile(r"(?P<name>.+)/tags/list"), {"GET": "list_tags"}),
    (re.compile(r"(?P<name>.+)/referrers/(?P<digest>[^/]+)"), {"GET": "list_referrers"}),
]


def add_routes(app: web.Application) -> None:
    app.router.add_route("*", "/v2", dispatch)
    app.router.add_route("*", "/v2/{tail:.*}", dispatch)


async def dispatch(request: web.Request) -> web.StreamResponse:
    tail = request.match_info.get("tail", "")
    if tail == "":
        if request.method not in ("GET", "HEAD"):
            raise errors.unsupported(f"{request.method} is not allowed on /v2/")
        return _json(request, {})
    if tail == "_catalog":
        if request.method != "GET":
            raise errors.unsupported(f"{request.method} is not allowed on /v2/_catalog")
        return await list_catalog(request)
    for pattern, methods in _ROUTES:
        match = pattern.fullmatch(tail)
        if match is None:
            continue
        arguments = match.groupdict()
        names.check_name(arguments["name"])
        handler_name = methods.get(request.method)
        if handler_name is None:
            raise errors.unsupported(f"{request.method} is not allowed here")
        handler: Handler = globals()[handler_name]
        return await handler(request, **arguments)
    raise errors.RegistryError("UNSUPPORTED", 404, f"no such endpoint: /v2/{tail[:200]}")


def _json(
    request: web.Request,
    document: object,
    *,
    status: int = 200,
    headers: dict[str, str] | None = None,
    content_type: str = "application/json",
) -> web.Response:
    body = json.dumps(document).encode()
    headers = {"Content-Type": content_type, **(headers or {})}
    if request.method == "HEAD":
        return _head_response(status, len(body), headers)
    return web.Response(status=status, body=body, headers=headers)


def _head_response(status: int, length: int, headers: dict[str, str]) -> web.Response:
    response = web.Response(status=status, headers=headers)
    # aiohttp keeps an explicit Content-Length on a body-less HEAD answer.
    response.headers["Content-Length"] = str(length)
    return response


def _storage(request: web.Request) -> RegistryStorage:
    return request.app[STORAGE_KEY]


def _uploads(request: web.Request) -> UploadManager:
    return request.app[UPLOADS_KEY]


# -- blobs -----------------------------------------------------------------------------------------
async def get_blob(request: web.Request, name: str, digest: str) -> web.StreamResponse:
    names.check_digest(digest)
    storage = _storage(request)
    size = storage.blob_size(name, digest)
    headers = {
        "Docker-Content-Digest": digest,
        "Content-Type": "application/octet-stream",
        "Accept-Ranges": "bytes",
        "ETag": f'"{digest}"',
    }
    if request.method == "HEAD":
        return _head_response(200, size, headers)
    # FileResponse streams with sendfile(2) and answers Range requests (206, 416) itself.
    return web.FileResponse(storage.blob_path(digest), headers=headers)


async def delete_blob(request: web.Request, name: str, digest: str) -> web.StreamResponse:
    names.check_digest(digest)
    _storage(request).delete_layer(name, digest)
    return web.Response(status=202, headers={"Docker-Content-Digest": digest})


# -- uploads ---------------------------------------------------------------------------------------
def _upload_location(name: str, upload_id: str) -> str:
    return f"/v2/{name}/blobs/uploads/{upload_id}"


def _blob_created(name: str, digest: str) -> web.Response:
    return web.Response(
        status=201, headers={"Location": f"/v2/{name}/blobs/{digest}", "Docker-Content-Digest": digest}
    )


def _upload_accepted(name: str, upload, status: int = 202) -> web.Response:
    return web.Response(
        status=status,
        headers={
            "Location": _upload_location(name, upload.id),
            "Range": upload.range_header(),
            "Docker-Upload-UUID": upload.id,
        },
    )


def _declared_length(request: web.Request) -> int | None:
    value = request.headers.get("Content-Length")
    if value is None:
        return None
    try:
        length = int(value)
    except ValueError:
        raise errors.size_invalid(f"invalid Content-Length {value[:40]!r}") from None
    if length < 0:
        raise errors.size_invalid(f"invalid Content-Length {value[:40]!r}")
    return length


async def start_upload(request: web.Request, name: str) -> web.StreamResponse:
    storage, uploads = _storage(request), _uploads(request)
    mount, source = request.query.get("mount"), request.query.get("from")
    if mount is not None:
        names.check_digest(mount)
        if source is not None:
            names.check_name(source)
        # Without `from`, the spec lets us mount from anywhere we find it; we look only in the
        # named repository (a client's credentials may not cover the others).
        if source is not None and storage.has_layer(source, mount):
            await asyncio.to_thread(storage.link_layer, name, mount)
            return _blob_created(name, mount)
    digest = request.query.get("digest")
    if digest is not None:
        names.check_digest(digest)
    upload = uploads.start(name)
    try:
        if digest is not None:
            # A monolithic upload: the whole blob in this request's body.
            await uploads.append(upload, request.content, _declared_length(request))
            await uploads.finish(upload, digest)
            return _blob_created(name, digest)
    except BaseException:
        uploads.cancel(upload)
        raise
    return _upload_accepted(name, upload)


async def upload_status(request: web.Request, name: str, upload_id: str) -> web.StreamResponse:
    upload = await _uploads(request).get(name, upload_id)
    return _upload_accepted(name, upload, status=204)


async def patch_upload(request: web.Request, name: str, upload_id: str) -> web.StreamResponse:
    uploads = _uploads(request)
    upload = await uploads.get(name, upload_id)
    async with upload.lock:
        await _append_chunk(request, uploads, upload)
    return _upload_accepted(name, upload)


async def _append_chunk(request: web.Request, uploads: UploadManager, upload) -> None:
    """Append the body; with Content-Range the chunk must start where the upload stands (else 416)."""
    length = _declared_length(request)
    content_range = request.headers.get("Content-Range")
    if content_range is not None:
        start, end = parse_content_range(content_range)
        if start != upload.size:
            raise errors.range_invalid(
                f"chunk starts at {start}, the upload has {upload.size} bytes",
                {"range": upload.range_header()},
            )
        chunk_length = end - start + 1
        if length is not None and length != chunk_length:
            raise errors.size_invalid(
                f"Content-Range covers {chunk_length} bytes, Content-Length says {length}"
            )
        length = chunk_length
    await uploads.append(upload, request.content, length)


async def finish_upload(request: web.Request, name: str, upload_id: str) -> web.StreamResponse:
    uploads = _uploads(request)
    digest = request.query.get("digest")
    if digest is None:
        raise errors.digest_invalid("the digest query parameter is required to finish an upload")
    names.check_digest(digest)
    upload = await uploads.get(name, upload_id)
    async with upload.lock:
        await _append_chunk(request, uploads, upload)
        await uploads.finish(upload, digest)
    return _blob_created(name, digest)


async def cancel_upload(request: web.Request, name: str, upload_id: str) -> web.StreamResponse:
    uploads = _uploads(request)
    upload = await uploads.get(name, upload_id)
    await asyncio.to_thread(uploads.cancel, upload)
    return web.Response(status=204)


# -- manifests -------------------------------------------------------------------------------------
async def get_manifest(request: web.Request, name: str, reference: str) -> web.StreamResponse:
    _check_reference(reference)
    storage = _storage(request)
    digest = storage.resolve(name, reference)
    media_type, body = await asyncio.to_thread(storage.manifest, name, digest)
    headers = {"Content-Type": media_type, "Docker-Content-Digest": digest, "ETag": f'"{digest}"'}
    if request.method == "HEAD":
        return _head_response(200, len(body), headers)
    return web.Response(body=body, headers=headers)


def _check_reference(reference: str) -> None:
    if ":" in reference:
        names.check_digest(reference)
    elif not names.is_tag(reference):
        raise errors.manifest_invalid(f"invalid tag {reference[:140]!r}")


async def _read_manifest_body(request: web.Request) -> bytes:
    limit = manifests.MAX_MANIFEST_BYTES
    length = _declared_length(request)
    if length is not None and length > limit:
        raise errors.size_invalid(f"manifest of {length} bytes is over the {limit}-byte limit", status=413)
    parts: list[bytes] = []
    received = 0
    while chunk := await request.content.readany():
        received += len(chunk)
        if received > limit:
            raise errors.size_invalid(f"manifest is over the {limit}-byte limit", status=413)
        parts.append(chunk)
    return b"".join(parts)


async def put_manifest(request: web.Request, name: str, reference: str) -> web.StreamResponse:
    _check_reference(reference)
    storage = _storage(request)
    body = await _read_manifest_body(request)
    document = manifests.parse_manifest(body, request.headers.get("Content-Type", ""))
    digest = "sha256:" + hashlib.sha256(body).hexdigest()
    if ":" in reference:
        if reference != digest:
            raise errors.digest_invalid(
                "the manifest's digest is not the one in the URL", {"expected": reference, "actual": digest}
            )
        tags = [names.check_tag(tag) for tag in request.query.getall("tag", [])]
    else:
        tags = [reference]
    await asyncio.to_thread(manifests.check_references, document, storage, name)
    referrer = document.referrer_descriptor(digest, len(body)) if document.subject else None
    await asyncio.to_thread(
        storage.put_manifest, name, body, document.media_type, tags, referrer, document.subject
    )
    headers = {"Location": f"/v2/{name}/manifests/{digest}", "Docker-Content-Digest": digest}
    if document.subject:
        headers["OCI-Subject"] = document.subject
    response = web.Response(status=201, headers=headers)
    if ":" in reference and tags:  # tags pushed with ?tag= on a push by digest
        response.headers["OCI-Tag"] = ", ".join(tags)
    return response


async def delete_manifest(request: web.Request, name: str, reference: str) -> web.StreamResponse:
    _check_reference(reference)
    storage = _storage(request)
    if ":" in reference:
        await asyncio.to_thread(storage.delete_manifest, name, reference)
    else:
        storage.delete_tag(name, reference)
    return web.Response(status=202)


# -- listings --------------------------------------------------------------------------------------
def _page_size(request: web.Request) -> int:
    value = request.query.get("n")
    if value is None:
        return MAX_PAGE
    try:
        n = int(value)
    except ValueError:
        raise errors.RegistryError("UNSUPPORTED", 400, f"invalid page size n={value[:40]!r}") from None
    if n < 0:
        raise errors.RegistryError("UNSUPPORTED", 400, f"invalid page size n={value[:40]!r}")
    return min(n, MAX_PAGE)


def _next_link(path: str, n: int, last: str) -> str:
    return f'<{path}?{urlencode({"n": n, "last": last})}>; rel="next"'


async def list_tags(request: web.Request, name: str) -> web.StreamResponse:
    n, last = _page_size(request), request.query.get("last")
    tags = await asyncio.to_thread(_storage(request).tags, name, n + 1, last) if n else []
    if n == 0 and not _storage(request).repository_exists(name):
        raise errors.name_unknown(name)
    headers = {}
    if len(tags) > n:
        tags = tags[:n]
        headers["Link"] = _next_link(f"/v2/{quote(name)}/tags/list", n, tags[-1])
    return _json(request, {"name": name, "tags": tags}, headers=headers)


async def list_catalog(request: web.Request) -> web.StreamResponse:
    n, last = _page_size(request), request.query.get("last")
    repositories = await asyncio.to_thread(_storage(request).catalog, n + 1, last) if n else []
    headers = {}
    if len(repositories) > n:
        repositories = repositories[:n]
        headers["Link"] = _next_link("/v2/_catalog", n, repositories[-1])
    return _json(request, {"repositories": repositories}, headers=headers)


async def list_referrers(request: web.Request, name: str, digest: str) -> web.StreamResponse:
    names.check_digest(digest)
    descriptors = await asyncio.to_thread(_storage(request).referrers, name, digest)
    headers = {}
    artifact_type = request.query.get("artifactType")
    if artifact_type is not None:
        descriptors = [d for d in descriptors if d.get("artifactType") == artifact_type]
        headers["OCI-Filters-Applied"] = "artifactType"
    index = {"schemaVersion": 2, "mediaType": manifests.OCI_INDEX, "manifests": descriptors}
    return _json(request, index, headers=headers, content_type=manifests.OCI_INDEX)
