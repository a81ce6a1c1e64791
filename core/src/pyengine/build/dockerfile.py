"""The Dockerfile language: parsing (BuildKit's parser, ported by ``e2b-dockerfile-utils``) into stages
of instructions, and Docker's variable substitution.

The library gives line-level syntax (directives, continuations, comments, heredocs, JSON forms, flags);
this module adds what the classic builder checks on top: which flags each instruction takes, the shape
of FROM, and errors that name the line and the instruction.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from e2b_dockerfile_utils import DockerfileSyntaxError, ShellLex, parse_dockerfile_ast

from pyengine.errors import InvalidArgument, NotSupported

# The flags each instruction accepts (anything else is Docker's "Unknown flag").
_FLAGS: dict[str, set[str]] = {
    "FROM": {"platform"},
    "COPY": {"from", "chown", "chmod", "link", "parents", "exclude"},
    "ADD": {"chown", "chmod", "link", "checksum", "keep-git-dir"},
    "RUN": {"mount", "network", "security"},
    "HEALTHCHECK": {"interval", "timeout", "start-period", "start-interval", "retries"},
}
# BuildKit-only flags: known, but refused with a clear reason rather than silently ignored.
_BUILDKIT_ONLY: dict[str, set[str]] = {
    "COPY": {"parents", "exclude"},
    "ADD": {"keep-git-dir"},
    "RUN": {"mount", "network", "security"},
}
# Instructions whose arguments go through variable substitution (the classic builder's list).
SUBSTITUTED = {
    "ADD",
    "COPY",
    "ENV",
    "EXPOSE",
    "FROM",
    "LABEL",
    "STOPSIGNAL",
    "USER",
    "VOLUME",
    "WORKDIR",
    "ARG",
}


@dataclass
class Heredoc:
    name: str
    content: str
    expand: bool


@dataclass
class Instruction:
    """One instruction: ``name`` upper-cased, ``args`` as the parser split them, ``flags`` by name."""

    name: str
    args: list[str]
    flags: dict[str, str]
    json: bool
    line: int
    original: str
    heredocs: list[Heredoc] = field(default_factory=list)

    @property
    def rest(self) -> str:
        """The text after the keyword and its flags (ONBUILD's trigger, CMD's shell form)."""
        text = self.original.split(None, 1)[1] if " " in self.original.strip() else ""
        while text.startswith("--"):
            text = text.split(None, 1)[1] if " " in text else ""
        return text


@dataclass
class Stage:
    index: int
    base: str  # the FROM argument, unexpanded
    name: str | None
    platform: str | None
    line: int
    original: str
    instructions: list[Instruction] = field(default_factory=list)


@dataclass
class Dockerfile:
    meta_args: list[Instruction]  # the ARGs before the first FROM
    stages: list[Stage]
    escape: str

    def select(self, target: str | None) -> list[Stage]:
        """The stages up to and including ``target`` (all for None); InvalidArgument if unknown."""
        if not target:
            return self.stages
        for stage in self.stages:
            if stage.name and stage.name.lower() == target.lower():
                return self.stages[: stage.index + 1]
        raise InvalidArgument(f"failed to reach build target {target} in Dockerfile")


def parse(text: str) -> Dockerfile:
    """Parse a Dockerfile; InvalidArgument naming the line and the instruction for bad input."""
    try:
        ast = parse_dockerfile_ast(text)
    except DockerfileSyntaxError as exc:
        raise InvalidArgument(str(exc)) from None
    meta_args: list[Instruction] = []
    stages: list[Stage] = []
    for raw in ast.instructions:
        instruction = _instruction(raw)
        if instruction.name == "FROM":
            stages.append(_stage(instruction, len(stages)))
        elif not stages:
            if instruction.name != "ARG":
                raise InvalidArgument(
                    f"Dockerfile parse error on line {instruction.line}: {instruction.name} "
                    "instruction before the first FROM (only ARG may come first)"
                )
            meta_args.append(instruction)
        else:
            stages[-1].instructions.append(instruction)
    if not stages:
        raise InvalidArgument("Dockerfile parse error: file with no instructions (no FROM)")
    return Dockerfile(meta_args, stages, ast.escape_token)


def parse_trigger(text: str, line: int) -> Instruction:
    """An ONBUILD trigger as an instruction of its own."""
    try:
        ast = parse_dockerfile_ast(text)
    except DockerfileSyntaxError as exc:
        raise InvalidArgument(f"Dockerfile parse error on line {line}: ONBUILD: {exc}") from None
    if len(ast.instructions) != 1:
        raise InvalidArgument(f"Dockerfile parse error on line {line}: ONBUILD needs one instruction")
    instruction = _instruction(ast.instructions[0])
    instruction.line = line
    if instruction.name in ("ONBUILD", "FROM", "MAINTAINER"):
        raise InvalidArgument(f"{instruction.name} isn't allowed as an ONBUILD trigger")
    return instruction


def _instruction(raw) -> Instruction:  # noqa: ANN001 - the library's DockerfileInstruction
    flags: dict[str, str] = {}
    allowed = _FLAGS.get(raw.name, set())
    for flag in raw.flags:
        key, _, value = flag[2:].partition("=")
        if key not in allowed:
            raise InvalidArgument(
                f"Dockerfile parse error on line {raw.start_line}: {raw.name}: Unknown flag: {key}"
            )
        if key in _BUILDKIT_ONLY.get(raw.name, set()):
            raise NotSupported(
                f"Dockerfile line {raw.start_line}: {raw.name} --{key} needs BuildKit, which pyengine's "
                "builder (the classic one) does not implement"
            )
        flags[key] = value
    return Instruction(
        name=raw.name,
        args=list(raw.args),
        flags=flags,
        json=raw.json,
        line=raw.start_line,
        original=raw.original,
        heredocs=[Heredoc(h.name, h.content, h.expand) for h in raw.heredocs],
    )


def _stage(instruction: Instruction, index: int) -> Stage:
    args = instruction.args
    name = None
    if len(args) == 3 and args[1].lower() == "as":
        name = args[2].lower()
    elif len(args) != 1:
        raise InvalidArgument(
            f"Dockerfile parse error on line {instruction.line}: FROM requires either one or three arguments"
        )
    return Stage(
        index, args[0], name, instruction.flags.get("platform"), instruction.line, instruction.original
    )


def expand(word: str, env: Mapping[str, str], escape: str = "\\") -> str:
    """Docker's substitution of one word: ``$V``, ``${V}``, ``${V:-default}``, ``${V:+alt}``, quotes
    and escapes removed; an unset variable is empty."""
    try:
        return ShellLex(escape, env=dict(env), skip_unset_env=False).process_word(word)
    except ValueError as exc:
        raise InvalidArgument(str(exc)) from None


def expand_words(text: str, env: Mapping[str, str], escape: str = "\\") -> list[str]:
    """Substitute and split on unquoted white space (EXPOSE, VOLUME in shell form)."""
    try:
        return ShellLex(escape, env=dict(env), skip_unset_env=False).process_words(text)
    except ValueError as exc:
        raise InvalidArgument(str(exc)) from None


def key_values(instruction: Instruction, env: Mapping[str, str], escape: str) -> list[tuple[str, str]]:
    """ENV and LABEL pairs (the parser gives [key, value, delimiter] triples), substituted."""
    args = instruction.args
    if not args or len(args) % 3:
        raise InvalidArgument(
            f"Dockerfile parse error on line {instruction.line}: {instruction.name} requires at least one "
            "argument"
        )
    pairs = []
    for i in range(0, len(args), 3):
        pairs.append((expand(args[i], env, escape), expand(args[i + 1], env, escape)))
    return pairs


def arg_definition(
    instruction: Instruction, env: Mapping[str, str], escape: str
) -> list[tuple[str, str | None]]:
    """``ARG NAME`` / ``ARG NAME=default`` (several per line allowed): [(name, default or None)]."""
    if not instruction.args:
        raise InvalidArgument(
            f"Dockerfile parse error on line {instruction.line}: ARG requires at least one argument"
        )
    result = []
    for word in instruction.args:
        name, sep, default = word.partition("=")
        result.append((name, expand(default, env, escape) if sep else None))
    return result
