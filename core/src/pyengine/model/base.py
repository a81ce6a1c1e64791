"""Shared model configuration."""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict

ZERO_TIME = "0001-01-01T00:00:00Z"


class DockerModel(BaseModel):
    """A Docker-shaped object: unknown fields are kept (Docker ignores them), known ones are typed."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)


def now_rfc3339() -> str:
    """The current time in Docker's RFC 3339 form with nanoseconds: 2026-11-22T19:37:31.123456789Z."""
    now = datetime.now(UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond:06d}000Z"


def parse_rfc3339(text: str) -> float:
    """Seconds since the epoch of a Docker timestamp (nanoseconds truncated); 0 for the zero time."""
    if not text or text.startswith("0001-"):
        return 0.0
    main, _, frac = text.rstrip("Z").partition(".")
    seconds = datetime.strptime(main, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC).timestamp()
    return seconds + (float("0." + frac[:9]) if frac else 0.0)
