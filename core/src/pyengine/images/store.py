"""The image store: images as OCI config + manifest blobs, their layers in the storage driver, and
their tags in SQLite.

An image's ID is the sha256 digest of its config blob. Its layers are kept twice on purpose: the layer
tar as a blob (so push and save need no re-packing) and unpacked in the storage driver under the
layer's chain ID (so containers start without unpacking). A layer is removed from the driver when no
image references it any more.
"""

from __future__ import annotations

import errno
import gzip
import hashlib
import json
import logging
import os
import tempfile
import threading
from collections.abc import Callable, Iterable
from typing import Any, BinaryIO

from pyengine.drivers.storage import StorageDriver
from pyengine.errors import Conflict, EngineError, InvalidArgument, NotFound, Unavailable
from pyengine.hooks import HookCaller
from pyengine.images import reference
from pyengine.images.changes import apply_changes
from pyengine.images.image import MEDIA_CONFIG, MEDIA_LAYER_TAR, MEDIA_MANIFEST, Image, chain_ids, layer_key
from pyengine.model.base import now_rfc3339, parse_rfc3339
from pyengine.model.image import HistoryEntry, ImageConfig, ImageRunConfig, RootFS
from pyengine.state.blobs import BlobStore
from pyengine.state.db import Database, dumps, loads

log = logging.getLogger(__name__)


class ImageStore:
    def __init__(self, db: Database, blobs: BlobStore, driver: StorageDriver, hooks: HookCaller) -> None:
        self.db = db
        self.blobs = blobs
        self.driver = driver
        self.hooks = hooks

    # ---- lookup -------------------------------------------------------------------------------
    def _load(self, image_id: str) -> Image:
        row = self.db.query_one("SELECT doc FROM images WHERE id=?", (image_id,))
        if row is None:
            raise NotFound(f"No such image: {image_id}")
        doc = loads(row[0])
        config = ImageConfig.model_validate_json(self.blobs.read(image_id))
        tags = [
            r[0] for r in self.db.query("SELECT ref FROM tags WHERE image_id=? ORDER BY ref", (image_id,))
        ]
        return Image(
            image_id,
            config,
            doc["manifest"],
            doc["layers"],
            doc["size"],
            tags,
            parent=doc.get("parent", ""),
            repo_digests=doc.get("repo_digests", []),
        )

    def resolve(self, name: str) -> Image:
        """Find an image by reference, full ID or unique ID prefix; 404 ``No such image: NAME``."""
        shown = name
        if name.startswith("sha256:"):
            candidates = self._ids_with_prefix(name)
        else:
            try:
                ref = reference.parse(name)
            except InvalidArgument:
                ref = None
            if ref is not None:
                row = self.db.query_one("SELECT image_id FROM tags WHERE ref=?", (ref.normalized(),))
                if row:
                    return self._load(row[0])
                if ref.digest:  # repo@digest: the image pulled (or pushed) under that digest
                    wanted = f"{ref.repository}@{ref.digest}"
                    for image in self.list():
                        if wanted in image.repo_digests:
                            return image
                if ":" not in name.rsplit("/", 1)[-1] and "@" not in name:
                    shown = ref.familiar()
            candidates = self._ids_with_prefix("sha256:" + name) if _is_hex(name) else []
        if len(candidates) == 1:
            return self._load(candidates[0])
        raise NotFound(f"No such image: {shown}")

    def _ids_with_prefix(self, prefix: str) -> list[str]:
        if len(prefix) < len("sha256:") + 1:
            return []
        rows = self.db.query("SELECT id FROM images WHERE id >= ? AND id < ?", (prefix, prefix + "g"))
        return [r[0] for r in rows]

    def list(self) -> list[Image]:
        return [self._load(r[0]) for r in self.db.query("SELECT id FROM images")]

    def count(self) -> int:
        return self.db.query_one("SELECT count(*) FROM images")[0]

    # ---- import -------------------------------------------------------------------------------
    def import_tarball(
        self,
        stream: BinaryIO,
        *,
        repo: str = "",
        tag: str = "",
        changes: Iterable[str] = (),
        message: str = "",
        source: str = "-",
    ) -> Image:
        """Make a one-layer image from a root file system tarball (plain or gzip).

        The tarball is spooled to a temporary file while its digest is computed, unpacked into a new
        layer, and only then recorded: a corrupt or truncated tarball leaves nothing stored.
        """
        target_ref = reference.parse(f"{repo}:{tag}" if tag else repo) if repo else None
        run_config = apply_changes(ImageRunConfig(), list(changes))
        with tempfile.TemporaryFile(dir=self.blobs.root) as spool:
            diff_id = _spool_uncompressed(stream, spool)
            spool.seek(0)
            size = self._ensure_layer(diff_id, None, spool)
            spool.seek(0)
            layer_digest = self.blobs.put_file(spool, expected=diff_id)
        created = now_rfc3339()
        config = ImageConfig(
            created=created,
            config=run_config,
            rootfs=RootFS(diff_ids=[diff_id]),
            history=[
                HistoryEntry(created=created, created_by="", comment=message or f"Imported from {source}")
            ],
        )
        layers = [
            {
                "digest": layer_digest,
                "diff_id": diff_id,
                "size": self.blobs.size(layer_digest),
                "mediaType": MEDIA_LAYER_TAR,
            }
        ]
        return self.add_image(config, layers, size, [target_ref.normalized()] if target_ref else [])

    def _ensure_layer(self, diff_id: str, parent_chain: str | None, tar: BinaryIO) -> int:
        """Unpack a layer into the driver unless it is there already; return its unpacked size."""
        chain = chain_ids([parent_chain, diff_id])[1] if parent_chain else diff_id
        key = layer_key(chain)
        if self.driver.exists(key):
            return 0
        self.driver.create(key, layer_key(parent_chain) if parent_chain else None)
        try:
            return self.driver.apply_diff(key, tar)
        except BaseException as exc:
            self._remove_layer_quietly(key)
            if isinstance(exc, InvalidArgument) and not exc.message.startswith("invalid tar archive"):
                raise InvalidArgument(f"invalid tar archive: {exc.message}") from exc
            if isinstance(exc, EngineError):
                raise
            if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise Unavailable(f"cannot store the layer: {exc.strerror}") from exc
            if isinstance(exc, (OSError, EOFError, ValueError)) or type(exc).__module__ == "tarfile":
                raise InvalidArgument(f"invalid tar archive: {exc}") from exc
            raise

    def _remove_layer_quietly(self, key: str) -> None:
        try:
            self.driver.remove(key)
        except EngineError:
            log.warning("could not remove layer %s after a failed import", key, exc_info=True)

    def commit_layer(self, chunks: Iterable[bytes], parent_chain: str | None) -> tuple[dict[str, Any], int]:
        """Store an uncompressed layer tar as a blob and unpack it on the layer ``parent_chain``.

        For commits: the driver's layer is made under the new chain ID on the parent's top layer.
        Returns the layer's record (as in :attr:`Image.layers`) and its unpacked size. On any error
        (a full disk included) neither the blob nor the layer stays.
        """
        # written once, straight into the blob store (an uncompressed layer's digest is its diff ID),
        # then unpacked from there
        try:
            digest = self.blobs.put_chunks(chunks)
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise Unavailable(f"cannot store the layer: {exc.strerror}") from exc
            raise
        diff_id = digest
        try:
            with self.blobs.open(digest) as tar:
                size = self._ensure_layer(diff_id, parent_chain, tar)
        except BaseException:
            if not any(x["digest"] == digest for image in self.list() for x in image.layers):
                self.blobs.delete(digest)
            raise
        size_on_disk = self.blobs.size(digest)
        layer = {"digest": digest, "diff_id": diff_id, "size": size_on_disk, "mediaType": MEDIA_LAYER_TAR}
        return layer, size

    def add_image(
        self,
        config: ImageConfig,
        layers: list[dict[str, Any]],
        size: int,
        tags: list[str],
        parent: str = "",
        *,
        config_bytes: bytes | None = None,
        manifest_bytes: bytes | None = None,
        repo_digests: Iterable[str] = (),
    ) -> Image:
        """Record an image whose layers are already in the driver and in the blob store.

        ``parent``: the image it was made from by a build step (Docker's Parent; an untagged parent
        of another image is an intermediate image, left out of the image list without ``all``).
        A pulled or loaded image passes its config and manifest exactly as received
        (``config_bytes``, ``manifest_bytes``): the image ID and the repo digests are digests of
        those bytes. ``repo_digests`` are normalized ``repository@digest`` strings.
        """
        if config_bytes is None:
            config_bytes = config.model_dump_json(exclude_none=True).encode()
        image_id = self.blobs.put(config_bytes)
        if manifest_bytes is None:
            manifest_bytes = build_manifest(image_id, len(config_bytes), layers)
        manifest_digest = self.blobs.put(manifest_bytes)
        total = size or self._stack_size(layers)
        row = self.db.query_one("SELECT doc FROM images WHERE id=?", (image_id,))
        known = loads(row[0]).get("repo_digests", []) if row else []
        digests = list(dict.fromkeys([*known, *repo_digests]))
        doc = {"manifest": manifest_digest, "layers": layers, "size": total, "repo_digests": digests}
        if parent:
            doc["parent"] = parent
        with self.db.transaction() as cur:
            cur.execute("INSERT OR REPLACE INTO images(id, doc) VALUES (?, ?)", (image_id, dumps(doc)))
            for ref in tags:
                cur.execute("INSERT OR REPLACE INTO tags(ref, image_id) VALUES (?, ?)", (ref, image_id))
        image = self._load(image_id)
        if not row:
            self.hooks.call("pyengine_image_post_add", image=image)
        return image

    def add_layer(
        self, diff_id: str, parent_chain: str | None, tar: BinaryIO, check: Callable[[], None] | None = None
    ) -> int:
        """Unpack a layer under its chain ID unless it is there; ``check`` runs after unpacking
        (a diff ID verification) and the layer is removed again if it raises."""
        chain = chain_ids([parent_chain, diff_id])[1] if parent_chain else diff_id
        with _layer_lock(chain):  # two pulls of one image must not unpack the same layer at once
            existed = self.driver.exists(layer_key(chain))
            size = self._ensure_layer(diff_id, parent_chain, tar)
            if check is not None and not existed:
                try:
                    check()
                except BaseException:
                    self._remove_layer_quietly(layer_key(chain))
                    raise
            return size

    def layer_exists(self, chain_id: str) -> bool:
        return self.driver.exists(layer_key(chain_id))

    def update_distribution(
        self,
        image_id: str,
        *,
        layers: list[dict[str, Any]] | None = None,
        manifest_bytes: bytes | None = None,
        repo_digest: str | None = None,
    ) -> Image:
        """Replace an image's layer blobs (compressed for a push) and manifest, or add a repo digest."""
        row = self.db.query_one("SELECT doc FROM images WHERE id=?", (image_id,))
        if row is None:
            raise NotFound(f"No such image: {image_id}")
        doc = loads(row[0])
        if layers is not None:
            doc["layers"] = layers
        if manifest_bytes is not None:
            doc["manifest"] = self.blobs.put(manifest_bytes)
        if repo_digest is not None:
            repository = repo_digest.split("@", 1)[0]
            kept = [d for d in doc.get("repo_digests", []) if d.split("@", 1)[0] != repository]
            doc["repo_digests"] = [*kept, repo_digest]
        with self.db.transaction() as cur:
            cur.execute("UPDATE images SET doc=? WHERE id=?", (dumps(doc), image_id))
        return self._load(image_id)

    def _stack_size(self, layers: list[dict[str, Any]]) -> int:
        return sum(x.get("size", 0) for x in layers)

    # ---- tags and removal ---------------------------------------------------------------------
    def tag(self, source: str, repo: str, tag: str = "") -> str:
        image = self.resolve(source)
        ref = reference.parse(f"{repo}:{tag}" if tag else repo)
        if ref.digest:
            raise InvalidArgument("refusing to create a tag with a digest reference")
        with self.db.transaction() as cur:
            cur.execute(
                "INSERT OR REPLACE INTO tags(ref, image_id) VALUES (?, ?)", (ref.normalized(), image.id)
            )
        self.hooks.call("pyengine_image_post_tag", image=image, reference=ref.familiar())
        return ref.familiar()

    def remove(self, name: str, *, force: bool, users: dict[str, list[str]]) -> list[dict[str, str]]:
        """``docker rmi``: untag, and delete the image when no tag and no container is left.

        ``users`` maps image IDs to the IDs of containers made from them (running or not).
        Returns Docker's list of ``{"Untagged": ref}`` and ``{"Deleted": id}`` items.
        """
        image = self.resolve(name)
        digest_ref = self._named_by_repo_digest(name, image)
        if digest_ref is not None:
            # rmi repo@digest drops that digest reference; the image goes with its last reference
            remaining = [d for d in image.repo_digests if d != digest_ref]
            with self.db.transaction() as cur:
                row = cur.execute("SELECT doc FROM images WHERE id=?", (image.id,)).fetchone()
                doc = loads(row[0])
                doc["repo_digests"] = remaining
                cur.execute("UPDATE images SET doc=? WHERE id=?", (dumps(doc), image.id))
            report = [{"Untagged": reference.familiar(digest_ref)}]
            if image.tags or remaining or users.get(image.id):
                return report
            self._delete_image(image)
            return [*report, {"Deleted": image.id}]
        by_reference = self._named_by_reference(name, image)
        containers = users.get(image.id, [])
        report: list[dict[str, str]] = []
        if by_reference:
            ref = reference.parse(name).normalized()
            if len(image.tags) == 1 and containers and not force:
                raise Conflict(
                    f'conflict: unable to remove repository reference "{name}" (must force) - container '
                    f"{containers[0][:12]} is using its referenced image {image.id[7:19]}"
                )
            self._untag(ref)
            report.append({"Untagged": reference.familiar(ref)})
            if len(image.tags) > 1 or containers:
                return report
        else:
            if len(image.tags) > 1 and not force:
                raise Conflict(
                    f"conflict: unable to delete {image.id[7:19]} (must be forced) - image is referenced "
                    "in multiple repositories"
                )
            if containers:
                raise Conflict(
                    f"conflict: unable to delete {image.id[7:19]} (cannot be forced) - image is being used "
                    f"by running container {containers[0][:12]}"
                    if not force
                    else f"conflict: unable to delete {image.id[7:19]} (must be forced) - image is being "
                    f"used by stopped container {containers[0][:12]}"
                )
            for ref in image.tags:
                self._untag(ref)
                report.append({"Untagged": reference.familiar(ref)})
        self._delete_image(image)
        report.append({"Deleted": image.id})
        return report

    def _named_by_repo_digest(self, name: str, image: Image) -> str | None:
        try:
            ref = reference.parse(name)
        except InvalidArgument:
            return None
        wanted = f"{ref.repository}@{ref.digest}" if ref.digest else None
        return wanted if wanted in image.repo_digests else None

    def _named_by_reference(self, name: str, image: Image) -> bool:
        try:
            ref = reference.parse(name)
        except InvalidArgument:
            return False
        return ref.normalized() in image.tags

    def _untag(self, ref: str) -> None:
        with self.db.transaction() as cur:
            cur.execute("DELETE FROM tags WHERE ref=?", (ref,))

    def _delete_image(self, image: Image) -> None:
        with self.db.transaction() as cur:
            cur.execute("DELETE FROM tags WHERE image_id=?", (image.id,))
            cur.execute("DELETE FROM images WHERE id=?", (image.id,))
        still_used = set()
        for other in self.list():
            still_used.update(chain_ids(other.config.rootfs.diff_ids))
            still_used.update(x["digest"] for x in other.layers)
            still_used.add(other.manifest_digest)
        for chain in reversed(chain_ids(image.config.rootfs.diff_ids)):
            if chain not in still_used:
                self._remove_layer_quietly(layer_key(chain))
        for layer in image.layers:
            if layer["digest"] not in still_used:
                self.blobs.delete(layer["digest"])
        if image.manifest_digest not in still_used:
            self.blobs.delete(image.manifest_digest)
        self.blobs.delete(image.id)
        self.hooks.call("pyengine_image_post_remove", image=image)

    # ---- history ------------------------------------------------------------------------------
    def history(self, name: str) -> list[dict[str, Any]]:
        """Docker's ``GET /images/{name}/history``: newest first."""
        image = self.resolve(name)
        layers = iter(image.layers)
        items = []
        for entry in image.config.history:
            layer = None if entry.empty_layer else next(layers, None)
            items.append(
                {
                    "Id": "<missing>",
                    "Created": int(parse_rfc3339(entry.created or "")),
                    "CreatedBy": entry.created_by or "",
                    "Tags": None,
                    "Size": layer["size"] if layer else 0,
                    "Comment": entry.comment or "",
                }
            )
        items.reverse()
        if items:
            items[0]["Id"] = image.id
            items[0]["Tags"] = [reference.familiar(t) for t in image.tags]
        return items


_LAYER_LOCKS: dict[str, threading.Lock] = {}
_LAYER_LOCKS_GUARD = threading.Lock()


def _layer_lock(chain: str) -> threading.Lock:
    with _LAYER_LOCKS_GUARD:
        return _LAYER_LOCKS.setdefault(chain, threading.Lock())


def build_manifest(config_digest: str, config_size: int, layers: list[dict[str, Any]]) -> bytes:
    """The OCI manifest of an image made here (import, commit, build)."""
    manifest = {
        "schemaVersion": 2,
        "mediaType": MEDIA_MANIFEST,
        "config": {"mediaType": MEDIA_CONFIG, "digest": config_digest, "size": config_size},
        "layers": [{"mediaType": x["mediaType"], "digest": x["digest"], "size": x["size"]} for x in layers],
    }
    return json.dumps(manifest, separators=(",", ":")).encode()


def _is_hex(text: str) -> bool:
    return bool(text) and all(c in "0123456789abcdef" for c in text)


def _spool_uncompressed(stream: BinaryIO, spool: BinaryIO) -> str:
    """Copy a (maybe gzip-compressed) tar stream uncompressed into ``spool``; return its digest.

    Raises InvalidArgument for a truncated gzip stream or something that is no tar at all.
    """
    head = stream.read(2)
    source: BinaryIO = stream
    if head == b"\x1f\x8b":
        source = gzip.GzipFile(fileobj=_Prepend(head, stream))
        head = b""
    hasher = hashlib.sha256(head)
    spool.write(head)
    total = len(head)
    try:
        while chunk := source.read(1 << 20):
            hasher.update(chunk)
            spool.write(chunk)
            total += len(chunk)
    except (EOFError, OSError, gzip.BadGzipFile) as exc:
        raise InvalidArgument(f"invalid tar archive: {exc}") from exc
    if total < 512:
        raise InvalidArgument("invalid tar archive: too short to be a tar file")
    spool.flush()
    os.fsync(spool.fileno())
    return "sha256:" + hasher.hexdigest()


class _Prepend:
    """A read-only stream of ``head`` followed by the rest of ``stream``."""

    def __init__(self, head: bytes, stream: BinaryIO) -> None:
        self._head = head
        self._stream = stream

    def read(self, size: int = -1) -> bytes:
        if self._head:
            if size < 0:
                data, self._head = self._head + self._stream.read(), b""
                return data
            data, self._head = self._head[:size], self._head[size:]
            return data
        return self._stream.read(size)
