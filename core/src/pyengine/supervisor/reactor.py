"""A minimal single-threaded event loop on :mod:`selectors`: fd callbacks and timers.

Why not asyncio: the supervisor forks (through the runtime) from inside its loop, so it must stay
single-threaded and free of anything asyncio may start behind its back (the default executor, child
watchers that reap every child with ``waitpid(-1)``). What it needs is small: per-fd read and write
callbacks that can be switched on and off, and a few timers.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import selectors
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

Callback = Callable[[], None]


class Timer:
    __slots__ = ("when", "callback", "cancelled")

    def __init__(self, when: float, callback: Callback) -> None:
        self.when = when
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class Reactor:
    def __init__(self) -> None:
        self._selector = selectors.DefaultSelector()
        # fd -> [on_readable, on_writable]; a None slot means no interest in that direction.
        self._callbacks: dict[int, list[Callback | None]] = {}
        self._timers: list[tuple[float, int, Timer]] = []
        self._sequence = itertools.count()

    def on_readable(self, fd: int, callback: Callback | None) -> None:
        """Call ``callback`` whenever ``fd`` is readable; ``None`` stops watching for reads."""
        self._set(fd, 0, callback)

    def on_writable(self, fd: int, callback: Callback | None) -> None:
        """Call ``callback`` whenever ``fd`` is writable; ``None`` stops watching for writes."""
        self._set(fd, 1, callback)

    def forget(self, fd: int) -> None:
        """Stop watching ``fd`` entirely; call before closing it."""
        if self._callbacks.pop(fd, None) is not None:
            self._selector.unregister(fd)

    def call_later(self, delay: float, callback: Callback) -> Timer:
        timer = Timer(time.monotonic() + delay, callback)
        heapq.heappush(self._timers, (timer.when, next(self._sequence), timer))
        return timer

    def run_once(self) -> None:
        timeout = None
        if self._timers:
            timeout = max(0.0, self._timers[0][0] - time.monotonic())
        for key, mask in self._selector.select(timeout):
            # Look the callbacks up afresh: an earlier callback in this batch may have closed the fd.
            callbacks = self._callbacks.get(key.fd)
            if callbacks is not None and mask & selectors.EVENT_READ and callbacks[0] is not None:
                _call(callbacks[0])
            callbacks = self._callbacks.get(key.fd)
            if callbacks is not None and mask & selectors.EVENT_WRITE and callbacks[1] is not None:
                _call(callbacks[1])
        now = time.monotonic()
        while self._timers and self._timers[0][0] <= now:
            timer = heapq.heappop(self._timers)[2]
            if not timer.cancelled:
                _call(timer.callback)

    def _set(self, fd: int, slot: int, callback: Callback | None) -> None:
        callbacks = self._callbacks.get(fd)
        if callbacks is None:
            if callback is None:
                return
            callbacks = [None, None]
            callbacks[slot] = callback
            self._callbacks[fd] = callbacks
            self._selector.register(fd, self._mask(callbacks))
            return
        before = self._mask(callbacks)
        callbacks[slot] = callback
        after = self._mask(callbacks)
        if after == 0:
            del self._callbacks[fd]
            self._selector.unregister(fd)
        elif after != before:
            self._selector.modify(fd, after)

    @staticmethod
    def _mask(callbacks: list[Callback | None]) -> int:
        return (selectors.EVENT_READ if callbacks[0] else 0) | (selectors.EVENT_WRITE if callbacks[1] else 0)


def _call(callback: Callback) -> None:
    # One container's or client's failure must not take the supervisor, and every other container
    # it holds, down with it.
    try:
        callback()
    except Exception:
        log.exception("unexpected error in %r", callback)
