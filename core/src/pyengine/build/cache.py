"""The build cache: (parent image, step key) -> the image that step made, in SQLite.

A step's key covers its instruction text, the build args in effect and, for COPY/ADD, a digest of
its sources' contents and metadata; the parent image ID covers everything before it. A hit is only
taken when the recorded image still exists.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping

from pyengine.state.db import Database

_SCHEMA = """
CREATE TABLE IF NOT EXISTS build_cache (
    parent TEXT NOT NULL,
    key TEXT NOT NULL,
    image_id TEXT NOT NULL,
    PRIMARY KEY (parent, key)
);
CREATE INDEX IF NOT EXISTS build_cache_image ON build_cache(image_id);
"""

SCRATCH = "scratch"


def step_key(instruction: str, build_args: Mapping[str, str], sources: str = "") -> str:
    """The cache key of a step (its parent apart)."""
    doc = json.dumps([instruction, sorted(build_args.items()), sources], separators=(",", ":"))
    return "sha256:" + hashlib.sha256(doc.encode()).hexdigest()


class BuildCache:
    def __init__(self, db: Database) -> None:
        self.db = db
        with db.transaction() as cur:
            for statement in filter(None, (s.strip() for s in _SCHEMA.split(";"))):
                cur.execute(statement)

    def lookup(self, parent: str, key: str) -> str | None:
        row = self.db.query_one(
            "SELECT image_id FROM build_cache WHERE parent=? AND key=?", (parent or SCRATCH, key)
        )
        return row[0] if row else None

    def record(self, parent: str, key: str, image_id: str) -> None:
        with self.db.transaction() as cur:
            cur.execute(
                "INSERT OR REPLACE INTO build_cache(parent, key, image_id) VALUES (?, ?, ?)",
                (parent or SCRATCH, key, image_id),
            )

    def ancestry(self, image_id: str) -> set[str]:
        """The images a build step chain went through to reach ``image_id`` (itself included)."""
        seen = {image_id}
        frontier = [image_id]
        while frontier:
            current = frontier.pop()
            for (parent,) in self.db.query("SELECT parent FROM build_cache WHERE image_id=?", (current,)):
                if parent not in seen and parent != SCRATCH:
                    seen.add(parent)
                    frontier.append(parent)
        return seen
