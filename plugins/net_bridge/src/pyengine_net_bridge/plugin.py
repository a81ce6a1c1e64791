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


def read_state(root: Path) -> dict[str, Any]:
    """The driver's state file under ``root`` (empty when there is none)."""
    import json

    try:
        return json.loads((Path(root) / "state.json").read_text())
    except (FileNotFoundError, ValueError):
        return {}


def remove_all(root: Path, state: dict[str, Any] | None = None) -> list[str]:
    """Delete every link and the rules table the driver with state under ``root`` made; what was
    removed. For test teardown and uninstall: works from the state (read before the data root was
    deleted, or read now), with no daemon running."""
    from pyengine_net_bridge.driver import _delete_link, veth_name

    removed = []
    state = read_state(root) if state is None else state
    for endpoint_id in state.get("endpoints", {}):
        _delete_link(veth_name(endpoint_id))
        removed.append(veth_name(endpoint_id))
    for network in state.get("networks", {}).values():
        _delete_link(network["bridge"])
        removed.append(network["bridge"])
    nft = Nftables(table_name(Path(root)))
    if nft.list_table():
        nft.delete_table()
        removed.append(f"table ip {nft.table}")
    return removed
