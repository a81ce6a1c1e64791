"""Turning ``run``/``create`` flags into the body of ``POST /containers/create``.

Pure functions, no I/O except reading ``--env-file`` files; the body has the shape the docker CLI sends
(Config fields at the top level, plus ``HostConfig`` and ``NetworkingConfig``).
"""

from __future__ import annotations

import os

from pyengine.cli.flag_values import (
    OptionError,
    parse_device,
    parse_device_cgroup_rule,
    parse_duration,
    parse_env_line,
    parse_labels,
    parse_memory,
    parse_mount,
    parse_publish,
    parse_restart,
    parse_security_opt,
    parse_ulimit,
    parse_volume,
    read_env_file,
)

TYPE_CHECKING = False  # typing costs ~5 ms to import; annotations alone need it only for checkers
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

# The flags of ``run``/``create``, docker's names: (names, dest, kind, help). kind is "bool", "value",
# "int", "multi" (repeatable) or "choice:<default>,<other>...". Both the click commands and the
# click-free parser of fastrun.py are built from this one table.
RUN_FLAGS: tuple[tuple[tuple[str, ...], str, str, str], ...] = (
    (("-d", "--detach"), "detach", "bool", "Run container in background and print container ID"),
    (("-i", "--interactive"), "interactive", "bool", "Keep STDIN open even if not attached"),
    (("-t", "--tty"), "tty", "bool", "Allocate a pseudo-TTY"),
    (("--rm",), "auto_remove", "bool", "Automatically remove the container when it exits"),
    (("--name",), "name", "value", "Assign a name to the container"),
    (("-e", "--env"), "env", "multi", "Set environment variables"),
    (("--env-file",), "env_file", "multi", "Read in a file of environment variables"),
    (("-w", "--workdir"), "workdir", "value", "Working directory inside the container"),
    (("-u", "--user"), "user", "value", "Username or UID (format: <name|uid>[:<group|gid>])"),
    (("-h", "--hostname"), "hostname", "value", "Container host name"),
    (("--entrypoint",), "entrypoint", "value", "Overwrite the default ENTRYPOINT of the image"),
    (("-l", "--label"), "label", "multi", "Set meta data on a container"),
    (("--stop-signal",), "stop_signal", "value", "Signal to stop the container"),
    (("--stop-timeout",), "stop_timeout", "int", "Timeout (in seconds) to stop a container"),
    (("-p", "--publish"), "publish", "multi", "Publish a container's port(s) to the host"),
    (("-v", "--volume"), "volume", "multi", "Bind mount a volume"),
    (("--mount",), "mount", "multi", "Attach a filesystem mount to the container"),
    (("--tmpfs",), "tmpfs", "multi", "Mount a tmpfs directory"),
    (("--network", "--net"), "network", "value", "Connect a container to a network"),
    (("--network-alias",), "network_alias", "multi", "Add network-scoped alias for the container"),
    (("--ip",), "ip", "value", "IPv4 address (e.g., 172.30.100.104)"),
    (("-P", "--publish-all"), "publish_all", "bool", "Publish all exposed ports to random ports"),
    (("--restart",), "restart", "value", "Restart policy to apply when a container exits"),
    (("--privileged",), "privileged", "bool", "Give extended privileges to this container"),
    (("--read-only",), "read_only", "bool", "Mount the container's root filesystem as read only"),
    (("--cap-add",), "cap_add", "multi", "Add Linux capabilities"),
    (("--cap-drop",), "cap_drop", "multi", "Drop Linux capabilities"),
    (("--security-opt",), "security_opt", "multi", "Security Options"),
    (("--ulimit",), "ulimit", "multi", "Ulimit options"),
    (("--group-add",), "group_add", "multi", "Add additional groups to join"),
    (("--device",), "device", "multi", "Add a host device to the container"),
    (
        ("--device-cgroup-rule",),
        "device_cgroup_rule",
        "multi",
        "Add a rule to the cgroup allowed devices list",
    ),
    (("--userns",), "userns", "value", "User namespace to use (host: none under --userns-remap)"),
    (("-m", "--memory"), "memory", "value", "Memory limit"),
    (("--cpus",), "cpus", "value", "Number of CPUs"),
    (
        ("--memory-swap",),
        "memory_swap",
        "value",
        "Swap limit equal to memory plus swap: '-1' to enable unlimited swap",
    ),
    (("--memory-reservation",), "memory_reservation", "value", "Memory soft limit"),
    (("-c", "--cpu-shares"), "cpu_shares", "int", "CPU shares (relative weight)"),
    (("--cpu-period",), "cpu_period", "int", "Limit CPU CFS (Completely Fair Scheduler) period"),
    (("--cpu-quota",), "cpu_quota", "int", "Limit CPU CFS (Completely Fair Scheduler) quota"),
    (("--cpuset-cpus",), "cpuset_cpus", "value", "CPUs in which to allow execution (0-3, 0,1)"),
    (("--cpuset-mems",), "cpuset_mems", "value", "MEMs in which to allow execution (0-3, 0,1)"),
    (("--pids-limit",), "pids_limit", "int", "Tune container pids limit (set -1 for unlimited)"),
    (
        ("--blkio-weight",),
        "blkio_weight",
        "int",
        "Block IO (relative weight), between 10 and 1000, or 0 to disable",
    ),
    (("--oom-kill-disable",), "oom_kill_disable", "bool", "Disable OOM Killer"),
    (
        ("--init",),
        "init",
        "bool",
        "Run an init inside the container that forwards signals and reaps processes",
    ),
    (("--health-cmd",), "health_cmd", "value", "Command to run to check health"),
    (("--health-interval",), "health_interval", "value", "Time between running the check (ms|s|m|h)"),
    (("--health-timeout",), "health_timeout", "value", "Maximum time to allow one check to run (ms|s|m|h)"),
    (("--health-retries",), "health_retries", "int", "Consecutive failures needed to report unhealthy"),
    (
        ("--health-start-period",),
        "health_start_period",
        "value",
        "Start period for the container to initialize before counting retries (ms|s|m|h)",
    ),
    (("--no-healthcheck",), "no_healthcheck", "bool", "Disable any container-specified HEALTHCHECK"),
    (("--pull",), "pull", "choice:missing,never,always", "Pull image before running"),
)

# The dests above that options_from() passes through as they are (cgroup, init and health flags).
LIMIT_AND_HEALTH_DESTS = (
    "memory_swap",
    "memory_reservation",
    "cpu_shares",
    "cpu_period",
    "cpu_quota",
    "cpuset_cpus",
    "cpuset_mems",
    "pids_limit",
    "blkio_weight",
    "oom_kill_disable",
    "init",
    "health_cmd",
    "health_interval",
    "health_timeout",
    "health_retries",
    "health_start_period",
    "no_healthcheck",
)
LIMIT_AND_HEALTH_DESTS += ("device", "device_cgroup_rule")  # and the device flags


class CreateOptions:
    """The flags of ``run`` and ``create`` that shape the container.

    A plain class rather than a dataclass: building a dataclass costs milliseconds at import, and
    this module is on the path of every ``pyengine run``.
    """

    image: str
    command: list[str]
    name: str | None = None
    detach: bool = False
    interactive: bool = False
    tty: bool = False
    auto_remove: bool = False
    env: list[str]
    env_files: list[str]
    workdir: str | None = None
    user: str | None = None
    hostname: str | None = None
    entrypoint: str | None = None
    labels: list[str]
    stop_signal: str | None = None
    stop_timeout: int | None = None
    publish: list[str]
    volumes: list[str]
    mounts: list[str]
    tmpfs: list[str]
    network: str | None = None
    network_alias: list[str]
    ip: str | None = None
    publish_all: bool = False
    restart: str | None = None
    privileged: bool = False
    read_only: bool = False
    cap_add: list[str]
    cap_drop: list[str]
    security_opt: list[str]
    ulimit: list[str]
    group_add: list[str]
    device: list[str]
    device_cgroup_rule: list[str]
    userns: str | None = None
    memory: str | None = None
    cpus: str | None = None
    memory_swap: str | None = None
    memory_reservation: str | None = None
    cpu_shares: int | None = None
    cpu_period: int | None = None
    cpu_quota: int | None = None
    cpuset_cpus: str | None = None
    cpuset_mems: str | None = None
    pids_limit: int | None = None
    blkio_weight: int | None = None
    oom_kill_disable: bool = False
    init: bool = False
    health_cmd: str | None = None
    health_interval: str | None = None
    health_timeout: str | None = None
    health_retries: int | None = None
    health_start_period: str | None = None
    no_healthcheck: bool = False
    console_size: tuple[int, int] | None = None

    _LISTS = (
        "command",
        "env",
        "env_files",
        "labels",
        "publish",
        "volumes",
        "cap_add",
        "cap_drop",
        "security_opt",
        "ulimit",
        "group_add",
    )
    _LISTS += ("mounts", "tmpfs")  # --mount, --tmpfs (kept apart: a line of its own merges cleanly)
    _LISTS += ("network_alias",)
    _LISTS += ("device", "device_cgroup_rule")

    def __init__(self, image: str, **fields: Any) -> None:
        self.image = image
        for name in self._LISTS:
            setattr(self, name, list(fields.pop(name, None) or []))
        for name, value in fields.items():
            if name not in CreateOptions.__annotations__:
                raise TypeError(f"unknown create option {name!r}")
            setattr(self, name, value)


def build_create_request(
    opts: CreateOptions, environ: Mapping[str, str] | None = None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The query (``name``) and JSON body of ``POST /containers/create`` for these flags."""
    environ = os.environ if environ is None else environ
    env: list[str] = []
    for path in opts.env_files:
        env.extend(read_env_file(path, environ))
    for item in opts.env:
        value = parse_env_line(item, environ)
        if value is not None:
            env.append(value)

    exposed: dict[str, dict[str, Any]] = {}
    bindings: dict[str, list[dict[str, str]]] = {}
    for spec in opts.publish:
        for port, host_ip, host_port in parse_publish(spec):
            exposed[port] = {}
            bindings.setdefault(port, []).append({"HostIp": host_ip, "HostPort": host_port})

    binds: list[str] = []
    volumes: dict[str, dict[str, Any]] = {}
    for spec in opts.volumes:
        bind, anonymous = parse_volume(spec)
        if bind is not None:
            binds.append(bind)
        if anonymous is not None:
            volumes[anonymous] = {}

    mounts = []
    for spec in opts.mounts:
        try:
            mounts.append(parse_mount(spec))
        except OptionError as exc:
            raise OptionError(f'invalid argument "{spec}" for "--mount" flag: {exc}') from None
    tmpfs: dict[str, str] = {}
    for spec in opts.tmpfs:
        destination, _, options = spec.partition(":")
        tmpfs[destination] = options

    attach_output = not opts.detach
    body: dict[str, Any] = {
        "Hostname": opts.hostname or "",
        "Domainname": "",
        "User": opts.user or "",
        "AttachStdin": opts.interactive and not opts.detach,
        "AttachStdout": attach_output,
        "AttachStderr": attach_output,
        "Tty": opts.tty,
        "OpenStdin": opts.interactive,
        "StdinOnce": opts.interactive and not opts.detach,
        "Env": env or None,
        "Cmd": list(opts.command) or None,
        "Image": opts.image,
        "Volumes": volumes,
        "WorkingDir": opts.workdir or "",
        "Entrypoint": [opts.entrypoint] if opts.entrypoint is not None else None,
        "Labels": parse_labels(opts.labels),
        "ExposedPorts": exposed or None,
        "HostConfig": {
            "Binds": binds or None,
            "NetworkMode": opts.network or "default",
            "PortBindings": bindings,
            "RestartPolicy": {"Name": "no", "MaximumRetryCount": 0},
            "AutoRemove": opts.auto_remove,
            "ConsoleSize": list(opts.console_size) if opts.console_size else [0, 0],
        },
        "NetworkingConfig": {"EndpointsConfig": {opts.network or "default": endpoint_config(opts)}},
    }
    host_config = body["HostConfig"]
    if opts.publish_all:
        host_config["PublishAllPorts"] = True
    if mounts:
        host_config["Mounts"] = mounts
    if tmpfs:
        host_config["Tmpfs"] = tmpfs
    if opts.restart:
        host_config["RestartPolicy"] = parse_restart(opts.restart)
    if opts.privileged:
        host_config["Privileged"] = True
    if opts.read_only:
        host_config["ReadonlyRootfs"] = True
    if opts.cap_add:
        host_config["CapAdd"] = list(opts.cap_add)
    if opts.cap_drop:
        host_config["CapDrop"] = list(opts.cap_drop)
    if opts.security_opt:
        host_config["SecurityOpt"] = [parse_security_opt(item) for item in opts.security_opt]
    if opts.ulimit:
        host_config["Ulimits"] = [parse_ulimit(item) for item in opts.ulimit]
    if opts.group_add:
        host_config["GroupAdd"] = list(opts.group_add)
    if opts.userns:
        host_config["UsernsMode"] = opts.userns
    if opts.device:
        host_config["Devices"] = [parse_device(item) for item in opts.device]
    if opts.device_cgroup_rule:
        host_config["DeviceCgroupRules"] = [parse_device_cgroup_rule(r) for r in opts.device_cgroup_rule]
    if opts.memory:
        host_config["Memory"] = parse_memory(opts.memory)
    if opts.cpus:
        try:
            host_config["NanoCpus"] = int(round(float(opts.cpus) * 1e9))
        except ValueError:
            raise OptionError(f'invalid argument "{opts.cpus}" for "--cpus" flag') from None
    _add_limits(opts, host_config)
    healthcheck = _healthcheck(opts)
    if healthcheck is not None:
        body["Healthcheck"] = healthcheck
    if opts.stop_signal:
        body["StopSignal"] = opts.stop_signal
    if opts.stop_timeout is not None:
        body["StopTimeout"] = opts.stop_timeout
    if body["ExposedPorts"] is None:
        del body["ExposedPorts"]
    query = {"name": opts.name} if opts.name else {}
    return query, body


def endpoint_config(opts: CreateOptions) -> dict[str, Any]:
    """``--network-alias`` and ``--ip`` as the endpoint settings of the container's network."""
    config: dict[str, Any] = {}
    if opts.network_alias:
        config["Aliases"] = list(opts.network_alias)
    if opts.ip:
        config["IPAMConfig"] = {"IPv4Address": opts.ip}
    return config


def _add_limits(opts: CreateOptions, host_config: dict[str, Any]) -> None:
    """The cgroup flags, as docker's CLI sends them (memory-swap -1: unlimited)."""
    if opts.memory_swap:
        host_config["MemorySwap"] = -1 if opts.memory_swap.strip() == "-1" else parse_memory(opts.memory_swap)
    if opts.memory_reservation:
        host_config["MemoryReservation"] = parse_memory(opts.memory_reservation)
    for value, key in (
        (opts.cpu_shares, "CpuShares"),
        (opts.cpu_period, "CpuPeriod"),
        (opts.cpu_quota, "CpuQuota"),
        (opts.pids_limit, "PidsLimit"),
        (opts.blkio_weight, "BlkioWeight"),
    ):
        if value is not None:
            host_config[key] = value
    if opts.cpuset_cpus:
        host_config["CpusetCpus"] = opts.cpuset_cpus
    if opts.cpuset_mems:
        host_config["CpusetMems"] = opts.cpuset_mems
    if opts.oom_kill_disable:
        host_config["OomKillDisable"] = True
    if opts.init:
        host_config["Init"] = True


def _healthcheck(opts: CreateOptions) -> dict[str, Any] | None:
    """Config.Healthcheck from the --health-* flags (None: keep the image's)."""
    given = any(
        v is not None
        for v in (
            opts.health_cmd,
            opts.health_interval,
            opts.health_timeout,
            opts.health_retries,
            opts.health_start_period,
        )
    )
    if opts.no_healthcheck:
        if given:
            raise OptionError("--no-healthcheck conflicts with --health-* options")
        return {"Test": ["NONE"]}
    if not given:
        return None
    check: dict[str, Any] = {}
    if opts.health_cmd:
        check["Test"] = ["CMD-SHELL", opts.health_cmd]
    for value, key, flag in (
        (opts.health_interval, "Interval", "--health-interval"),
        (opts.health_timeout, "Timeout", "--health-timeout"),
        (opts.health_start_period, "StartPeriod", "--health-start-period"),
    ):
        if value is not None:
            nanos = parse_duration(value, flag)
            if nanos < 0:
                raise OptionError(f"{flag} cannot be negative")
            check[key] = nanos
    if opts.health_retries is not None:
        if opts.health_retries < 0:
            raise OptionError("--health-retries cannot be negative")
        check["Retries"] = opts.health_retries
    return check


def start_failure_status(message: str) -> int:
    """Docker's exit status for a failed start: 127 not found, 126 not executable, else 125."""
    lowered = message.lower()
    if "executable file not found" in lowered or "no such file or directory" in lowered:
        return 127
    if "permission denied" in lowered:
        return 126
    return 125
