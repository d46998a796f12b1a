"""What ``advisor backup`` did, or would do, as a person reads it."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table
from rich.text import Text

from advisor.backup.run import BackupResult
from advisor.report import indent


def render_backup(console: Console, result: BackupResult) -> None:
    """A line saying where the backup went, a table of the sends (dataset, target, raw
    or plaintext, full or from which snapshot), and with ``dry_run`` the commands."""
    trust = "trusted" if result.trusted else "untrusted"
    verb = "Would back up" if result.dry_run else "Backed up"
    console.print(
        Text(
            f"{verb} {result.pool} to {result.target.spec()} ({trust}) as @{result.snapshot}",
            style="bold",
        )
    )
    table = Table(show_edge=False, pad_edge=False)
    for column in ("Dataset", "Target", "Send", "From"):
        table.add_column(column, overflow="fold")
    for transfer in result.transfers:
        table.add_row(
            Text(transfer.source, style="bold"),
            Text(transfer.target),
            Text("raw (-w)", style="green") if transfer.raw else Text("plaintext", style="yellow"),
            Text(f"@{transfer.base}" if transfer.base else "full"),
        )
    if result.transfers:
        console.print(table)
    else:
        console.print(indent(Text("The target is up to date.", style="dim")))
    if result.dry_run:
        console.print()
        for command in result.commands:
            console.print(indent(Text(command)))
