"""How a build step is taken from the cache (the local build cache, then ``--cache-from`` images),
and the output held back while a context sent by digest may still have to be sent in full."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pyengine.build import dockerfile as df
from pyengine.build.tarcontext import ContextNeeded
from pyengine.errors import InvalidArgument, NotFound
from pyengine.images.image import Image
from pyengine.images.lineage import set_parent

if TYPE_CHECKING:
    from pyengine.build.executor import StageState


class CachedSteps:
    """Part of :class:`pyengine.build.executor.Builder`: the cache lookups of its steps.

    ``held``: a context sent by digest holds the output back until the first step that is not
    cached; there the build either goes on (nothing after it reads the context) or stops with
    ContextNeeded, and the client sends the context in full and sees one build only.
    """

    held: list[str] | None
    position: tuple[int, int]
    in_trigger: bool
    plan: list[df.Stage]

    async def say(self, text: str) -> None:
        if self.held is not None:
            self.held.append(text)
        else:
            await self.emit({"stream": text})

    async def _cached(
        self,
        state: StageState,
        key: str,
        created_by: str | None = None,
        change: Callable[[Any], None] | None = None,
    ) -> bool:
        """Take the step's image from the cache when there is one (the local build cache, then the
        ``--cache-from`` images: ``created_by`` is the step's history text, ``change`` what it
        does to the config)."""
        if self.options.no_cache:
            return await self._miss()
        image = await asyncio.to_thread(self._local_hit, state, key)
        if image is None and self.cache_sources and created_by is not None:
            image = await asyncio.to_thread(self._source_hit, state, key, created_by, change)
        if image is None:
            return await self._miss()
        fresh = self._state_of(image)
        state.image_id, state.config, state.layers = fresh.image_id, fresh.config, fresh.layers
        await self.say(" ---> Using cache\n")
        await self.say(f" ---> {image.id[7:19]}\n")
        return True

    def _local_hit(self, state: StageState, key: str) -> Image | None:
        hit = self.cache.lookup(state.image_id, key)
        if hit is None or (self.allowed_cache is not None and hit not in self.allowed_cache):
            return None
        try:
            image = self.engine.images.resolve(hit)
        except NotFound:
            return None
        if state.image_id and not image.parent:
            # a loaded image that a step of this chain made: it is that step's child again, so
            # that rmi takes the chain with it (Docker's SetParent)
            set_parent(self.engine.db, image.id, state.image_id)
        return image

    def _source_hit(
        self, state: StageState, key: str, created_by: str, change: Callable[[Any], None] | None
    ) -> Image | None:
        store = self.engine.images
        parent = store.resolve(state.image_id) if state.image_id else None
        found = self.cache_sources.match(parent, created_by)
        if found is None:
            return None
        config = state.config.model_copy(deep=True)
        if change is not None:
            change(config.config)
        image = self.cache_sources.restore(store, parent, config, *found)
        self.cache.record(state.image_id, key, image.id)
        return image

    async def _miss(self) -> bool:
        """A step that is not cached is about to run: with a context sent by digest, go on only if
        nothing from here on reads the context's files."""
        if self.held is not None:
            if await asyncio.to_thread(self._context_needed_from_here):
                raise ContextNeeded("a step that is not cached needs the files of the context")
            await self._release()
        return False

    async def _release(self) -> None:
        held, self.held = self.held, None
        for text in held or ():
            await self.emit({"stream": text})

    def _context_needed_from_here(self) -> bool:
        """Whether the rest of the build, this step included, may read files of the context:
        COPY/ADD without --from, or build triggers (ONBUILD) that may hold one."""
        if self.in_trigger:
            return True
        stage_number, number = self.position
        for index in range(stage_number, len(self.plan)):
            stage = self.plan[index]
            if index > stage_number and self._base_has_triggers(stage):
                return True
            for ins in stage.instructions[number if index == stage_number else 0 :]:
                if ins.name in ("COPY", "ADD") and "from" not in ins.flags:
                    return True
        return False

    def _base_has_triggers(self, stage: df.Stage) -> bool:
        base = df.expand(stage.base, self.meta_env, self.escape).lower()
        if base == "scratch":
            return False
        for earlier in self.plan:
            if earlier.name and earlier.name == base:
                return any(ins.name == "ONBUILD" for ins in earlier.instructions)
        try:
            return bool(self.engine.images.resolve(base).config.config.OnBuild)
        except (NotFound, InvalidArgument):
            return True  # the build fails there anyway; the full context gives the same error
