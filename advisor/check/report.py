"""What ``advisor check`` prints: a table at a terminal, plain lines otherwise (a log,
the install's summary), or JSON."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .facts import CheckResult, Facts, Status

if TYPE_CHECKING:
    from rich.console import Console

_STYLE = {Status.PASS: "green", Status.WARN: "yellow", Status.FAIL: "bold red", Status.SKIP: "dim"}


def counts(results: Sequence[CheckResult]) -> dict[str, int]:
    """How many checks came out each way, every status named."""
    return {str(status): sum(r.status is status for r in results) for status in Status}


def summary_line(results: Sequence[CheckResult]) -> str:
    """``checks: 11 pass, 1 warn, 0 fail, 3 skip``."""
    return "checks: " + ", ".join(f"{n} {status}" for status, n in counts(results).items())


def to_json(facts: Facts, results: Sequence[CheckResult]) -> dict[str, Any]:
    """The report as data: where it looked, every check, the counts, and ``ok``."""
    return {
        "root": facts.root,
        "stage": str(facts.stage),
        "record": facts.record,
        "configuration": facts.configuration,
        "checks": [result.to_json() for result in results],
        "counts": counts(results),
        "ok": not any(result.status is Status.FAIL for result in results),
    }


def plain_lines(results: Sequence[CheckResult], *, summary: bool = False) -> list[str]:
    """One line per check (``summary``: only the warnings and failures), each failure
    or warning followed by its fix, then the counts."""
    lines = []
    for result in results:
        if summary and result.status not in (Status.WARN, Status.FAIL):
            continue
        lines.append(f"{result.status:<4}  {result.id}: {result.title}: {result.detail}")
        if result.fix and result.status in (Status.WARN, Status.FAIL):
            lines.append(f"      fix: {result.fix}")
    lines.append(summary_line(results))
    return lines


def render(console: Console, facts: Facts, results: Sequence[CheckResult]) -> None:
    """A table of every check (status, check, what it found and looked at), then the
    fixes of those that failed or warned, then the counts."""
    from rich.table import Table
    from rich.text import Text

    from advisor.report import heading

    console.print(Text(f"{facts.root} ({facts.stage}), layout record {facts.record}", style="bold"))
    table = Table(show_edge=False, pad_edge=False)
    table.add_column("", no_wrap=True)
    table.add_column("Check", overflow="fold")
    table.add_column("Found", overflow="fold")
    table.add_column("Looked at", overflow="fold", style="dim")
    for result in results:
        table.add_row(
            Text(str(result.status), style=_STYLE[result.status]),
            Text(result.title),
            Text(result.detail),
            Text("\n".join(result.looked_at)),
        )
    console.print(table)
    fixes = [r for r in results if r.fix and r.status in (Status.WARN, Status.FAIL)]
    if fixes:
        heading(console, "How to fix")
        for result in fixes:
            console.print(Text.assemble((result.id, _STYLE[result.status]), ": ", result.fix))
    console.print()
    console.print(Text(summary_line(results), style="bold"))
