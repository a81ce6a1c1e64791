"""The daemon's settings: where state lives, where it listens, which drivers it uses."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

DEFAULT_DATA_ROOT = Path("/var/lib/pyengine")
DEFAULT_EXEC_ROOT = Path("/run/pyengine")
DEFAULT_HOST = "unix:///run/pyengine/pyengine.sock"


class DaemonConfig(BaseModel):
    # Docker's daemon.json keys (``userns-remap``) are accepted next to the Python names.
    model_config = ConfigDict(populate_by_name=True)

    data_root: Path = DEFAULT_DATA_ROOT
    exec_root: Path = DEFAULT_EXEC_ROOT
    hosts: list[str] = Field(default_factory=lambda: [DEFAULT_HOST])
    storage_driver: str | None = None
    storage_options: dict[str, str] = Field(default_factory=dict)
    socket_group: str | None = None
    debug: bool = False
    #: where Docker volume plugins are looked for (None: Docker's /run/docker/plugins, /etc/docker/plugins,
    #: /usr/lib/docker/plugins)
    volume_plugin_dirs: list[Path] | None = None
    #: ``--userns-remap``: None (off), "default" or "USER[:GROUP]"; see pyengine.daemon.userns_remap
    userns_remap: str | None = Field(default=None, alias="userns-remap")

    @property
    def db_path(self) -> Path:
        return self.data_root / "pyengine.db"

    @property
    def storage_root(self) -> Path:
        return self.data_root / "storage"

    @property
    def content_root(self) -> Path:
        return self.data_root / "content"

    @property
    def volumes_root(self) -> Path:
        return self.data_root / "volumes"

    @property
    def containers_dir(self) -> Path:
        return self.data_root / "containers"

    @property
    def supervisor_dir(self) -> Path:
        return self.exec_root / "supervisor"

    @property
    def supervisor_socket(self) -> Path:
        return self.supervisor_dir / "supervisor.sock"

    @property
    def pid_file(self) -> Path:
        return self.exec_root / "pyengine.pid"
