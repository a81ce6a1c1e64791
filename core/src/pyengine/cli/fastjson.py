"""JSON for the run path, straight from CPython's ``_json`` accelerator.

``import json`` pulls in ``re`` (and with it ``enum``): about 5 ms of a ``pyengine run`` in a clean
virtualenv, for a module whose regular expressions the C scanner and encoder never use. This module
builds the same C scanner and encoder that ``json`` builds, with ``json``'s default settings, and falls
back to ``json`` itself where ``_json`` is missing (other Python implementations).
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

try:
    import _json
except ImportError:  # pragma: no cover - CPython always has it
    _json = None

_WHITESPACE = " \t\n\r"


class _DecoderSettings:
    """The attributes ``_json.make_scanner`` reads, set as ``json.JSONDecoder()`` sets them."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    memo: dict[str, str] = {}

    @staticmethod
    def parse_constant(name: str) -> float:
        return {"NaN": float("nan"), "Infinity": float("inf"), "-Infinity": float("-inf")}[name]


if _json is not None:
    _scan = _json.make_scanner(_DecoderSettings())


def _unsupported(value: Any) -> Any:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def loads(text: str | bytes) -> Any:
    """``json.loads`` for a complete document; raises ValueError when it is not JSON."""
    if isinstance(text, bytes):
        text = text.decode()
    if _json is None:  # pragma: no cover
        import json

        return json.loads(text)
    start = len(text) - len(text.lstrip(_WHITESPACE))
    try:
        value, end = _scan(text, start)
    except StopIteration as exc:
        raise ValueError(f"Expecting value at character {exc.value}") from None
    if text[end:].strip(_WHITESPACE):
        raise ValueError(f"Extra data at character {end}")
    return value


def dumps(value: Any) -> str:
    """``json.dumps`` with default settings (ASCII, ``", "`` and ``": "`` separators)."""
    if _json is None:  # pragma: no cover
        import json

        return json.dumps(value)
    return "".join(_make_encoder()(value, 0))


def _make_encoder() -> Any:
    # A fresh encoder per call: the markers dict that detects cycles must start empty. Arguments as
    # json.JSONEncoder passes them: markers, default, string encoder, indent, key separator, item
    # separator, sort_keys, skipkeys, allow_nan.
    return _json.make_encoder(
        {}, _unsupported, _json.encode_basestring_ascii, None, ": ", ", ", False, False, True
    )
