"""What ``advisor install`` prints while and after it runs: one line per event.

Each function takes a :data:`~advisor.console.LinePrinter`, which styles a line with rich
at a terminal and writes it as plain text otherwise, so a log or a pipe gets the lines
as they are and an unattended install does not load rich at all.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

    from rich.console import Console
    from rich.table import Table

    from advisor.console import LinePrinter
    from advisor.install.executor import Outcome, StepFailed
    from advisor.install.finish import Finish
    from advisor.install.plan import Plan
    from advisor.models import Step


class StepPrinter:
    """Progress of an install: a line when a step starts, and one with its time."""

    def __init__(self, line: LinePrinter) -> None:
        self.line = line

    def started(self, number: int, total: int, step: Step) -> None:
        self.line(f"[{number}/{total}] {step.title} ...", "bold")
        if step.interactive:
            # Said before the step's own prompt, which may be terse ("PIN:") or silent
            # (a security key that waits for a touch).
            self.line(f"step {number} needs you at the terminal: {step.title}", "bold yellow")

    def finished(self, number: int, total: int, step: Step, seconds: float) -> None:
        self.line(f"[{number}/{total}] done in {seconds:.2f} s", "green")

    def skipped(self, number: int, total: int, step: Step, reason: str) -> None:
        self.line(f"[{number}/{total}] {step.title}: {reason}", "dim")


def resume_command(state_dir: Path, options: Sequence[str] = ()) -> str:
    """The shell command that continues the install in ``state_dir``, with the
    ``options`` a resume needs again (``--allow-bios``, the secrets files)."""
    return shlex.join(["advisor", "install", "--resume", "--state-dir", str(state_dir), *options])


def install_result(
    line: LinePrinter,
    plan: Plan,
    outcome: Outcome,
    state_dir: Path,
    resume_options: Sequence[str] = (),
) -> None:
    """The end of an install (or of a stop): what happened, the log, and what comes next.
    ``resume_options`` go into the resume command of a stop (see :func:`resume_command`)."""
    spec = plan.spec
    if not outcome.completed:
        line(
            f"Stopped after step {outcome.stopped_after}. Continue with: "
            + resume_command(state_dir, resume_options),
            "yellow",
        )
        line(f"Log: {outcome.log}", "")
        return
    disks = ", ".join(member.disk for member in spec.members)
    shape = f" ({spec.topology})" if spec.topology else ""
    line(f"Installed {spec.backend} on {disks}{shape} in {outcome.seconds:.1f} s.", "bold")
    line(f"Log: {outcome.log}", "")
    check = outcome.outputs.get("check")
    if check is not None:
        # advisor check --summary: its warnings and failures with their fixes, the counts.
        line("", "")
        line(f"Checked (advisor check --root {shlex.quote(spec.root)}):", "bold underline")
        for text in check.rstrip().splitlines():
            line(f"  {text}", "yellow" if text.startswith("warn") else "")
    line("", "")
    line("Next:", "bold underline")
    root = shlex.quote(spec.root)
    # nixos-install, what it wrote kept on /persist, the check, the export: see
    # advisor.install.finish.
    steps = [f"advisor finish --root {root}", "reboot"]
    for number, command in enumerate(steps, start=1):
        line(f"  {number}. {command}", "")


def step_failure(
    line: LinePrinter,
    failure: StepFailed,
    state_dir: Path,
    plan: Plan,
    resume_options: Sequence[str] = (),
) -> None:
    """Which step failed, the tail of its error output, the log, and the two ways on:
    resume (with ``resume_options``), or undo what the install opened and start over."""
    line(f"advisor: error: {failure}", "bold red")
    if failure.stderr_tail:
        line("Its error output ended with:", "")
        for text in failure.stderr_tail.splitlines():
            line(f"  {text}", "")
    elif failure.step.interactive:
        line("It ran at the terminal: its output is above, not in the log.", "")
    line(f"Full log: {failure.log}", "")
    first = "Continue" if failure.interrupted else "Fix the cause, then continue"
    line(f"{first} with: {resume_command(state_dir, resume_options)}", "")
    line(
        f"To start over instead: {'; '.join(clean_up_commands(plan))} (those the install got "
        f"to), then remove {shlex.quote(str(state_dir))} and run the install again.",
        "",
    )


def clean_up_commands(plan: Plan) -> list[str]:
    """What undoes an install of ``plan`` that got part of the way, in order: unmount
    everything under the root, export the pool, close the containers it opened."""
    spec = plan.spec
    # The containers the plan opens (the LUKS backends; a third-party one as well).
    opened = [
        step.argv[-1] for step in plan.steps if tuple(step.argv[:2]) == ("cryptsetup", "open")
    ]
    return [
        f"umount -R {shlex.quote(spec.root)}",
        f"zpool export {spec.settings.pool}",
        *(f"cryptsetup close {shlex.quote(name)}" for name in opened),
    ]


def finish_resume_command(state_dir: Path, root: str) -> str:
    """The shell command that continues the finish in ``state_dir``."""
    return shlex.join(
        ["advisor", "finish", "--root", root, "--resume", "--state-dir", str(state_dir)]
    )


def finish_result(
    line: LinePrinter,
    procedure: Finish,
    outcome: Outcome,
    state_dir: Path,
    console: Console | None = None,
) -> None:
    """The end of a finish (or of a stop): what was kept, the log, and what comes next.
    With a ``console`` (stdout is a terminal), what was kept is a table."""
    from advisor.install.finish import WRITTEN_BY_NIXOS_INSTALL

    if not outcome.completed:
        line(
            f"Stopped after step {outcome.stopped_after}. Continue with: "
            + finish_resume_command(state_dir, procedure.root),
            "yellow",
        )
        line(f"Log: {outcome.log}", "")
        return
    line(f"Finished in {outcome.seconds:.1f} s: the pool {procedure.pool} is exported.", "bold")
    line(f"Log: {outcome.log}", "")
    line("What nixos-install wrote to the root, which the first boot rolls back:", "")
    if console is not None:
        console.print(written_table())
    else:
        for written in WRITTEN_BY_NIXOS_INSTALL:
            fate = "kept on /persist" if written.kept else "not kept"
            line(f"  {written.path}: {fate} ({written.reason})", "")
    line("", "")
    line("Next: reboot", "bold underline")


def written_table() -> Table:
    """What ``nixos-install`` writes to the root and its fate, as a table for a terminal."""
    from rich.table import Table
    from rich.text import Text

    from advisor.install.finish import WRITTEN_BY_NIXOS_INSTALL

    table = Table(show_edge=False, pad_edge=False)
    for column in ("Written", "By", "Kept on /persist", "Why"):
        table.add_column(column, overflow="fold")
    for written in WRITTEN_BY_NIXOS_INSTALL:
        kept = Text("yes", style="green") if written.kept else Text("no", style="dim")
        table.add_row(Text(written.path, style="bold"), written.writer, kept, written.reason)
    return table


def finish_failure(line: LinePrinter, failure: StepFailed, state_dir: Path, root: str) -> None:
    """Which step of a finish failed, the tail of its error output, the log, and how to
    continue once the cause is fixed."""
    line(f"advisor: error: {failure}", "bold red")
    if failure.stderr_tail:
        line("Its error output ended with:", "")
        for text in failure.stderr_tail.splitlines():
            line(f"  {text}", "")
    line(f"Full log: {failure.log}", "")
    first = "Continue" if failure.interrupted else "Fix the cause, then continue"
    line(f"{first} with: {finish_resume_command(state_dir, root)}", "")
