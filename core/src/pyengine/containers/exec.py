"""Exec instances: ``docker exec``'s create, start, resize and inspect, on the daemon's side.

An exec instance is a record (kept in memory, as Docker keeps them) of a command to run in a
running container. Starting it builds the OCI process from the container's own config.json (so it
gets the container's capabilities, no_new_privs and rlimits; the supervisor adds its namespaces,
cgroups and seccomp filter) with the exec's command, user, environment, working directory and
terminal, and asks the supervisor to run it. The supervisor's stream ends with the exit code,
which is recorded before the client's stream is closed, so ``GET /exec/{id}/json`` right after
the stream ends already has it.
"""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any

from pyengine import ids
from pyengine.containers import security, spec
from pyengine.errors import Conflict, InvalidArgument, NotFound, StartFailed
from pyengine.model.container import Container, ContainerStatus
from pyengine.supervisor.protocol import EXIT_STREAM, FRAME_HEADER

log = logging.getLogger(__name__)


class ExecInstance:
    def __init__(self, container: Container, config: dict[str, Any]) -> None:
        self.id = ids.new_id()
        self.container = container
        self.config = config
        self.running = False
        self.started = False
        self.exit_code: int | None = None
        self.pid = 0
        self.done = asyncio.Event()

    @property
    def tty(self) -> bool:
        return bool(self.config.get("Tty"))

    def docker_json(self) -> dict[str, Any]:
        cmd = list(self.config.get("Cmd") or [])
        return {
            "ID": self.id,
            "Running": self.running,
            "ExitCode": self.exit_code,
            "ProcessConfig": {
                "tty": self.tty,
                "entrypoint": cmd[0] if cmd else "",
                "arguments": cmd[1:],
                "privileged": bool(self.config.get("Privileged")),
                "user": self.config.get("User") or "",
            },
            "OpenStdin": bool(self.config.get("AttachStdin")),
            "OpenStderr": bool(self.config.get("AttachStderr")),
            "OpenStdout": bool(self.config.get("AttachStdout")),
            "CanRemove": False,
            "ContainerID": self.container.Id,
            "DetachKeys": self.config.get("DetachKeys") or "",
            "Pid": self.pid,
        }


def exit_code_for_exec_error(message: str) -> int:
    """Docker's exit code for an exec that could not start: 127 not found, else 126."""
    lowered = message.lower()
    if "executable file not found" in lowered or "no such file or directory" in lowered:
        return 127
    return 126


def check_running(container: Container) -> None:
    if container.State.Status == ContainerStatus.PAUSED:
        raise Conflict(f"Container {container.Id} is paused, unpause the container before exec")
    if container.State.Status != ContainerStatus.RUNNING:
        raise Conflict(f"Container {container.Id} is not running")


class ExecService:
    def __init__(self, containers: Any, supervisor: Any) -> None:
        self.containers = containers
        self.supervisor = supervisor
        self._instances: dict[str, ExecInstance] = {}

    def create(self, container: Container, body: dict[str, Any]) -> ExecInstance:
        check_running(container)
        cmd = body.get("Cmd")
        if isinstance(cmd, str):
            cmd = [cmd]
        if not cmd or not isinstance(cmd, list) or not all(isinstance(a, str) for a in cmd) or not cmd[0]:
            raise InvalidArgument("No exec command specified")
        workdir = body.get("WorkingDir") or ""
        if workdir and not workdir.startswith("/"):
            raise InvalidArgument(
                f"the working directory '{workdir}' is invalid, it needs to be an absolute path"
            )
        for key in ("Env",):
            value = body.get(key)
            if value is not None and not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
                raise InvalidArgument(f"invalid value for {key}: expected a list of strings")
        self._forget_removed()
        instance = ExecInstance(container, {**body, "Cmd": cmd})
        self._instances[instance.id] = instance
        self.containers.hooks.call(
            "pyengine_container_post_event",
            container=container,
            action=f"exec_create: {' '.join(cmd)}",
            attributes={"execID": instance.id},
        )
        return instance

    def get(self, exec_id: str) -> ExecInstance:
        instance = self._instances.get(exec_id)
        if instance is None:
            raise NotFound(f"No such exec instance: {exec_id}")
        return instance

    def _forget_removed(self) -> None:
        for exec_id, instance in list(self._instances.items()):
            if self.containers.index.by_id(instance.container.Id) is None:
                del self._instances[exec_id]

    # ---- start ----------------------------------------------------------------------------------
    async def start(
        self, instance: ExecInstance, console_size: list[int] | None = None
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """Start the process; the supervisor's stream is returned (read it with :meth:`pump`).

        Raises Conflict (already started, container not running) or StartFailed (after which the
        instance is finished with Docker's exit code for the failure).
        """
        self.check_startable(instance)
        container = instance.container
        instance.started = True
        try:
            process = await asyncio.to_thread(self._process_spec, instance, console_size)
            reader, writer, pid = await self.supervisor.exec(
                container.Id, instance.id, process, open_stdin=bool(instance.config.get("AttachStdin"))
            )
        except (StartFailed, InvalidArgument) as exc:
            instance.exit_code = exit_code_for_exec_error(exc.message)
            instance.done.set()
            raise StartFailed(f"OCI runtime exec failed: exec failed: {exc.message}: unknown") from None
        except Conflict:
            instance.started = False
            raise
        instance.pid = pid
        instance.running = True
        self.containers.hooks.call(
            "pyengine_container_post_event",
            container=container,
            action=f"exec_start: {' '.join(instance.config['Cmd'])}",
            attributes={"execID": instance.id},
        )
        return reader, writer

    def check_startable(self, instance: ExecInstance) -> None:
        """Conflict if the instance was started before or its container does not run."""
        if instance.started:
            raise Conflict(
                f"Error: Exec command {instance.id} has already run"
                if not instance.running
                else f"Error: Exec command {instance.id} is already running"
            )
        check_running(instance.container)

    def _process_spec(self, instance: ExecInstance, console_size: list[int] | None) -> dict[str, Any]:
        from pyengine.runtime.users import resolve_groups, resolve_user

        container = instance.container
        config = instance.config
        try:
            container_spec = json.loads((Path(container.BundlePath) / "config.json").read_text())
        except (OSError, ValueError) as exc:
            raise StartFailed(f"cannot read the container's config.json: {exc}") from exc
        base = container_spec.get("process") or {}
        if not container.RootfsPath:
            raise StartFailed(f"container {container.Id} has no mounted root file system")
        rootfs = Path(container.RootfsPath)
        uid, gid, groups = resolve_user(rootfs, config.get("User") or container.Config.User or "")
        extra_gids = resolve_groups(
            rootfs, security.check_group_add(getattr(container.HostConfig, "GroupAdd", None))
        )
        capabilities = base.get("capabilities")
        if config.get("Privileged"):
            everything = security.capabilities_for(_Privileged())
            capabilities = {
                "bounding": everything,
                "effective": everything,
                "permitted": everything,
                "inheritable": [],
                "ambient": [],
            }
        env = spec.merge_env(container.Config.Env, config.get("Env"), container.Config.Hostname, instance.tty)
        process: dict[str, Any] = {
            "terminal": instance.tty,
            "user": {"uid": uid, "gid": gid, "additionalGids": list(dict.fromkeys([*groups, *extra_gids]))},
            "args": list(config["Cmd"]),
            "env": env,
            "cwd": config.get("WorkingDir") or container.Config.WorkingDir or "/",
            "capabilities": capabilities,
            "noNewPrivileges": bool(base.get("noNewPrivileges")),
        }
        if base.get("rlimits"):
            process["rlimits"] = base["rlimits"]
        size = console_size or config.get("ConsoleSize")
        if instance.tty and size and len(size) == 2 and all(size):
            process["consoleSize"] = {"height": int(size[0]), "width": int(size[1])}
        return process

    # ---- the stream -----------------------------------------------------------------------------
    async def pump(self, instance: ExecInstance, reader: asyncio.StreamReader, deliver: Any) -> None:
        """Read the supervisor's frames until the exit frame; ``deliver(stream, payload)`` gets the
        output (an awaitable returning False once the client is gone: output is then dropped)."""
        client_present = deliver is not None
        try:
            while True:
                try:
                    header = await reader.readexactly(FRAME_HEADER.size)
                    stream, length = FRAME_HEADER.unpack(header)
                    payload = await reader.readexactly(length)
                except (asyncio.IncompleteReadError, ConnectionError):
                    break  # the supervisor went away: the exit code is unknown
                if stream == EXIT_STREAM:
                    instance.exit_code = int(json.loads(payload)["exit_code"])
                    break
                if client_present:
                    client_present = await deliver(stream, payload)
        finally:
            instance.running = False
            if instance.exit_code is None:
                instance.exit_code = 126 if instance.pid == 0 else 255
            instance.done.set()
            self.containers.hooks.call(
                "pyengine_container_post_event",
                container=instance.container,
                action="exec_die",
                attributes={"execID": instance.id, "exitCode": str(instance.exit_code)},
            )

    async def resize(self, instance: ExecInstance, height: int, width: int) -> None:
        if not instance.running:
            raise Conflict(f"Exec {instance.id} is not running")
        await self.supervisor.exec_resize(instance.id, height, width)


class _Privileged:
    """A HostConfig stand-in for :func:`security.capabilities_for`: exec --privileged gets them all."""

    Privileged = True
    CapAdd = None
    CapDrop = None
