"""Parsing Go text/template syntax: the lexer for the inside of ``{{ }}`` and the parser to nodes.

The executor lives in :mod:`pyengine.cli.gotemplate`; see there for the semantics.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pyengine.cli.gotemplate_funcs import TemplateError


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

        value = json.loads(
            '"' + raw.replace("\\'", "'").replace("\\a", "\\u0007").replace("\\v", "\\u000b") + '"'
        )
    except ValueError:
        raise TemplateSyntaxError(f"invalid syntax in string {text[pos : end + 1]}") from None
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
    while end < len(text) and (
        text[end] in _IDENT_CHARS or text[end] in ".+-" and text[end - 1] in "eE" or text[end] == "."
    ):
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

    def __init__(
        self, variables: list[str], assign: bool, commands: list[list[tuple]], source: str, line: int = 1
    ):
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
            if (
                text.startswith("- ", inner_start)
                or text.startswith("-\t", inner_start)
                or text.startswith("-\n", inner_start)
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
            if char in '"`':
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
        pipeline = self._parse_pipeline(
            tokens, " ".join(str(t.value) for t in tokens), allow_two_vars=keyword == "range"
        )
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
            elif (
                allow_two_vars
                and len(tokens) > 3
                and tokens[1].kind == "comma"
                and tokens[2].kind == "var"
                and tokens[3].kind == "declare"
            ):
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
