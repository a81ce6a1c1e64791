"""The engine: every service of the daemon wired together, without any HTTP."""

from __future__ import annotations

import logging
import os
import platform
import uuid
from pathlib import Path
from typing import Any

from pyengine import __version__
from pyengine.containers.service import ContainerService
from pyengine.daemon.config import DaemonConfig
from pyengine.daemon.events import EventBroadcaster
from pyengine.drivers import registry
from pyengine.drivers.storage import ENTRY_POINT_NAMESPACE as STORAGE_NAMESPACE
from pyengine.hooks import HookCaller
from pyengine.images.store import ImageStore
from pyengine.networks.service import NetworkService
from pyengine.state.blobs import BlobStore
from pyengine.state.db import Database
from pyengine.volumes import remote as volume_plugins
from pyengine.volumes.service import VolumeService

log = logging.getLogger(__name__)


class Engine:
    def __init__(self, config: DaemonConfig) -> None:
        from pyengine.supervisor.client import SupervisorClient

        self.config = config
        for directory in (config.data_root, config.exec_root):
            directory.mkdir(parents=True, exist_ok=True, mode=0o711)
        self.id = _daemon_id(config.data_root)
        self.hooks = HookCaller()
        self.events = EventBroadcaster()
        self.hooks.register(self.events, name="events")
        self.hooks.load_entry_points()
        self.db = Database(config.db_path)
        self.blobs = BlobStore(config.content_root)
        self.blobs.cleanup_temporaries()
        selection = registry.select_driver(
            STORAGE_NAMESPACE, config.storage_root, config.storage_driver, config.storage_options
        )
        self.storage = selection.driver
        self.storage_name = selection.name
        self.driver_reports = {"storage": selection.reports}
        self.images = ImageStore(self.db, self.blobs, self.storage, self.hooks)
        self.supervisor = SupervisorClient(str(config.supervisor_socket))
        self.volumes = VolumeService(
            db=self.db,
            hooks=self.hooks,
            volumes_root=config.volumes_root,
            plugin_dirs=config.volume_plugin_dirs or volume_plugins.DEFAULT_PLUGIN_DIRS,
        )
        self.volumes.adopt_orphans()
        self.networks = NetworkService(
            db=self.db, state_root=config.data_root / "network", exec_root=config.exec_root, hooks=self.hooks
        )
        self.containers = ContainerService(
            db=self.db,
            images=self.images,
            driver=self.storage,
            supervisor=self.supervisor,
            hooks=self.hooks,
            containers_dir=config.containers_dir,
            volumes=self.volumes,
            networks=self.networks,
        )
        self.networks.containers = self.containers.all
        from pyengine.daemon import userns_remap

        self.userns_remap = userns_remap.resolve(config.userns_remap)
        self.containers.userns_remap = self.userns_remap
        self.networks.find_container = self.containers.get  # type: ignore[method-assign]
        from pyengine.containers.health import HealthMonitor, exec_probe

        self.health = HealthMonitor(self.containers, exec_probe(self.containers, self.supervisor))
        self.hooks.register(self.health, name="health")

    def ensure_supervisor(self) -> int:
        """Start the supervisor if none answers on its socket (it outlives the daemon)."""
        from pyengine.supervisor.client import ensure_supervisor

        self.config.supervisor_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        return ensure_supervisor(str(self.config.supervisor_socket), str(self.config.supervisor_dir))

    def start_networking(self, loop: Any) -> None:
        """Load the networks (the drivers make their bridges again) and serve the embedded DNS."""
        from pyengine.networks.dns import EmbeddedDNS

        self.networks.dns = EmbeddedDNS(loop, self.networks.dns_lookup)
        self.networks.load()

    def reconcile_networks(self) -> None:
        """After the containers are reconciled: keep the networking of running containers, remove
        every namespace, link and rule an earlier daemon left for anything else."""
        everything = self.containers.all()
        self.networks.forget_stopped(everything)
        for container in everything:
            if not container.State.running:
                self.containers.save(container)
        self.networks.reconcile([c for c in everything if c.State.running])

    def close(self) -> None:
        try:
            self.volumes.cleanup()
            self.storage.cleanup()
        finally:
            self.db.close()

    # ---- system views -------------------------------------------------------------------------
    def version_json(self) -> dict:
        from pyengine import API_VERSION, MIN_API_VERSION

        kernel = platform.release()
        details = {
            "ApiVersion": API_VERSION,
            "Arch": _goarch(),
            "BuildTime": "",
            "Experimental": "false",
            "GitCommit": "",
            "GoVersion": f"python{platform.python_version()}",
            "KernelVersion": kernel,
            "MinAPIVersion": MIN_API_VERSION,
            "Os": "linux",
        }
        return {
            "Platform": {"Name": "pyengine"},
            "Components": [{"Name": "Engine", "Version": __version__, "Details": details}],
            "Version": __version__,
            "ApiVersion": API_VERSION,
            "MinAPIVersion": MIN_API_VERSION,
            "GitCommit": "",
            "GoVersion": f"python{platform.python_version()}",
            "Os": "linux",
            "Arch": _goarch(),
            "KernelVersion": kernel,
            "BuildTime": "",
        }

    def info_json(self) -> dict:
        containers = self.containers.all()
        running = sum(1 for c in containers if c.State.Status.value == "running")
        paused = sum(1 for c in containers if c.State.Status.value == "paused")
        from pyengine.runtime import cgroups

        cgroup_version = str(cgroups.host().version)
        limits = cgroups.supported_limits()
        return {
            "ID": self.id,
            "Containers": len(containers),
            "ContainersRunning": running,
            "ContainersPaused": paused,
            "ContainersStopped": len(containers) - running - paused,
            "Images": self.images.count(),
            "Driver": self.storage_name,
            "DriverStatus": [list(pair) for pair in self.storage.status()],
            "Plugins": {
                "Volume": self.volumes.driver_names(),
                "Network": sorted({*self.networks.factories, "host", "null"}),
                "Authorization": None,
                "Log": ["json-file"],
            },
            "MemoryLimit": limits["memory"],
            "SwapLimit": limits["swap"],
            "KernelMemory": False,
            "KernelMemoryTCP": False,
            "CpuCfsPeriod": limits["cpu_cfs"],
            "CpuCfsQuota": limits["cpu_cfs"],
            "CPUShares": limits["cpu_shares"],
            "CPUSet": limits["cpuset"],
            "PidsLimit": limits["pids"],
            "IPv4Forwarding": True,
            "BridgeNfIptables": False,
            "BridgeNfIp6tables": False,
            "Debug": self.config.debug,
            "NFd": _count_fds(),
            "OomKillDisable": limits["memory"] and cgroup_version == "1",
            "NGoroutines": 0,
            "SystemTime": _now_rfc3339(),
            "LoggingDriver": "json-file",
            "CgroupDriver": "cgroupfs",
            "CgroupVersion": cgroup_version,
            "NEventsListener": 0,
            "KernelVersion": platform.release(),
            "OperatingSystem": _os_name(),
            "OSVersion": "",
            "OSType": "linux",
            "Architecture": platform.machine(),
            "IndexServerAddress": "https://index.docker.io/v1/",
            "RegistryConfig": {
                "AllowNondistributableArtifactsCIDRs": [],
                "AllowNondistributableArtifactsHostnames": [],
                "InsecureRegistryCIDRs": ["127.0.0.0/8"],
                "IndexConfigs": {},
                "Mirrors": [],
            },
            "NCPU": os.cpu_count() or 1,
            "MemTotal": _mem_total(),
            "GenericResources": None,
            "DockerRootDir": str(self.config.data_root),
            "HttpProxy": "",
            "HttpsProxy": "",
            "NoProxy": "",
            "Name": platform.node(),
            "Labels": [],
            "ExperimentalBuild": False,
            "ServerVersion": __version__,
            "Runtimes": {"pyengine": {"path": "pyengine-runtime"}},
            "DefaultRuntime": "pyengine",
            "Swarm": {
                "NodeID": "",
                "NodeAddr": "",
                "LocalNodeState": "inactive",
                "ControlAvailable": False,
                "Error": "",
                "RemoteManagers": None,
            },
            "LiveRestoreEnabled": True,
            "Isolation": "",
            "InitBinary": "",
            "ProductLicense": "",
            "SecurityOptions": ["name=userns"] if self.userns_remap is not None else [],
            "Warnings": [],
            "PyengineDrivers": {
                **{
                    kind: [{"Name": r.name, "Status": r.status} for r in reports]
                    for kind, reports in self.driver_reports.items()
                },
                "network": self.networks.driver_status(),
            },
            "PyengineHooks": self.hooks.names(),
        }


def _daemon_id(data_root: Path) -> str:
    path = data_root / "engine-id"
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        value = str(uuid.uuid4()).upper()
        path.write_text(value)
        return value


def _goarch() -> str:
    machine = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)


def _os_name() -> str:
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip('"')
    except OSError:
        pass
    return "Linux"


def _mem_total() -> int:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _count_fds() -> int:
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return 0


def _now_rfc3339() -> str:
    from pyengine.model.base import now_rfc3339

    return now_rfc3339()
