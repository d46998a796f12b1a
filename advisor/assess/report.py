"""The assessment as a person reads it: ranking, weights, reasons, warnings, next steps."""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from advisor.assess.assessment import Assessment, Reason, UnlockAdvice
from advisor.models import Note, Question, Rating, SystemFacts
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
        f" · TPM2: {yes_no(system.tpm2)}"
    )


def render_assessment(
    console: Console, assessment: Assessment, saved_to: str | None = None
) -> None:
    """The full report: recommendation and unlock method, ranking, weights, reasons, the
    unlock methods ranked, tensions, notes, next step."""
    best = assessment.recommended
    method = assessment.unlock_method
    titles = {axis.id: axis.title for axis in assessment.axes}

    if best is None:
        console.print(Text("No installed backend fits these answers.", style="bold red"))
    else:
        console.print(
            Text("Recommended: ", style="bold")
            + Text(best.backend, style="bold green")
            + Text(f"  {best.summary}")
        )
        if method is not None:
            console.print(
                Text("Unlock: ", style="bold")
                + Text(method.method, style="bold green")
                + Text(f"  {method.summary}")
            )

    heading(console, "Ranking")
    _ranking(
        console,
        "Backend",
        [(r.backend, r.score, r.gate) for r in assessment.ranking],
        best.backend if best is not None else None,
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
        _reasons(console, best.reasons, titles)
    if assessment.unlock is not None:
        _render_unlock(console, assessment.unlock, titles)

    for tension in assessment.conflicts:
        body = [Text(f"• {tradeoff}") for tradeoff in tension.tradeoffs]
        body.append(Text("Both: ", style="bold") + Text(tension.layering))
        console.print()
        console.print(
            Panel(Group(*body), title=Text(f"Tension: {tension.title}"), border_style="yellow")
        )

    # The unlock method's own notes are shown with it, above.
    shown = {n.id for n in assessment.unlock.warnings} if assessment.unlock else set()
    warnings = [n for n in assessment.warnings if n.id not in shown]
    if warnings:
        heading(console, "Warnings")
        _notes(console, warnings, "yellow")
    if assessment.mitigations:
        heading(console, "Mitigations")
        _notes(console, assessment.mitigations, "")

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


def _ranking(
    console: Console,
    kind: str,
    rows: list[tuple[str, float, str | None]],
    recommended: str | None,
) -> None:
    """A ranking of backends or unlock methods (``kind``): each ``(name, score, gate)``
    with its fit as a bar, the ``recommended`` one marked, then why each gated one is
    ruled out."""
    table = Table(show_edge=False, pad_edge=False)
    table.add_column(kind)
    table.add_column("Fit", no_wrap=True)
    table.add_column("Score", justify="right")
    table.add_column("Status")
    for name, score, gate in rows:
        status = (
            Text("recommended", style="green")
            if name == recommended
            else Text("eligible")
            if gate is None
            else Text("ruled out", style="red")
        )
        colour = "green" if gate is None else "red"
        table.add_row(
            Text(name, style="bold"), bar(score, 100, colour), Text(f"{score:.1f}"), status
        )
    console.print(table)
    for name, _, gate in rows:
        if gate:
            console.print(indent(Text(f"{name} is ruled out: ", style="red") + Text(gate)))


def _render_unlock(console: Console, unlock: UnlockAdvice, titles: dict[str, str]) -> None:
    """The unlock methods ranked for the recommended backend, why the best one, and what
    to know about it."""
    best = unlock.recommended
    heading(console, f"Unlock: {best.method}" if best else "Unlock")
    _ranking(
        console,
        "Method",
        [(r.method, r.score, r.gate) for r in unlock.ranking],
        best.method if best is not None else None,
    )
    if best is None:
        console.print(indent(Text(f"No unlock method fits these answers with {unlock.backend}.")))
        return
    console.print(indent(Text(f"Why {best.method}:", style="bold")))
    _reasons(console, best.reasons, titles)
    if unlock.warnings:
        _notes(console, unlock.warnings, "yellow")


def _reasons(console: Console, reasons: Sequence[Reason], titles: dict[str, str]) -> None:
    """One bullet per reason: its rating mark, the axis, why, and where it is explained."""
    rows = []
    for reason in reasons:
        mark, style = _RATING_MARK[reason.rating]
        line = Text(f"{titles.get(reason.axis, reason.axis)}: ", style="bold")
        line += Text(reason.why)
        if cited := _citation(reason.url, reason.fact):
            line += cited
        rows.append((Text(mark.strip(), style=style), line))
    bullets(console, rows)


def _notes(console: Console, notes: Sequence[Note], style: str) -> None:
    """One bullet per warning or mitigation, with its plugin's link if it gives one."""
    bullets(
        console,
        [(Text("•"), Text(note.text, style=style) + _citation(note.url, "")) for note in notes],
    )


def _citation(url: str, fact: str) -> Text:
    """Where a reason or note is explained: a plugin's own link, else the anchor of a
    built-in fact in docs/threat-model.md; empty when there is neither."""
    if url:
        return Text(f" [{url}]", style="dim")
    if fact:
        return Text(f" [threat-model.md#{fact}]", style="dim")
    return Text("")
