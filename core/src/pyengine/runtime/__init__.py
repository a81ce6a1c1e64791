"""The container runtime: an OCI runtime bundle in, a running container process out.

Plain synchronous functions on the real kernel (namespaces, mounts, capabilities), importing only
the standard library: the supervisor imports this package at start. See :mod:`.start` for the
process tree and the reaping contract with the caller.
"""

from pyengine.runtime.start import StartedContainer, start_container

__all__ = ["StartedContainer", "start_container"]
