"""A container's security settings, from HostConfig to the OCI spec, with Docker's defaults.

Two entry points, one per moment:

* :func:`check_host_config` at create: every value is parsed and checked, so that a bad
  ``--cap-add``, ``--security-opt``, ``--ulimit`` or ``--group-add`` is a 400 naming the flag and
  nothing is created;
* :func:`apply_to_spec` when the bundle is written at start: capabilities (Docker's 14, adjusted
  by CapAdd/CapDrop, or all of them with ``--privileged``), the seccomp profile (Docker's default,
  a given one, or none), no_new_privs, rlimits, supplementary groups, and masked/read-only paths
  (none for privileged containers or ``systempaths=unconfined``), and the devices
  (:mod:`.devices`: ``--device``, ``--device-cgroup-rule``, all of the host's with ``--privileged``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from pyengine.containers import devices, seccomp_profile
from pyengine.containers.spec import DEFAULT_CAPABILITIES
from pyengine.errors import InvalidArgument
from pyengine.runtime.capabilities import CAPABILITY_NAMES, last_capability
from pyengine.runtime.seccomp import SeccompError, compile_filter

ALL_CAPABILITIES = [f"CAP_{name}" for name in CAPABILITY_NAMES]

#: ulimit names Docker accepts -> RLIMIT_* (the number is what setrlimit takes on Linux)
ULIMITS = {
    "cpu": ("RLIMIT_CPU", 0),
    "fsize": ("RLIMIT_FSIZE", 1),
    "data": ("RLIMIT_DATA", 2),
    "stack": ("RLIMIT_STACK", 3),
    "core": ("RLIMIT_CORE", 4),
    "rss": ("RLIMIT_RSS", 5),
    "nproc": ("RLIMIT_NPROC", 6),
    "nofile": ("RLIMIT_NOFILE", 7),
    "memlock": ("RLIMIT_MEMLOCK", 8),
    "as": ("RLIMIT_AS", 9),
    "locks": ("RLIMIT_LOCKS", 10),
    "sigpending": ("RLIMIT_SIGPENDING", 11),
    "msgqueue": ("RLIMIT_MSGQUEUE", 12),
    "nice": ("RLIMIT_NICE", 13),
    "rtprio": ("RLIMIT_RTPRIO", 14),
    "rttime": ("RLIMIT_RTTIME", 15),
}
RLIMIT_NUMBERS = dict(ULIMITS.values())
_UNLIMITED = 2**64 - 1
_GROUP = re.compile(r"[A-Za-z0-9_.][A-Za-z0-9_.-]*\$?")


@dataclass
class SecurityOptions:
    """What ``HostConfig.SecurityOpt`` asks for, parsed."""

    no_new_privileges: bool = False
    seccomp: str = ""  # "" the default profile, "unconfined", or a profile's JSON text
    unconfined_system_paths: bool = False
    other: list[str] = field(default_factory=list)  # apparmor=/label= : accepted, nothing to do here


def normalize_capability(name: str, flag: str) -> str:
    """``net_admin`` / ``CAP_NET_ADMIN`` -> ``CAP_NET_ADMIN``; ``ALL`` stays; unknown -> 400."""
    upper = name.strip().upper()
    if upper == "ALL":
        return "ALL"
    if not upper.startswith("CAP_"):
        upper = "CAP_" + upper
    if upper not in ALL_CAPABILITIES:
        raise InvalidArgument(f'invalid {flag}: unknown capability: "{upper}"')
    return upper


def capabilities_for(host_config: Any) -> list[str]:
    """The container's capability list, Docker's way (moby TweakCapabilities)."""
    last = last_capability()
    known = [name for number, name in enumerate(ALL_CAPABILITIES) if number <= last]
    if host_config.Privileged:
        return known
    adds = [normalize_capability(c, "CapAdd (--cap-add)") for c in host_config.CapAdd or ()]
    drops = [normalize_capability(c, "CapDrop (--cap-drop)") for c in host_config.CapDrop or ()]
    if "ALL" in adds:
        return [c for c in known if c not in drops]
    if "ALL" in drops:
        base: list[str] = []
    else:
        base = [c for c in DEFAULT_CAPABILITIES if c not in drops]
    return [c for c in dict.fromkeys([*base, *adds]) if c in known]


def parse_security_opts(options: list[str] | None) -> SecurityOptions:
    parsed = SecurityOptions()
    for number, option in enumerate(options or (), start=1):
        if option == "no-new-privileges":
            parsed.no_new_privileges = True
            continue
        if option == "systempaths=unconfined":
            parsed.unconfined_system_paths = True
            continue
        separator = "=" if "=" in option else ":"  # "key:value" is Docker's older spelling
        key, sep, value = option.partition(separator)
        if not sep:
            raise InvalidArgument(f'invalid --security-opt {number}: "{option}"')
        if key == "no-new-privileges":
            if value.lower() not in ("true", "false", "1", "0"):
                raise InvalidArgument(
                    f'invalid --security-opt 2: "{option}": no-new-privileges takes true or false'
                )
            parsed.no_new_privileges = value.lower() in ("true", "1")
        elif key == "seccomp":
            if value != "unconfined":
                _load_profile(value)
            parsed.seccomp = value
        elif key in ("apparmor", "label"):
            parsed.other.append(option)
        else:
            raise InvalidArgument(f'invalid --security-opt 2: "{option}"')
    return parsed


def _load_profile(text: str) -> dict[str, Any]:
    try:
        profile = json.loads(text)
    except ValueError as exc:
        raise InvalidArgument(
            f"--security-opt seccomp: decoding seccomp profile failed: {exc} "
            "(the docker CLI sends the profile's content; give a path to a JSON file)"
        ) from None
    if not isinstance(profile, dict):
        raise InvalidArgument(
            "--security-opt seccomp: decoding seccomp profile failed: expected a JSON object"
        )
    return profile


def parse_ulimits(ulimits: Any) -> list[dict[str, Any]]:
    """HostConfig.Ulimits ``[{"Name", "Soft", "Hard"}]`` -> OCI ``process.rlimits``."""
    rlimits = []
    for item in ulimits or ():
        if not isinstance(item, dict):
            raise InvalidArgument(f"invalid --ulimit value {item!r}")
        name = str(item.get("Name", ""))
        if name not in ULIMITS:
            raise InvalidArgument(f"invalid --ulimit: invalid ulimit type: {name}")
        soft, hard = item.get("Soft"), item.get("Hard")
        if not isinstance(soft, int) or not isinstance(hard, int):
            raise InvalidArgument(f"invalid --ulimit {name}: Soft and Hard must be integers")
        soft = _UNLIMITED if soft == -1 else soft
        hard = _UNLIMITED if hard == -1 else hard
        if soft < 0 or hard < 0:
            raise InvalidArgument(f"invalid --ulimit {name}: limits must not be negative")
        if soft > hard:
            raise InvalidArgument(
                f"invalid --ulimit {name}: ulimit soft limit must be less than or equal to hard limit: "
                f"{soft} > {hard}"
            )
        if name == "nofile":
            maximum = _nr_open()
            if hard > maximum:
                raise InvalidArgument(
                    f"invalid --ulimit nofile: {hard} is above the kernel's maximum (fs.nr_open = {maximum})"
                )
        rlimits.append({"type": ULIMITS[name][0], "soft": soft, "hard": hard})
    return rlimits


def _nr_open() -> int:
    try:
        with open("/proc/sys/fs/nr_open") as file:
            return int(file.read())
    except (OSError, ValueError):
        return 1 << 20


def check_group_add(groups: Any) -> list[str]:
    checked = []
    for group in groups or ():
        text = str(group)
        if not (text.isdigit() or _GROUP.fullmatch(text)):
            raise InvalidArgument(f"invalid --group-add value {text!r}")
        if text.isdigit() and int(text) > 2**31 - 1:
            raise InvalidArgument(f"invalid --group-add value {text!r}: gids must be in range 0-2147483647")
        checked.append(text)
    return checked


def check_host_config(host_config: Any) -> None:
    """Raise InvalidArgument (400, naming the flag) for any security setting that cannot work."""
    capabilities = capabilities_for(host_config)
    options = parse_security_opts(host_config.SecurityOpt)
    if options.seccomp not in ("", "unconfined") and not host_config.Privileged:
        oci = seccomp_profile.to_oci(_load_profile(options.seccomp), capabilities)
        try:
            compile_filter(oci)
        except (SeccompError, ValueError, TypeError) as exc:
            raise InvalidArgument(f"--security-opt seccomp: invalid seccomp profile: {exc}") from None
    parse_ulimits(getattr(host_config, "Ulimits", None))
    check_group_add(getattr(host_config, "GroupAdd", None))
    devices.check_host_config(host_config)


def seccomp_for(host_config: Any, capabilities: list[str]) -> dict[str, Any] | None:
    """The OCI ``linux.seccomp`` object, or None for an unconfined (or privileged) container."""
    options = parse_security_opts(host_config.SecurityOpt)
    if host_config.Privileged or options.seccomp == "unconfined":
        return None
    profile = _load_profile(options.seccomp) if options.seccomp else seccomp_profile.default_profile()
    return seccomp_profile.to_oci(profile, capabilities)


def apply_to_spec(spec: dict[str, Any], host_config: Any, extra_gids: list[int]) -> None:
    """Put the container's security settings into the OCI ``spec`` built by :mod:`.spec`."""
    capabilities = capabilities_for(host_config)
    options = parse_security_opts(host_config.SecurityOpt)
    process = spec["process"]
    linux = spec["linux"]
    process["capabilities"] = {
        "bounding": capabilities,
        "effective": capabilities,
        "permitted": capabilities,
        "inheritable": [],
        "ambient": [],
    }
    process["noNewPrivileges"] = options.no_new_privileges
    rlimits = parse_ulimits(getattr(host_config, "Ulimits", None))
    if rlimits:
        process["rlimits"] = rlimits
    if extra_gids:
        user = process["user"]
        user["additionalGids"] = list(dict.fromkeys([*user.get("additionalGids", []), *extra_gids]))
    seccomp = seccomp_for(host_config, capabilities)
    if seccomp is not None:
        linux["seccomp"] = seccomp
    if host_config.Privileged or options.unconfined_system_paths:
        linux["maskedPaths"] = []
        linux["readonlyPaths"] = []
    devices.apply_to_spec(spec, host_config)
    if host_config.Privileged:
        for mount in spec["mounts"]:
            if mount.get("type") == "sysfs":
                mount["options"] = [o for o in mount.get("options", []) if o != "ro"]
