"""The container lifecycle: create, start, stop, kill, wait, remove, and reacting to exits.

The engine keeps every container's record in memory (authoritative while the daemon runs) and writes
it to SQLite on every change. Processes belong to the supervisor (a separate process that outlives the
daemon); this service asks it to start and signal them and learns about exits from its event stream.
"""

from __future__ import annotations

import asyncio
import logging
import signal as signals
import threading
from collections import defaultdict
from pathlib import Path
from typing import Any

from pyengine import ids
from pyengine.containers import bundle, control, health, resources, security, spec, userns
from pyengine.containers.naming import ContainerIndex
from pyengine.containers.restart import RestartManager
from pyengine.drivers.storage import StorageDriver
from pyengine.errors import (
    AlreadyExists,
    Conflict,
    EngineError,
    InvalidArgument,
    NotFound,
    NotModified,
    StartFailed,
)
from pyengine.hooks import HookCaller
from pyengine.images.store import ImageStore
from pyengine.model.base import ZERO_TIME, now_rfc3339
from pyengine.model.container import (
    Container,
    ContainerConfig,
    ContainerCreateRequest,
    ContainerState,
    ContainerStatus,
)
from pyengine.state.db import Database, dumps, loads
from pyengine.volumes import attach as volume_mounts

log = logging.getLogger(__name__)

WAIT_CONDITIONS = ("not-running", "next-exit", "removed")
DEFAULT_STOP_TIMEOUT = 10


def parse_signal(value: str | int | None, default: int = signals.SIGKILL) -> int:
    """``KILL``, ``SIGKILL`` or ``9`` -> 9; InvalidArgument for anything else."""
    if value in (None, ""):
        return default
    text = str(value).upper()
    if text.isdigit():
        number = int(text)
        if 0 < number < signals.NSIG:
            return number
        raise InvalidArgument(f"Invalid signal: {value}")
    name = text if text.startswith("SIG") else "SIG" + text
    try:
        return int(signals.Signals[name])
    except KeyError:
        raise InvalidArgument(f"Invalid signal: {value}") from None


def exit_code_for_start_error(message: str) -> int:
    """Docker's exit code for a process that could not be started."""
    lowered = message.lower()
    if "executable file not found" in lowered or "no such file or directory" in lowered:
        return 127
    if "permission denied" in lowered:
        return 126
    return 128


class ContainerService:
    def __init__(
        self,
        *,
        db: Database,
        images: ImageStore,
        driver: StorageDriver,
        supervisor: Any,
        hooks: HookCaller,
        containers_dir: Path,
        networks: Any = None,
        volumes: Any = None,
    ) -> None:
        self.db = db
        self.images = images
        self.driver = driver
        self.supervisor = supervisor
        self.hooks = hooks
        #: the NetworkService (None: every container gets a private namespace with only lo)
        self.networks = networks
        self.containers_dir = Path(containers_dir)
        self.containers_dir.mkdir(parents=True, exist_ok=True)
        self.index = ContainerIndex()
        self._waiters: dict[str, list[tuple[str, asyncio.Future]]] = defaultdict(list)
        self._locks: dict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._exited: dict[str, asyncio.Event] = {}
        #: the volume service (None: containers without volumes, as in unit tests)
        self.volumes = volumes
        if volumes is not None:
            volumes.container_users = self.volume_users
        self.restarts = RestartManager(self)
        #: the daemon's --userns-remap id map (None: off); the engine sets it
        self.userns_remap: Any = None

    # ---- records ------------------------------------------------------------------------------
    def load(self) -> None:
        for (doc,) in self.db.query("SELECT doc FROM containers"):
            self.index.add(Container.model_validate(loads(doc)))

    def get(self, name_or_id: str) -> Container:
        return self.index.find(name_or_id)

    def all(self) -> list[Container]:
        return self.index.all()

    def save(self, container: Container) -> None:
        with self.db.transaction() as cur:
            cur.execute(
                "INSERT INTO containers(id, name, image_id, doc) VALUES (?, ?, ?, ?) "
                "ON CONFLICT(id) DO UPDATE SET name=excluded.name, doc=excluded.doc",
                (container.Id, container.Name, container.Image, dumps(container.model_dump(mode="json"))),
            )

    def images_in_use(self) -> dict[str, list[str]]:
        users: dict[str, list[str]] = defaultdict(list)
        for container in self.index.all():
            users[container.Image].append(container.Id)
        return users

    def volume_users(self, name: str) -> list[str]:
        """IDs of the containers (running or not) whose mounts name the volume ``name``."""
        return [
            c.Id
            for c in self.index.all()
            if any(m.Type == "volume" and m.Name == name for m in c.MountPoints)
        ]

    # ---- create -------------------------------------------------------------------------------
    async def create(self, request: ContainerCreateRequest, name: str | None) -> Container:
        if name:
            name = ids.validate_container_name(name)
            self._check_name_free(name)
        if not request.Image:
            raise InvalidArgument("Config.Image is required")
        security.check_host_config(request.HostConfig)
        userns.check_create(self.userns_remap, request.HostConfig, self.driver)
        image = await asyncio.to_thread(self.images.resolve, request.Image)
        image_config = image.config.config
        if request.Entrypoint is not None:
            entrypoint, cmd = request.Entrypoint, request.Cmd or []
        else:
            entrypoint, cmd = image_config.Entrypoint or [], request.Cmd or image_config.Cmd or []
        argv = [*entrypoint, *cmd]
        if not argv or not argv[0]:
            raise InvalidArgument("No command specified")
        if request.Entrypoint == [""] and cmd:
            argv = list(cmd)
        resources.adapt(request.HostConfig)
        resources.validate(request.HostConfig)
        healthcheck = health.merge(image_config.Healthcheck, request.Healthcheck)
        health.validate(healthcheck)
        self.hooks.call("pyengine_container_pre_create", request=request, image=image)

        container_id = ids.new_id()
        config = ContainerConfig.model_validate(
            request.model_dump(exclude={"HostConfig", "NetworkingConfig", "Platform"})
        )
        config.Hostname = config.Hostname or container_id[:12]
        config.Env = spec.merge_env(image_config.Env, request.Env, config.Hostname, config.Tty)
        config.Cmd = cmd or None
        config.Entrypoint = entrypoint or None
        config.WorkingDir = config.WorkingDir or image_config.WorkingDir
        config.User = config.User or image_config.User
        config.Labels = {**(image_config.Labels or {}), **(request.Labels or {})}
        config.StopSignal = config.StopSignal or image_config.StopSignal
        config.Healthcheck = healthcheck
        config.ExposedPorts = {**(image_config.ExposedPorts or {}), **(request.ExposedPorts or {})} or None
        directory = self.containers_dir / container_id
        container = Container(
            Id=container_id,
            Name=name or self._free_random_name(),
            Created=now_rfc3339(),
            Path=argv[0],
            Args=argv[1:],
            Config=config,
            HostConfig=request.HostConfig,
            Image=image.id,
            ImageName=request.Image,
            Driver=self.driver.name,
            LogPath=str(directory / f"{container_id}-json.log"),
            ResolvConfPath=str(directory / "resolv.conf"),
            HostnamePath=str(directory / "hostname"),
            HostsPath=str(directory / "hosts"),
            BundlePath=str(directory),
        )
        if self.networks is not None:
            self.networks.configure(container, request.NetworkingConfig)
        container.MountPoints, new_volumes = await asyncio.to_thread(
            volume_mounts.plan, self.volumes, request, image_config.Volumes, container_id
        )
        try:
            await asyncio.to_thread(bundle.prepare_filesystem, self.driver, container, image.top_layer)
        except BaseException:
            await asyncio.to_thread(volume_mounts.abandon, self.volumes, container_id, new_volumes)
            raise
        try:
            await self.supervisor.create(
                id=container_id,
                bundle=str(directory),
                tty=config.Tty,
                open_stdin=config.OpenStdin,
                stdin_once=config.StdinOnce,
                log_path=container.LogPath,
            )
            self.index.add(container)
            try:
                self.save(container)
            except Exception:
                self.index.remove(container)
                raise
        except BaseException:
            await asyncio.to_thread(bundle.release_filesystem, self.driver, container)
            await _quietly(self.supervisor.delete(id=container_id))
            await asyncio.to_thread(volume_mounts.abandon, self.volumes, container_id, new_volumes)
            raise
        volume_mounts.settle(self.volumes, container_id)
        self.hooks.call("pyengine_container_post_create", container=container)
        return container

    def _check_name_free(self, name: str) -> None:
        other = self.index.by_name(name)
        if other is not None:
            raise AlreadyExists(
                f'Conflict. The container name "/{name}" is already in use by container "{other.Id}". '
                "You have to remove (or rename) that container to be able to reuse that name."
            )

    def _free_random_name(self) -> str:
        for attempt in range(10):
            candidate = ids.random_name(attempt)
            if self.index.by_name(candidate) is None:
                return candidate
        return ids.new_id()[:16]

    # ---- start --------------------------------------------------------------------------------
    async def start(self, container: Container, *, restarting: bool = False) -> None:
        """Start the container's process. ``restarting``: the restart policy starts a container that
        shows ``restarting`` (it stays so, never ``exited``, until it runs or fails to start)."""
        async with self._locks[container.Id]:
            waiting_restart = restarting and container.State.Status == ContainerStatus.RESTARTING
            if container.State.running and not waiting_restart:
                raise NotModified("container already started")
            if container.State.Status in (ContainerStatus.REMOVING, ContainerStatus.DEAD):
                raise Conflict(f"cannot start container {container.Id[:12]}: it is being removed")
            failed: EngineError | None = None
            try:
                network_ns = await asyncio.to_thread(self._attach_networks, container)
            except EngineError as exc:  # e.g. a host port in use: the start fails, as Docker's
                self._record_start_failure(container, exc.message, 128)
                failed = exc
            if failed is None:
                failed = await self._start_process(container, network_ns, restarting=restarting)
        if failed is not None:
            self._resolve_waiters(container, ("next-exit", "not-running"))
            if container.HostConfig.AutoRemove:
                await self._auto_remove(container)
            raise failed
        self.hooks.call("pyengine_container_post_start", container=container)

    async def _start_process(
        self, container: Container, network_ns: dict[str, Any] | None, *, restarting: bool = False
    ) -> EngineError | None:
        """Write the bundle and have the supervisor start the process; the start error, if any."""
        try:
            runtime_spec = await asyncio.to_thread(
                bundle.write_bundle, self.driver, self.volumes, self.userns_remap, container, network_ns
            )
            self.hooks.call("pyengine_container_pre_start", container=container, bundle=runtime_spec)
        except BaseException:
            await asyncio.to_thread(self._detach_networks, container)
            raise
        try:
            reply = await self.supervisor.start(id=container.Id)
        except StartFailed as exc:
            await asyncio.to_thread(self._unmount_rootfs, container)
            await asyncio.to_thread(self._detach_networks, container)
            message = f"OCI runtime create failed: starting container process caused: {exc.message}: unknown"
            self._record_start_failure(container, message, exit_code_for_start_error(exc.message))
            return StartFailed(message)
        container.State.move_to(ContainerStatus.RUNNING)
        container.State.Pid = int(reply.get("pid", 0))
        container.State.StartedAt = reply.get("started_at") or now_rfc3339()
        container.State.FinishedAt = ZERO_TIME
        container.State.ExitCode = 0
        container.State.Error = ""
        if not restarting:  # a user's start ends a manual stop; a policy restart must keep one made meanwhile
            container.ManualStop = False
        self._exited[container.Id] = asyncio.Event()
        self.save(container)
        return None

    def _record_start_failure(self, container: Container, message: str, exit_code: int) -> None:
        container.State.ExitCode = exit_code
        container.State.Error = message
        container.State.move_to(ContainerStatus.EXITED)
        container.State.FinishedAt = now_rfc3339()
        self.save(container)

    def _attach_networks(self, container: Container) -> dict[str, Any] | None:
        if self.networks is None:
            return {"type": "network"}
        return self.networks.attach(container)

    def _detach_networks(self, container: Container, *, notify: bool = True) -> list[Any]:
        if self.networks is None:
            return []
        return self.networks.detach(container, notify=notify)

    def _unmount_rootfs(self, container: Container) -> None:
        bundle.unmount_rootfs(self.driver, self.volumes, container)

    # ---- exits --------------------------------------------------------------------------------
    async def on_exit(
        self, container_id: str, exit_code: int, finished_at: str | None, oom: bool = False
    ) -> None:
        """The supervisor reports that a container's process ended."""
        try:
            container = self.index.find(container_id)
        except NotFound:
            return
        async with self._locks[container.Id]:
            if container.State.Status not in (
                ContainerStatus.RUNNING,
                ContainerStatus.PAUSED,
                ContainerStatus.RESTARTING,
            ):
                return
            # Kernel work first: no await may separate "exited" from a restart policy's "restarting".
            oom = await asyncio.to_thread(control.release_cgroup, container) or oom
            await asyncio.to_thread(self._unmount_rootfs, container)
            left_networks = await asyncio.to_thread(self._detach_networks, container, notify=False)
            container.State.move_to(ContainerStatus.EXITED)
            container.State.ExitCode = exit_code
            container.State.Pid = 0
            container.State.FinishedAt = finished_at or now_rfc3339()
            container.State.OOMKilled = oom
            self.save(container)
            event = self._exited.pop(container.Id, None)
            if event:
                event.set()
            restarting = self.restarts.schedule(container, exit_code)
        self.hooks.call("pyengine_container_post_exit", container=container, exit_code=exit_code)
        for network in left_networks:  # Docker's order: die, then disconnect
            self.hooks.call("pyengine_network_post_disconnect", network=network, container=container)
        if restarting:  # still "running" for wait, as Docker's
            self._resolve_waiters(container, ("next-exit",))
            return
        self._resolve_waiters(container, ("next-exit", "not-running"))
        if container.HostConfig.AutoRemove:
            await self._auto_remove(container)

    async def _auto_remove(self, container: Container) -> None:
        try:
            await self.remove(container, force=True, volumes=True)
        except NotFound:
            pass
        except EngineError:
            log.warning("auto-remove of %s failed", container.Id, exc_info=True)

    # ---- wait ---------------------------------------------------------------------------------
    def waiter(self, container: Container, condition: str) -> asyncio.Future:
        """A future resolved with (status_code, error) when ``condition`` is met."""
        if condition not in WAIT_CONDITIONS:
            raise InvalidArgument(f"invalid condition: {condition!r}")
        future: asyncio.Future = asyncio.get_running_loop().create_future()
        if (
            condition == "not-running"
            and not container.State.running
            and not self.restarts.starting(container.Id)
        ):
            future.set_result((container.State.ExitCode, None))
        else:
            self._waiters[container.Id].append((condition, future))
        return future

    def _resolve_waiters(self, container: Container, conditions: tuple[str, ...]) -> None:
        remaining = []
        for condition, future in self._waiters.get(container.Id, []):
            if condition in conditions:
                if not future.done():
                    error = container.State.Error or None
                    future.set_result((container.State.ExitCode, error))
            else:
                remaining.append((condition, future))
        if remaining:
            self._waiters[container.Id] = remaining
        else:
            self._waiters.pop(container.Id, None)

    # ---- signals ------------------------------------------------------------------------------
    async def kill(self, container: Container, signal: str | int | None = None) -> None:
        number = parse_signal(signal)
        if await self.restarts.cancel(container):
            return
        if not container.State.running:
            raise Conflict(f"Cannot kill container: {container.Id}: Container {container.Id} is not running")
        if number in (signals.SIGKILL, signals.SIGTERM, signals.SIGINT):
            container.ManualStop = True
        await self.supervisor.signal(id=container.Id, signal=number)
        if number == signals.SIGKILL:
            await control.thaw_for_exit(self, container)
        self.hooks.call(
            "pyengine_container_post_event",
            container=container,
            action="kill",
            attributes={"signal": str(number)},
        )

    async def stop(self, container: Container, timeout: int | None = None) -> None:
        container.ManualStop = True  # before any await: an exit from here on is not restarted
        if await self.restarts.cancel(container):
            self.hooks.call(
                "pyengine_container_post_event", container=container, action="stop", attributes={}
            )
            return
        if not container.State.running:
            raise NotModified("container already stopped")
        if timeout is None:
            timeout = (
                container.Config.StopTimeout
                if container.Config.StopTimeout is not None
                else DEFAULT_STOP_TIMEOUT
            )
        container.ManualStop = True
        exited = self._exited.get(container.Id) or asyncio.Event()
        stop_signal = parse_signal(container.Config.StopSignal, default=signals.SIGTERM)
        try:
            await self.supervisor.signal(id=container.Id, signal=stop_signal)
        except Conflict:
            pass  # it ended meanwhile
        await control.thaw_for_exit(self, container)
        if timeout < 0:
            await exited.wait()
        else:
            try:
                await asyncio.wait_for(exited.wait(), timeout=timeout)
            except TimeoutError:
                await _quietly(self.supervisor.signal(id=container.Id, signal=signals.SIGKILL))
                await exited.wait()
        self.hooks.call("pyengine_container_post_event", container=container, action="stop", attributes={})

    async def restart(self, container: Container, timeout: int | None = None) -> None:
        if container.State.running:
            try:
                await self.stop(container, timeout)
            except NotModified:
                pass
        await self.start(container)
        self.hooks.call("pyengine_container_post_event", container=container, action="restart", attributes={})

    async def resize(self, container: Container, height: int, width: int) -> None:
        if not container.State.running:
            raise Conflict(f"Container {container.Id} is not running")
        await self.supervisor.resize(id=container.Id, height=height, width=width)

    def rename(self, container: Container, new_name: str) -> None:
        """``docker rename``: 400 for an invalid name, 409 for one in use."""
        new_name = ids.validate_container_name(new_name)
        self._check_name_free(new_name)
        old_name = container.Name
        self.index.rename(container, new_name)
        self.save(container)
        self.hooks.call(
            "pyengine_container_post_event",
            container=container,
            action="rename",
            attributes={"oldName": "/" + old_name},
        )

    # ---- remove -------------------------------------------------------------------------------
    async def remove(self, container: Container, *, force: bool = False, volumes: bool = False) -> None:
        """Remove the container; ``volumes`` (``rm -v``, ``--rm``) also removes its anonymous volumes."""
        if force:
            await self.restarts.cancel(container)
        if container.State.running:
            if not force:
                raise Conflict(
                    f"You cannot remove a running container {container.Id}. Stop the container before "
                    "attempting removal or force remove"
                )
            exited = self._exited.get(container.Id)
            await _quietly(self.supervisor.signal(id=container.Id, signal=signals.SIGKILL))
            await control.thaw_for_exit(self, container)
            if exited is not None:
                try:
                    await asyncio.wait_for(exited.wait(), timeout=30)
                except TimeoutError:
                    log.warning("container %s did not exit after SIGKILL", container.Id)
        self.hooks.call("pyengine_container_pre_remove", container=container, force=force)
        async with self._locks[container.Id]:
            if self.index.by_id(container.Id) is None:
                return  # removed meanwhile (auto-remove after the kill above)
            if container.State.Status != ContainerStatus.REMOVING:
                container.State.Status = ContainerStatus.REMOVING
            await _quietly(self.supervisor.delete(id=container.Id))
            await asyncio.to_thread(control.release_cgroup, container)
            await asyncio.to_thread(self._unmount_rootfs, container)
            await asyncio.to_thread(self._detach_networks, container)
            await asyncio.to_thread(bundle.release_filesystem, self.driver, container)
            with self.db.transaction() as cur:
                cur.execute("DELETE FROM containers WHERE id=?", (container.Id,))
            self.index.remove(container)
        if volumes:
            await asyncio.to_thread(volume_mounts.remove_anonymous, self.volumes, container)
        self.restarts.forget(container.Id)
        self._locks.pop(container.Id, None)
        self.hooks.call("pyengine_container_post_remove", container=container)
        self._resolve_waiters(container, ("removed", "next-exit", "not-running"))

    # ---- daemon restart -----------------------------------------------------------------------
    async def reconcile(self) -> None:
        """Make the records agree with the supervisor after a daemon (re)start.

        A container recorded as running whose process is gone becomes exited, with the status the
        supervisor recorded when it has one; containers the supervisor does not know (it was
        restarted, or the host rebooted) are registered again so that they can be started.
        """
        known = {item["id"]: item for item in await self.supervisor.list()}
        found_dead = []
        for container in self.index.all():
            state = known.get(container.Id)
            if state is None:
                await self.supervisor.create(
                    id=container.Id,
                    bundle=container.BundlePath,
                    tty=container.Config.Tty,
                    open_stdin=container.Config.OpenStdin,
                    stdin_once=container.Config.StdinOnce,
                    log_path=container.LogPath,
                )
                if container.State.running:
                    self._mark_lost(container, 255, "")
                    found_dead.append(container)
            elif state.get("status") == "running":
                if not container.State.running:
                    container.State = ContainerState(Status=ContainerStatus.RUNNING)
                container.State.Pid = int(state.get("pid") or 0)
                self._exited[container.Id] = asyncio.Event()
                await asyncio.to_thread(volume_mounts.retake_all, self.volumes, container)
                self.save(container)
            elif container.State.running:
                code = state.get("exit_code")
                self._mark_lost(container, 255 if code is None else int(code), state.get("finished_at") or "")
                found_dead.append(container)
                if container.HostConfig.AutoRemove:
                    await self._auto_remove(container)
        await self.restarts.after_daemon_start([c for c in found_dead if self.index.by_id(c.Id) is not None])

    def _mark_lost(self, container: Container, exit_code: int, finished_at: str) -> None:
        container.State.Status = ContainerStatus.EXITED
        container.State.ExitCode = exit_code
        container.State.Pid = 0
        container.State.FinishedAt = finished_at or now_rfc3339()
        container.State.OOMKilled = control.release_cgroup(container)
        self._unmount_rootfs(container)
        # called on the event loop: netlink work (pyroute2 runs its own loop) needs another thread
        worker = threading.Thread(target=self._detach_networks, args=(container,))
        worker.start()
        worker.join()
        self.save(container)


async def _quietly(awaitable: Any) -> None:
    try:
        await awaitable
    except EngineError as exc:
        log.debug("ignored: %s", exc)
