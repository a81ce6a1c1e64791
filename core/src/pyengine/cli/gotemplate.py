"""The subset of Go's text/template that ``--format`` users type, with Docker's extra functions.

Semantics follow Go: ``.`` is rebound by ``range`` and ``with``; a piped value becomes the LAST argument
of the next command; ``{{-``/``-}}`` trim the whitespace beside an action; values print the way Go's
``fmt`` prints them (``[a b]``, ``map[k:v]``, ``<no value>`` for a missing map key, ``<nil>`` for null).
Data is JSON-shaped Python (dicts, lists, str, int, float, bool, None); dict keys are fields, and an
attribute of a dict subclass that is callable acts as a method (``{{.Label "com.example"}}``).

    >>> Template("{{.Name | upper}}").render({"Name": "web"})
    'WEB'
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pyengine.cli import gotemplate_funcs as funcs
from pyengine.cli.gotemplate_funcs import MISSING, TemplateError, go_string, truth
from pyengine.cli.gotemplate_parse import Parser, Pipeline, TemplateSyntaxError

__all__ = ["Template", "TemplateError", "TemplateSyntaxError", "render"]


class _Break(Exception):
    pass


class _ExecutionError(TemplateError):
    """An execution error already located (``template: :1: executing "" at <.X>: ...``)."""


class _Continue(Exception):
    pass


class Template:
    """A parsed template; ``render(data)`` returns the text. Raises TemplateError subclasses."""

    def __init__(
        self,
        text: str,
        functions: dict[str, Callable[..., Any]] | None = None,
        missing_key_error: bool = False,
    ) -> None:
        """``missing_key_error`` makes a missing map key an error, as ``docker inspect`` runs templates
        (Go's ``missingkey=error``); otherwise it prints ``<no value>``."""
        self.functions = dict(funcs.FUNCTIONS)
        if functions:
            self.functions.update(functions)
        self.missing_key_error = missing_key_error
        parser = Parser(text, self.functions)
        try:
            self.nodes = parser.parse()
        except TemplateSyntaxError as exc:
            raise TemplateSyntaxError(f"template: :{parser.line}: {exc}") from None

    def render(self, data: Any) -> str:
        out: list[str] = []
        self._walk(self.nodes, data, [("$", data)], out)
        return "".join(out)

    def _walk(self, nodes: list[Any], dot: Any, scope: list[tuple[str, Any]], out: list[str]) -> None:
        mark = len(scope)
        for node in nodes:
            if isinstance(node, str):
                out.append(node)
                continue
            try:
                self._node(node, dot, scope, out)
            except _ExecutionError:
                raise
            except TemplateError as exc:
                pipeline = node[1]
                raise _ExecutionError(
                    f'template: :{pipeline.line}: executing "" at <{pipeline.source}>: {exc}'
                ) from None
        del scope[mark:]

    def _node(self, node: tuple, dot: Any, scope: list[tuple[str, Any]], out: list[str]) -> None:
        kind = node[0]
        if kind == "action":
            value = self._pipeline(node[1], dot, scope)
            if not node[1].variables:
                out.append(go_string(value))
        elif kind in ("if", "with"):
            inner = len(scope)
            value = self._pipeline(node[1], dot, scope)
            if truth(value):
                self._walk(node[2], value if kind == "with" else dot, scope, out)
            else:
                self._walk(node[3], dot, scope, out)
            del scope[inner:]
        elif kind == "range":
            self._range(node, dot, scope, out)
        elif kind == "break":
            raise _Break
        elif kind == "continue":
            raise _Continue

    def _range(self, node: tuple, dot: Any, scope: list[tuple[str, Any]], out: list[str]) -> None:
        pipeline: Pipeline = node[1]
        variables = pipeline.variables
        value = self._pipeline(pipeline, dot, scope, declare=False)
        if isinstance(value, dict):
            pairs = [(key, value[key]) for key in sorted(value)]
        elif isinstance(value, list | tuple):
            pairs = list(enumerate(value))
        elif isinstance(value, int) and not isinstance(value, bool):
            pairs = [(index, index) for index in range(value)]
        elif value is None or value is MISSING:
            pairs = []
        else:
            raise TemplateError(f"range can't iterate over {go_string(value)}")
        if not pairs:
            self._walk(node[3], dot, scope, out)
            return
        for key, element in pairs:
            mark = len(scope)
            if len(variables) == 1:
                scope.append((variables[0], element))
            elif len(variables) == 2:
                scope.extend([(variables[0], key), (variables[1], element)])
            try:
                self._walk(node[2], element, scope, out)
            except _Continue:
                pass
            except _Break:
                break
            finally:
                del scope[mark:]

    def _pipeline(
        self, pipeline: Pipeline, dot: Any, scope: list[tuple[str, Any]], declare: bool = True
    ) -> Any:
        """The pipeline's value; ``declare`` binds its variables (range binds them per element)."""
        value: Any = _NO_FINAL
        for command in pipeline.commands:
            value = self._command(command, dot, scope, value)
        for name in pipeline.variables if declare else ():
            if pipeline.assign:
                for index in range(len(scope) - 1, -1, -1):
                    if scope[index][0] == name:
                        scope[index] = (name, value)
                        break
                else:
                    raise TemplateError(f"undefined variable: {name}")
            else:
                scope.append((name, value))
        return value

    def _command(self, command: list[tuple], dot: Any, scope: list[tuple[str, Any]], final: Any) -> Any:
        head, args = command[0], command[1:]
        kind = head[0]
        if (
            kind == "ident"
            and head[1] in ("and", "or")
            and self.functions[head[1]] is funcs.FUNCTIONS[head[1]]
        ):
            return self._and_or(head[1] == "and", args, dot, scope, final)
        if kind == "ident":
            values = [self._arg(arg, dot, scope) for arg in args]
            if final is not _NO_FINAL:
                values.append(final)
            try:
                return self.functions[head[1]](*values)
            except TemplateError:
                raise
            except TypeError as exc:
                raise TemplateError(
                    f"error calling {head[1]}: wrong number or type of args ({exc})"
                ) from None
            except (ValueError, IndexError, KeyError) as exc:
                raise TemplateError(f"error calling {head[1]}: {exc}") from None
        if kind == "field":
            receiver, names = dot, head[1]
        elif kind == "var":
            receiver, names = self._variable(head[1], scope), head[2]
        elif kind == "pipe":
            receiver, names = self._pipeline(head[1], dot, scope), head[2]
        else:
            if args or final is not _NO_FINAL:
                raise TemplateError(f"can't give argument to non-function {self._describe(head)}")
            return self._arg(head, dot, scope)
        call_args = [self._arg(arg, dot, scope) for arg in args]
        if final is not _NO_FINAL:
            call_args.append(final)
        return self._fields(receiver, names, call_args)

    def _and_or(
        self, is_and: bool, args: list[tuple], dot: Any, scope: list[tuple[str, Any]], final: Any
    ) -> Any:
        """Go's ``and``/``or`` stop at the first argument that decides (``{{if and .A (index .A 0)}}``
        must not evaluate the index when .A is empty)."""
        if not args and final is _NO_FINAL:
            raise TemplateError(
                f"wrong number of args for {'and' if is_and else 'or'}: want at least 1 got 0"
            )
        value: Any = None
        for arg in args:
            value = self._arg(arg, dot, scope)
            if funcs.truth(value) != is_and:
                return value
        if final is not _NO_FINAL:
            value = final
        return value

    def _arg(self, operand: tuple, dot: Any, scope: list[tuple[str, Any]]) -> Any:
        kind = operand[0]
        if kind == "literal":
            return operand[1]
        if kind == "dot":
            return dot
        if kind == "field":
            return self._fields(dot, operand[1], [])
        if kind == "var":
            return self._fields(self._variable(operand[1], scope), operand[2], [])
        if kind == "pipe":
            return self._fields(self._pipeline(operand[1], dot, scope), operand[2], [])
        if kind == "ident":
            return self.functions[operand[1]]()
        raise TemplateError(f"unknown operand {operand!r}")

    @staticmethod
    def _variable(name: str, scope: list[tuple[str, Any]]) -> Any:
        for key, value in reversed(scope):
            if key == name:
                return value
        raise TemplateError(f"undefined variable: {name}")

    @staticmethod
    def _describe(operand: tuple) -> str:
        return go_string(operand[1]) if operand[0] == "literal" else operand[0]

    def _fields(self, receiver: Any, names: list[str], args: list[Any]) -> Any:
        """Follow ``.A.B.C``; arguments go to the last name, which must then be a method."""
        for position, name in enumerate(names):
            last = position == len(names) - 1
            method = getattr(type(receiver), name, None) if not name.startswith("_") else None
            if isinstance(receiver, dict) and name in receiver:
                value = receiver[name]
            elif callable(method):
                value = getattr(receiver, name)(*(args if last else []))
                if last:
                    return value
            elif hasattr(receiver, "go_type_name"):
                raise TemplateError(f"can't evaluate field {name} in type {receiver.go_type_name}")
            elif isinstance(receiver, dict) and self.missing_key_error:
                raise TemplateError(f'map has no entry for key "{name}"')
            elif isinstance(receiver, dict) or receiver is None or receiver is MISSING:
                value = MISSING
            else:
                raise TemplateError(f"can't evaluate field {name} in type {funcs.go_type(receiver)}")
            if last and args:
                raise TemplateError(f"{name} is not a method but has arguments")
            receiver = value
        if not names and args:
            raise TemplateError("can't give argument to non-function")
        return receiver


_NO_FINAL = object()


def render(text: str, data: Any) -> str:
    """Parse and render in one call."""
    return Template(text).render(data)
