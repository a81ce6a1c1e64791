"""Finding drivers through their entry-point namespaces (stevedore) and choosing one.

The core chooses, never the driver: the configured name; else the driver that already holds state in
the data root; else the first of a priority list that is supported on this host. A driver that raises
NotSupported is skipped by automatic selection (the reason is kept for ``pyengine info``); an explicitly
configured one fails loudly with its reason.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pyengine.errors import InvalidArgument, NotSupported

log = logging.getLogger(__name__)

#: Preference order of automatic selection, per driver kind; drivers not listed come after, by name.
PRIORITY = {
    "pyengine.storage.v1": ["overlay", "btrfs", "vfs"],
    "pyengine.network.v1": ["bridge"],
    "pyengine.volume.v1": ["local"],
}


@dataclass
class DriverReport:
    """What ``pyengine info`` shows of one installed driver."""

    name: str
    status: str  # "active", "available", "not supported: <reason>", "failed to load: <reason>"


@dataclass
class Selection:
    driver: Any
    name: str
    reports: list[DriverReport] = field(default_factory=list)


def installed_factories(namespace: str) -> dict[str, Callable[..., Any] | Exception]:
    """Name -> factory for every entry point in ``namespace``; a broken one maps to its error."""
    from stevedore import ExtensionManager

    failures: dict[str, Exception] = {}

    def on_failure(_manager: Any, entry_point: Any, exc: Exception) -> None:
        failures[entry_point.name] = exc

    manager = ExtensionManager(namespace, invoke_on_load=False, on_load_failure_callback=on_failure)
    found: dict[str, Callable[..., Any] | Exception] = {ext.name: ext.plugin for ext in manager}
    found.update(failures)
    return found


def select_driver(
    namespace: str,
    state_root: Path,
    configured: str | None = None,
    options: dict[str, Any] | None = None,
    factories: dict[str, Callable[..., Any] | Exception] | None = None,
) -> Selection:
    """Instantiate the driver the policy picks; each driver gets ``state_root/<name>`` as its root."""
    options = options or {}
    factories = installed_factories(namespace) if factories is None else factories
    if configured:
        factory = factories.get(configured)
        if factory is None:
            known = ", ".join(sorted(factories)) or "none"
            raise InvalidArgument(f"unknown driver {configured!r} for {namespace} (installed: {known})")
        if isinstance(factory, Exception):
            raise NotSupported(f"driver {configured!r} failed to load: {factory}")
        driver = factory(root=state_root / configured, options=options)
        return Selection(driver, configured, _reports(factories, configured))

    with_state = [name for name in factories if _has_state(state_root / name)]
    priority = PRIORITY.get(namespace, [])
    order = with_state + [n for n in priority if n in factories] + sorted(factories)
    reasons: dict[str, str] = {}
    for name in dict.fromkeys(order):
        factory = factories[name]
        if isinstance(factory, Exception):
            reasons[name] = f"failed to load: {factory}"
            continue
        try:
            driver = factory(root=state_root / name, options=options)
        except NotSupported as exc:
            reasons[name] = f"not supported: {exc}"
            log.info("driver %s skipped: %s", name, exc)
            continue
        return Selection(driver, name, _reports(factories, name, reasons))
    detail = "; ".join(f"{n}: {r}" for n, r in reasons.items()) or "none installed"
    raise NotSupported(f"no usable driver in {namespace} ({detail})")


def _has_state(path: Path) -> bool:
    try:
        return any(path.iterdir())
    except (FileNotFoundError, NotADirectoryError):
        return False


def _reports(
    factories: dict[str, Any], active: str, reasons: dict[str, str] | None = None
) -> list[DriverReport]:
    reasons = reasons or {}
    out = []
    for name, factory in sorted(factories.items()):
        if name == active:
            status = "active"
        elif isinstance(factory, Exception):
            status = f"failed to load: {factory}"
        else:
            status = reasons.get(name, "available")
        out.append(DriverReport(name, status))
    return out
