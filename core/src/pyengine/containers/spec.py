"""The OCI runtime config (config.json) for a container, with Docker's defaults.

This is the interface between the core and the runtime: anything a runtime needs to make the
container is here (process, root, mounts, namespaces, capabilities, masked and read-only paths), so
our Python runtime, runc or crun could consume the same bundle.
"""

from __future__ import annotations

from typing import Any

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

#: Docker's default capability set (moby oci/caps/defaults.go).
DEFAULT_CAPABILITIES = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
]

#: Docker's masked and read-only paths (moby oci/defaults.go).
MASKED_PATHS = [
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
]
READONLY_PATHS = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]

DEFAULT_SHM_SIZE = 64 * 1024 * 1024
_NEW_NETWORK: dict[str, Any] = {"type": "network"}


def merge_env(
    image_env: list[str] | None, container_env: list[str] | None, hostname: str, tty: bool
) -> list[str]:
    """Image env, overridden by the container's, with PATH, HOSTNAME (and TERM with a tty) as Docker."""
    env: dict[str, str] = {"PATH": DEFAULT_PATH, "HOSTNAME": hostname}
    if tty:
        env["TERM"] = "xterm"
    for item in (image_env or []) + (container_env or []):
        key, sep, value = item.partition("=")
        if sep:
            env[key] = value
        else:
            env.pop(key, None)  # "-e NAME" with no value and none in the environment: unset
    return [f"{k}={v}" for k, v in env.items()]


def runtime_spec(
    *,
    args: list[str],
    env: list[str],
    cwd: str,
    uid: int,
    gid: int,
    additional_gids: list[int],
    rootfs: str,
    readonly_rootfs: bool,
    hostname: str,
    tty: bool,
    console_size: tuple[int, int] | None,
    files: dict[str, str],
    shm_size: int = 0,
    privileged: bool = False,
    extra_mounts: list[dict[str, Any]] | None = None,
    network_namespace: dict[str, Any] | None = _NEW_NETWORK,  # type: ignore[assignment]
) -> dict[str, Any]:
    """Build config.json. ``files`` maps in-container paths (/etc/hosts...) to host files to bind;
    ``extra_mounts`` (the container's volumes, binds and tmpfs, parents first) come after them.

    ``network_namespace`` is the ``linux.namespaces`` entry for the network: ``{"type": "network",
    "path": ...}`` to join a namespace the network driver prepared, ``{"type": "network"}`` (the
    default) for a new empty one, None for the host's (``--network host``).
    """
    if network_namespace is not None:
        network_namespace = dict(network_namespace)
    caps = list(DEFAULT_CAPABILITIES)
    process: dict[str, Any] = {
        "terminal": tty,
        "user": {"uid": uid, "gid": gid, "additionalGids": additional_gids},
        "args": args,
        "env": env,
        "cwd": cwd,
        "capabilities": {
            "bounding": caps,
            "effective": caps,
            "permitted": caps,
            "inheritable": [],
            "ambient": [],
        },
        "noNewPrivileges": False,
    }
    if tty and console_size and all(console_size):
        process["consoleSize"] = {"height": console_size[0], "width": console_size[1]}
    mounts: list[dict[str, Any]] = [
        {"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]},
        {
            "destination": "/dev",
            "type": "tmpfs",
            "source": "tmpfs",
            "options": ["nosuid", "strictatime", "mode=755", "size=65536k"],
        },
        {
            "destination": "/dev/pts",
            "type": "devpts",
            "source": "devpts",
            "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"],
        },
        {
            "destination": "/sys",
            "type": "sysfs",
            "source": "sysfs",
            "options": ["nosuid", "noexec", "nodev", "ro"],
        },
        {
            "destination": "/dev/mqueue",
            "type": "mqueue",
            "source": "mqueue",
            "options": ["nosuid", "noexec", "nodev"],
        },
        {
            "destination": "/dev/shm",
            "type": "tmpfs",
            "source": "shm",
            "options": ["nosuid", "noexec", "nodev", "mode=1777", f"size={shm_size or DEFAULT_SHM_SIZE}"],
        },
    ]
    # The container's own mounts go before /etc/hosts & co. so that a volume on /etc does not hide
    # them; a file the user mounts over one of them wins, as with Docker.
    mounts.extend(extra_mounts or [])
    taken = {entry["destination"] for entry in extra_mounts or []}
    for destination, source in files.items():
        if destination in taken:
            continue
        mounts.append(
            {"destination": destination, "type": "bind", "source": source, "options": ["rbind", "rprivate"]}
        )
    return {
        "ociVersion": "1.0.2",
        "process": process,
        "root": {"path": rootfs, "readonly": readonly_rootfs},
        "hostname": hostname,
        "mounts": mounts,
        "linux": {
            "namespaces": [{"type": t} for t in ("pid", "ipc", "uts", "mount")]
            + ([] if network_namespace is None else [network_namespace]),
            "maskedPaths": [] if privileged else MASKED_PATHS,
            "readonlyPaths": [] if privileged else READONLY_PATHS,
            "rootfsPropagation": "rprivate",
        },
    }
