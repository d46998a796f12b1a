"""The disks ``advisor disks`` found, as a person reads them."""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console
from rich.table import Table
from rich.text import Text

from advisor.install.disks import Disk, firmware_warning, same_size_as


def _size(size_bytes: int) -> str:
    return f"{size_bytes / 1024**3:.1f} GiB"


def render_disks(console: Console, disks: Sequence[Disk], firmware: str) -> None:
    """Every disk with its id, size, model, and why it cannot be used, if it cannot; then
    the firmware, with the warning ``advisor disks --json`` gives when it is not EFI."""
    table = Table(show_edge=False, pad_edge=False)
    for column in ("Disk id", "Device", "Size", "Model", "Serial", "Usable", "Same size as"):
        table.add_column(column, overflow="fold")
    for disk in disks:
        # The usable disks a mirror or raidz with this one could be made of.
        matches = same_size_as(disk, disks)
        usable = (
            Text("yes", style="green")
            if disk.usable
            else Text("no: " + "; ".join(disk.problems), style="red")
        )
        table.add_row(
            Text(disk.disk_id, style="bold"),
            Text(disk.path),
            Text(_size(disk.size_bytes)),
            Text(disk.model or "-"),
            Text(disk.serial or "none"),
            usable,
            Text(", ".join(matches) or "-"),
        )
    console.print(table)
    for disk in disks:
        for warning in disk.warnings:
            console.print(Text(f"{disk.disk_id}: {warning}", style="yellow"))
    console.print(Text(f"Firmware: {firmware}"))
    bios = firmware_warning(firmware)
    if bios:
        console.print(Text(f"warning: {bios}", style="yellow"))
