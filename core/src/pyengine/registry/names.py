"""Repository names, tags and digests as the distribution spec defines them."""

from __future__ import annotations

import re

from pyengine.registry import errors

# The spec's grammar for <name>: path components of lowercase alphanumerics joined by separators.
_NAME_RE = re.compile(r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*")
_TAG_RE = re.compile(r"[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}")
_DIGEST_RE = re.compile(r"[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+")
_SHA256_RE = re.compile(r"sha256:[0-9a-f]{64}")
# Docker's registry refuses names over 255 characters (host name included); so do we.
MAX_NAME_LENGTH = 255


def check_name(name: str) -> str:
    """Return ``name`` if it is a valid repository name, else raise NAME_INVALID."""
    if len(name) > MAX_NAME_LENGTH:
        raise errors.name_invalid(name[:64] + "...", f"longer than {MAX_NAME_LENGTH} characters")
    if not _NAME_RE.fullmatch(name):
        raise errors.name_invalid(
            name, "components must be lowercase letters and digits, separated by '.', '_', '__', '-' or '/'"
        )
    return name


def is_tag(reference: str) -> bool:
    return bool(_TAG_RE.fullmatch(reference))


def check_tag(tag: str) -> str:
    if not is_tag(tag):
        raise errors.manifest_invalid(f"invalid tag {tag[:140]!r}", {"tag": tag[:140]})
    return tag


def is_digest(reference: str) -> bool:
    return bool(_DIGEST_RE.fullmatch(reference))


def check_digest(digest: str) -> str:
    """Return a sha256 digest; raise DIGEST_INVALID for malformed digests or other algorithms."""
    if _SHA256_RE.fullmatch(digest):
        return digest
    if _DIGEST_RE.fullmatch(digest):
        algorithm = digest.split(":", 1)[0]
        if algorithm != "sha256":
            raise errors.digest_invalid(f"unsupported digest algorithm {algorithm!r} (only sha256)")
    raise errors.digest_invalid(f"invalid digest {digest[:140]!r}", {"digest": digest[:140]})
