"""Helpers every route module uses: query values, JSON bodies, the engine, running core code off-loop."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from pyengine.errors import InvalidArgument

ENGINE_KEY: web.AppKey = web.AppKey("engine", object)
T = TypeVar("T", bound=BaseModel)

_FALSE = {"", "0", "no", "false", "none"}


def engine(request: web.Request) -> Any:
    return request.app[ENGINE_KEY]


def query_bool(request: web.Request, name: str, default: bool = False) -> bool:
    """moby's BoolValue: "", 0, no, false, none (any case) are false; anything else true."""
    if name not in request.query:
        return default
    return request.query[name].strip().lower() not in _FALSE


def query_int(request: web.Request, name: str, default: int | None = None) -> int | None:
    value = request.query.get(name, "")
    if value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise InvalidArgument(f"invalid value for {name}: {value!r}") from None


async def json_body(request: web.Request, model: type[T] | None = None, *, optional: bool = False) -> Any:
    """Parse the body as JSON (and into ``model``): 400 for malformed JSON or wrongly typed fields."""
    raw = await request.read()
    if not raw.strip():
        if optional or model is None:
            return model() if model is not None else {}
        raw = b"{}"
    try:
        doc = json.loads(raw)
    except ValueError as exc:
        raise InvalidArgument(f"invalid JSON: {exc}") from exc
    if model is None:
        return doc
    if not isinstance(doc, dict):
        raise InvalidArgument("invalid JSON: expected an object")
    try:
        return model.model_validate(doc)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        raise InvalidArgument(f"invalid value for {where}: {first.get('msg')}") from exc


async def off_loop(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run blocking core code (disk, SQLite, tar) in a worker thread, never on the event loop."""
    return await asyncio.to_thread(func, *args, **kwargs)


def json_response(doc: Any, status: int = 200) -> web.Response:
    return web.Response(
        body=json.dumps(doc, separators=(",", ":")).encode() + b"\n",
        status=status,
        content_type="application/json",
    )


def no_content() -> web.Response:
    return web.Response(status=204)
