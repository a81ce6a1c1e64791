"""Restart policies with Docker's semantics.

- ``no``: never; ``always``: after every exit; ``unless-stopped``: the same, and not at daemon start
  when the user had stopped it; ``on-failure[:N]``: after a non-zero exit, at most N times (N = 0:
  without limit).
- A stop, kill or removal by the user (``ManualStop``) cancels the policy until the next start.
- Backoff: the first restart waits 100 ms, each next one twice as long, at most one minute; a run
  that lasted 10 seconds or more resets it. While it waits the container is ``restarting``.
- After a daemon restart, containers found dead (their process ended while the daemon was away, or
  the host rebooted) are restarted when their policy says so.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from pyengine.errors import EngineError, InvalidArgument
from pyengine.model.base import now_rfc3339, parse_rfc3339
from pyengine.model.container import Container, ContainerStatus

log = logging.getLogger(__name__)

FIRST_DELAY = 0.1
MAX_DELAY = 60.0
RESET_AFTER = 10.0


POLICIES = ("", "no", "always", "unless-stopped", "on-failure")


def validate_policy(host_config: Any) -> None:
    """Docker's checks of HostConfig.RestartPolicy (at create and update): 400 with its messages."""
    policy = host_config.RestartPolicy
    if policy.Name not in POLICIES:
        raise InvalidArgument(
            f"invalid restart policy: unknown policy '{policy.Name}'; use one of "
            "'no', 'always', 'unless-stopped', or 'on-failure'"
        )
    if policy.MaximumRetryCount < 0:
        raise InvalidArgument("invalid restart policy: maximum retry count cannot be negative")
    if policy.MaximumRetryCount and policy.Name != "on-failure":
        raise InvalidArgument(
            "invalid restart policy: maximum retry count can only be used with 'on-failure'"
        )
    if host_config.AutoRemove and policy.Name not in ("", "no"):
        raise InvalidArgument("conflicting options: cannot specify both --restart and --rm")


def should_restart(container: Container, exit_code: int, *, at_daemon_start: bool = False) -> bool:
    policy = container.HostConfig.RestartPolicy
    if container.ManualStop:
        return False
    if policy.Name == "always":
        return True
    if policy.Name == "unless-stopped":
        return True
    if policy.Name == "on-failure":
        limit = policy.MaximumRetryCount
        return exit_code != 0 and (limit <= 0 or container.RestartCount < limit)
    return False


class RestartManager:
    def __init__(self, service: Any) -> None:
        self.service = service
        self._delays: dict[str, float] = {}
        self._pending: dict[str, asyncio.Task] = {}
        self._starting: set[str] = set()

    def starting(self, container_id: str) -> bool:
        """Whether a restart is between "exited" and its start (a waiter must not take it as the end)."""
        return container_id in self._starting

    def next_delay(self, container: Container) -> float:
        ran_for = parse_rfc3339(container.State.FinishedAt or now_rfc3339()) - parse_rfc3339(
            container.State.StartedAt
        )
        previous = self._delays.get(container.Id, 0.0)
        if ran_for >= RESET_AFTER or previous == 0.0:
            delay = FIRST_DELAY
        else:
            delay = min(previous * 2, MAX_DELAY)
        self._delays[container.Id] = delay
        return delay

    def schedule(self, container: Container, exit_code: int) -> bool:
        """After an exit (the record says exited): move to restarting and start again later.

        Returns whether a restart was scheduled. The caller holds the container's lock.
        """
        if not should_restart(container, exit_code):
            self._delays.pop(container.Id, None)
            return False
        delay = self.next_delay(container)
        container.State.move_to(ContainerStatus.RESTARTING)
        self.service.save(container)
        self._pending[container.Id] = asyncio.ensure_future(self._restart_later(container, delay))
        return True

    async def _restart_later(self, container: Container, delay: float) -> None:
        try:
            await asyncio.sleep(delay)
        except asyncio.CancelledError:
            return
        self._pending.pop(container.Id, None)
        if self.service.index.by_id(container.Id) is None:
            return
        if container.State.Status != ContainerStatus.RESTARTING or container.ManualStop:
            return
        container.RestartCount += 1
        self._starting.add(container.Id)
        try:
            await self.service.start(container, restarting=True)
        except EngineError as exc:
            # start() recorded the failure as an exit: the policy decides again, like after any exit.
            log.warning("restarting %s failed: %s", container.Id, exc)
            async with self.service._locks[container.Id]:
                if container.State.Status == ContainerStatus.EXITED and not self.schedule(
                    container, container.State.ExitCode
                ):
                    self.service._resolve_waiters(container, ("not-running",))
            return
        finally:
            self._starting.discard(container.Id)
        self.service.hooks.call(
            "pyengine_container_post_event", container=container, action="restart", attributes={}
        )

    async def cancel(self, container: Container) -> bool:
        """Stop a pending restart (user stop, kill, removal): True if the container was restarting.

        A restart whose start is already under way is let finish (it holds the container's lock):
        the container is then running, and the caller stops or kills it as any running one.
        """
        if container.Id in self._starting:
            async with self.service._locks[container.Id]:
                pass
        task = self._pending.pop(container.Id, None)
        if task is not None:
            task.cancel()
        self._delays.pop(container.Id, None)
        if container.State.Status == ContainerStatus.RESTARTING:
            container.ManualStop = True
            container.State.move_to(ContainerStatus.EXITED)
            self.service.save(container)
            self.service._resolve_waiters(container, ("not-running",))
            return True
        return False

    def forget(self, container_id: str) -> None:
        task = self._pending.pop(container_id, None)
        if task is not None:
            task.cancel()
        self._delays.pop(container_id, None)

    async def after_daemon_start(self, found_dead: list[Container]) -> None:
        """Restart the containers found dead at daemon start whose policy asks for it."""
        for container in found_dead:
            if container.HostConfig.RestartPolicy.Name in ("", "no"):
                continue
            async with self.service._locks[container.Id]:
                if container.State.Status == ContainerStatus.EXITED:
                    self.schedule(container, container.State.ExitCode)
