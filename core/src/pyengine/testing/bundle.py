"""Small OCI runtime bundles for tests: a busybox root file system and a Docker-like config.json.

This is a test fixture, not the daemon's spec builder: it writes what ``docker run busybox``
would roughly get by default (namespaces, mounts, capabilities, masked and read-only paths),
without cgroups or seccomp.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

from pyengine.containers.spec import DEFAULT_CAPABILITIES, MASKED_PATHS, READONLY_PATHS

BUSYBOX = "/bin/busybox"  # Debian's busybox-static: one binary, no shared libraries

PASSWD = (
    "root:x:0:0:root:/root:/bin/sh\n"
    "user:x:1000:1000:user:/home/user:/bin/sh\n"
    "nobody:x:65534:65534::/:/bin/false\n"
)
GROUP = "root:x:0:\nwheel:x:10:root\ntty:x:5:\nuser:x:1000:\nstaff:x:50:user,root\nnogroup:x:65534:\n"


def make_busybox_rootfs(rootfs: Path) -> Path:
    """Create a minimal root file system at ``rootfs``: busybox with every applet, /etc/passwd, /etc/group."""
    rootfs = Path(rootfs)
    for directory in ("bin", "etc", "proc", "sys", "dev", "tmp", "root", "home/user"):
        (rootfs / directory).mkdir(parents=True, exist_ok=True)
    shutil.copy2(BUSYBOX, rootfs / "bin" / "busybox")
    applets = subprocess.run([BUSYBOX, "--list"], check=True, capture_output=True, text=True).stdout.split()
    for applet in applets:
        link = rootfs / "bin" / applet
        if applet != "busybox" and not link.exists():
            link.symlink_to("busybox")
    (rootfs / "etc" / "passwd").write_text(PASSWD)
    (rootfs / "etc" / "group").write_text(GROUP)
    os.chmod(rootfs / "tmp", 0o1777)
    return rootfs


def default_spec(
    args: list[str],
    *,
    terminal: bool = False,
    hostname: str = "container",
    env: list[str] | None = None,
    cwd: str = "/",
) -> dict:
    """A Docker-like config.json for ``rootfs/`` next to it, running ``args`` as root."""
    return {
        "ociVersion": "1.0.2",
        "process": {
            "terminal": terminal,
            "user": {"uid": 0, "gid": 0, "additionalGids": [10]},
            "args": args,
            "env": env
            if env is not None
            else [
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "HOSTNAME=" + hostname,
            ],
            "cwd": cwd,
            "capabilities": {
                name: list(DEFAULT_CAPABILITIES) for name in ("bounding", "effective", "permitted")
            },
            "noNewPrivileges": False,
        },
        "root": {"path": "rootfs", "readonly": False},
        "hostname": hostname,
        "mounts": [
            {
                "destination": "/proc",
                "type": "proc",
                "source": "proc",
                "options": ["nosuid", "noexec", "nodev"],
            },
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
                "destination": "/sys/fs/cgroup",
                "type": "cgroup",
                "source": "cgroup",
                "options": ["ro", "nosuid", "noexec", "nodev"],
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
                "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
            },
        ],
        "linux": {
            "namespaces": [{"type": t} for t in ("mount", "network", "uts", "pid", "ipc")],
            "maskedPaths": list(MASKED_PATHS),
            "readonlyPaths": list(READONLY_PATHS),
        },
    }


def write_bundle(bundle: Path, spec: dict) -> Path:
    """Write ``spec`` as ``bundle/config.json``; the root file system is expected at ``bundle/rootfs``."""
    bundle = Path(bundle)
    bundle.mkdir(parents=True, exist_ok=True)
    (bundle / "config.json").write_text(json.dumps(spec, indent=2))
    return bundle
