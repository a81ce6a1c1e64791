"""The distribution spec's error codes, each raised as a :class:`RegistryError` with its HTTP status.

Every error answers with the spec's body ``{"errors": [{"code", "message", "detail"}]}``. The spec
allows only its own codes, so a chunk uploaded out of order is ``BLOB_UPLOAD_INVALID`` with status
416 (Docker's registry says ``RANGE_INVALID``; clients look at the status).
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

API_VERSION_HEADER = ("Docker-Distribution-API-Version", "registry/2.0")
AUTH_REALM = "pyengine-registry"


class RegistryError(Exception):
    """One spec error: ``code`` (e.g. "BLOB_UNKNOWN"), ``status``, a message and optional detail."""

    def __init__(self, code: str, status: int, message: str, detail: Any = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.status = status
        self.message = message
        self.detail = detail

    def body(self) -> bytes:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.detail is not None:
            error["detail"] = self.detail
        return json.dumps({"errors": [error]}).encode()

    def response(self, *, head: bool = False) -> web.Response:
        headers = {"Content-Type": "application/json; charset=utf-8"}
        if self.status == 401:
            headers["WWW-Authenticate"] = f'Basic realm="{AUTH_REALM}"'
        body = self.body()
        if head:
            # A HEAD answer carries the status and headers only (what `docker` reads from it).
            return web.Response(status=self.status, headers=headers)
        return web.Response(status=self.status, body=body, headers=headers)


def blob_unknown(digest: str) -> RegistryError:
    return RegistryError("BLOB_UNKNOWN", 404, "blob unknown to registry", {"digest": digest})


def blob_upload_unknown(upload_id: str) -> RegistryError:
    return RegistryError("BLOB_UPLOAD_UNKNOWN", 404, "blob upload unknown to registry", {"uuid": upload_id})


def blob_upload_invalid(message: str, status: int = 400, detail: Any = None) -> RegistryError:
    return RegistryError("BLOB_UPLOAD_INVALID", status, message, detail)


def range_invalid(message: str, detail: Any = None) -> RegistryError:
    """A chunk out of order or a bad Content-Range: 416, as the spec requires."""
    return RegistryError("BLOB_UPLOAD_INVALID", 416, message, detail)


def digest_invalid(message: str, detail: Any = None) -> RegistryError:
    return RegistryError("DIGEST_INVALID", 400, message, detail)


def manifest_blob_unknown(digest: str) -> RegistryError:
    return RegistryError(
        "MANIFEST_BLOB_UNKNOWN",
        400,
        "manifest references a manifest or blob unknown to registry",
        {"digest": digest},
    )


def manifest_invalid(message: str, detail: Any = None) -> RegistryError:
    return RegistryError("MANIFEST_INVALID", 400, message, detail)


def manifest_unknown(reference: str) -> RegistryError:
    return RegistryError("MANIFEST_UNKNOWN", 404, "manifest unknown to registry", {"reference": reference})


def name_invalid(name: str, why: str) -> RegistryError:
    return RegistryError("NAME_INVALID", 400, f"invalid repository name: {why}", {"name": name})


def name_unknown(name: str) -> RegistryError:
    return RegistryError("NAME_UNKNOWN", 404, "repository name not known to registry", {"name": name})


def size_invalid(message: str, status: int = 400, detail: Any = None) -> RegistryError:
    return RegistryError("SIZE_INVALID", status, message, detail)


def unauthorized() -> RegistryError:
    return RegistryError("UNAUTHORIZED", 401, "authentication required")


def unsupported(message: str, status: int = 405) -> RegistryError:
    return RegistryError("UNSUPPORTED", status, message)
