"""Registration of the bridge driver: the factory the core calls (entry point ``bridge``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pyengine.errors import InvalidArgument, NotSupported

from pyengine_net_bridge.driver import BridgeDriver
from pyengine_net_bridge.firewall import Nftables

#: What the driver offers beyond the required interface.
CAPABILITIES = frozenset({"port-publishing", "isolation", "outbound-nat"})


def factory(root: Path, options: dict[str, Any] | None = None) -> BridgeDriver:
    """Make the bridge driver; NotSupported without root or without libnftables."""
    if options:
        raise InvalidArgument(f"the bridge driver takes no daemon options (got {', '.join(options)})")
    import os

    if os.geteuid() != 0:
        raise NotSupported("the bridge driver needs root (CAP_NET_ADMIN)")
    return BridgeDriver(Path(root), Nftables(table_name(Path(root))))


#: where the driver's state lives for the daemon's default data root
DEFAULT_ROOT = Path("/var/lib/pyengine/network/bridge")


def table_name(root: Path) -> str:
    """``pyengine`` for the default data root; ``pyengine-<hash>`` for any other daemon, so that two
    daemons on one host (a test daemon beside the installed one) never replace each other's rules."""
    if root.resolve() == DEFAULT_ROOT:
        return "pyengine"
    import hashlib

    return "pyengine-" + hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:8]
