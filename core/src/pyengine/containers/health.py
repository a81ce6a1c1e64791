"""Health checks from HEALTHCHECK (the image's config) or ``--health-*`` (the container's), as Docker.

The check runs every Interval inside the container (through exec), at most Timeout each; exit 0 is
healthy, anything else a failure. ``Retries`` failures in a row make the container unhealthy; failures
during StartPeriod do not count (but a success there makes it healthy). State.Health keeps the status,
the failing streak and the last five results; each change of status is a ``health_status: <status>``
event. The monitor is a hook plugin: it starts with the container, stops at its exit, and resumes for
running containers when the daemon starts again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from pyengine.errors import EngineError, InvalidArgument, NotSupported
from pyengine.hookspecs import hookimpl
from pyengine.model.base import now_rfc3339
from pyengine.model.container import Container, ContainerStatus

log = logging.getLogger(__name__)

NANOS = 1_000_000_000
DEFAULT_INTERVAL = 30 * NANOS
DEFAULT_TIMEOUT = 30 * NANOS
DEFAULT_RETRIES = 3
MIN_DURATION = 1_000_000  # 1 ms, Docker's minimum for every health duration that is set
MAX_LOG_ENTRIES = 5
MAX_OUTPUT = 4096

STARTING, HEALTHY, UNHEALTHY = "starting", "healthy", "unhealthy"

#: (container, argv, timeout in seconds) -> (exit code, output). -1 and a message on a timeout.
Probe = Callable[[Container, list[str], float], Awaitable[tuple[int, str]]]


def merge(
    image_check: dict[str, Any] | None, container_check: dict[str, Any] | None
) -> dict[str, Any] | None:
    """The container's Healthcheck over the image's, field by field (Docker's merge on create)."""
    if not container_check:
        return image_check or None
    merged = dict(image_check or {})
    for key, value in container_check.items():
        if value not in (None, [], 0):
            merged[key] = value
    return merged


def validate(check: dict[str, Any] | None) -> None:
    """400 for durations below 1 ms and negative retries, as Docker's create does."""
    if not check:
        return
    for key, flag in (
        ("Interval", "--health-interval"),
        ("Timeout", "--health-timeout"),
        ("StartPeriod", "--health-start-period"),
        ("StartInterval", "--health-start-interval"),
    ):
        value = check.get(key) or 0
        if value != 0 and value < MIN_DURATION:
            raise InvalidArgument(f"{key} in Healthcheck cannot be less than 1ms ({flag})")
    if (check.get("Retries") or 0) < 0:
        raise InvalidArgument("Retries in Healthcheck cannot be negative (--health-retries)")
    test = check.get("Test") or []
    if test and test[0] not in ("NONE", "CMD", "CMD-SHELL"):
        raise InvalidArgument(f"unknown Healthcheck type {test[0]!r}: use CMD, CMD-SHELL or NONE")


def command(check: dict[str, Any] | None) -> list[str] | None:
    """The argv a check runs, or None when there is no (enabled) check."""
    test = (check or {}).get("Test") or []
    if not test or test[0] == "NONE":
        return None
    if test[0] == "CMD-SHELL":
        return ["/bin/sh", "-c", " ".join(test[1:])]
    if test[0] == "CMD":
        return list(test[1:]) or None
    return list(test)  # a bare command: Docker treats it as CMD-SHELL-less argv


def exec_probe(containers: Any, supervisor: Any) -> Probe:
    """A probe that runs the check as an exec in the container (what Docker does), output captured."""
    service = None

    async def probe(container: Container, argv: list[str], timeout: float) -> tuple[int, str]:
        nonlocal service
        if service is None:
            try:
                from pyengine.containers.exec import ExecService
            except ImportError:
                raise NotSupported("health checks run through exec, which this build lacks") from None
            service = ExecService(containers, supervisor)
        instance = service.create(container, {"Cmd": argv, "AttachStdout": True, "AttachStderr": True})
        reader, writer = await service.start(instance)
        output = bytearray()

        async def deliver(stream: int, payload: bytes) -> bool:
            if len(output) < MAX_OUTPUT:
                output.extend(payload[: MAX_OUTPUT - len(output)])
            return True

        try:
            writer.write_eof()
            await service.pump(instance, reader, deliver)
        finally:
            writer.close()
        return int(instance.exit_code if instance.exit_code is not None else -1), output.decode(
            errors="replace"
        )

    return probe


_UNITS = {"ns": 1, "us": 1_000, "ms": 1_000_000, "s": NANOS, "m": 60 * NANOS, "h": 3600 * NANOS}


def parse_duration(text: str) -> int:
    """Go's time.ParseDuration for the usual forms (``30s``, ``1m30s``, ``500ms``) -> nanoseconds."""
    import re

    parts = re.findall(r"(\d+(?:\.\d+)?)(ns|us|ms|s|m|h)", text)
    if text in ("0",):
        return 0
    if not parts or "".join(number + unit for number, unit in parts) != text:
        raise InvalidArgument(f"time: invalid duration {text!r}")
    return int(sum(float(number) * _UNITS[unit] for number, unit in parts))


def parse_instruction(args: str) -> dict[str, Any]:
    """A Dockerfile ``HEALTHCHECK`` line's arguments (for ``import/commit --change``) -> Healthcheck."""
    import json
    import shlex

    words = args.strip().split(None, 1)
    check: dict[str, Any] = {}
    options = {
        "--interval": "Interval",
        "--timeout": "Timeout",
        "--start-period": "StartPeriod",
        "--start-interval": "StartInterval",
        "--retries": "Retries",
    }
    while words and words[0].startswith("--"):
        name, _, value = words[0].partition("=")
        if name not in options or not value:
            raise InvalidArgument(f"HEALTHCHECK: unknown or empty flag {words[0]!r}")
        check[options[name]] = int(value) if name == "--retries" else parse_duration(value)
        words = words[1].split(None, 1) if len(words) > 1 else []
    if not words:
        raise InvalidArgument("HEALTHCHECK needs CMD or NONE")
    kind = words[0].upper()
    rest = words[1] if len(words) > 1 else ""
    if kind == "NONE":
        if check or rest:
            raise InvalidArgument("HEALTHCHECK NONE takes no other arguments")
        return {"Test": ["NONE"]}
    if kind != "CMD" or not rest.strip():
        raise InvalidArgument("HEALTHCHECK needs CMD followed by a command, or NONE")
    if rest.strip().startswith("["):
        try:
            argv = json.loads(rest)
        except ValueError:
            argv = None
        if isinstance(argv, list) and all(isinstance(a, str) for a in argv):
            return {"Test": ["CMD", *argv], **check}
    shlex.split(rest)  # unbalanced quotes are an error, as in a Dockerfile
    return {"Test": ["CMD-SHELL", rest.strip()], **check}


class HealthMonitor:
    """Runs the checks of every running container that has one."""

    def __init__(self, service: Any, probe: Probe) -> None:
        self.service = service
        self.probe = probe
        self._tasks: dict[str, asyncio.Task] = {}

    # ---- hooks ------------------------------------------------------------------------------------
    @hookimpl
    def pyengine_container_post_start(self, container: Container) -> None:
        self.start(container)

    @hookimpl
    def pyengine_container_post_exit(self, container: Container, exit_code: int) -> None:
        self.stop(container.Id)

    @hookimpl
    def pyengine_container_post_remove(self, container: Container) -> None:
        self.stop(container.Id)

    @hookimpl
    def pyengine_daemon_post_start(self, engine: Any) -> None:
        for container in self.service.all():
            if container.State.Status in (ContainerStatus.RUNNING, ContainerStatus.PAUSED):
                self.start(container, resume=True)

    # ---- the loop ---------------------------------------------------------------------------------
    def start(self, container: Container, *, resume: bool = False) -> None:
        argv = command(container.Config.Healthcheck)
        self.stop(container.Id)
        if argv is None:
            container.State.Health = None
            return
        if not resume or not container.State.Health:
            container.State.Health = {"Status": STARTING, "FailingStreak": 0, "Log": []}
        self._tasks[container.Id] = asyncio.ensure_future(self._run(container, argv))

    def stop(self, container_id: str) -> None:
        task = self._tasks.pop(container_id, None)
        if task is not None:
            task.cancel()

    async def _run(self, container: Container, argv: list[str]) -> None:
        check = container.Config.Healthcheck or {}
        interval = (check.get("Interval") or DEFAULT_INTERVAL) / NANOS
        timeout = (check.get("Timeout") or DEFAULT_TIMEOUT) / NANOS
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            while True:
                await asyncio.sleep(interval)
                if container.State.Status == ContainerStatus.PAUSED:
                    continue  # Docker skips checks of a paused container
                if container.State.Status != ContainerStatus.RUNNING:
                    return
                await self.check_once(
                    container,
                    argv,
                    timeout,
                    in_start_period=loop.time() - started < (check.get("StartPeriod") or 0) / NANOS,
                )
        except asyncio.CancelledError:
            pass

    async def check_once(
        self, container: Container, argv: list[str], timeout: float, in_start_period: bool = False
    ) -> None:
        """Run the check once and record the result (status, streak, log, event)."""
        start = now_rfc3339()
        try:
            exit_code, output = await asyncio.wait_for(self.probe(container, argv, timeout), timeout)
        except TimeoutError:
            exit_code, output = -1, f"Health check exceeded timeout ({_seconds(timeout)})"
        except EngineError as exc:
            exit_code, output = -1, exc.message
        except Exception as exc:  # the monitor must outlive any probe failure
            log.warning("health check of %s failed to run: %s", container.Id, exc)
            exit_code, output = -1, str(exc)
        health = container.State.Health
        if health is None or self.service.index.by_id(container.Id) is None:
            return
        previous = health["Status"]
        if exit_code == 0:
            health["Status"], health["FailingStreak"] = HEALTHY, 0
        elif not (in_start_period and previous == STARTING):
            health["FailingStreak"] += 1
            retries = (container.Config.Healthcheck or {}).get("Retries") or DEFAULT_RETRIES
            if health["FailingStreak"] >= retries:
                health["Status"] = UNHEALTHY
        entry = {"Start": start, "End": now_rfc3339(), "ExitCode": exit_code, "Output": output[:MAX_OUTPUT]}
        health["Log"] = [*health["Log"], entry][-MAX_LOG_ENTRIES:]
        self.service.save(container)
        if health["Status"] != previous:
            self.service.hooks.call(
                "pyengine_container_post_event",
                container=container,
                action=f"health_status: {health['Status']}",
                attributes={},
            )


def _seconds(value: float) -> str:
    return f"{value:g}s"


def status_suffix(container: Container) -> str:
    """`` (healthy)``, `` (health: starting)``, `` (unhealthy)`` for ps' Status column."""
    health = container.State.Health
    if not health or container.State.Status != ContainerStatus.RUNNING:
        return ""
    if health["Status"] == STARTING:
        return " (health: starting)"
    return f" ({health['Status']})"
