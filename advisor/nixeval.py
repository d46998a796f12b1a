"""The Nix evaluator: a generated ``configuration.nix`` read back as data, by Nix itself.

``nix-instantiate --eval --strict --json`` evaluates the configuration against the
stand-in module arguments of ``eval-config.nix`` (beside this module): ``lib.mkAfter``
and friends wrapped so JSON shows them, ``pkgs`` packages as small sets. That is enough
for the configuration ``advisor config`` writes, and for edits that stay within plain
options; an edit that reads ``config`` or calls another ``pkgs`` function cannot be
evaluated so, and the caller says so instead of guessing. ``advisor check`` uses it to
see the configuration as it is now (a rollback unit removed, ``neededForBoot`` dropped),
and the tests use the same harness.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from advisor import runner

#: The stand-ins: ``nix-instantiate --eval --strict --json --arg file PATH eval-config.nix``.
HARNESS = Path(__file__).resolve().with_name("eval-config.nix")
#: Evaluating a configuration takes well under a second; a hung one is an answer too.
TIMEOUT = 120


@dataclass(frozen=True)
class Evaluation:
    """A configuration evaluated (``config``), or why it was not (``problem``)."""

    config: dict[str, Any] | None
    problem: str = ""


def evaluate_configuration(path: Path) -> Evaluation:
    """``path`` (a ``configuration.nix``) evaluated against the stand-ins, as JSON data;
    or, in ``problem``, why not: no such file, no ``nix-instantiate``, or Nix's own error
    (its last lines)."""
    if not path.is_file():
        return Evaluation(None, f"{path} does not exist")
    program = runner.which("nix-instantiate")
    if program is None:
        return Evaluation(None, "nix-instantiate is not installed (Nix; Debian: nix-bin)")
    # A dummy store: nothing is built or copied, and a read-only /nix/store (a VM, the
    # installer) is never remounted.
    argv = [
        program,
        "--eval",
        "--strict",
        "--json",
        "--store",
        "dummy://",
        "--arg",
        "file",
        str(path),
        str(HARNESS),
    ]
    try:
        result = runner.run(argv, check=False, timeout=TIMEOUT)
    except runner.CommandError as error:
        return Evaluation(None, str(error))
    if result.returncode != 0:
        tail = " ".join(line.strip() for line in result.stderr.strip().splitlines()[-4:])
        return Evaluation(None, f"nix-instantiate could not evaluate {path}: {tail}")
    try:
        data = json.loads(result.stdout)
    except json.JSONDecodeError as error:
        return Evaluation(None, f"nix-instantiate printed no JSON for {path}: {error}")
    if not isinstance(data, dict):
        return Evaluation(None, f"{path} is not a NixOS module (it evaluates to no set)")
    return Evaluation(data)


def parse_problem(path: Path) -> str | None:
    """Nix's syntax error in ``path`` (``nix-instantiate --parse``), or ``None`` when it
    parses (or cannot be parsed here: no ``nix-instantiate``)."""
    program = runner.which("nix-instantiate")
    if program is None:
        return None
    argv = [program, "--parse", "--store", "dummy://", str(path)]
    try:
        result = runner.run(argv, check=False, timeout=TIMEOUT)
    except runner.CommandError as error:
        return str(error)
    if result.returncode == 0:
        return None
    tail = " ".join(line.strip() for line in result.stderr.strip().splitlines()[-4:])
    return f"{path} is not valid Nix: {tail}"
