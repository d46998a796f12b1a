"""What ``advisor install`` prints while and after it runs: one line per event.

Each function takes a :data:`~advisor.console.LinePrinter`, which styles a line with rich
at a terminal and writes it as plain text otherwise, so a log or a pipe gets the lines
as they are and an unattended install does not load rich at all.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

    from advisor.console import LinePrinter
    from advisor.execute import Outcome, StepFailed
    from advisor.models import Step
    from advisor.plan import Plan


class StepPrinter:
    """Progress of an install: a line when a step starts, and one with its time."""

    def __init__(self, line: LinePrinter) -> None:
        self.line = line

    def started(self, number: int, total: int, step: Step) -> None:
        self.line(f"[{number}/{total}] {step.title} ...", "bold")

    def finished(self, number: int, total: int, step: Step, seconds: float) -> None:
        self.line(f"[{number}/{total}] done in {seconds:.2f} s", "green")

    def skipped(self, number: int, total: int, step: Step, reason: str) -> None:
        self.line(f"[{number}/{total}] {step.title}: {reason}", "dim")


def install_result(line: LinePrinter, plan: Plan, outcome: Outcome, state_dir: Path) -> None:
    """The end of an install (or of a stop): what happened, the log, and what comes next."""
    spec = plan.spec
    if not outcome.completed:
        line(
            f"Stopped after step {outcome.stopped_after}. Continue with: "
            f"advisor install --resume --state-dir {state_dir}",
            "yellow",
        )
        line(f"Log: {outcome.log}", "")
        return
    line(f"Installed {spec.backend} on {spec.disk} in {outcome.seconds:.1f} s.", "bold")
    line(f"Log: {outcome.log}", "")
    line("", "")
    line("Next:", "bold underline")
    steps = [
        f"nixos-install --flake {spec.root}/etc/nixos#{spec.hostname} --no-root-passwd",
        # nixos-install writes flake.lock; / is wiped at boot, /persist is not.
        f"cp {spec.root}/etc/nixos/flake.lock {spec.root}/persist/etc/nixos/",
        f"umount -Rl {spec.root}",
        # Exported, the pool imports cleanly at first boot under the new host id.
        "zpool export -a",
        "reboot",
    ]
    for number, command in enumerate(steps, start=1):
        line(f"  {number}. {command}", "")


def step_failure(line: LinePrinter, failure: StepFailed, state_dir: Path) -> None:
    """Which step failed, the tail of its error output, the log, and how to go on."""
    line(f"advisor: error: {failure}", "bold red")
    if failure.stderr_tail:
        line("Its error output ended with:", "")
        for text in failure.stderr_tail.splitlines():
            line(f"  {text}", "")
    line(f"Full log: {failure.log}", "")
    line(
        f"Fix the cause, then continue with: advisor install --resume --state-dir {state_dir}",
        "",
    )
    line(
        "To start over instead: close what was opened (zpool export, cryptsetup close), "
        f"remove {state_dir} and run the install again.",
        "",
    )
