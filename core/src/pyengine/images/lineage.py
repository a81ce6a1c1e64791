"""Images' build lineage: the parent a build step made an image from, and what ``rmi`` removes with
an image: its untagged parent chain that nothing else uses (Docker's pruning of a build's hidden
intermediate images; ``rmi --no-prune`` keeps them)."""

from __future__ import annotations

from pyengine.errors import NotFound
from pyengine.images.store import ImageStore
from pyengine.state.db import Database, dumps, loads


def set_parent(db: Database, image_id: str, parent: str) -> None:
    """Record ``parent`` as the image ``image_id`` was built from (Docker's SetParent)."""
    with db.transaction() as cur:
        row = cur.execute("SELECT doc FROM images WHERE id=?", (image_id,)).fetchone()
        if row is None:
            return
        doc = loads(row[0])
        doc["parent"] = parent
        cur.execute("UPDATE images SET doc=? WHERE id=?", (dumps(doc), image_id))


def has_children(db: Database, image_id: str) -> bool:
    """Whether a build step made another image from ``image_id``."""
    row = db.query_one("SELECT 1 FROM images WHERE json_extract(doc, '$.parent') = ? LIMIT 1", (image_id,))
    return row is not None


def remove_image(
    store: ImageStore, name: str, *, force: bool, users: dict[str, list[str]], prune: bool = True
) -> list[dict[str, str]]:
    """``docker rmi``: :meth:`ImageStore.remove`, then, when the image went and ``prune`` holds,
    its parent chain for as long as each parent has no tag, no digest reference, no container and
    no other child (the hidden intermediate images of a build). Docker's report, parents included."""
    image = store.resolve(name)
    report = store.remove(name, force=force, users=users)
    if not prune or {"Deleted": image.id} not in report:
        return report
    parent_id = image.parent
    while parent_id:
        try:
            parent = store.resolve(parent_id)
        except NotFound:
            break
        if parent.tags or parent.repo_digests or users.get(parent.id) or has_children(store.db, parent.id):
            break
        report += store.remove(parent.id, force=False, users=users)
        parent_id = parent.parent
    return report
