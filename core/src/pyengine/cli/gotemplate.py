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


class TemplateSyntaxError(TemplateError):
    """The template does not parse (Docker: ``template parsing error: ...``)."""


# ---------------------------------------------------------------------------------------------- lexer

_SPACE = " \t\r\n"
_IDENT_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_"


class Token:
    __slots__ = ("kind", "value", "spaced")

    def __init__(self, kind: str, value: Any, spaced: bool) -> None:
        self.kind = kind  # field, var, ident, string, number, bool, nil, dot, pipe, lparen, rparen, ...
        self.value = value
        self.spaced = spaced  # whitespace came before it: ".A .B" is two args, "$x.B" a chain

    def __repr__(self) -> str:
        return f"Token({self.kind}, {self.value!r})"


def _read_quoted(text: str, pos: int) -> tuple[str, int]:
    """A Go interpreted string literal starting at ``text[pos] == '"'``; returns (value, end)."""
    end = pos + 1
    while end < len(text) and text[end] != '"':
        if text[end] == "\\":
            end += 1
        elif text[end] == "\n":
            raise TemplateSyntaxError("unterminated quoted string")
        end += 1
    if end >= len(text):
        raise TemplateSyntaxError("unterminated quoted string")
    raw = text[pos + 1 : end]
    try:
        import json

        value = json.loads('"' + raw.replace("\\'", "'").replace("\\a", "\\u0007").replace(
            "\\v", "\\u000b") + '"')
    except ValueError:
        raise TemplateSyntaxError(f"invalid syntax in string {text[pos:end + 1]}") from None
    return value, end + 1


def tokenize(text: str) -> list[Token]:
    """The tokens of the inside of one action."""
    tokens: list[Token] = []
    pos = 0
    spaced = True
    while pos < len(text):
        char = text[pos]
        if char in _SPACE:
            pos += 1
            spaced = True
            continue
        if char == ".":
            end = pos + 1
            if end < len(text) and (text[end].isalpha() or text[end] == "_"):
                while end < len(text) and text[end] in _IDENT_CHARS:
                    end += 1
                tokens.append(Token("field", text[pos + 1 : end], spaced))
            elif end < len(text) and text[end].isdigit():
                end = _number_end(text, pos)
                tokens.append(Token("number", _number(text[pos:end]), spaced))
            else:
                tokens.append(Token("dot", ".", spaced))
            pos = end
        elif char == "$":
            end = pos + 1
            while end < len(text) and text[end] in _IDENT_CHARS:
                end += 1
            tokens.append(Token("var", text[pos:end], spaced))
            pos = end
        elif char == '"':
            value, pos = _read_quoted(text, pos)
            tokens.append(Token("string", value, spaced))
        elif char == "`":
            end = text.find("`", pos + 1)
            if end < 0:
                raise TemplateSyntaxError("unterminated raw quoted string")
            tokens.append(Token("string", text[pos + 1 : end], spaced))
            pos = end + 1
        elif char.isdigit() or (char in "+-" and pos + 1 < len(text) and text[pos + 1].isdigit()):
            end = _number_end(text, pos)
            tokens.append(Token("number", _number(text[pos:end]), spaced))
            pos = end
        elif char.isalpha() or char == "_":
            end = pos
            while end < len(text) and text[end] in _IDENT_CHARS:
                end += 1
            word = text[pos:end]
            if word in ("true", "false"):
                tokens.append(Token("bool", word == "true", spaced))
            elif word == "nil":
                tokens.append(Token("nil", None, spaced))
            else:
                tokens.append(Token("ident", word, spaced))
            pos = end
        elif text.startswith(":=", pos):
            tokens.append(Token("declare", ":=", spaced))
            pos += 2
        elif char in "|()=,":
            kind = {"|": "pipe", "(": "lparen", ")": "rparen", "=": "assign", ",": "comma"}[char]
            tokens.append(Token(kind, char, spaced))
            pos += 1
        else:
            raise TemplateSyntaxError(f"unexpected {char!r} in command")
        spaced = False
    return tokens


def _number_end(text: str, pos: int) -> int:
    end = pos + 1
    while end < len(text) and (text[end] in _IDENT_CHARS or text[end] in ".+-" and text[end - 1] in "eE"
                               or text[end] == "."):
        end += 1
    return end


def _number(word: str) -> int | float:
    try:
        return int(word.replace("_", ""), 0)
    except ValueError:
        pass
    try:
        return float(word)
    except ValueError:
        raise TemplateSyntaxError(f"bad number syntax: {word!r}") from None


# ---------------------------------------------------------------------------------------------- nodes
# Operands: ("field", names) on dot; ("var", name, names); ("dot",); ("literal", value);
# ("ident", name) a function; ("pipe", Pipeline, names) a parenthesized pipeline with a field chain.


class Pipeline:
    __slots__ = ("variables", "assign", "commands", "source", "line")

    def __init__(self, variables: list[str], assign: bool, commands: list[list[tuple]], source: str,
                 line: int = 1):
        self.variables = variables
        self.assign = assign
        self.commands = commands
        self.source = source
        self.line = line


class Parser:
    """Turns template text into a list of nodes: str, ("action", Pipeline), ("if"|"with"|"range",
    Pipeline, body, else_body), ("break",), ("continue",)."""

    def __init__(self, text: str, functions: dict[str, Callable[..., Any]]) -> None:
        self.text = text
        self.functions = functions
        self.line = 1  # of the action being parsed, for error messages
        self.items: list[tuple[str, str, int]] = []
        self.index = 0

    def _split(self, text: str) -> list[tuple[str, str, int]]:
        """("text", s, line) and ("action", inside, line) pieces, with trim markers applied."""
        items: list[tuple[str, str, int]] = []
        pos = 0
        trim_next = False
        while True:
            start = text.find("{{", pos)
            chunk = text[pos:] if start < 0 else text[pos:start]
            if trim_next:
                chunk = chunk.lstrip(_SPACE)
            if start < 0:
                if chunk:
                    items.append(("text", chunk, 0))
                return items
            self.line = text.count("\n", 0, start) + 1
            inner_start = start + 2
            if text.startswith("- ", inner_start) or text.startswith("-\t", inner_start) or text.startswith(
                "-\n", inner_start
            ):
                chunk = chunk.rstrip(_SPACE)
                inner_start += 1
            if chunk:
                items.append(("text", chunk, 0))
            if text.startswith("/*", inner_start) or text.startswith(" /*", inner_start):
                end = text.find("*/", inner_start)
                if end < 0:
                    raise TemplateSyntaxError("unclosed comment")
                close = text.find("}}", end)
                if close < 0:
                    raise TemplateSyntaxError("unclosed action")
                trim_next = text[end + 2 : close].strip() == "-"
                pos = close + 2
                continue
            close = self._find_close(text, inner_start)
            inner = text[inner_start:close]
            trim_next = False
            if inner.endswith(" -") or inner.endswith("\t-") or inner.endswith("\n-"):
                inner = inner[:-1]
                trim_next = True
            items.append(("action", inner, self.line))
            pos = close + 2

    @staticmethod
    def _find_close(text: str, pos: int) -> int:
        """The index of the ``}}`` that ends the action, skipping quoted strings."""
        while pos < len(text):
            if text.startswith("}}", pos):
                return pos
            char = text[pos]
            if char in "\"`":
                pos += 1
                while pos < len(text) and text[pos] != char:
                    if char == '"' and text[pos] == "\n":
                        break
                    pos += 2 if char == '"' and text[pos] == "\\" else 1
                if pos >= len(text) or text[pos] != char:
                    kind = "raw quoted string" if char == "`" else "quoted string"
                    raise TemplateSyntaxError(f"unterminated {kind}")
            pos += 1
        raise TemplateSyntaxError("unclosed action")

    def parse(self) -> list[Any]:
        self.items = self._split(self.text)
        nodes, terminator = self._parse_list()
        if terminator is not None:
            raise TemplateSyntaxError(f"unexpected {{{{{terminator[0]}}}}}")
        return nodes

    def _parse_list(self, loop: bool = False) -> tuple[list[Any], tuple[str, list[Token]] | None]:
        """Nodes up to an ``end``/``else`` (returned as the terminator) or the end of the text."""
        nodes: list[Any] = []
        while self.index < len(self.items):
            kind, content, line = self.items[self.index]
            self.index += 1
            if kind == "text":
                nodes.append(content)
                continue
            self.line = line
            tokens = tokenize(content)
            if not tokens:
                raise TemplateSyntaxError("missing value for command")
            head = tokens[0]
            keyword = head.value if head.kind == "ident" else None
            if keyword in ("end", "else"):
                return nodes, (keyword, tokens[1:])
            if keyword in ("if", "with", "range"):
                nodes.append(self._parse_control(keyword, tokens[1:], loop))
            elif keyword in ("break", "continue"):
                if not loop:
                    raise TemplateSyntaxError(f"{{{{{keyword}}}}} outside {{{{range}}}}")
                nodes.append((keyword,))
            elif keyword in ("define", "template", "block"):
                raise TemplateSyntaxError(f"{{{{{keyword}}}}} is not supported")
            else:
                nodes.append(("action", self._parse_pipeline(tokens, content.strip())))
        return nodes, None

    def _parse_control(self, keyword: str, tokens: list[Token], loop: bool) -> tuple:
        if not tokens:
            raise TemplateSyntaxError(f"missing value for {keyword}")
        pipeline = self._parse_pipeline(tokens, " ".join(str(t.value) for t in tokens),
                                        allow_two_vars=keyword == "range")
        body, terminator = self._parse_list(loop or keyword == "range")
        else_body: list[Any] = []
        if terminator is None:
            raise TemplateSyntaxError(f"unexpected EOF: missing {{{{end}}}} for {{{{{keyword}}}}}")
        if terminator[0] == "else":
            rest = terminator[1]
            if rest and rest[0].kind == "ident" and rest[0].value in ("if", "with"):
                # {{else if x}} is {{else}}{{if x}}...{{end}} sharing the outer {{end}}
                else_body = [self._parse_control(rest[0].value, rest[1:], loop)]
                return (keyword, pipeline, body, else_body)
            if rest:
                raise TemplateSyntaxError("unexpected tokens after {{else}}")
            else_body, terminator = self._parse_list(loop)
            if terminator is None or terminator[0] != "end":
                raise TemplateSyntaxError(f"expected {{{{end}}}} for {{{{{keyword}}}}}")
        if terminator[1]:
            raise TemplateSyntaxError("unexpected tokens after {{end}}")
        return (keyword, pipeline, body, else_body)

    def _parse_pipeline(self, tokens: list[Token], source: str, allow_two_vars: bool = False) -> Pipeline:
        variables: list[str] = []
        assign = False
        position = 0
        # "$x :=", "$x =", "$i, $e :="
        if tokens and tokens[0].kind == "var":
            if len(tokens) > 1 and tokens[1].kind in ("declare", "assign"):
                variables, assign, position = [tokens[0].value], tokens[1].kind == "assign", 2
            elif allow_two_vars and len(tokens) > 3 and tokens[1].kind == "comma" and tokens[2].kind == "var" \
                    and tokens[3].kind == "declare":
                variables, position = [tokens[0].value, tokens[2].value], 4
        commands: list[list[tuple]] = []
        command: list[tuple] = []
        while position < len(tokens):
            token = tokens[position]
            if token.kind == "pipe":
                if not command:
                    raise TemplateSyntaxError("missing command before |")
                commands.append(command)
                command = []
                position += 1
                continue
            operand, position = self._parse_operand(tokens, position)
            command.append(operand)
        if not command:
            raise TemplateSyntaxError(f"missing value for command in {source!r}")
        commands.append(command)
        for later in commands[1:]:
            if later[0][0] == "literal":
                raise TemplateSyntaxError("non executable command in pipeline stage")
        return Pipeline(variables, assign, commands, source, self.line)

    def _parse_operand(self, tokens: list[Token], position: int) -> tuple[tuple, int]:
        token = tokens[position]
        position += 1
        if token.kind == "field":
            names = [token.value]
            position = self._chain(tokens, position, names)
            return ("field", names), position
        if token.kind == "var":
            names: list[str] = []
            position = self._chain(tokens, position, names)
            return ("var", token.value, names), position
        if token.kind == "dot":
            return ("dot",), position
        if token.kind in ("string", "number", "bool", "nil"):
            return ("literal", token.value), position
        if token.kind == "ident":
            if token.value not in self.functions:
                raise TemplateSyntaxError(f'function "{token.value}" not defined')
            return ("ident", token.value), position
        if token.kind == "lparen":
            depth, end = 1, position
            while end < len(tokens) and depth:
                depth += {"lparen": 1, "rparen": -1}.get(tokens[end].kind, 0)
                end += 1
            if depth:
                raise TemplateSyntaxError("unclosed left paren")
            inner = self._parse_pipeline(tokens[position : end - 1], "(...)")
            names = []
            end = self._chain(tokens, end, names)
            return ("pipe", inner, names), end
        raise TemplateSyntaxError(f"unexpected {token.value!r} in operand")

    @staticmethod
    def _chain(tokens: list[Token], position: int, names: list[str]) -> int:
        while position < len(tokens) and tokens[position].kind == "field" and not tokens[position].spaced:
            names.append(tokens[position].value)
            position += 1
        return position


# ------------------------------------------------------------------------------------------ executor


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

    def _pipeline(self, pipeline: Pipeline, dot: Any, scope: list[tuple[str, Any]], declare: bool = True) -> Any:
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
        if kind == "ident":
            values = [self._arg(arg, dot, scope) for arg in args]
            if final is not _NO_FINAL:
                values.append(final)
            try:
                return self.functions[head[1]](*values)
            except TemplateError:
                raise
            except TypeError as exc:
                raise TemplateError(f"error calling {head[1]}: wrong number or type of args ({exc})") from None
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
