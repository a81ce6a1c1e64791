"""The health monitor's bookkeeping (status, failing streak, start period, log, events) with a
scripted probe in place of exec; the end-to-end checks through exec are in tests/test_health.py."""

from __future__ import annotations

import asyncio

import pytest
from pyengine.containers import health
from pyengine.errors import InvalidArgument
from pyengine.model.container import Container, ContainerConfig, HostConfigSpec


class _Index:
    def __init__(self, container: Container) -> None:
        self.container = container

    def by_id(self, container_id: str):
        return self.container if container_id == self.container.Id else None


class _Hooks:
    def __init__(self) -> None:
        self.events: list[str] = []

    def call(self, name: str, **kwargs) -> None:
        self.events.append(kwargs["action"])


class _Service:
    def __init__(self, container: Container) -> None:
        self.index = _Index(container)
        self.hooks = _Hooks()
        self.saved = 0

    def save(self, container: Container) -> None:
        self.saved += 1


def _container(check: dict) -> Container:
    return Container(Id="c" * 64, Name="h", Created="", Config=ContainerConfig(Healthcheck=check),
                     HostConfig=HostConfigSpec(), Image="sha256:x")


def _run(results: list[tuple[int, str]], check: dict, start_period: list[bool] | None = None):
    container = _container(check)
    container.State.Health = {"Status": health.STARTING, "FailingStreak": 0, "Log": []}
    service = _Service(container)
    answers = iter(results)

    async def probe(c, argv, timeout):
        return next(answers)

    monitor = health.HealthMonitor(service, probe)

    async def go():
        for index in range(len(results)):
            in_start = bool(start_period and start_period[index])
            await monitor.check_once(container, ["true"], 1.0, in_start_period=in_start)

    asyncio.run(go())
    return container, service


def test_retries_failures_in_a_row_make_it_unhealthy_and_a_success_heals():
    container, service = _run([(1, "no"), (1, "no"), (0, "ok"), (1, "a"), (1, "b")], {"Retries": 2})
    assert container.State.Health["Status"] == health.UNHEALTHY
    assert container.State.Health["FailingStreak"] == 2
    assert service.hooks.events == [
        "health_status: unhealthy", "health_status: healthy", "health_status: unhealthy"]
    assert [entry["Output"] for entry in container.State.Health["Log"]] == ["no", "no", "ok", "a", "b"][-5:]


def test_log_keeps_the_last_five():
    container, _ = _run([(0, str(i)) for i in range(8)], {})
    assert [entry["Output"] for entry in container.State.Health["Log"]] == ["3", "4", "5", "6", "7"]


def test_failures_in_the_start_period_do_not_count():
    container, service = _run(
        [(1, "x"), (1, "x"), (1, "x")], {"Retries": 1}, start_period=[True, True, False]
    )
    assert container.State.Health["FailingStreak"] == 1
    assert service.hooks.events == ["health_status: unhealthy"]


def test_a_timeout_is_a_failure_with_dockers_message():
    container = _container({"Retries": 1})
    container.State.Health = {"Status": health.STARTING, "FailingStreak": 0, "Log": []}
    service = _Service(container)

    async def slow(c, argv, timeout):
        await asyncio.sleep(5)
        return 0, ""

    asyncio.run(health.HealthMonitor(service, slow).check_once(container, ["sleep"], 0.05))
    entry = container.State.Health["Log"][-1]
    assert entry["ExitCode"] == -1 and entry["Output"] == "Health check exceeded timeout (0.05s)"
    assert container.State.Health["Status"] == health.UNHEALTHY


def test_command_merge_and_validate():
    assert health.command({"Test": ["CMD-SHELL", "test -f /ok"]}) == ["/bin/sh", "-c", "test -f /ok"]
    assert health.command({"Test": ["CMD", "true", "x"]}) == ["true", "x"]
    assert health.command({"Test": ["NONE"]}) is None and health.command(None) is None
    image = {"Test": ["CMD", "a"], "Interval": 5, "Retries": 2}
    assert health.merge(image, {"Interval": 7}) == {"Test": ["CMD", "a"], "Interval": 7, "Retries": 2}
    assert health.merge(image, {"Test": ["NONE"]})["Test"] == ["NONE"]
    with pytest.raises(InvalidArgument, match="--health-interval"):
        health.validate({"Test": ["CMD", "x"], "Interval": 10})
    with pytest.raises(InvalidArgument, match="--health-retries"):
        health.validate({"Retries": -1})


def test_healthcheck_instruction_for_import_change():
    assert health.parse_instruction("--interval=1s --retries=2 CMD test -f /ok") == {
        "Test": ["CMD-SHELL", "test -f /ok"], "Interval": 1_000_000_000, "Retries": 2}
    assert health.parse_instruction('CMD ["true", "x"]') == {"Test": ["CMD", "true", "x"]}
    assert health.parse_instruction("NONE") == {"Test": ["NONE"]}
    assert health.parse_duration("1m30s") == 90_000_000_000
    for bad in ("--interval=1x CMD true", "CMD", "--bogus=1 CMD true", "NONE true"):
        with pytest.raises(InvalidArgument):
            health.parse_instruction(bad)
