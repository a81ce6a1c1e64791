"""Every lifecycle hook of pyengine, in one module (pluggy hook specifications).

Hooks are called with keyword arguments only. A ``pre_`` hook may raise an :class:`EngineError` to
veto the operation and must not block; a ``post_`` hook cannot veto: the core logs its errors and goes
on. The core's own reactions to lifecycle events (the ``/events`` stream among them) are registered as
plugins through these same hooks, so a third-party plugin in the ``pyengine.hooks`` entry-point
namespace sees exactly what the core sees.
"""

from __future__ import annotations

from typing import Any

import pluggy

PROJECT = "pyengine"
HOOKS_ENTRY_POINT_NAMESPACE = "pyengine.hooks"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


# ---- containers -----------------------------------------------------------------------------------
@hookspec
def pyengine_container_pre_create(request: Any, image: Any) -> None:
    """Before a container is created. ``request`` is the validated ContainerCreateRequest (plugins may
    read it, not replace it), ``image`` the resolved Image. Raise an EngineError to refuse the create."""


@hookspec
def pyengine_container_post_create(container: Any) -> None:
    """After a container is recorded (state ``created``). Cannot veto."""


@hookspec
def pyengine_container_pre_start(container: Any, bundle: dict) -> None:
    """Before the runtime starts the container. ``bundle`` is the OCI runtime config (a dict) about to
    be written: a plugin may add to it (mounts, env, hooks). Raise an EngineError to refuse the start."""


@hookspec
def pyengine_container_post_start(container: Any) -> None:
    """After the container's process runs. Cannot veto."""


@hookspec
def pyengine_container_post_exit(container: Any, exit_code: int) -> None:
    """After the container's process exited and its status was recorded. Cannot veto."""


@hookspec
def pyengine_container_post_event(container: Any, action: str, attributes: dict) -> None:
    """Any other container action worth an event (attach, kill, stop, rename, resize...). Cannot veto."""


@hookspec
def pyengine_container_pre_remove(container: Any, force: bool) -> None:
    """Before a container is removed. Raise an EngineError to refuse the removal."""


@hookspec
def pyengine_container_post_remove(container: Any) -> None:
    """After a container and everything it held (layer, logs, bundle) is gone. Cannot veto."""


# ---- images ---------------------------------------------------------------------------------------
@hookspec
def pyengine_image_post_add(image: Any) -> None:
    """After an image is stored (import, pull, load, build, commit). Cannot veto."""


@hookspec
def pyengine_image_post_tag(image: Any, reference: str) -> None:
    """After a tag was pointed at an image. Cannot veto."""


@hookspec
def pyengine_image_post_remove(image: Any) -> None:
    """After an image was deleted. Cannot veto."""


# ---- networks -------------------------------------------------------------------------------------
@hookspec
def pyengine_network_post_create(network: Any) -> None:
    """After a network is recorded and its driver made it on the host. Cannot veto."""


@hookspec
def pyengine_network_post_remove(network: Any) -> None:
    """After a network and everything its driver had for it are gone. Cannot veto."""


@hookspec
def pyengine_network_post_connect(network: Any, container: Any) -> None:
    """After a container is connected to a network (``network connect``). Cannot veto."""


@hookspec
def pyengine_network_post_disconnect(network: Any, container: Any) -> None:
    """After a container is disconnected from a network. Cannot veto."""


# ---- daemon ---------------------------------------------------------------------------------------
@hookspec
def pyengine_daemon_post_start(engine: Any) -> None:
    """After the daemon loaded its state and is about to serve. Cannot veto."""


# ---- volumes --------------------------------------------------------------------------------------
@hookspec
def pyengine_volume_post_create(volume: Any) -> None:
    """After a volume was created and recorded (``volume`` is the Volume model). Cannot veto."""


@hookspec
def pyengine_volume_post_remove(volume: Any) -> None:
    """After a volume and its data were deleted. Cannot veto."""
