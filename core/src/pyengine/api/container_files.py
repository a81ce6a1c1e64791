"""Routes for a container's files: commit, changes (``docker diff``), export, and the archive
endpoints ``docker cp`` uses (HEAD/GET/PUT ``/containers/{id}/archive?path=``)."""

from __future__ import annotations

import base64
import json
import tempfile
from collections.abc import Iterator

from aiohttp import web

from pyengine.api.app import add_route
from pyengine.api.common import engine, json_response, off_loop, query_bool
from pyengine.containers import userns
from pyengine.containers.commit import commit_container
from pyengine.containers.filesystem import ContainerRoot
from pyengine.errors import InvalidArgument, NotFound
from pyengine.runtime.idmap import IdMap
from pyengine.storage.naive_diff import layer_changes

_KINDS = {"C": 0, "A": 1, "D": 2}
_STREAM_BATCH = 1 << 20
STAT_HEADER = "X-Docker-Container-Path-Stat"
#: files the runtime makes in the root as bind-mount targets (Docker keeps them in an init layer):
#: added by the engine, not by the container, so ``docker diff`` does not list them
RUNTIME_MOUNT_POINTS = frozenset({"/etc/hostname", "/etc/hosts", "/etc/resolv.conf"})


def _container(request: web.Request):
    return engine(request).containers.get(request.match_info["name"])


def _mounted(request: web.Request, container) -> _MountedRoot:
    """The container's root for this request, through the id map the container runs with."""
    eng = engine(request)
    idmap = userns.container_idmap(eng.containers.userns_remap, container.HostConfig)
    return _MountedRoot(eng.storage, container, idmap)


async def commit(request: web.Request) -> web.Response:
    eng = engine(request)
    name = request.query.get("container", "")
    if not name:
        raise InvalidArgument("container is required: POST /commit?container=NAME")
    container = eng.containers.get(name)
    raw = await request.read()
    overrides = None
    if raw.strip():
        try:
            overrides = json.loads(raw)
        except ValueError as exc:
            raise InvalidArgument(f"invalid JSON: {exc}") from exc
        if overrides is not None and not isinstance(overrides, dict):
            raise InvalidArgument("invalid JSON: expected an object")
    # pause: this engine has no freezer yet; the diff is read from a live layer (as pause=false)
    image = await off_loop(
        commit_container,
        eng.images,
        eng.storage,
        container,
        repo=request.query.get("repo", ""),
        tag=request.query.get("tag", ""),
        comment=request.query.get("comment", ""),
        author=request.query.get("author", ""),
        changes=request.query.getall("changes", []),
        config=overrides,
    )
    eng.hooks.call("pyengine_container_post_event", container=container, action="commit", attributes={})
    return json_response({"Id": image.id}, status=201)


async def changes(request: web.Request) -> web.Response:
    container = _container(request)
    found = await off_loop(layer_changes, engine(request).storage, container.Id)
    return json_response(
        [
            {"Path": change.path, "Kind": _KINDS[change.kind]}
            for change in found
            if not (change.kind == "A" and change.path in RUNTIME_MOUNT_POINTS)
        ]
    )


class _MountedRoot:
    """The container's root file system mounted (reference counted) and opened for one request.

    A container in a user namespace is always opened through its idmapped mount (the one it runs
    on, shared by reference count, or a new one while it is stopped), never through a plain
    ``mount``: what a plain mount shows depends on the driver and on whether the container runs
    (overlay has one mount per layer and returns the running container's idmapped view, a
    directory driver the ids on disk), and no owner in the tree tells the two apart reliably (the
    container may chown its own root). Taking the idmapped view ourselves makes the ids it shows
    known for every driver and state: :class:`ContainerRoot` translates them with the map.
    """

    def __init__(self, driver, container, idmap: IdMap | None) -> None:
        self.driver = driver
        self.container = container
        self.idmap = idmap
        self.root: ContainerRoot | None = None

    def open(self) -> ContainerRoot:
        rootfs = userns.mount_root(self.driver, self.container.Id, self.idmap)
        try:
            self.root = ContainerRoot(str(rootfs), self.idmap)
        except BaseException:
            self.driver.unmount(self.container.Id)
            raise
        return self.root

    def close(self) -> None:
        if self.root is not None:
            self.root.close()
            self.root = None
            self.driver.unmount(self.container.Id)


def _take(chunks: Iterator[bytes]) -> bytes:
    parts, size = [], 0
    for chunk in chunks:
        parts.append(chunk)
        size += len(chunk)
        if size >= _STREAM_BATCH:
            break
    return b"".join(parts)


async def _send_tar(
    request: web.Request, chunks: Iterator[bytes], headers: dict[str, str]
) -> web.StreamResponse:
    response = web.StreamResponse(status=200, headers={"Content-Type": "application/x-tar", **headers})
    await response.prepare(request)
    while data := await off_loop(_take, chunks):
        await response.write(data)
    await response.write_eof()
    return response


def _path_of(request: web.Request) -> str:
    path = request.query.get("path", "")
    if not path:
        raise InvalidArgument("path is required: ?path=/some/path in the container")
    return path


def _stat_header(stat_doc: dict) -> dict[str, str]:
    return {STAT_HEADER: base64.b64encode(json.dumps(stat_doc).encode()).decode()}


def _not_found_in(container, exc: NotFound) -> NotFound:
    return NotFound(f"{exc.message} {container.Name.lstrip('/')}".rstrip())


async def export(request: web.Request) -> web.StreamResponse:
    container = _container(request)
    mounted = _mounted(request, container)
    root = await off_loop(mounted.open)
    try:
        chunks = await off_loop(root.archive, "/.")
        return await _send_tar(request, chunks, {})
    finally:
        await off_loop(mounted.close)


async def archive_head(request: web.Request) -> web.Response:
    container = _container(request)
    path = _path_of(request)
    mounted = _mounted(request, container)
    root = await off_loop(mounted.open)
    try:
        doc = await off_loop(root.stat, path)
    except NotFound as exc:
        raise _not_found_in(container, exc) from None
    finally:
        await off_loop(mounted.close)
    return web.Response(status=200, headers=_stat_header(doc))


async def archive_get(request: web.Request) -> web.StreamResponse:
    container = _container(request)
    path = _path_of(request)
    mounted = _mounted(request, container)
    root = await off_loop(mounted.open)
    try:
        try:
            doc = await off_loop(root.stat, path)
            chunks = await off_loop(root.archive, path)
        except NotFound as exc:
            raise _not_found_in(container, exc) from None
        return await _send_tar(request, chunks, _stat_header(doc))
    finally:
        await off_loop(mounted.close)


async def archive_put(request: web.Request) -> web.Response:
    eng = engine(request)
    container = _container(request)
    path = _path_of(request)
    no_overwrite = query_bool(request, "noOverwriteDirNonDir")
    copy_owner = query_bool(request, "copyUIDGID")
    if container.HostConfig.ReadonlyRootfs:
        raise InvalidArgument("container rootfs is marked read-only")
    mounted = _mounted(request, container)
    root = await off_loop(mounted.open)
    try:
        try:
            await off_loop(root.stat, path)  # 404 before reading the body
        except NotFound as exc:
            raise _not_found_in(container, exc) from None
        owner = None
        if copy_owner and container.Config.User:
            owner = await off_loop(_container_user, root, container.Config.User)
        with tempfile.TemporaryFile(dir=eng.blobs.root) as spool:
            while chunk := await request.content.read(1 << 20):
                await off_loop(spool.write, chunk)
            spool.seek(0)
            await off_loop(root.extract, path, spool, no_overwrite_dir_non_dir=no_overwrite, owner=owner)
    finally:
        await off_loop(mounted.close)
    return web.Response(status=200)


def _container_user(root: ContainerRoot, user: str) -> tuple[int, int]:
    from pathlib import Path

    from pyengine.runtime.users import resolve_user

    uid, gid, _groups = resolve_user(Path(root.rootfs), user)
    return uid, gid


def add_routes(router: web.UrlDispatcher) -> None:
    add_route(router, "POST", "/commit", commit)
    add_route(router, "GET", "/containers/{name}/changes", changes)
    add_route(router, "GET", "/containers/{name}/export", export)
    add_route(router, "HEAD", "/containers/{name}/archive", archive_head)
    add_route(router, "GET", "/containers/{name}/archive", archive_get)
    add_route(router, "PUT", "/containers/{name}/archive", archive_put)
