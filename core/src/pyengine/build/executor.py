"""Running a Dockerfile the way Docker's classic builder does: one image per step, one layer per
file-system step (RUN through a build container of the normal container service, COPY/ADD from a tar
written here), metadata steps as empty-layer history entries, each step cached.

Progress goes to ``emit`` as the stream Docker's ``/build`` sends (``{"stream": ...}`` items).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC
from pathlib import Path
from typing import Any

from pyengine.build import dockerfile as df
from pyengine.build.cache import BuildCache, step_key
from pyengine.build.cache_from import CacheSources
from pyengine.build.caching import CachedSteps
from pyengine.build.dockerfile import Instruction
from pyengine.build.metadata import DEFAULT_SHELL, MetadataInstructions
from pyengine.build.steps import CopyStep, StepFailed
from pyengine.build.tarcontext import BuildContext, ContextNeeded
from pyengine.errors import EngineError, InvalidArgument, NotFound
from pyengine.images import reference
from pyengine.images.image import Image
from pyengine.model.base import now_rfc3339
from pyengine.model.container import ContainerCreateRequest, HostConfigSpec
from pyengine.model.image import HistoryEntry, ImageConfig

log = logging.getLogger(__name__)

Emit = Callable[[dict[str, Any]], Awaitable[None]]
# Build args Docker passes without declaring them (proxies).
BUILTIN_ARGS = {
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "FTP_PROXY",
    "ftp_proxy",
    "NO_PROXY",
    "no_proxy",
    "ALL_PROXY",
    "all_proxy",
    "SOURCE_DATE_EPOCH",
}


@dataclass
class BuildOptions:
    dockerfile: str = "Dockerfile"
    tags: list[str] = field(default_factory=list)
    build_args: dict[str, str | None] = field(default_factory=dict)
    no_cache: bool = False
    target: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    cache_from: list[str] = field(default_factory=list)
    source_date_epoch: int | None = None


@dataclass
class StageState:
    image_id: str  # "" for scratch with no steps yet
    config: ImageConfig
    layers: list[dict[str, Any]]
    args: dict[str, str] = field(default_factory=dict)  # declared build args in scope, with values

    @property
    def env(self) -> dict[str, str]:
        return dict(
            item.split("=", 1) if "=" in item else (item, "") for item in self.config.config.Env or []
        )

    def lookup_env(self) -> dict[str, str]:
        """What substitution sees: build args, overridden by ENV."""
        return {**self.args, **self.env}


class BuildCancelled(EngineError):
    """The client of a build went away."""


class Builder(CachedSteps, MetadataInstructions):
    def __init__(
        self,
        engine: Any,
        context: BuildContext,
        options: BuildOptions,
        emit: Emit,
        client_gone: Callable[[], bool] = lambda: False,
    ) -> None:
        """``client_gone`` says whether the client went away: the build then stops (its running
        build container is killed and removed), as Docker cancels a build whose client left."""
        self.engine = engine
        self.client_gone = client_gone
        self.context = context
        self.options = options
        self.emit = emit
        self.cache = BuildCache(engine.db)
        self.stages: list[StageState] = []
        self.stage_names: dict[str, int] = {}
        self.step = 0
        self.total = 0
        self.used_args: set[str] = set()
        self.allowed_cache: set[str] | None = None
        self.cache_sources = CacheSources([])
        # A context sent by digest: the output is held until the first step that is not cached;
        # there the build either goes on (nothing after it reads the context) or stops with
        # ContextNeeded, and the client sends the context in full and sees one build only.
        self.held: list[str] | None = [] if context.by_digest else None
        self.plan: list[df.Stage] = []
        self.position = (0, 0)  # (stage, instruction) being run, to know what is left
        self.in_trigger = False

    # ---- the build ----------------------------------------------------------------------------
    async def run(self, text: str) -> str:
        """Build; return the final image ID. Raises an EngineError (StepFailed for a failing RUN),
        ContextNeeded when a context sent by digest does not do."""
        try:
            return await self._run(text)
        except ContextNeeded:
            raise
        except EngineError:
            await self._release()  # what led to the error goes before it
            raise

    async def _run(self, text: str) -> str:
        parsed = df.parse(text)
        stages = parsed.select(self.options.target)
        self.escape = parsed.escape
        self.total = sum(1 + len(s.instructions) for s in stages)
        if self.options.cache_from:
            self.allowed_cache = set()
            sources = []
            for name in self.options.cache_from:
                try:
                    image = await asyncio.to_thread(self.engine.images.resolve, name)
                except (NotFound, InvalidArgument):
                    continue
                sources.append(image)
                self.allowed_cache |= await asyncio.to_thread(self.cache.ancestry, image.id)
            self.cache_sources = CacheSources(sources)
        meta_env: dict[str, str] = {}
        for instruction in parsed.meta_args:
            for name, default in df.arg_definition(instruction, meta_env, self.escape):
                value = self._arg_value(name, default)
                if value is not None:
                    meta_env[name] = value
        self.meta_env = meta_env
        self.plan = stages
        for stage_number, stage in enumerate(stages):
            self.position = (stage_number, 0)
            state = await self._from(stage)
            self.stages.append(state)
            if stage.name:
                self.stage_names[stage.name] = stage.index
            for number, instruction in enumerate(stage.instructions):
                self.position = (stage_number, number)
                await self._step(state, instruction)
        final = self.stages[-1]
        self.position = (len(self.plan), 0)
        if self.options.labels:
            final = await self._add_labels(final)
        if not final.image_id:
            raise InvalidArgument("No image was generated. Is your Dockerfile empty?")
        await self._release()
        unused = sorted(set(self.options.build_args) - self.used_args - BUILTIN_ARGS)
        if unused:
            await self.say(f"[Warning] One or more build-args {unused} were not consumed\n")
        return final.image_id

    def _arg_value(self, name: str, default: str | None) -> str | None:
        if name in self.options.build_args:
            self.used_args.add(name)
            given = self.options.build_args[name]
            if given is not None:
                return given
        return default

    async def _from(self, stage: df.Stage) -> StageState:
        self.step += 1
        await self.say(f"Step {self.step}/{self.total} : {stage.original}")
        await self.say("\n")
        base = df.expand(stage.base, self.meta_env, self.escape)
        if not base:
            raise InvalidArgument(f"base name ({stage.base}) should not be blank")
        if base.lower() == "scratch":
            return StageState("", ImageConfig(), [])
        if base.lower() in self.stage_names:
            source = self.stages[self.stage_names[base.lower()]]
            if not source.image_id:  # a stage that is still an empty scratch
                return StageState("", ImageConfig(), [])
            image = await asyncio.to_thread(self.engine.images.resolve, source.image_id)
        else:
            try:
                image = await asyncio.to_thread(self.engine.images.resolve, base)
            except NotFound:
                raise NotFound(
                    f"pull access denied for {base}: the image is not present locally and pyengine cannot "
                    "pull it (import or load it first)"
                ) from None
        await self.say(f" ---> {image.id[7:19]}\n")
        state = self._state_of(image)
        triggers = list(state.config.config.OnBuild or [])
        if triggers:
            await self.say(f"# Executing {len(triggers)} build trigger{'s' if len(triggers) > 1 else ''}\n")
            state.config.config.OnBuild = None
            self.in_trigger = True
            try:
                for text in triggers:
                    await self._execute(state, df.parse_trigger(text, stage.line))
            finally:
                self.in_trigger = False
        return state

    def _state_of(self, image: Image) -> StageState:
        config = image.config.model_copy(deep=True)
        return StageState(image.id, config, [dict(x) for x in image.layers])

    async def _step(self, state: StageState, instruction: Instruction) -> None:
        if self.client_gone():
            raise BuildCancelled("the build was cancelled: the client went away")
        self.step += 1
        await self.say(f"Step {self.step}/{self.total} : {instruction.original}")
        await self.say("\n")
        await self._execute(state, instruction)

    async def _execute(self, state: StageState, ins: Instruction) -> None:
        handler = getattr(self, "_do_" + ins.name.lower(), None)
        if handler is None:
            raise InvalidArgument(
                f"Dockerfile parse error on line {ins.line}: unknown instruction: {ins.name}"
            )
        await handler(state, ins)

    # ---- committing a step --------------------------------------------------------------------
    def _created(self) -> str:
        epoch = self.options.source_date_epoch
        if epoch is None:
            return now_rfc3339()
        from datetime import datetime

        return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    async def _commit(self, state: StageState, key: str, created_by: str, layer: Any = None) -> None:
        """Record the step's image (``layer`` a StoredLayer or None for an empty layer) and cache it."""
        config = state.config.model_copy(deep=True)
        created = self._created()
        config.created = created
        if layer is not None:
            config.rootfs.diff_ids = [*config.rootfs.diff_ids, layer.diff_id]
            layers = [*state.layers, layer.layer]
        else:
            layers = list(state.layers)
        config.history = [
            *config.history,
            HistoryEntry(created=created, created_by=created_by, empty_layer=None if layer else True),
        ]
        image = await asyncio.to_thread(self.engine.images.add_image, config, layers, 0, [], state.image_id)
        await asyncio.to_thread(self.cache.record, state.image_id, key, image.id)
        state.image_id, state.config, state.layers = image.id, image.config.model_copy(deep=True), layers
        await self.say(f" ---> {image.id[7:19]}\n")

    def _args_in_effect(self, state: StageState) -> dict[str, str]:
        """The build args a step sees (part of its cache key; RUN gets them as environment).

        SOURCE_DATE_EPOCH counts whether declared or not: it changes every layer's timestamps.
        """
        args = dict(state.args)
        if self.options.source_date_epoch is not None:
            args.setdefault("SOURCE_DATE_EPOCH", str(self.options.source_date_epoch))
        return args

    async def _metadata(
        self, state: StageState, ins: Instruction, change: Callable[[Any], None], shown: str
    ) -> None:
        key = step_key(ins.original, self._args_in_effect(state))
        created_by = f"/bin/sh -c #(nop)  {shown}"
        if await self._cached(state, key, created_by, change):
            return
        change(state.config.config)
        await self._commit(state, key, created_by)

    async def _add_labels(self, state: StageState) -> StageState:
        labels = self.options.labels

        def change(cfg: Any) -> None:
            cfg.Labels = {**(cfg.Labels or {}), **labels}

        shown = "LABEL " + " ".join(f"{k}={v}" for k, v in sorted(labels.items()))
        fake = Instruction("LABEL", [], {}, False, 0, shown)
        await self._metadata(state, fake, change, shown)
        return state

    # ---- file-system instructions -------------------------------------------------------------
    async def _do_run(self, state: StageState, ins: Instruction) -> None:
        if ins.json:
            argv = list(ins.args)
        else:
            command = ins.rest
            if ins.heredocs:
                doc = ins.heredocs[0]
                if command.strip() == f"<<{doc.name}" or command.strip() in (
                    f"<<-{doc.name}",
                    f'<<"{doc.name}"',
                    f"<<'{doc.name}'",
                ):
                    command = doc.content
                else:
                    command = command + "\n" + "".join(h.content + h.name + "\n" for h in ins.heredocs)
            argv = [*(state.config.config.Shell or DEFAULT_SHELL), command]
        args = self._args_in_effect(state)
        key = step_key(ins.original + "\0" + "\0".join(h.content for h in ins.heredocs), args)
        shown_by = (
            f"|{len(args)} " + " ".join(f"{k}={v}" for k, v in sorted(args.items())) + " " if args else ""
        )
        created_by = shown_by + (" ".join(argv) if not ins.json else json.dumps(argv))
        if await self._cached(state, key, created_by):
            return
        if not state.image_id:
            raise InvalidArgument(
                f"RUN on line {ins.line} needs a base image: the stage is FROM scratch with nothing in it"
            )
        env = list(state.config.config.Env or [])
        names = {e.split("=", 1)[0] for e in env}
        env += [f"{k}={v}" for k, v in sorted(args.items()) if k not in names]
        request = ContainerCreateRequest(
            Image=state.image_id,
            Entrypoint=argv,
            Cmd=None,
            Env=env,
            WorkingDir=state.config.config.WorkingDir or "",
            User=state.config.config.User or "",
            HostConfig=HostConfigSpec(),
        )
        services = self.engine.containers
        container = await services.create(request, None)
        try:
            await self.say(f" ---> Running in {container.Id[:12]}\n")
            code = await self._run_container(container)
            if code != 0:
                shown = " ".join(argv) if not ins.json else json.dumps(argv)
                raise StepFailed(
                    f"The command '{shown}' returned a non-zero code: {code} (step {self.step}/{self.total})",
                    code,
                )
            layer = await asyncio.to_thread(self._store_diff, state, container.Id)
        finally:
            await services.remove(container, force=True)
            await self.say(f"Removing intermediate container {container.Id[:12]}\n")
        await self._commit(state, key, created_by, layer)

    async def _run_container(self, container: Any) -> int:
        from pyengine.containers.logs import LogReader

        services = self.engine.containers
        await services.start(container)
        future = services.waiter(container, "not-running")
        reader = LogReader(Path(container.LogPath))
        try:
            while True:
                if self.client_gone():
                    raise BuildCancelled("the build was cancelled: the client went away")
                done = future.done()
                for record in await asyncio.to_thread(reader.read_new):
                    await self.say(record.get("log", ""))
                if done:
                    break
                try:
                    await asyncio.wait_for(asyncio.shield(future), timeout=0.2)
                except TimeoutError:
                    pass
        finally:
            reader.close()
        code, _ = future.result()
        return int(code)

    def _store_diff(self, state: StageState, container_id: str) -> Any:
        from pyengine.build.layers import store_layer
        from pyengine.storage.naive_diff import layer_diff

        return store_layer(
            self.engine.storage,
            self.engine.blobs,
            list(state.config.rootfs.diff_ids),
            layer_diff(self.engine.storage, container_id),
            fixed_mtime=self.options.source_date_epoch,
        )

    async def _do_copy(self, state: StageState, ins: Instruction) -> None:
        await self._copy(state, ins, is_add=False)

    async def _do_add(self, state: StageState, ins: Instruction) -> None:
        await self._copy(state, ins, is_add=True)

    async def _copy(self, state: StageState, ins: Instruction, *, is_add: bool) -> None:
        step = CopyStep(self, state, ins, is_add=is_add)
        sources_digest = await asyncio.to_thread(step.prepare)
        try:
            key = step_key(ins.original, self._args_in_effect(state), sources_digest)
            if await self._cached(state, key, step.created_by()):
                return
            layer = await asyncio.to_thread(step.make_layer)
            await self._commit(state, key, step.created_by(), layer)
        finally:
            await asyncio.to_thread(step.close)

    def stage_image(self, name: str) -> str:
        """The image ID of a named (or numbered) earlier stage, or of an image: COPY --from."""
        lowered = name.lower()
        if lowered in self.stage_names:
            return self.stages[self.stage_names[lowered]].image_id
        if lowered.isdigit() and int(lowered) < len(self.stages):
            return self.stages[int(lowered)].image_id
        return self.engine.images.resolve(name).id


def familiar_tags(tags: list[str]) -> list[str]:
    """Validate ``-t`` values (Docker's message for a bad one) and return their normalized forms."""
    result = []
    for tag in tags:
        try:
            ref = reference.parse(tag)
        except InvalidArgument as exc:
            raise InvalidArgument(f"invalid reference format: {tag}: {exc.message}") from None
        if ref.digest:
            raise InvalidArgument(f"invalid reference format: {tag}: a tag cannot have a digest")
        result.append(ref.normalized())
    return result
