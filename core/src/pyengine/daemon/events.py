"""The ``/events`` stream, as a hook plugin like any third party's: it turns lifecycle hooks into
Docker's event objects and hands them to every subscriber."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from typing import Any

from pyengine.hookspecs import hookimpl
from pyengine.images import reference


class EventBroadcaster:
    """Keeps the last events (for ``since``) and fans new ones out to subscribed asyncio queues.

    Hooks may fire on worker threads; events are handed to the loop thread-safely.
    """

    HISTORY = 1000

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._subscribers: set[asyncio.Queue] = set()
        self._history: deque[dict] = deque(maxlen=self.HISTORY)
        self._lock = threading.Lock()

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def subscribe(self) -> tuple[asyncio.Queue, list[dict]]:
        queue: asyncio.Queue = asyncio.Queue(maxsize=10000)
        with self._lock:
            self._subscribers.add(queue)
            past = list(self._history)
        return queue, past

    def unsubscribe(self, queue: asyncio.Queue) -> None:
        with self._lock:
            self._subscribers.discard(queue)

    def emit(self, kind: str, action: str, actor_id: str, attributes: dict[str, str]) -> None:
        now = time.time_ns()
        event: dict[str, Any] = {
            "Type": kind,
            "Action": action,
            "Actor": {"ID": actor_id, "Attributes": attributes},
            "scope": "local",
            "time": now // 1_000_000_000,
            "timeNano": now,
        }
        if kind in ("container", "image"):
            event["status"] = action
            event["id"] = actor_id
            if kind == "container" and "image" in attributes:
                event["from"] = attributes["image"]
        with self._lock:
            self._history.append(event)
            subscribers = list(self._subscribers)
        if self._loop is None or not subscribers:
            return
        for queue in subscribers:
            self._loop.call_soon_threadsafe(_offer, queue, event)

    # ---- hook implementations -----------------------------------------------------------------
    def _container(self, container: Any, action: str, extra: dict[str, str] | None = None) -> None:
        attributes = {
            "image": container.ImageName or container.Image,
            "name": container.Name,
            **(container.Config.Labels or {}),
            **(extra or {}),
        }
        self.emit("container", action, container.Id, attributes)

    @hookimpl
    def pyengine_container_post_create(self, container: Any) -> None:
        self._container(container, "create")

    @hookimpl
    def pyengine_container_post_start(self, container: Any) -> None:
        self._container(container, "start")

    @hookimpl
    def pyengine_container_post_exit(self, container: Any, exit_code: int) -> None:
        self._container(container, "die", {"exitCode": str(exit_code)})

    @hookimpl
    def pyengine_container_post_event(self, container: Any, action: str, attributes: dict) -> None:
        self._container(container, action, attributes)

    @hookimpl
    def pyengine_container_post_remove(self, container: Any) -> None:
        self._container(container, "destroy")

    @hookimpl
    def pyengine_image_post_add(self, image: Any) -> None:
        name = reference.familiar(image.tags[0]) if image.tags else image.id
        self.emit("image", "import", image.id, {"name": name})

    @hookimpl
    def pyengine_image_post_tag(self, image: Any, reference: str) -> None:
        self.emit("image", "tag", image.id, {"name": reference})

    @hookimpl
    def pyengine_image_post_remove(self, image: Any) -> None:
        self.emit("image", "delete", image.id, {"name": image.id})

    @hookimpl
    def pyengine_network_post_create(self, network: Any) -> None:
        self.emit("network", "create", network.Id, {"name": network.Name, "type": network.Driver})

    @hookimpl
    def pyengine_network_post_remove(self, network: Any) -> None:
        self.emit("network", "destroy", network.Id, {"name": network.Name, "type": network.Driver})

    @hookimpl
    def pyengine_network_post_connect(self, network: Any, container: Any) -> None:
        attributes = {"container": container.Id, "name": network.Name, "type": network.Driver}
        self.emit("network", "connect", network.Id, attributes)

    @hookimpl
    def pyengine_network_post_disconnect(self, network: Any, container: Any) -> None:
        attributes = {"container": container.Id, "name": network.Name, "type": network.Driver}
        self.emit("network", "disconnect", network.Id, attributes)

    @hookimpl
    def pyengine_volume_post_create(self, volume: Any) -> None:
        self.emit("volume", "create", volume.Name, {"driver": volume.Driver})

    @hookimpl
    def pyengine_volume_post_remove(self, volume: Any) -> None:
        self.emit("volume", "destroy", volume.Name, {"driver": volume.Driver})


def _offer(queue: asyncio.Queue, event: dict) -> None:
    try:
        queue.put_nowait(event)
    except asyncio.QueueFull:
        pass  # a subscriber that does not read loses events rather than growing the daemon
