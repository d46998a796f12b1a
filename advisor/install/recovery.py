"""The recovery key: made once, shown once, never logged, asked again only on a resume.

``advisor rekey --recovery-key`` and ``advisor install --unlock tpm2`` (any unlock method
with a recovery key) add one with steps that are fed the secret ``recovery-key``. The key
is generated before the first step and shown (or written to ``--recovery-key-file``)
before it is added; a resume that finds it added to some disks but not all asks for it
again rather than making a second one.
"""

from __future__ import annotations

import secrets as random
import sys
from collections.abc import Sequence
from pathlib import Path

from advisor.errors import UsageError
from advisor.install.executor import journal_events
from advisor.install.plan import SECRET_LINES
from advisor.models import Step

#: The recovery key's strength, and its shape: modhex, in groups of eight.
RECOVERY_KEY_BYTES = 32
RECOVERY_GROUP = 8
#: Modhex: hex digits written with 16 letters that sit at the same place on every common
#: keyboard layout (QWERTY, QWERTZ, AZERTY, Dvorak...), so the key types right at an
#: initrd prompt whatever its keymap; systemd-cryptenroll's recovery keys use it too.
MODHEX = str.maketrans("0123456789abcdef", "cbdefghijklnrtuv")


def step_states(state_dir: Path) -> tuple[set[str], set[str]]:
    """The ids of the steps the journal in ``state_dir`` records as done (or found in
    place), and of those it records as started."""
    events = journal_events(state_dir)
    done = {str(e.get("step")) for e in events if e.get("event") in ("done", "probed")}
    started = {str(e.get("step")) for e in events if e.get("event") == "started"}
    return done, started


def uses_recovery_key(step: Step) -> bool:
    """Whether ``step`` (its command or probe) is fed the recovery key."""
    names = {step.secret, step.probe_secret}
    return any(
        "recovery-key" in SECRET_LINES.get(name, (name,)) for name in names if name is not None
    )


def recovery_key_needed(steps: Sequence[Step], state_dir: Path | None) -> str | None:
    """What a run of ``steps`` needs of the recovery key: ``"new"`` (the run has not
    begun: make one), ``"given"`` (it began, so the key was shown, and a step that uses
    it is not done: that key again), or ``None`` (no step uses one, or every step that
    does is done). ``state_dir`` is the journal of the run resumed, ``None`` for a new
    run. The key is shown before the first step runs, so once the journal has an event
    the person has it."""
    using = [step.id for step in steps if uses_recovery_key(step)]
    if not using:
        return None
    done, started = step_states(state_dir) if state_dir is not None else (set(), set())
    if all(step in done for step in using):
        return None
    return "given" if done or started else "new"


def new_recovery_key() -> str:
    """A random recovery key of :data:`RECOVERY_KEY_BYTES` (256 bits) as a person types
    it: 64 modhex letters (:data:`MODHEX`) in eight dash-separated groups of eight
    (``cbdefghi-...``), the shape of systemd's recovery keys. The dashes are part of it:
    it is typed as shown."""
    text = random.token_hex(RECOVERY_KEY_BYTES).translate(MODHEX)
    groups = [text[i : i + RECOVERY_GROUP] for i in range(0, len(text), RECOVERY_GROUP)]
    return "-".join(groups)


def check_recovery_options(
    path: Path | None, needed: str | None, at_terminal: bool, command: str
) -> None:
    """Refuse, before anything is asked, a recovery key that could not be shown or read:
    ``path`` is ``--recovery-key-file``, ``needed`` what :func:`recovery_key_needed`
    said, ``command`` the one running (``rekey``) for the message."""
    if needed == "new":
        if path is not None and (path.exists() or not path.parent.is_dir()):
            raise UsageError(
                f"--recovery-key-file {str(path)!r} must be a new file in an existing "
                "directory: the key is written there once"
            )
        if path is None and not at_terminal:
            raise UsageError(
                "no terminal to show the recovery key on: give --recovery-key-file FILE"
            )
    if needed == "given" and path is None and not at_terminal:
        raise UsageError(
            f"the interrupted {command} added its recovery key to some disks: give it again "
            "with --recovery-key-file FILE (or run at a terminal to type it)"
        )


def recovery_key(
    path: Path | None, needed: str | None, at_terminal: bool, command: str
) -> str | None:
    """The recovery key the steps need: a new one, or the one shown when the run began
    (read from ``path`` or typed), or ``None``."""
    if needed == "new":
        return new_recovery_key()
    if needed == "given":
        from advisor.secrets import read_secret

        return read_secret(
            path,
            f"recovery key shown when this {command} began",
            option="--recovery-key-file",
            interactive=at_terminal,
            confirm=False,
        )
    return None


def show_recovery_key(key: str, path: Path | None, at_terminal: bool) -> None:
    """Show the new recovery key once, before it is added: on the terminal (never the
    log, never ``--json``), or written to ``path`` (0600)."""
    from advisor.secrets import write_secret_file

    if path is not None:
        write_secret_file(path, (key + "\n").encode())
        sys.stderr.write(f"advisor: the recovery key is in {path}: keep it offline\n")
        return
    sys.stderr.write(
        "\nRecovery key (it opens every disk; shown this once, write it down now and keep "
        f"it apart from the machine):\n\n    {key}\n\n"
    )
    if at_terminal:
        input("Press Enter once it is written down: ")
