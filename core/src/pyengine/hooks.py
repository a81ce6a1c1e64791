"""The plugin manager: loads hook plugins and calls hooks the way the hookspecs say."""

from __future__ import annotations

import logging
from typing import Any

import pluggy

from pyengine import hookspecs
from pyengine.errors import EngineError

log = logging.getLogger(__name__)


class HookCaller:
    """Calls ``pre_`` hooks letting their errors veto, and ``post_`` hooks logging their errors."""

    def __init__(self, manager: pluggy.PluginManager | None = None) -> None:
        if manager is None:
            manager = pluggy.PluginManager(hookspecs.PROJECT)
            manager.add_hookspecs(hookspecs)
        self.manager = manager

    def register(self, plugin: object, name: str | None = None) -> None:
        self.manager.register(plugin, name=name)

    def load_entry_points(self) -> int:
        """Register every plugin of the ``pyengine.hooks`` entry-point namespace; return the count."""
        return self.manager.load_setuptools_entrypoints(hookspecs.HOOKS_ENTRY_POINT_NAMESPACE)

    def call(self, hook_name: str, **kwargs: Any) -> list[Any]:
        hook = getattr(self.manager.hook, hook_name)
        if "_pre_" in hook_name:
            return hook(**kwargs)
        try:
            return hook(**kwargs)
        except Exception as exc:  # a post hook cannot veto: log and go on
            level = logging.WARNING if isinstance(exc, EngineError) else logging.ERROR
            log.log(level, "hook %s failed: %s", hook_name, exc, exc_info=not isinstance(exc, EngineError))
            return []

    def names(self) -> list[str]:
        """``plugin_name: hook, hook`` for ``pyengine info``."""
        out = []
        for name, plugin in sorted(self.manager.list_name_plugin(), key=lambda x: str(x[0])):
            hooks = sorted(h.name for h in self.manager.get_hookcallers(plugin) or [])
            out.append(f"{name}: {', '.join(hooks)}")
        return out
