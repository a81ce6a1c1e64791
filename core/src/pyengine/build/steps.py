"""COPY and ADD: sources from the context, an earlier stage or an image, heredocs, local archives
(ADD unpacks them) and remote URLs (ADD fetches them), written as one layer tar with the owner
(``--chown``, names looked up in the image's /etc/passwd and /etc/group) and mode (``--chmod``)."""

from __future__ import annotations

import hashlib
import os
import tarfile
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from pyengine.build import context as ctx
from pyengine.build import dockerfile as df
from pyengine.build.layers import CopyEntry, kind_in_root, store_layer_file, write_copy_tar
from pyengine.errors import EngineError, InvalidArgument
from pyengine.images.image import chain_ids, layer_key


class StepFailed(EngineError):
    """A RUN step whose command exited non-zero."""

    status = 500

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class CopyStep:
    """One COPY/ADD: :meth:`prepare` finds the sources and digests them (the cache key),
    :meth:`make_layer` writes the layer, :meth:`close` releases mounts and temporary files."""

    def __init__(self, builder: Any, state: Any, ins: df.Instruction, *, is_add: bool) -> None:
        self.builder = builder
        self.engine = builder.engine
        self.state = state
        self.ins = ins
        self.is_add = is_add
        self.mounted: list[str] = []
        self.tmp = Path(tempfile.mkdtemp(prefix="pyengine-copy-", dir=builder.context.directory.parent))
        self.sources: list[tuple[Path, str]] = []  # (path, how: file|dir|archive|url|heredoc)
        self.heredocs: list[tuple[str, bytes]] = []
        self.pending: list[str] = []  # context sources digested from the tar, found on a cache miss
        self.sources_hash = ""  # "file:<hex>", "dir:<hex>" or "multi:<hex>", as Docker's history shows

    # ---- finding the sources ------------------------------------------------------------------
    def prepare(self) -> str:
        ins = self.ins
        if self.is_add and "from" in ins.flags:
            raise InvalidArgument("ADD does not take --from")
        words = [self.builder._sub(self.state, a) for a in ins.args]
        if len(words) < 2:
            raise InvalidArgument(
                f"Dockerfile parse error on line {ins.line}: {ins.name} requires at least two arguments"
            )
        *sources, self.dest = words
        from_image = "from" in ins.flags
        root: Path | None = None
        if from_image:
            root = self._mount_image(
                self.builder.stage_image(self.builder._sub(self.state, ins.flags["from"]))
            )
        heredocs = {h.name: h for h in ins.heredocs}
        local: list[str] = []
        for word in sources:
            name = word[2:].lstrip("-").strip("'\"") if word.startswith("<<") else None
            if name is not None and name in heredocs:
                doc = heredocs[name]
                text = (
                    df.expand(doc.content, self.state.lookup_env(), self.builder.escape)
                    if doc.expand
                    else doc.content
                )
                self.heredocs.append((name, text.encode()))
            elif self.is_add and urllib.parse.urlsplit(word).scheme in ("http", "https"):
                self.sources.append((self._fetch(word), "url"))
            else:
                local.append(word)
        digest = ctx.checksum_sources([p for p, _ in self.sources])  # downloads
        if local and not from_image:
            local_digest = self.builder.context.checksum(local)
            if local_digest is not None:
                self.pending = local
            else:
                context_root = self.builder.context.root
                local_digest = ctx.checksum_sources(self._add_local(context_root, local, False), context_root)
            digest += ":" + local_digest
        elif local:
            assert root is not None
            digest += ":" + ctx.checksum_sources(self._add_local(root, local, True))
        for name, data in self.heredocs:
            digest += ":" + hashlib.sha256(name.encode() + b"\0" + data).hexdigest()
        count = len(sources)
        single_dir = count == 1 and self._is_dir_source(local[0] if local else None, root)
        kind = "multi" if count > 1 else "dir" if single_dir else "file"
        self.sources_hash = f"{kind}:{hashlib.sha256(digest.encode()).hexdigest()}"
        return digest

    def _is_dir_source(self, word: str | None, image_root: Path | None) -> bool:
        if word is None:
            return False
        if any(kind == "dir" for _, kind in self.sources):
            return True
        if image_root is not None or any(c in word for c in "*?["):
            return False
        members = self.builder.context.members
        member = members.get(os.path.normpath(word)) if members is not None else None
        return (member is not None and member.isdir()) or os.path.normpath(word) == "."

    def _add_local(self, root: Path, patterns: list[str], image_root: bool) -> list[Path]:
        paths = ctx.resolve_sources(root, patterns, image_root=image_root)
        for path in paths:
            kind = "dir" if path.is_dir() else "file"
            if self.is_add and kind == "file" and _is_archive(path):
                kind = "archive"
            self.sources.append((path, kind))
        return paths

    def _mount_image(self, image_id: str) -> Path:
        image = self.engine.images.resolve(image_id)
        top = image.top_layer
        if top is None:
            empty = self.tmp / "empty-root"
            empty.mkdir()
            return empty
        path = self.engine.storage.mount(top)
        self.mounted.append(top)
        return Path(path)

    def _fetch(self, url: str) -> Path:
        name = os.path.basename(urllib.parse.urlsplit(url).path) or "download"
        target = self.tmp / "urls" / str(len(self.sources)) / name
        target.parent.mkdir(parents=True)
        try:
            with urllib.request.urlopen(url, timeout=30) as response, open(target, "wb") as out:  # noqa: S310
                while chunk := response.read(1 << 20):
                    out.write(chunk)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            raise InvalidArgument(f"failed to fetch {url} for ADD: {reason}") from None
        os.chmod(target, 0o600)  # Docker gives downloaded files mode 600
        wanted = self.ins.flags.get("checksum")
        if wanted:
            got = "sha256:" + ctx.file_sha256(target)
            if got != wanted:
                raise InvalidArgument(f"ADD {url}: checksum mismatch: expected {wanted}, got {got}")
        return target

    # ---- the layer ----------------------------------------------------------------------------
    def make_layer(self) -> Any:
        if self.pending:
            self._add_local(self.builder.context.root_for(self.pending), self.pending, False)
            self.pending = []
        state = self.state
        top = layer_key(chain_ids(state.config.rootfs.diff_ids)[-1]) if state.config.rootfs.diff_ids else None
        rootfs = None
        if top is not None:
            rootfs = Path(self.engine.storage.mount(top))
            self.mounted.append(top)
        uid, gid = self._owner(rootfs)
        mode = _parse_chmod(self.ins.flags.get("chmod"))
        workdir = state.config.config.WorkingDir or "/"
        dest = self.dest if self.dest.startswith("/") else os.path.join(workdir, self.dest)
        count = len(self.sources) + len(self.heredocs)
        as_dir = dest.endswith("/") or kind_in_root(rootfs, dest) == "dir"
        if count > 1 and not as_dir:
            raise InvalidArgument(
                f"When using {self.ins.name} with more than one source file, the destination must be a "
                "directory and end with a /"
            )
        dest = os.path.normpath(dest).lstrip("/")
        entries: dict[str, CopyEntry] = {}

        def add(entry: CopyEntry) -> None:
            entries[entry.name] = entry

        for path, kind in self.sources:
            if kind in ("dir", "archive"):
                tree = path
                keep_owner = False
                if kind == "archive":
                    tree = self.tmp / "archives" / str(len(entries))
                    tree.mkdir(parents=True)
                    with open(path, "rb") as stream:
                        ctx.apply_layer(stream, tree)
                    keep_owner = "chown" not in self.ins.flags
                if dest and kind_in_root(rootfs, dest) is None and kind != "archive":
                    add(CopyEntry(dest, str(tree), mode, uid, gid))
                for rel in _walk(tree):
                    source = os.path.join(tree, rel)
                    owner = (os.lstat(source).st_uid, os.lstat(source).st_gid) if keep_owner else (uid, gid)
                    add(CopyEntry(f"{dest}/{rel}" if dest else rel, source, mode, *owner))
            else:
                name = f"{dest}/{path.name}" if as_dir else dest
                add(CopyEntry(name.lstrip("/"), str(path), mode, uid, gid))
        for name, data in self.heredocs:
            target = f"{dest}/{name}" if as_dir else dest
            add(CopyEntry(target.lstrip("/"), None, mode if mode is not None else 0o644, uid, gid, data=data))
        for name in list(entries):
            parts = name.split("/")[:-1]
            for depth in range(1, len(parts) + 1):
                parent = "/".join(parts[:depth])
                if parent not in entries and kind_in_root(rootfs, parent) is None:
                    add(CopyEntry(parent, None, 0o755, uid, gid))
        epoch = self.builder.options.source_date_epoch
        with tempfile.TemporaryFile(dir=self.engine.blobs.root) as tar_file:
            write_copy_tar(list(entries.values()), epoch, tar_file)
            return store_layer_file(
                self.engine.storage, self.engine.blobs, list(state.config.rootfs.diff_ids), tar_file
            )

    def _owner(self, rootfs: Path | None) -> tuple[int, int]:
        chown = self.ins.flags.get("chown")
        if not chown:
            return 0, 0
        chown = self.builder._sub(self.state, chown)
        user, _, group = chown.partition(":")
        if rootfs is None:
            if user.isdigit() and (not group or group.isdigit()):
                return int(user), int(group or user)
            raise InvalidArgument(
                f"unable to convert uid/gid chown string to host mapping: {chown}: "
                "no /etc/passwd in a scratch image"
            )
        from pyengine.runtime.users import resolve_user

        try:
            uid, gid, _ = resolve_user(rootfs, user + (":" + group if group else ""))
        except InvalidArgument as exc:
            raise InvalidArgument(
                f"unable to convert uid/gid chown string to host mapping: {exc.message}"
            ) from None
        if not group and user.isdigit():
            gid = uid  # --chown=1000 means 1000:1000, as Docker
        return uid, gid

    def created_by(self) -> str:
        """Docker's history text for COPY/ADD: the sources' hash stands for them (``--cache-from``
        matches steps by this text, so it must change whenever the sources do)."""
        flags = "".join(
            f"--{name}={self.ins.flags[name]} " for name in ("chown", "chmod") if name in self.ins.flags
        )
        return f"/bin/sh -c #(nop) {self.ins.name} {flags}{self.sources_hash} in {self.dest} "

    def close(self) -> None:
        for layer in self.mounted:
            try:
                self.engine.storage.unmount(layer)
            except EngineError:
                pass
        self.mounted.clear()
        ctx.remove_tree(self.tmp)


def _walk(tree: Path) -> list[str]:
    out = []
    for dirpath, dirnames, filenames in os.walk(tree):
        dirnames.sort()
        rel_dir = os.path.relpath(dirpath, tree)
        for name in sorted(dirnames + filenames):
            out.append(name if rel_dir == "." else f"{rel_dir}/{name}")
    return out


def _is_archive(path: Path) -> bool:
    try:
        return tarfile.is_tarfile(path)
    except OSError:
        return False


def _parse_chmod(value: str | None) -> int | None:
    if not value:
        return None
    try:
        mode = int(value, 8)
    except ValueError:
        raise InvalidArgument(f"invalid chmod parameter: {value} (an octal mode like 755)") from None
    if mode > 0o7777:
        raise InvalidArgument(f"invalid chmod parameter: {value}")
    return mode
