"""The one place terminal output is configured.

Data (reports, tables, JSON) goes to stdout; prompts, warnings and errors go to stderr, so
``advisor assess --json > out.json`` stays clean. rich is imported only when a report is
actually drawn: ``--json`` and ``--help`` never pay for it.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from functools import cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console


@cache
def stdout_console() -> Console:
    from rich.console import Console

    # Text from plugins and answers is untrusted: never interpret it as markup or emoji.
    return Console(markup=False, emoji=False, highlight=False, soft_wrap=False)


@cache
def stderr_console() -> Console:
    from rich.console import Console

    return Console(stderr=True, markup=False, emoji=False, highlight=False)


#: Prints one line of text with a rich style ("bold", "green", "" for none).
LinePrinter = Callable[[str, str], None]


def line_printer(*, stderr: bool) -> LinePrinter:
    """A :data:`LinePrinter` for stdout or stderr: styled by rich at a terminal, plain
    text otherwise (a log or a pipe gets the lines as they are, and rich is not loaded).
    Each line is flushed, so progress shows as it happens."""
    stream = sys.stderr if stderr else sys.stdout
    if stream.isatty():
        from rich.text import Text

        console = stderr_console() if stderr else stdout_console()

        def styled(text: str, style: str) -> None:
            console.print(Text(text, style=style))

        return styled

    def plain(text: str, style: str) -> None:
        stream.write(text + "\n")
        stream.flush()

    return plain


def print_json(data: Any) -> None:
    """Write ``data`` as indented JSON to stdout (no rich involved)."""
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def warn(message: str) -> None:
    """A one-line warning on stderr, plain text so it works before rich is loaded."""
    sys.stderr.write(f"advisor: warning: {message}\n")


def error(message: str) -> None:
    sys.stderr.write(f"advisor: error: {message}\n")
