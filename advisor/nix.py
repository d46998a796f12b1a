"""Rendering Python values as Nix source: the one place Nix text is produced.

Strings are always escaped, so a value can never change the structure of the output;
raw Nix (``lib.mkAfter``, ``pkgs.zfs``) enters only through :class:`Raw`, which code
constructs and user input never reaches. Output is deterministic: mappings keep their
insertion order.

Supported values: ``str``, ``bool``, ``int``, ``None`` (``null``), :class:`Raw`,
:class:`Apply`, :class:`Function`, sequences (lists) and mappings with ``str`` keys
(attribute sets).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

INDENT = "  "

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_'-]*$")
_KEYWORDS = frozenset({"assert", "else", "if", "in", "inherit", "let", "or", "rec", "then", "with"})


@dataclass(frozen=True)
class Raw:
    """A Nix expression written verbatim, such as ``pkgs.zfs``.

    Only for expressions the code itself spells out; never build one from user input.
    """

    code: str


@dataclass(frozen=True)
class Apply:
    """A function applied to a rendered value: ``Apply("lib.mkAfter", script)``.

    The function is raw Nix written by the code; the argument is rendered (and escaped)
    like any other value.
    """

    function: str
    argument: object


@dataclass(frozen=True)
class Function:
    """A function taking an attribute set: ``{ a, b, ... }: body``.

    The argument names are code-written identifiers; the body is rendered like any value.
    """

    arguments: tuple[str, ...]
    body: object


class NixRenderError(ValueError):
    """A value that has no faithful Nix rendering (such as a string with a NUL byte)."""


def string(text: str) -> str:
    """A double-quoted Nix string literal for ``text``, always on one line (:func:`value`
    writes multi-line text as an indented ``''`` string where that is faithful)."""
    if "\0" in text:
        raise NixRenderError("Nix strings cannot contain NUL bytes")
    return _double_quoted(text)


def _double_quoted(text: str) -> str:
    escaped = (
        text.replace("\\", "\\\\")
        .replace('"', '\\"')
        .replace("${", "\\${")
        .replace("\n", "\\n")
        .replace("\r", "\\r")
        .replace("\t", "\\t")
    )
    return f'"{escaped}"'


def _indented(text: str, level: int) -> str | None:
    """``''`` string for multi-line ``text`` at ``level``, or None where it is not faithful."""
    # Carriage returns and tabs are not represented literally; a trailing quote would
    # merge with the closing delimiter.
    if "\n" not in text or "\r" in text or "\t" in text or text.endswith("'"):
        return None
    # Nix strips the smallest indentation of the non-blank lines and blanks out
    # whitespace-only lines: only text that loses nothing to that may use this form.
    lines = text.split("\n")
    if any(line and not line.strip() for line in lines):
        return None
    if not any(line and not line[0].isspace() for line in lines):
        return None
    pad = INDENT * (level + 1)
    body = text.replace("''", "'''").replace("${", "''${")
    lines = [f"{pad}{line}" if line else line for line in body.split("\n")]
    if text.endswith("\n"):
        lines[-1] = INDENT * level  # the closing delimiter's own line
    return "''\n" + "\n".join(lines) + "''"


def attr_name(name: str) -> str:
    """An attribute name, quoted unless it is a plain identifier."""
    if _IDENTIFIER.fullmatch(name) and name not in _KEYWORDS:
        return name
    return string(name)


def attr_path(path: Sequence[str]) -> str:
    """A dotted attribute path such as ``fileSystems."/persist".neededForBoot``."""
    if not path:
        raise NixRenderError("an attribute path needs at least one name")
    return ".".join(attr_name(part) for part in path)


def value(item: object, level: int = 0) -> str:
    """Nix source for ``item``; nested structures are indented from ``level``."""
    if isinstance(item, Raw):
        return item.code
    if isinstance(item, Apply):
        return f"{item.function} {_argument(item.argument, level)}"
    if isinstance(item, Function):
        pattern = ", ".join([*item.arguments, "..."])
        return f"{{ {pattern} }}: {value(item.body, level)}"
    if item is None:
        return "null"
    if isinstance(item, bool):
        return "true" if item else "false"
    if isinstance(item, int):
        return str(item) if item >= 0 else f"({item})"
    if isinstance(item, str):
        return _indented(item, level) or string(item)
    if isinstance(item, Mapping):
        return attrset(item, level)
    if isinstance(item, Sequence):
        return _list(item, level)
    raise NixRenderError(f"cannot render {type(item).__name__} as Nix")


def _argument(item: object, level: int) -> str:
    rendered = value(item, level)
    simple = isinstance(item, str | bool | int | Mapping | Sequence) or item is None
    return rendered if simple and not rendered.startswith("(") else f"({rendered})"


def _list(items: Sequence[object], level: int) -> str:
    if not items:
        return "[ ]"
    rendered = [_list_item(item, level + 1) for item in items]
    if all("\n" not in r for r in rendered) and sum(len(r) + 1 for r in rendered) < 60:
        return "[ " + " ".join(rendered) + " ]"
    pad = INDENT * (level + 1)
    return "[\n" + "".join(f"{pad}{r}\n" for r in rendered) + INDENT * level + "]"


def _list_item(item: object, level: int) -> str:
    # In a list, a function application must be parenthesised to stay one element.
    rendered = value(item, level)
    return f"({rendered})" if isinstance(item, Apply) else rendered


def attrset(mapping: Mapping[str, object], level: int = 0) -> str:
    """An attribute set with one ``name = value;`` line per entry."""
    if not mapping:
        return "{ }"
    pad = INDENT * (level + 1)
    lines = []
    for key, item in mapping.items():
        path = [key]
        # A chain of single-entry sets reads better as a dotted path: a.b.c = x;
        while isinstance(item, Mapping) and len(item) == 1:
            ((sub_key, item),) = item.items()
            path.append(sub_key)
        lines.append(f"{pad}{attr_path(path)} = {value(item, level + 1)};\n")
    return "{\n" + "".join(lines) + INDENT * level + "}"


def comment(text: str, level: int = 0) -> str:
    """``# text`` lines; text is code-written (section titles), newlines split lines."""
    pad = INDENT * level
    return "".join(f"{pad}# {line}".rstrip() + "\n" for line in text.split("\n"))
