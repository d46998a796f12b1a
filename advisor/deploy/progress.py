"""What ``advisor fleet`` and ``advisor fleet deploy`` print: a line as each host starts
and ends, then a table of every host (status, seconds, log) and how to run a failed one
again alone. Plain text, so a log or a pipe reads as a terminal does."""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from pathlib import Path

from advisor.console import LinePrinter
from advisor.deploy.run import HostResult, Progress


def progress_printer(printer: LinePrinter) -> Progress:
    """A :data:`~advisor.deploy.run.Progress` that prints one line per event."""

    def show(host: str, event: str, result: HostResult | None) -> None:
        if result is None:
            printer(f"{host}: started", "")
        elif result.ok:
            printer(f"{host}: done in {result.seconds:.0f} s", "green")
        else:
            printer(
                f"{host}: FAILED after {result.seconds:.0f} s ({result.detail}): see {result.log}",
                "bold red",
            )

    return show


def summary_lines(results: Sequence[HostResult], rerun: Sequence[str]) -> list[str]:
    """The table of ``results`` (host, status, seconds, log), the initrd SSH host key's
    fingerprint of each host installed with remote unlock, then for each failed host
    the command that runs it again alone: ``rerun`` (the deploy's own command line, its
    ``--host`` options left out) with ``--host NAME``."""
    rows = [("host", "status", "seconds", "log")] + [
        (r.host, "ok" if r.ok else "FAILED", f"{r.seconds:.1f}", str(r.log)) for r in results
    ]
    widths = [max(len(row[column]) for row in rows) for column in range(3)]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row[:3], widths, strict=True))
        + "  "
        + row[3]
        for row in rows
    ]
    failed = [r for r in results if not r.ok]
    done = len(results) - len(failed)
    lines.append(f"{done} of {len(results)} host(s) installed, {len(failed)} failed")
    for result in results:
        if result.ok and result.initrd_key:
            # To compare at the first unlock over SSH: this run made the key.
            lines.append(f"initrd SSH host key of {result.host}: {result.initrd_key}")
    for result in failed:
        lines.append(
            f"run {result.host} again alone: {shlex.join([*rerun, '--host', result.host])}"
        )
    return lines


def rerun_command(inventory: Path, flake: Path, options: Sequence[str]) -> list[str]:
    """The deploy's command line for a re-run: the inventory, the flake and ``options``
    (those of this run that still apply, such as ``--nixos-anywhere``)."""
    return [
        "advisor",
        "fleet",
        "deploy",
        "--inventory",
        str(inventory),
        "--flake",
        str(flake),
        *options,
    ]
