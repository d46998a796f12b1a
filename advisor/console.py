"""The one place terminal output is configured.

Data (reports, tables, JSON) goes to stdout; prompts, warnings and errors go to stderr, so
``advisor assess --json > out.json`` stays clean. rich is imported only when a report is
actually drawn: ``--json`` and ``--help`` never pay for it.
"""

from __future__ import annotations

import json
import sys
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


def print_json(data: Any) -> None:
    """Write ``data`` as indented JSON to stdout (no rich involved)."""
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def warn(message: str) -> None:
    """A one-line warning on stderr, plain text so it works before rich is loaded."""
    sys.stderr.write(f"advisor: warning: {message}\n")


def error(message: str) -> None:
    sys.stderr.write(f"advisor: error: {message}\n")
