"""The metadata instructions (ENV, LABEL, ARG, CMD, ENTRYPOINT, SHELL, WORKDIR, USER, EXPOSE, VOLUME,
STOPSIGNAL, MAINTAINER, ONBUILD, HEALTHCHECK): each changes the image config and adds a history entry
with ``empty_layer``. A mixin of :class:`pyengine.build.executor.Builder`."""

from __future__ import annotations

import json
import os
import re
from typing import Any

from pyengine.build import dockerfile as df
from pyengine.build.cache import step_key
from pyengine.build.dockerfile import Instruction
from pyengine.errors import InvalidArgument

DEFAULT_SHELL = ["/bin/sh", "-c"]


class MetadataInstructions:
    """Handlers ``_do_<instruction>`` for the instructions that change no file."""

    escape: str
    meta_env: dict[str, str]

    def _sub(self, state: Any, word: str) -> str:
        return df.expand(word, state.lookup_env(), self.escape)

    async def _do_env(self, state: Any, ins: Instruction) -> None:
        pairs = df.key_values(ins, state.lookup_env(), self.escape)

        def change(cfg: Any) -> None:
            env = [e for e in cfg.Env or []]
            for name, value in pairs:
                env = [e for e in env if e.split("=", 1)[0] != name] + [f"{name}={value}"]
            cfg.Env = env

        await self._metadata(state, ins, change, "ENV " + " ".join(f"{k}={v}" for k, v in pairs))

    async def _do_label(self, state: Any, ins: Instruction) -> None:
        pairs = df.key_values(ins, state.lookup_env(), self.escape)

        def change(cfg: Any) -> None:
            cfg.Labels = {**(cfg.Labels or {}), **dict(pairs)}

        await self._metadata(state, ins, change, "LABEL " + " ".join(f"{k}={v}" for k, v in pairs))

    async def _do_arg(self, state: Any, ins: Instruction) -> None:
        for name, default in df.arg_definition(ins, state.lookup_env(), self.escape):
            if default is None and name in self.meta_env:
                default = self.meta_env[name]
            value = self._arg_value(name, default)
            if value is not None:
                state.args[name] = value
            else:
                state.args.pop(name, None)
        # ARG changes no image; Docker still reports the step's image
        await self.say(f" ---> {state.image_id[7:19]}\n" if state.image_id else " ---> \n")

    def _exec_form(self, state: Any, ins: Instruction) -> list[str]:
        if ins.json:
            return list(ins.args)
        return [*(state.config.config.Shell or DEFAULT_SHELL), ins.rest]

    async def _do_cmd(self, state: Any, ins: Instruction) -> None:
        argv = self._exec_form(state, ins)
        await self._metadata(state, ins, lambda cfg: setattr(cfg, "Cmd", argv), f"CMD {json.dumps(argv)}")

    async def _do_entrypoint(self, state: Any, ins: Instruction) -> None:
        argv = self._exec_form(state, ins)

        def change(cfg: Any) -> None:
            cfg.Entrypoint = argv
            cfg.Cmd = None  # as Docker: a new ENTRYPOINT resets an inherited CMD

        await self._metadata(state, ins, change, f"ENTRYPOINT {json.dumps(argv)}")

    async def _do_shell(self, state: Any, ins: Instruction) -> None:
        if not ins.json:
            raise InvalidArgument(
                f"Dockerfile parse error on line {ins.line}: SHELL requires the arguments to be in JSON form"
            )
        await self._metadata(
            state, ins, lambda cfg: setattr(cfg, "Shell", list(ins.args)), f"SHELL {json.dumps(ins.args)}"
        )

    async def _do_workdir(self, state: Any, ins: Instruction) -> None:
        path = self._sub(state, ins.args[0] if ins.args else "")
        if not path:
            raise InvalidArgument(
                f"Dockerfile parse error on line {ins.line}: WORKDIR requires exactly one argument"
            )
        current = state.config.config.WorkingDir or "/"
        resolved = os.path.normpath(os.path.join(current, path))
        await self._metadata(
            state, ins, lambda cfg: setattr(cfg, "WorkingDir", resolved), f"WORKDIR {resolved}"
        )

    async def _do_user(self, state: Any, ins: Instruction) -> None:
        user = self._sub(state, ins.args[0] if ins.args else "")
        await self._metadata(state, ins, lambda cfg: setattr(cfg, "User", user), f"USER {user}")

    async def _do_expose(self, state: Any, ins: Instruction) -> None:
        ports = []
        for word in ins.args:
            for port in df.expand_words(word, state.lookup_env(), self.escape):
                ports.append(port if "/" in port else f"{port}/tcp")

        def change(cfg: Any) -> None:
            cfg.ExposedPorts = {**(cfg.ExposedPorts or {}), **{p: {} for p in ports}}

        await self._metadata(state, ins, change, "EXPOSE " + " ".join(ports))

    async def _do_volume(self, state: Any, ins: Instruction) -> None:
        paths = [self._sub(state, a) for a in ins.args]
        if not paths or not all(paths):
            raise InvalidArgument(
                f"Dockerfile parse error on line {ins.line}: VOLUME specified can not be an empty string"
            )

        def change(cfg: Any) -> None:
            cfg.Volumes = {**(cfg.Volumes or {}), **{p: {} for p in paths}}

        await self._metadata(state, ins, change, f"VOLUME {json.dumps(paths)}")

    async def _do_stopsignal(self, state: Any, ins: Instruction) -> None:
        from pyengine.containers.service import parse_signal

        value = self._sub(state, ins.args[0] if ins.args else "")
        parse_signal(value)
        await self._metadata(state, ins, lambda cfg: setattr(cfg, "StopSignal", value), f"STOPSIGNAL {value}")

    async def _do_maintainer(self, state: Any, ins: Instruction) -> None:
        author = ins.rest
        key = step_key(ins.original, self._args_in_effect(state))
        if await self._cached(state, key):
            return
        state.config.author = author
        await self._commit(state, key, f"/bin/sh -c #(nop)  MAINTAINER {author}")

    async def _do_onbuild(self, state: Any, ins: Instruction) -> None:
        trigger = ins.rest
        df.parse_trigger(trigger, ins.line)  # refuse bad triggers now, not in the child's build

        def change(cfg: Any) -> None:
            cfg.OnBuild = [*(cfg.OnBuild or []), trigger]

        await self._metadata(state, ins, change, f"ONBUILD {trigger}")

    async def _do_healthcheck(self, state: Any, ins: Instruction) -> None:
        check = _healthcheck(ins)
        await self._metadata(
            state, ins, lambda cfg: setattr(cfg, "Healthcheck", check), f"HEALTHCHECK {json.dumps(check)}"
        )


def _healthcheck(ins: Instruction) -> dict[str, Any]:
    if not ins.args:
        raise InvalidArgument(f"Dockerfile parse error on line {ins.line}: HEALTHCHECK requires an argument")
    kind = ins.args[0].upper()
    if kind == "NONE":
        if len(ins.args) > 1:
            raise InvalidArgument("HEALTHCHECK NONE takes no arguments")
        return {"Test": ["NONE"]}
    if kind != "CMD":
        raise InvalidArgument(f"Unknown type {kind} in HEALTHCHECK (try CMD)")
    test = ["CMD", *ins.args[1:]] if ins.json else ["CMD-SHELL", " ".join(ins.args[1:])]
    check: dict[str, Any] = {"Test": test}
    for flag, field_name in (
        ("interval", "Interval"),
        ("timeout", "Timeout"),
        ("start-period", "StartPeriod"),
        ("start-interval", "StartInterval"),
    ):
        if flag in ins.flags:
            check[field_name] = _duration_ns(ins.flags[flag], flag)
    if "retries" in ins.flags:
        try:
            check["Retries"] = int(ins.flags["retries"])
        except ValueError:
            raise InvalidArgument(f"invalid --retries value: {ins.flags['retries']}") from None
    return check


def _duration_ns(text: str, flag: str) -> int:
    units = {
        "ns": 1,
        "us": 1_000,
        "ms": 1_000_000,
        "s": 1_000_000_000,
        "m": 60_000_000_000,
        "h": 3_600_000_000_000,
    }
    total = 0.0
    parts = re.findall(r"(\d+(?:\.\d+)?)(ns|us|ms|s|m|h)", text)
    if not parts or "".join(a + b for a, b in parts) != text:
        raise InvalidArgument(f'time: invalid duration "{text}" for --{flag}')
    for number, unit in parts:
        total += float(number) * units[unit]
    return int(total)
