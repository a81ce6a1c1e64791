"""Go's printing rules and the functions a ``--format`` template can call.

Go's built-ins (and, or, not, len, index, slice, print, printf, println, eq, ne, lt, le, gt, ge) plus
the ones the docker CLI adds (json, split, join, title, lower, upper, pad, truncate).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any


class TemplateError(Exception):
    """A template failed to parse or to execute; the message says where and why."""


class _Missing:
    """A map key that is not there: Go prints it as ``<no value>``."""

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


def go_float(value: float) -> str:
    """A float64 as Go's %v prints it: no trailing ``.0``, exponent from 1e21 up."""
    if value != value:
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "+Inf" if value > 0 else "-Inf"
    if value.is_integer() and abs(value) < 1e21:
        return str(int(value))
    text = repr(value)
    if "e" in text:
        mantissa, _, exponent = text.partition("e")
        sign = "-" if exponent.startswith("-") else "+"
        digits = exponent.lstrip("+-").rjust(2, "0")
        return f"{mantissa}e{sign}{digits}"
    return text


def go_string(value: Any) -> str:
    """How text/template prints a value (fmt's %v)."""
    if isinstance(value, str):
        return value
    if value is MISSING:
        return "<no value>"
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return go_float(value)
    if isinstance(value, list | tuple):
        return "[" + " ".join(go_string(item) for item in value) + "]"
    if isinstance(value, dict):
        return "map[" + " ".join(f"{key}:{go_string(value[key])}" for key in sorted(value)) + "]"
    return str(value)


def go_type(value: Any) -> str:
    """Go's name for the type a JSON value would have (for error messages)."""
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float64"
    if isinstance(value, list | tuple):
        return "[]interface {}"
    if isinstance(value, dict):
        return "map[string]interface {}"
    return type(value).__name__


def truth(value: Any) -> bool:
    """Go's truth: false, 0, nil and empty strings, slices and maps are false."""
    if value is MISSING or value is None:
        return False
    if isinstance(value, bool | int | float | str | list | tuple | dict):
        return bool(value)
    return True


def go_quote(text: str) -> str:
    """strconv.Quote, close enough: a double-quoted string with Go escapes."""
    return json.dumps(text, ensure_ascii=False)


def to_json(value: Any) -> str:
    """Docker's ``json`` function: compact JSON without HTML escaping."""
    if value is MISSING:
        value = None
    if hasattr(value, "go_json"):
        return value.go_json()
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _length(value: Any) -> int:
    if isinstance(value, str):
        return len(value.encode())
    if isinstance(value, list | tuple | dict):
        return len(value)
    if value is None or value is MISSING:
        raise TemplateError("error calling len: len of nil pointer")
    raise TemplateError(f"error calling len: len of type {go_type(value)}")


def _index(item: Any, *indices: Any) -> Any:
    for key in indices:
        if isinstance(item, dict):
            item = item.get(key, MISSING) if isinstance(key, str) else MISSING
        elif isinstance(item, list | tuple | str):
            if not isinstance(key, int) or isinstance(key, bool):
                raise TemplateError(f"error calling index: cannot index slice/array with type {go_type(key)}")
            if not 0 <= key < len(item):
                raise TemplateError(f"error calling index: index out of range: {key}")
            item = item[key] if not isinstance(item, str) else item.encode()[key]
        elif item is None or item is MISSING:
            raise TemplateError("error calling index: index of untyped nil")
        else:
            raise TemplateError(f"error calling index: can't index item of type {go_type(item)}")
    return item


def _slice(item: Any, *indices: int) -> Any:
    if not isinstance(item, str | list | tuple):
        raise TemplateError(f"error calling slice: can't slice item of type {go_type(item)}")
    if len(indices) > 2:
        raise TemplateError("error calling slice: too many slice indexes")
    start = indices[0] if indices else 0
    end = indices[1] if len(indices) > 1 else len(item)
    if not 0 <= start <= end <= len(item):
        raise TemplateError(f"error calling slice: index out of range: {start}:{end}")
    return item[start:end]


def _sprint(*args: Any) -> str:
    """fmt.Sprint: a space between operands when neither is a string."""
    out = []
    for position, arg in enumerate(args):
        if position and not isinstance(arg, str) and not isinstance(args[position - 1], str):
            out.append(" ")
        out.append(go_string(arg))
    return "".join(out)


def _sprintln(*args: Any) -> str:
    return " ".join(go_string(arg) for arg in args) + "\n"


_VERB_FLAGS = "+-# 0"


def sprintf(format_text: str, *args: Any) -> str:
    """fmt.Sprintf for the verbs people use: %v %s %d %q %f %g %e %x %X %o %b %t %c %%."""
    out: list[str] = []
    position = 0
    arg_index = 0
    length = len(format_text)
    while position < length:
        char = format_text[position]
        if char != "%":
            out.append(char)
            position += 1
            continue
        position += 1
        flags = ""
        while position < length and format_text[position] in _VERB_FLAGS:
            flags += format_text[position]
            position += 1
        width = ""
        while position < length and format_text[position].isdigit():
            width += format_text[position]
            position += 1
        precision = None
        if position < length and format_text[position] == ".":
            position += 1
            precision = ""
            while position < length and format_text[position].isdigit():
                precision += format_text[position]
                position += 1
        if position >= length:
            out.append("%!(NOVERB)")
            break
        verb = format_text[position]
        position += 1
        if verb == "%":
            out.append("%")
            continue
        if arg_index >= len(args):
            out.append(f"%!{verb}(MISSING)")
            continue
        arg = args[arg_index]
        arg_index += 1
        out.append(_format_one(verb, flags, width, precision, arg))
    if arg_index < len(args):
        extra = ", ".join(f"{go_type(arg)}={go_string(arg)}" for arg in args[arg_index:])
        out.append(f"%!(EXTRA {extra})")
    return "".join(out)


def _format_one(verb: str, flags: str, width: str, precision: str | None, arg: Any) -> str:
    spec_prec = f".{precision or 0}" if precision is not None else ""
    spec = f"%{flags}{width}{spec_prec}"
    if verb in "vs":
        return (f"%{flags.replace('0', '')}{width}{spec_prec}s") % go_string(arg)
    if verb == "q":
        return (f"%{flags.replace('0', '')}{width}s") % go_quote(go_string(arg))
    if verb == "t":
        if not isinstance(arg, bool):
            return f"%!t({go_type(arg)}={go_string(arg)})"
        return (f"%{width}s") % go_string(arg)
    if verb in "dxXob":
        if isinstance(arg, str) and verb in "xX":
            text = arg.encode().hex()
            return (f"%{width}s") % (text.upper() if verb == "X" else text)
        if not isinstance(arg, int) or isinstance(arg, bool):
            return f"%!{verb}({go_type(arg)}={go_string(arg)})"
        if verb == "b":
            return (f"%{flags}{width}s") % format(arg, "b")
        return (f"%{flags}{width}{verb}") % arg
    if verb in "feEgG":
        if not isinstance(arg, int | float) or isinstance(arg, bool):
            return f"%!{verb}({go_type(arg)}={go_string(arg)})"
        if verb in "gG" and precision is None:
            return (f"%{flags}{width}s") % go_float(float(arg))
        return (spec + verb) % float(arg)
    if verb == "c":
        if not isinstance(arg, int):
            return f"%!c({go_type(arg)}={go_string(arg)})"
        return (f"%{width}s") % chr(arg)
    return f"%!{verb}({go_type(arg)}={go_string(arg)})"


def _compare(name: str, op: Callable[[Any, Any], bool]) -> Callable[[Any, Any], bool]:
    def compare(left: Any, right: Any) -> bool:
        numbers = (int, float)
        if (
            isinstance(left, bool)
            or isinstance(right, bool)
            or not (
                isinstance(left, numbers)
                and isinstance(right, numbers)
                or isinstance(left, str)
                and isinstance(right, str)
            )
        ):
            raise TemplateError(f"error calling {name}: incompatible types for comparison")
        return op(left, right)

    return compare


def _eq(first: Any, *others: Any) -> bool:
    if not others:
        raise TemplateError("error calling eq: missing argument for comparison")
    return any(first == other and isinstance(first, bool) == isinstance(other, bool) for other in others)


def _and(*args: Any) -> Any:
    for arg in args:
        if not truth(arg):
            return arg
    return args[-1]


def _or(*args: Any) -> Any:
    for arg in args:
        if truth(arg):
            return arg
    return args[-1]


def _title(text: Any) -> str:
    """strings.Title: upper-case the first letter of every word."""
    out = []
    previous = " "
    for char in go_string(text):
        out.append(char.upper() if not (previous.isalnum() or previous == "_") else char)
        previous = char
    return "".join(out)


def _split(text: Any, separator: str) -> list[str]:
    text = go_string(text)
    if separator == "":
        return list(text)
    return text.split(separator)


def _join(items: Any, separator: Any) -> str:
    if items is None or items is MISSING:
        return ""
    if not isinstance(items, list | tuple):
        raise TemplateError(f"wrong type for value; expected []string; got {go_type(items)}")
    return go_string(separator).join(go_string(item) for item in items)


def _pad(text: Any, prefix: int, suffix: int) -> str:
    text = go_string(text)
    if text == "":
        return text
    return " " * prefix + text + " " * suffix


def _truncate(text: Any, length: int) -> str:
    text = go_string(text)
    return text if len(text) < length else text[:length]


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "and": _and,
    "or": _or,
    "not": lambda value: not truth(value),
    "len": _length,
    "index": _index,
    "slice": _slice,
    "print": _sprint,
    "printf": sprintf,
    "println": _sprintln,
    "eq": _eq,
    "ne": lambda left, right: not _eq(left, right),
    "lt": _compare("lt", lambda a, b: a < b),
    "le": _compare("le", lambda a, b: a <= b),
    "gt": _compare("gt", lambda a, b: a > b),
    "ge": _compare("ge", lambda a, b: a >= b),
    "json": to_json,
    "split": _split,
    "join": _join,
    "title": _title,
    "lower": lambda text: go_string(text).lower(),
    "upper": lambda text: go_string(text).upper(),
    "pad": _pad,
    "truncate": _truncate,
}
