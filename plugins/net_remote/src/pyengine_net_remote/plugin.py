"""Registration: the entry point ``remote`` makes a driver for a named Docker network plugin.

The core calls ``factory(root=..., options={"plugin": NAME})`` when ``network create -d NAME``
names no installed driver; NotFound when no plugin of that name has a socket.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pyengine.errors import InvalidArgument, NotFound

from pyengine_net_remote.driver import PLUGIN_DIRS, PluginClient, RemoteDriver, find_plugin


def factory(root: Path, options: dict[str, Any] | None = None) -> RemoteDriver:
    options = dict(options or {})
    name = options.pop("plugin", None)
    dirs = tuple(options.pop("dirs", PLUGIN_DIRS))
    if not name:
        raise InvalidArgument("the remote network driver needs a plugin name")
    if options:
        raise InvalidArgument(f"unknown options for the remote network driver: {', '.join(options)}")
    path = find_plugin(name, dirs)
    if path is None:
        raise NotFound(
            f"plugin {name!r} not found: no network driver of that name, "
            f"and no plugin socket in {', '.join(dirs)}"
        )
    return RemoteDriver(Path(root), PluginClient(name, path))
