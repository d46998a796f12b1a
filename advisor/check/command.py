"""``advisor check`` put together: the stage from the options, the facts gathered, the
checks run. The CLI prints the result (:mod:`.report`)."""

from __future__ import annotations

import os
from pathlib import Path

from advisor.assessmentfile import read_assessment
from advisor.errors import UsageError

from .checks import run_checks
from .facts import CheckResult, Facts, Stage, Status
from .probe import gather


def stage_of(root: Path, *, before_reboot: bool) -> Stage:
    """Where the system is: running (``root`` is ``/``), or from the installer, right
    after the install or (``before_reboot``) just before the reboot."""
    running = os.path.realpath(root) == "/"
    if running and before_reboot:
        raise UsageError(
            "--before-reboot is for the installer, with --root naming the mounted target "
            "(/mnt); on the running system leave it out"
        )
    if running:
        return Stage.RUNNING
    return Stage.BEFORE_REBOOT if before_reboot else Stage.INSTALLED


def check(
    root: Path,
    record: Path | None = None,
    *,
    before_reboot: bool = False,
    assessment: Path | None = None,
) -> tuple[Facts, list[CheckResult]]:
    """Every check of the system under ``root``: the facts and the results. Raises
    :class:`UsageError` for a root without a layout record, an unreadable ``record`` or
    ``assessment``, or ``before_reboot`` on the running system."""
    if not root.is_dir():
        raise UsageError(f"--root {str(root)!r} is not a directory")
    stage = stage_of(root, before_reboot=before_reboot)
    trim = None
    if assessment is not None:
        answer = read_assessment(assessment)["answers"].get("ssd_trim")
        if answer not in ("yes", "no"):
            raise UsageError(f"{str(assessment)!r} has no ssd_trim answer (yes or no)")
        trim = answer == "yes"
    facts = gather(root, record, stage, trim, str(assessment) if assessment else None)
    return facts, run_checks(facts)


def failed(results: list[CheckResult]) -> list[CheckResult]:
    return [result for result in results if result.status is Status.FAIL]
