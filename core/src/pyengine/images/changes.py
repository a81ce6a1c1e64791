"""``--change`` instructions of ``docker import`` and ``docker commit``: Dockerfile lines that only
set image config (CMD, ENTRYPOINT, ENV, EXPOSE, HEALTHCHECK, LABEL, ONBUILD, STOPSIGNAL, USER, VOLUME,
WORKDIR)."""

from __future__ import annotations

import json
import shlex

from pyengine.errors import InvalidArgument
from pyengine.model.image import ImageRunConfig

ALLOWED = (
    "CMD",
    "ENTRYPOINT",
    "ENV",
    "EXPOSE",
    "HEALTHCHECK",
    "LABEL",
    "ONBUILD",
    "STOPSIGNAL",
    "USER",
    "VOLUME",
    "WORKDIR",
)


def _exec_or_shell(args: str) -> list[str]:
    text = args.strip()
    if text.startswith("["):
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            value = None
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return value
    return ["/bin/sh", "-c", text]


def _pairs(args: str, instruction: str) -> list[tuple[str, str]]:
    words = shlex.split(args)
    if len(words) == 2 and "=" not in words[0]:
        return [(words[0], words[1])]  # legacy "ENV key value"
    pairs = []
    for word in words:
        key, sep, value = word.partition("=")
        if not sep or not key:
            raise InvalidArgument(f"{instruction} names must be key=value pairs, got {word!r}")
        pairs.append((key, value))
    if not pairs and instruction == "ENV" and " " in args.strip():
        key, value = args.strip().split(None, 1)
        pairs.append((key, value))
    return pairs


def apply_changes(config: ImageRunConfig, changes: list[str]) -> ImageRunConfig:
    """Return a copy of ``config`` with every change applied; InvalidArgument names a bad line."""
    result = config.model_copy(deep=True)
    for line in changes:
        line = line.strip()
        if not line:
            continue
        instruction, _, args = line.partition(" ")
        instruction = instruction.upper()
        if instruction not in ALLOWED:
            raise InvalidArgument(f"{instruction} is not a valid change command")
        if instruction == "CMD":
            result.Cmd = _exec_or_shell(args)
        elif instruction == "ENTRYPOINT":
            result.Entrypoint = _exec_or_shell(args)
        elif instruction == "ENV":
            env = {k: v for k, _, v in (e.partition("=") for e in result.Env or [])}
            env.update(_pairs(args, "ENV"))
            result.Env = [f"{k}={v}" for k, v in env.items()]
        elif instruction == "LABEL":
            result.Labels = {**(result.Labels or {}), **dict(_pairs(args, "LABEL"))}
        elif instruction == "EXPOSE":
            ports = dict(result.ExposedPorts or {})
            for port in args.split():
                ports[port if "/" in port else f"{port}/tcp"] = {}
            result.ExposedPorts = ports
        elif instruction == "VOLUME":
            vols = dict(result.Volumes or {})
            for path in _exec_or_shell(args)[2:] if not args.strip().startswith("[") else json.loads(args):
                for part in path.split():
                    vols[part] = {}
            result.Volumes = vols
        elif instruction == "WORKDIR":
            result.WorkingDir = args.strip()
        elif instruction == "USER":
            result.User = args.strip()
        elif instruction == "STOPSIGNAL":
            result.StopSignal = args.strip()
        elif instruction == "HEALTHCHECK":
            from pyengine.containers.health import parse_instruction

            result.Healthcheck = parse_instruction(args)
        elif instruction == "ONBUILD":
            result.OnBuild = [*(result.OnBuild or []), args.strip()]
    return result
