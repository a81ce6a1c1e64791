"""Parsers for the values of ``run``/``create`` flags (and of ``update`` and ``exec``): docker's
syntax in, API values out, docker's error messages on bad input. Pure functions; only
:func:`read_env_file` reads a file.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing costs ~5 ms to import; annotations alone need it only for checkers
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping
    from typing import Any


class OptionError(ValueError):
    """A flag value the CLI cannot turn into an API body (reported as docker does, exit 125)."""


def parse_env_line(line: str, environ: Mapping[str, str]) -> str | None:
    """``K=V`` stays; a bare ``K`` takes the local value of K, or is dropped when K is unset."""
    if "=" in line:
        if line.startswith("="):
            raise OptionError(f"invalid environment variable: {line}")
        return line
    name = line.strip()
    if not name:
        raise OptionError("invalid environment variable: empty name")
    if name in environ:
        return f"{name}={environ[name]}"
    return None


def read_env_file(path: str, environ: Mapping[str, str]) -> list[str]:
    """The variables of an env file: one per line, ``#`` comments and blank lines skipped."""
    try:
        with open(path, encoding="utf-8") as handle:
            lines = handle.read().splitlines()
    except OSError as exc:
        raise OptionError(f"open {path}: {exc.strerror.lower() if exc.strerror else exc}") from exc
    result = []
    for raw in lines:
        line = raw.lstrip()
        if not line or line.startswith("#"):
            continue
        value = parse_env_line(line, environ)
        if value is not None:
            result.append(value)
    return result


def parse_labels(items: Iterable[str]) -> dict[str, str]:
    labels = {}
    for item in items:
        key, _, value = item.partition("=")
        if not key:
            raise OptionError(f"invalid label: {item!r}")
        labels[key] = value
    return labels


def _port_range(text: str, what: str) -> list[int]:
    low, dash, high = text.partition("-")
    try:
        start = int(low)
        end = int(high) if dash else start
    except ValueError:
        raise OptionError(f"invalid {what} port: {text}") from None
    if not 0 <= start <= end <= 65535:
        raise OptionError(f"invalid {what} port: {text}")
    return list(range(start, end + 1))


def parse_publish(spec: str) -> list[tuple[str, str, str]]:
    """``[ip:][host_port:]container_port[/proto]`` -> ``[(container "80/tcp", host_ip, host_port)]``.

    Ranges pair up one to one (``8000-8001:80-81``); a host range against a single container port
    is kept as a range, as docker does.
    """
    rest, slash, proto = spec.partition("/")
    proto = proto.lower() if slash else "tcp"
    if proto not in ("tcp", "udp", "sctp"):
        raise OptionError(f"invalid proto: {proto}")
    if rest.startswith("["):  # [ipv6]:host:container
        end = rest.find("]")
        host_ip, rest = rest[1:end], rest[end + 2 :]
        host_port, _, container = rest.rpartition(":")
    else:
        parts = rest.split(":")
        if len(parts) == 1:
            host_ip, host_port, container = "", "", parts[0]
        elif len(parts) == 2:
            host_ip, (host_port, container) = "", parts
        elif len(parts) == 3:
            host_ip, host_port, container = parts
        else:
            raise OptionError(f"invalid port format for --publish: {spec}")
    if not container:
        raise OptionError(f"no port specified: {spec}<empty>")
    container_ports = _port_range(container, "container")
    if not host_port:
        return [(f"{port}/{proto}", host_ip, "") for port in container_ports]
    host_ports = _port_range(host_port, "host")
    if len(container_ports) == 1 and len(host_ports) > 1:
        return [(f"{container_ports[0]}/{proto}", host_ip, host_port)]
    if len(host_ports) != len(container_ports):
        raise OptionError(f"invalid ranges specified for container and host ports: {spec}")
    return [(f"{c}/{proto}", host_ip, str(h)) for c, h in zip(container_ports, host_ports, strict=True)]


def parse_volume(spec: str) -> tuple[str | None, str | None]:
    """``-v`` -> (a ``Binds`` entry, or None; an anonymous volume's container path, or None)."""
    parts = spec.split(":")
    if len(parts) == 1:
        if not spec.startswith("/"):
            raise OptionError(f"invalid volume specification: '{spec}'")
        return None, spec
    if len(parts) > 3 or not parts[0] or not parts[1].startswith("/"):
        raise OptionError(f"invalid volume specification: '{spec}'")
    return spec, None


_MOUNT_BOOLEANS = {"true": True, "1": True, "false": False, "0": False}


def _mount_bool(key: str, value: str | None) -> bool:
    if value is None:
        return True
    if value.lower() not in _MOUNT_BOOLEANS:
        raise OptionError(f"invalid value for {key}: {value}")
    return _MOUNT_BOOLEANS[value.lower()]


def parse_mount(spec: str) -> dict[str, Any]:
    """``--mount type=bind,source=/a,target=/b,readonly`` -> a ``HostConfig.Mounts`` entry (docker's
    csv syntax and messages)."""
    mount: dict[str, Any] = {"Type": "volume"}
    volume_options: dict[str, Any] = {}
    bind_options: dict[str, Any] = {}
    tmpfs_options: dict[str, Any] = {}
    for field in spec.split(","):
        if not field:
            continue
        key, equals, value = field.partition("=")
        key = key.strip().lower()
        if not equals:
            if key in ("readonly", "ro", "volume-nocopy", "bind-nonrecursive", "bind-create-mountpoint"):
                value = None  # type: ignore[assignment]
            else:
                raise OptionError(f"invalid field '{field}' must be a key=value pair")
        if key == "type":
            mount["Type"] = value
        elif key in ("source", "src"):
            mount["Source"] = value
        elif key in ("target", "dst", "destination"):
            mount["Target"] = value
        elif key in ("readonly", "ro"):
            mount["ReadOnly"] = _mount_bool(key, value)
        elif key == "consistency":
            mount["Consistency"] = value
        elif key == "bind-propagation":
            bind_options["Propagation"] = value
        elif key == "bind-nonrecursive":
            bind_options["NonRecursive"] = _mount_bool(key, value)
        elif key == "bind-create-mountpoint":
            bind_options["CreateMountpoint"] = _mount_bool(key, value)
        elif key == "volume-nocopy":
            volume_options["NoCopy"] = _mount_bool(key, value)
        elif key == "volume-driver":
            volume_options.setdefault("DriverConfig", {})["Name"] = value
        elif key == "volume-label":
            label, _, label_value = value.partition("=")
            volume_options.setdefault("Labels", {})[label] = label_value
        elif key == "volume-opt":
            option, sep, option_value = value.partition("=")
            if not sep:
                raise OptionError(f"invalid value for {key}: {value}")
            volume_options.setdefault("DriverConfig", {}).setdefault("Options", {})[option] = option_value
        elif key == "tmpfs-size":
            tmpfs_options["SizeBytes"] = parse_memory(value)
        elif key == "tmpfs-mode":
            try:
                tmpfs_options["Mode"] = int(value, 8)
            except ValueError:
                raise OptionError(f"invalid value for {key}: {value}") from None
        else:
            raise OptionError(f"unexpected key '{key}' in '{field}'")
    if not mount.get("Target"):
        raise OptionError("target is required")
    kind = mount["Type"]
    for prefix, options, field_name in (
        ("volume", volume_options, "VolumeOptions"),
        ("bind", bind_options, "BindOptions"),
        ("tmpfs", tmpfs_options, "TmpfsOptions"),
    ):
        if options:
            if kind != prefix:
                raise OptionError(f"cannot mix '{prefix}-*' options with mount type '{kind}'")
            mount[field_name] = options
    return mount


_MEMORY_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4, "p": 1024**5}


def parse_memory(text: str) -> int:
    """Docker's RAMInBytes: ``512m``, ``1g``, ``1.5GB``, ``1024`` (binary units, case-insensitive)."""
    lowered = text.strip().lower()
    number = lowered.rstrip("kmgtpb")
    unit = lowered[len(number) :]
    if unit.endswith("b") and len(unit) == 2:
        unit = unit[0]
    try:
        value = float(number)
    except ValueError:
        raise OptionError(f"invalid size: '{text}'") from None
    if unit not in _MEMORY_UNITS or value < 0:
        raise OptionError(f"invalid size: '{text}'")
    return int(value * _MEMORY_UNITS[unit])


def parse_restart(text: str) -> dict[str, Any]:
    """``no``, ``always``, ``unless-stopped``, ``on-failure[:N]`` -> HostConfig.RestartPolicy."""
    name, _, count = text.partition(":")
    if name not in ("no", "always", "unless-stopped", "on-failure"):
        raise OptionError(f"invalid restart policy '{name}'")
    if count and name != "on-failure":
        raise OptionError(f"maximum retry count cannot be used with restart policy '{name}'")
    try:
        retries = int(count) if count else 0
    except ValueError:
        raise OptionError(f"maximum retry count must be an integer: {count}") from None
    return {"Name": name, "MaximumRetryCount": retries}


_ULIMIT_NAMES = (
    "as",
    "core",
    "cpu",
    "data",
    "fsize",
    "locks",
    "memlock",
    "msgqueue",
    "nice",
    "nofile",
    "nproc",
    "rss",
    "rtprio",
    "rttime",
    "sigpending",
    "stack",
)


def parse_ulimit(text: str) -> dict[str, Any]:
    """``nofile=1024[:2048]`` -> ``{"Name": "nofile", "Soft": 1024, "Hard": 2048}`` (docker's units)."""
    name, sep, limits = text.partition("=")
    if not sep:
        raise OptionError(f'invalid argument "{text}" for "--ulimit" flag: invalid ulimit argument: {text}')
    if name not in _ULIMIT_NAMES:
        raise OptionError(f'invalid argument "{text}" for "--ulimit" flag: invalid ulimit type: {name}')
    soft_text, colon, hard_text = limits.partition(":")
    try:
        soft = int(soft_text)
        hard = int(hard_text) if colon else soft
    except ValueError:
        raise OptionError(
            f'invalid argument "{text}" for "--ulimit" flag: invalid ulimit value: {limits}'
        ) from None
    if soft > hard:
        raise OptionError(
            f'invalid argument "{text}" for "--ulimit" flag: '
            f"ulimit soft limit must be less than or equal to hard limit: {soft} > {hard}"
        )
    return {"Name": name, "Hard": hard, "Soft": soft}


def parse_security_opt(text: str) -> str:
    """As the docker CLI: ``seccomp=PATH`` is sent as ``seccomp=<the file's JSON>``."""
    key, sep, value = text.partition("=")
    if not sep:
        key, sep, value = text.partition(":")
    if key != "seccomp" or not sep or value == "unconfined":
        return text
    try:
        with open(value, "rb") as handle:
            content = handle.read()
    except OSError as exc:
        reason = exc.strerror.lower() if exc.strerror else str(exc)
        raise OptionError(f"opening seccomp profile ({value}) failed: open {value}: {reason}") from None
    try:
        import json

        compact = json.dumps(json.loads(content), separators=(",", ":"))
    except ValueError as exc:
        raise OptionError(f"compacting json for seccomp profile ({value}) failed: {exc}") from None
    return f"seccomp={compact}"


def _device_mode(mode: str) -> bool:
    """docker's validDeviceMode: a non-empty combination of r, w and m, each at most once."""
    return bool(mode) and all(c in "rwm" for c in mode) and len(set(mode)) == len(mode)


def parse_device(text: str) -> dict[str, str]:
    """``/dev/x[:/dev/y][:rwm]`` -> ``{"PathOnHost", "PathInContainer", "CgroupPermissions"}``.

    As the docker CLI: a second field that is a valid mode is the mode, else the container path.
    """

    def invalid(reason: str) -> OptionError:
        return OptionError(f'invalid argument "{text}" for "--device" flag: {reason}')

    fields = text.split(":")
    if len(fields) > 3 or not fields[0]:
        raise invalid(f"bad format for path: {text}")
    host, container, permissions = fields[0], "", "rwm"
    if len(fields) == 2:
        if _device_mode(fields[1]):
            permissions = fields[1]
        else:
            container = fields[1]
    elif len(fields) == 3:
        container, permissions = fields[1], fields[2]
        if not _device_mode(permissions):
            raise invalid(f"bad mode specified: {permissions}")
    container = container or host
    if not container.startswith("/"):
        raise invalid(f"{container} is not an absolute path")
    return {"PathOnHost": host, "PathInContainer": container, "CgroupPermissions": permissions}


def parse_device_cgroup_rule(text: str) -> str:
    """``'c 1:3 mr'``: type a/b/c, major:minor (numbers or ``*``), one to three of r, w, m."""
    import re

    if re.fullmatch(r"[acb] ([0-9]+|\*):([0-9]+|\*) [rwm]{1,3}", text) is None:
        raise OptionError(
            f'invalid argument "{text}" for "--device-cgroup-rule" flag: '
            f"invalid device cgroup format '{text}'"
        )
    return text


_DURATION_UNITS = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,
    "ms": 1_000_000,
    "s": 10**9,
    "m": 60 * 10**9,
    "h": 3600 * 10**9,
}


def parse_duration(text: str, flag: str) -> int:
    """Go's time.ParseDuration for the forms users type (``1s``, ``500ms``, ``1m30s``) -> nanoseconds."""
    rest, total = text.strip(), 0
    if rest == "0":
        return 0
    if not rest:
        raise OptionError(f'invalid argument "{text}" for "{flag}" flag: time: invalid duration "{text}"')
    while rest:
        number = ""
        while rest and (rest[0].isdigit() or rest[0] == "."):
            number, rest = number + rest[0], rest[1:]
        unit = ""
        while rest and not (rest[0].isdigit() or rest[0] == "."):
            unit, rest = unit + rest[0], rest[1:]
        if not number or unit not in _DURATION_UNITS:
            raise OptionError(f'invalid argument "{text}" for "{flag}" flag: time: invalid duration "{text}"')
        total += int(float(number) * _DURATION_UNITS[unit])
    return total
