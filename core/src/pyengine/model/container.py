"""Containers: the create request (Config + HostConfig) and the record the engine keeps."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import ConfigDict, Field, field_validator

from pyengine.errors import Conflict
from pyengine.model.base import ZERO_TIME, DockerModel
from pyengine.model.volume import MountPoint


def _as_list(value: Any) -> Any:
    """Docker's StrSlice: a bare string is a one-element list."""
    return [value] if isinstance(value, str) else value


class ContainerConfig(DockerModel):
    """Docker's container Config: what runs, how, and with which environment."""

    Hostname: str = ""
    Domainname: str = ""
    User: str = ""
    AttachStdin: bool = False
    AttachStdout: bool = False
    AttachStderr: bool = False
    ExposedPorts: dict[str, dict] | None = None
    Tty: bool = False
    OpenStdin: bool = False
    StdinOnce: bool = False
    Env: list[str] | None = None
    Cmd: list[str] | None = None
    Healthcheck: dict[str, Any] | None = None
    ArgsEscaped: bool | None = None
    Image: str = ""
    Volumes: dict[str, dict] | None = None
    WorkingDir: str = ""
    Entrypoint: list[str] | None = None
    NetworkDisabled: bool | None = None
    OnBuild: list[str] | None = None
    Labels: dict[str, str] | None = None
    StopSignal: str | None = None
    StopTimeout: int | None = None
    Shell: list[str] | None = None

    _lists = field_validator("Cmd", "Entrypoint", "Shell", mode="before")(_as_list)


class RestartPolicySpec(DockerModel):
    Name: str = "no"
    MaximumRetryCount: int = 0


class LogConfigSpec(DockerModel):
    # Docker calls the options "Config"; as a field name that would collide with pydantic's old
    # class-based config, so the attribute is Options and the JSON name stays Config both ways.
    model_config = ConfigDict(extra="allow", populate_by_name=True, serialize_by_alias=True)

    Type: str = "json-file"
    Options: dict[str, str] = Field(default_factory=dict, alias="Config")


class DeviceMapping(DockerModel):
    """One ``--device``: a host device node (or a directory of them) and its cgroup permissions."""

    PathOnHost: str = ""
    PathInContainer: str = ""  # "" -> the host path, as the docker CLI fills it
    CgroupPermissions: str = ""  # "" -> "rwm"


class HostConfigSpec(DockerModel):
    """Docker's HostConfig: how the host treats the container. Only the fields pyengine acts on are
    typed; the rest are kept and echoed back in inspect."""

    Binds: list[str] | None = None
    NetworkMode: str = "default"
    PortBindings: dict[str, Any] | None = None
    RestartPolicy: RestartPolicySpec = Field(default_factory=RestartPolicySpec)
    AutoRemove: bool = False
    LogConfig: LogConfigSpec = Field(default_factory=LogConfigSpec)
    ConsoleSize: list[int] | None = None
    Privileged: bool = False
    ReadonlyRootfs: bool = False
    CapAdd: list[str] | None = None
    CapDrop: list[str] | None = None
    Dns: list[str] | None = None
    DnsSearch: list[str] | None = None
    DnsOptions: list[str] | None = None
    ExtraHosts: list[str] | None = None
    Init: bool | None = None
    ShmSize: int = 0
    Tmpfs: dict[str, str] | None = None
    PublishAllPorts: bool = False
    Mounts: list[dict[str, Any]] | None = None
    VolumeDriver: str = ""
    SecurityOpt: list[str] | None = None
    Devices: list[DeviceMapping] | None = None
    DeviceCgroupRules: list[str] | None = None
    # Resources (cgroups): 0 / "" / None mean "not set", as in Docker's inspect output.
    Memory: int = 0
    MemorySwap: int = 0
    MemoryReservation: int = 0
    MemorySwappiness: int | None = None
    NanoCpus: int = 0
    CpuShares: int = 0
    CpuPeriod: int = 0
    CpuQuota: int = 0
    CpusetCpus: str = ""
    CpusetMems: str = ""
    PidsLimit: int | None = None
    BlkioWeight: int = 0
    OomKillDisable: bool | None = None


class ContainerCreateRequest(ContainerConfig):
    """The body of ``POST /containers/create``: Config fields at the top, plus HostConfig."""

    HostConfig: HostConfigSpec = Field(default_factory=HostConfigSpec)
    NetworkingConfig: dict[str, Any] | None = None
    Platform: str | None = None


class ContainerStatus(StrEnum):
    CREATED = "created"
    RUNNING = "running"
    PAUSED = "paused"
    RESTARTING = "restarting"
    REMOVING = "removing"
    EXITED = "exited"
    DEAD = "dead"


# Which state may follow which: the engine refuses any other move.
_S = ContainerStatus
_MOVES: dict[ContainerStatus, set[ContainerStatus]] = {
    _S.CREATED: {_S.RUNNING, _S.EXITED, _S.REMOVING, _S.DEAD},
    _S.RUNNING: {_S.EXITED, _S.PAUSED, _S.RESTARTING, _S.DEAD},
    _S.PAUSED: {_S.RUNNING, _S.EXITED, _S.DEAD},
    _S.RESTARTING: {_S.RUNNING, _S.EXITED, _S.DEAD, _S.REMOVING},
    _S.EXITED: {_S.RUNNING, _S.RESTARTING, _S.REMOVING, _S.DEAD},
    _S.REMOVING: {_S.DEAD},
    _S.DEAD: {_S.REMOVING},
}


class ContainerState(DockerModel):
    """Docker's State object, and the state machine behind it."""

    Status: ContainerStatus = ContainerStatus.CREATED
    Pid: int = 0
    ExitCode: int = 0
    Error: str = ""
    OOMKilled: bool = False
    StartedAt: str = ZERO_TIME
    FinishedAt: str = ZERO_TIME
    Health: dict[str, Any] | None = None  # {Status, FailingStreak, Log}: containers with a health check

    @property
    def running(self) -> bool:
        return self.Status in (ContainerStatus.RUNNING, ContainerStatus.PAUSED, ContainerStatus.RESTARTING)

    def move_to(self, new: ContainerStatus) -> None:
        """Change status, refusing moves the state machine does not allow (Conflict)."""
        if new != self.Status and new not in _MOVES[self.Status]:
            raise Conflict(f"cannot move a container from {self.Status.value} to {new.value}")
        self.Status = new

    def docker_json(self) -> dict[str, Any]:
        return {
            "Status": self.Status.value,
            # Docker's restarting container is Running and Restarting at once.
            "Running": self.running,
            "Paused": self.Status == ContainerStatus.PAUSED,
            "Restarting": self.Status == ContainerStatus.RESTARTING,
            "OOMKilled": self.OOMKilled,
            "Dead": self.Status == ContainerStatus.DEAD,
            "Pid": self.Pid,
            "ExitCode": self.ExitCode,
            "Error": self.Error,
            "StartedAt": self.StartedAt,
            "FinishedAt": self.FinishedAt,
            **({"Health": self.Health} if self.Health is not None else {}),
        }


class Container(DockerModel):
    """The engine's record of a container: what inspect shows, and what survives a restart."""

    Id: str
    Name: str  # without the leading '/'
    Created: str
    Path: str = ""
    Args: list[str] = Field(default_factory=list)
    Config: ContainerConfig
    HostConfig: HostConfigSpec
    Image: str  # "sha256:<hex>" of the image
    ImageName: str = ""  # the reference the user gave, for ps
    State: ContainerState = Field(default_factory=ContainerState)
    RestartCount: int = 0
    Driver: str = ""
    LogPath: str = ""
    ResolvConfPath: str = ""
    HostnamePath: str = ""
    HostsPath: str = ""
    BundlePath: str = ""
    RootfsPath: str = ""
    ManualStop: bool = False
    #: Docker's NetworkSettings subset the engine keeps: Networks (by name), SandboxKey, Ports
    NetworkSettings: dict[str, Any] = Field(default_factory=dict)
    #: volumes, binds and tmpfs mounts, set up at every start (inspect's ``Mounts``)
    MountPoints: list[MountPoint] = Field(default_factory=list)
