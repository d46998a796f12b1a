"""Human-readable reports drawn with rich: assessments, questions, plugins.

Every function takes the console to draw on, so tests can capture the output. Untrusted
text (from plugins, answers, file names) is always wrapped in ``Text``, never parsed as
markup.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from rich.console import Console, Group, RenderableType
from rich.padding import Padding
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from advisor.assessment import Assessment
from advisor.models import Question, Rating, SystemFacts
from advisor.pluginmanager import PluginRecord, Status

if TYPE_CHECKING:
    from advisor.configure import ConfigResult
    from advisor.disks import Disk

_RATING_MARK = {
    Rating.STRONG: ("+++", "bold green"),
    Rating.GOOD: ("++ ", "green"),
    Rating.WEAK: ("+  ", "yellow"),
    Rating.NONE: ("-  ", "red"),
}
_STATUS_STYLE = {
    Status.ACTIVE: "green",
    Status.DISABLED: "dim",
    Status.BROKEN: "bold red",
    Status.INCOMPATIBLE: "bold yellow",
}
_BAR_WIDTH = 20


def _bar(value: float, maximum: float, style: str) -> Text:
    filled = round(_BAR_WIDTH * value / maximum) if maximum > 0 else 0
    return Text("█" * filled, style=style) + Text("·" * (_BAR_WIDTH - filled), style="dim")


def _indent(renderable: RenderableType, width: int = 2) -> Padding:
    # expand=False: no trailing spaces to the console width in piped output.
    return Padding(renderable, (0, 0, 0, width), expand=False)


def _heading(console: Console, title: str) -> None:
    console.print()
    console.print(Text(title, style="bold underline"))


def _bullets(console: Console, rows: Sequence[tuple[Text, Text]]) -> None:
    """Marked lines with a hanging indent: the mark in one column, the text in the next."""
    grid = Table.grid(padding=(0, 1))
    grid.add_column(no_wrap=True)
    grid.add_column()
    for mark, text in rows:
        grid.add_row(mark, text)
    console.print(_indent(grid))


def system_summary(system: SystemFacts) -> Text:
    """One line with the probed machine facts; unknown facts say so."""

    def yes_no(value: bool | None) -> str:
        return "unknown" if value is None else ("yes" if value else "no")

    memory = (
        "unknown" if system.memory_bytes is None else f"{system.memory_bytes / 1024**3:.1f} GiB"
    )
    return Text(
        f"AES instructions: {yes_no(system.aes_instructions)} · memory: {memory} · "
        f"SSD: {yes_no(system.solid_state_disk)} · EFI firmware: {yes_no(system.efi_firmware)}"
    )


def render_assessment(
    console: Console, assessment: Assessment, saved_to: str | None = None
) -> None:
    """The full report: recommendation, ranking, weights, reasons, tensions, notes, next step."""
    best = assessment.recommended
    titles = {axis.id: axis.title for axis in assessment.axes}

    if best is None:
        console.print(Text("No installed backend fits these answers.", style="bold red"))
    else:
        console.print(
            Text("Recommended: ", style="bold")
            + Text(best.backend, style="bold green")
            + Text(f"  {best.summary}")
        )

    _heading(console, "Ranking")
    table = Table(show_edge=False, pad_edge=False)
    table.add_column("Backend")
    table.add_column("Fit", no_wrap=True)
    table.add_column("Score", justify="right")
    table.add_column("Status")
    for ranked in assessment.ranking:
        status = (
            Text("recommended", style="green")
            if best is not None and ranked.backend == best.backend
            else Text("eligible")
            if ranked.eligible
            else Text("ruled out", style="red")
        )
        table.add_row(
            Text(ranked.backend, style="bold"),
            _bar(ranked.score, 100, "green" if ranked.eligible else "red"),
            Text(f"{ranked.score:.1f}"),
            status,
        )
    console.print(table)
    for ranked in assessment.ranking:
        if ranked.gate:
            console.print(
                _indent(Text(f"{ranked.backend} is ruled out: ", style="red") + Text(ranked.gate))
            )

    _heading(console, "What your answers weigh")
    weights = {axis: w for axis, w in assessment.weights.items() if w > 0}
    heaviest = max(weights.values(), default=0.0)
    axes_table = Table.grid(padding=(0, 2))
    for axis_id, weight in sorted(weights.items(), key=lambda item: -item[1]):
        axes_table.add_row(
            Text(titles.get(axis_id, axis_id)), _bar(weight, heaviest, "cyan"), Text(f"{weight:g}")
        )
    console.print(_indent(axes_table))

    if best is not None:
        _heading(console, f"Why {best.backend}")
        rows = []
        for reason in best.reasons:
            mark, style = _RATING_MARK[reason.rating]
            line = Text(f"{titles.get(reason.axis, reason.axis)}: ", style="bold")
            line += Text(reason.why)
            if reason.fact:
                line += Text(f" [threat-model.md#{reason.fact}]", style="dim")
            rows.append((Text(mark.strip(), style=style), line))
        _bullets(console, rows)

    for tension in assessment.conflicts:
        body = [Text(f"• {tradeoff}") for tradeoff in tension.tradeoffs]
        body.append(Text("Both: ", style="bold") + Text(tension.layering))
        console.print()
        console.print(
            Panel(Group(*body), title=Text(f"Tension: {tension.title}"), border_style="yellow")
        )

    if assessment.warnings:
        _heading(console, "Warnings")
        _bullets(console, [(Text("•"), Text(n.text, style="yellow")) for n in assessment.warnings])
    if assessment.mitigations:
        _heading(console, "Mitigations")
        _bullets(console, [(Text("•"), Text(n.text)) for n in assessment.mitigations])

    _heading(console, "This machine (probed)")
    console.print(_indent(system_summary(assessment.system)))

    if best is None:
        return
    _heading(console, "Next")
    command = assessment.next_command(saved_to)
    if command:
        for shell_line in command.splitlines():
            # soft_wrap: a long command stays one line, to be copied whole.
            console.print(Text(f"  {shell_line}", style="bold"), soft_wrap=True)
        for word, meaning in assessment.placeholders().items():
            console.print(
                _indent(Text("Replace ") + Text(word, style="bold") + Text(f": {meaning}"))
            )
    else:
        console.print(
            _indent(
                Text(
                    f"advisor can recommend {best.backend} but not install it: its plugin "
                    "gives no install steps. Set it up by hand, or plan another backend "
                    "with 'advisor plan --backend NAME --disk DISK-ID'."
                )
            )
        )
    if saved_to:
        console.print(_indent(Text(f"Assessment saved to {saved_to}")))


def render_questions(
    console: Console, questions: Sequence[Question], owners: dict[str, str]
) -> None:
    """Every question with its id, allowed values and the plugin that asks it."""
    for question in questions:
        console.print(
            Text(question.id, style="bold")
            + Text(f"  ({owners.get(question.id, '?')})", style="dim")
        )
        console.print(_indent(Text(question.text)))
        for choice in question.choices:
            effect = ", ".join(f"{axis} +{w:g}" for axis, w in choice.weights.items())
            line = Text(f"{choice.value:<14}", style="cyan") + Text(choice.label)
            if effect:
                line += Text(f"  [{effect}]", style="dim")
            console.print(_indent(line, 4))
        console.print()


def render_plugins(console: Console, records: Sequence[PluginRecord]) -> None:
    """A table of every plugin, with the reason under any that is not active."""
    table = Table(show_edge=False, pad_edge=False)
    for column in ("Plugin", "Version", "Distribution", "Status", "Hooks", "Backends"):
        table.add_column(column)
    for record in records:
        status = Text(str(record.status), style=_STATUS_STYLE[record.status])
        if record.reason:
            status += Text(f"\n{record.reason}")
        table.add_row(
            Text(record.name, style="bold"),
            Text(record.version or "-"),
            Text(record.distribution or "(core)"),
            status,
            Text(", ".join(h.removeprefix("advisor_") for h in record.hooks) or "-"),
            Text(", ".join(record.backends) or "-"),
        )
    console.print(table)


def render_config_result(console: Console, result: ConfigResult) -> None:
    """What ``advisor config`` wrote, and what to do next."""
    layout = result.layout
    console.print(
        Text(f"Configuration for {layout.hostname} ({layout.backend}, ", style="bold")
        + Text(f"{layout.initrd} initrd, host id {layout.host_id})", style="bold")
    )
    for path in result.written:
        console.print(_indent(Text(f"wrote {path}")))
    for path in result.unchanged:
        console.print(_indent(Text(f"unchanged {path}", style="dim")))
    for path in result.secrets_written:
        console.print(_indent(Text(f"created {path} (mode 0600)")))
    if result.initrd_host_key_fingerprint:
        console.print(_indent(Text(f"initrd SSH host key: {result.initrd_host_key_fingerprint}")))
    if result.age_public_key:
        console.print(_indent(Text(f"sops age public key: {result.age_public_key}")))
    if result.hardware_configuration_missing:
        console.print()
        console.print(
            Text(
                "hardware-configuration.nix is missing: run "
                "'nixos-generate-config --root /mnt --no-filesystems' (the file systems are "
                "defined in configuration.nix).",
                style="yellow",
            )
        )


def _size(size_bytes: int) -> str:
    return f"{size_bytes / 1024**3:.1f} GiB"


def render_disks(console: Console, disks: Sequence[Disk], firmware: str) -> None:
    """Every disk with its id, size, model, and why it cannot be used, if it cannot; then
    the firmware, with the warning ``advisor disks --json`` gives when it is not EFI."""
    # Here, not at the top: advisor.disks loads pyudev, which the other reports do not need.
    from advisor.disks import firmware_warning

    table = Table(show_edge=False, pad_edge=False)
    for column in ("Disk id", "Device", "Size", "Model", "Serial", "Usable"):
        table.add_column(column, overflow="fold")
    for disk in disks:
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
        )
    console.print(table)
    for disk in disks:
        for warning in disk.warnings:
            console.print(Text(f"{disk.disk_id}: {warning}", style="yellow"))
    console.print(Text(f"Firmware: {firmware}"))
    bios = firmware_warning(firmware)
    if bios:
        console.print(Text(f"warning: {bios}", style="yellow"))
