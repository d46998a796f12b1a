"""What ``advisor export disko`` wrote, and the nixos-anywhere command that installs it."""

from __future__ import annotations

import shlex

from rich.console import Console
from rich.text import Text

from advisor.deploy.export import ExportResult, anywhere_command
from advisor.report import indent


def render_export_result(console: Console, result: ExportResult) -> None:
    """The files written (or unchanged), then how to install the host with them."""
    layout, spec = result.layout, result.spec
    disks = len(spec.members)
    shape = f"{spec.topology} of {disks} disks" if spec.topology else "one disk"
    console.print(
        Text(
            f"disko export for {layout.settings.hostname} ({layout.backend}, {shape}, "
            f"host id {layout.settings.host_id})",
            style="bold",
        )
    )
    for path in result.written:
        console.print(indent(Text(f"wrote {path}")))
    for path in result.unchanged:
        console.print(indent(Text(f"unchanged {path}", style="dim")))
    console.print()
    console.print(Text("Install it from that folder (docs/disko.md):"))
    # One line, however narrow the terminal: it is copied as it is.
    # (A Padding would crop it to the console's width.)
    command = shlex.join(anywhere_command(layout.settings.hostname))
    console.print(Text(f"  {command}"), soft_wrap=True)
