"""Image references as Docker parses them: ``[registry/]path[:tag][@digest]``.

An unqualified name means Docker Hub (``busybox`` is ``docker.io/library/busybox:latest``). The engine
stores the normalized form and shows the familiar one, as Docker does.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pyengine.errors import InvalidArgument

DEFAULT_REGISTRY = "docker.io"
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*"
_PATH_RE = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")
_TAG_RE = re.compile(r"^[\w][\w.-]{0,127}$")
_DIGEST_RE = re.compile(r"^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]{32,}$")


@dataclass(frozen=True)
class Reference:
    registry: str
    path: str
    tag: str | None = None
    digest: str | None = None

    @property
    def repository(self) -> str:
        """registry/path: the normalized repository name."""
        return f"{self.registry}/{self.path}"

    def normalized(self) -> str:
        """What the engine stores: docker.io/library/busybox:latest."""
        text = self.repository
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text

    def familiar_repository(self) -> str:
        """What a user sees: busybox, not docker.io/library/busybox."""
        if self.registry == DEFAULT_REGISTRY:
            return self.path.removeprefix("library/")
        return self.repository

    def familiar(self) -> str:
        text = self.familiar_repository()
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text


def parse(text: str, *, default_tag: str | None = "latest") -> Reference:
    """Parse and normalize a reference; raise InvalidArgument with Docker's wording if malformed."""
    if not text:
        raise InvalidArgument("invalid reference format")
    name, digest = text, None
    if "@" in text:
        name, digest = text.split("@", 1)
        if not _DIGEST_RE.match(digest):
            raise InvalidArgument(f"invalid reference format: {text}")
    tag = None
    slash = name.rfind("/")
    colon = name.rfind(":")
    if colon > slash:
        name, tag = name[:colon], name[colon + 1 :]
        if not _TAG_RE.match(tag):
            raise InvalidArgument(f"invalid reference format: {text}")
    first, _, rest = name.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost" or first != first.lower()):
        registry, path = first, rest
    else:
        registry, path = DEFAULT_REGISTRY, name
    if registry == DEFAULT_REGISTRY and "/" not in path:
        path = f"library/{path}"
    if not _PATH_RE.match(path):
        if path.lower() != path:
            raise InvalidArgument(f"invalid reference format: repository name ({path}) must be lowercase")
        raise InvalidArgument(f"invalid reference format: {text}")
    if tag is None and digest is None:
        tag = default_tag
    return Reference(registry=registry, path=path, tag=tag, digest=digest)


def familiar(normalized: str) -> str:
    """The familiar form of a stored (normalized) reference."""
    return parse(normalized, default_tag=None).familiar()
