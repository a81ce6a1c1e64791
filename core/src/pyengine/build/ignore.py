"""``.dockerignore``: reading the patterns and walking what they keep. Light on imports: the CLI uses
it on every ``pyengine build`` (the pattern matcher is imported only when there is a .dockerignore)."""

from __future__ import annotations

import os

from pyengine.errors import InvalidArgument

TYPE_CHECKING = False  # typing and pathlib cost milliseconds of every `pyengine build`
if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path
    from typing import Any

ALWAYS_SENT = ("Dockerfile", ".dockerignore")


def read_dockerignore(root: Path | str) -> Any:
    """The PatternMatcher of ``root/.dockerignore``, or None when there is none."""
    path = os.path.join(root, ".dockerignore")
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8", errors="replace") as handle:
        return ignore_matcher(handle.read().splitlines())


def ignore_matcher(lines: list[str]) -> Any:
    from e2b_dockerfile_utils.dockerignore import PatternMatcher

    try:
        return PatternMatcher(lines)
    except ValueError as exc:
        raise InvalidArgument(f"error checking context: {exc}") from None


def walk_included(root: Path | str, matcher: Any, keep: tuple[str, ...] = ()) -> Iterator[str]:
    """Relative paths under ``root`` that ``.dockerignore`` keeps, parents before children, sorted.

    ``keep`` names files sent whatever the patterns say (the Dockerfile, .dockerignore).
    """

    def visit(rel: str) -> Iterator[str]:
        directory = os.path.join(root, rel) if rel else str(root)
        with os.scandir(directory) as entries:
            children = sorted((e.name, e.is_dir(follow_symlinks=False)) for e in entries)
        for name, is_dir in children:
            child = f"{rel}/{name}" if rel else name
            ignored = matcher is not None and matcher.matches(child) and child not in keep
            if not ignored:
                yield child
            if is_dir and (not ignored or matcher.may_match_under(child)):
                yield from visit(child)

    yield from visit("")
