"""The few error categories of pyengine, each with the HTTP status the API answers with.

Drivers and core code raise a category (or a subclass of one) with a message a user can act on
("No such image: busybox:latest", not "KeyError"), chaining the cause with ``raise ... from exc``.
The API layer maps every category to Docker's ``{"message": ...}`` body in one place
(:mod:`pyengine.api.errors`).
"""

from __future__ import annotations


class EngineError(Exception):
    """Base of every error pyengine raises on purpose. Unknown errors map to 500."""

    status = 500

    def __init__(self, message: str = "") -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class InvalidArgument(EngineError):
    """The request itself is wrong: a bad name, a malformed body, a value out of range."""

    status = 400


class NotFound(EngineError):
    """The object named does not exist."""

    status = 404


class AlreadyExists(EngineError):
    """An object with that name or ID already exists."""

    status = 409


class Conflict(EngineError):
    """The object is in a state that forbids the operation (e.g. removing a running container)."""

    status = 409


class FailedPrecondition(EngineError):
    """The operation cannot run in the current state of the system (not the object's own state)."""

    status = 400


class PermissionDenied(EngineError):
    status = 403


class Unavailable(EngineError):
    """A service the operation needs does not answer (the supervisor, a registry, a driver)."""

    status = 503


class NotImplementedYet(EngineError):
    """The route or option is known but not implemented by this engine."""

    status = 501


class NotModified(EngineError):
    """Nothing to do: the object is already in the requested state (Docker answers 304)."""

    status = 304


class NotSupported(EngineError):
    """A driver cannot work on this host (wrong file system, missing kernel feature).

    Automatic driver selection skips a driver that raises this; an explicitly configured
    driver fails loudly with the message.
    """

    status = 500


class StartFailed(EngineError):
    """The runtime could not start the container's process; the message says why.

    Docker's CLI reads the message: "executable file not found" or "no such file or directory"
    make ``docker run`` exit 127, "permission denied" 126.
    """

    status = 400
