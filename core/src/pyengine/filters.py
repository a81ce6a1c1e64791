"""The filter values Docker's list and prune endpoints share: ``label=KEY[=VALUE]`` and ``until=``."""

from __future__ import annotations

import time

from pyengine.errors import InvalidArgument
from pyengine.model.base import parse_rfc3339


def label_matches(labels: dict[str, str], wanted: str) -> bool:
    """``wanted`` is ``KEY`` (the label is set) or ``KEY=VALUE`` (set to exactly that value)."""
    key, sep, value = wanted.partition("=")
    return key in labels and (not sep or labels[key] == value)


def until_timestamp(value: str) -> float:
    """An ``until`` filter as unix seconds: a timestamp (unix seconds or RFC 3339) or a duration
    before now (``10m``, ``24h``). InvalidArgument names the filter otherwise."""
    units = {"s": 1, "m": 60, "h": 3600}
    if value and value[-1] in units and value[:-1].replace(".", "", 1).isdigit():
        return time.time() - float(value[:-1]) * units[value[-1]]
    try:
        return float(value)
    except ValueError:
        pass
    try:
        return parse_rfc3339(value if value.endswith("Z") or "+" in value else value + "Z")
    except ValueError as exc:
        raise InvalidArgument(f"invalid filter 'until={value}'") from exc
