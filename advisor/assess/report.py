"""The assessment as a person reads it: ranking, weights, reasons, warnings, next steps."""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from advisor.assess.assessment import Assessment
from advisor.models import Question, Rating, SystemFacts
from advisor.report import bar, bullets, heading, indent

_RATING_MARK = {
    Rating.STRONG: ("+++", "bold green"),
    Rating.GOOD: ("++ ", "green"),
    Rating.WEAK: ("+  ", "yellow"),
    Rating.NONE: ("-  ", "red"),
}


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

    heading(console, "Ranking")
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
            bar(ranked.score, 100, "green" if ranked.eligible else "red"),
            Text(f"{ranked.score:.1f}"),
            status,
        )
    console.print(table)
    for ranked in assessment.ranking:
        if ranked.gate:
            console.print(
                indent(Text(f"{ranked.backend} is ruled out: ", style="red") + Text(ranked.gate))
            )

    heading(console, "What your answers weigh")
    weights = {axis: w for axis, w in assessment.weights.items() if w > 0}
    heaviest = max(weights.values(), default=0.0)
    axes_table = Table.grid(padding=(0, 2))
    for axis_id, weight in sorted(weights.items(), key=lambda item: -item[1]):
        axes_table.add_row(
            Text(titles.get(axis_id, axis_id)), bar(weight, heaviest, "cyan"), Text(f"{weight:g}")
        )
    console.print(indent(axes_table))

    if best is not None:
        heading(console, f"Why {best.backend}")
        rows = []
        for reason in best.reasons:
            mark, style = _RATING_MARK[reason.rating]
            line = Text(f"{titles.get(reason.axis, reason.axis)}: ", style="bold")
            line += Text(reason.why)
            if cited := _citation(reason.url, reason.fact):
                line += cited
            rows.append((Text(mark.strip(), style=style), line))
        bullets(console, rows)

    for tension in assessment.conflicts:
        body = [Text(f"• {tradeoff}") for tradeoff in tension.tradeoffs]
        body.append(Text("Both: ", style="bold") + Text(tension.layering))
        console.print()
        console.print(
            Panel(Group(*body), title=Text(f"Tension: {tension.title}"), border_style="yellow")
        )

    if assessment.warnings:
        heading(console, "Warnings")
        bullets(
            console,
            [
                (Text("•"), Text(n.text, style="yellow") + _citation(n.url, ""))
                for n in assessment.warnings
            ],
        )
    if assessment.mitigations:
        heading(console, "Mitigations")
        bullets(
            console,
            [(Text("•"), Text(n.text) + _citation(n.url, "")) for n in assessment.mitigations],
        )

    heading(console, "This machine (probed)")
    console.print(indent(system_summary(assessment.system)))

    if best is None:
        return
    heading(console, "Next")
    command = assessment.next_command(saved_to)
    if command:
        for shell_line in command.splitlines():
            # soft_wrap: a long command stays one line, to be copied whole.
            console.print(Text(f"  {shell_line}", style="bold"), soft_wrap=True)
        for word, meaning in assessment.placeholders().items():
            console.print(
                indent(Text("Replace ") + Text(word, style="bold") + Text(f": {meaning}"))
            )
    else:
        console.print(
            indent(
                Text(
                    f"advisor can recommend {best.backend} but not install it: its plugin "
                    "gives no install steps. Set it up by hand, or plan another backend "
                    "with 'advisor plan --backend NAME --disk DISK-ID'."
                )
            )
        )
    if saved_to:
        console.print(indent(Text(f"Assessment saved to {saved_to}")))


def render_questions(
    console: Console, questions: Sequence[Question], owners: dict[str, str]
) -> None:
    """Every question with its id, allowed values and the plugin that asks it."""
    for question in questions:
        console.print(
            Text(question.id, style="bold")
            + Text(f"  ({owners.get(question.id, '?')})", style="dim")
        )
        console.print(indent(Text(question.text)))
        for choice in question.choices:
            effect = ", ".join(f"{axis} +{w:g}" for axis, w in choice.weights.items())
            line = Text(f"{choice.value:<14}", style="cyan") + Text(choice.label)
            if effect:
                line += Text(f"  [{effect}]", style="dim")
            console.print(indent(line, 4))
        console.print()


def _citation(url: str, fact: str) -> Text:
    """Where a reason or note is explained: a plugin's own link, else the anchor of a
    built-in fact in docs/threat-model.md; empty when there is neither."""
    if url:
        return Text(f" [{url}]", style="dim")
    if fact:
        return Text(f" [threat-model.md#{fact}]", style="dim")
    return Text("")
