"""``advisor rekey``: change the disk passphrase of an installed layout, journaled.

The layout comes from its record (``advisor.json``, :mod:`advisor.layoutrecord`); the
steps from the backend (:meth:`~advisor.models.Backend.rekey_steps`), checked like an
install's; they run with the install's executor, so the journal, the redacted log, the
probes, the lock and Ctrl-C between steps work as they do for an install. What differs:

- the state directory is on /persist by default (:data:`DEFAULT_STATE_DIR` under the
  root), so a rekey interrupted by a crash survives the reboot that follows (the root
  is rolled back at boot, /var/lib with it);
- it holds ``rekey.json`` (the options and the plan's fingerprint), a copy of the layout
  record the rekey began with (``advisor.json``), ``journal.jsonl`` and ``rekey.log``;
  a finished rekey's journal is cleared by the next one (its log goes on);
- the secrets are never stored: ``--resume`` asks for the old and the new passphrase
  again, and first checks them against the steps already done (their probes), so a
  resume with another new passphrase stops before it removes anything;
- a recovery key (``--recovery-key``) is generated, shown once (or written to the file
  ``--recovery-key-file`` names), and never logged; a resume that finds it added to
  some disks but not all asks for it again rather than making a second one.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from advisor.errors import PluginError, UsageError
from advisor.files import make_private_dirs, write_atomically
from advisor.install.executor import (
    JOURNAL_FILE,
    Executor,
    Outcome,
    Progress,
    journal_events,
    locked,
)
from advisor.install.plan import (
    SECRET_LINES,
    checked_steps,
    comment_line,
    script_steps,
    secrets_comment,
    steps_fingerprint,
)
from advisor.install.recovery import (
    check_recovery_options,
    recovery_key,
    recovery_key_needed,
    show_recovery_key,
    step_states,
    uses_recovery_key,
)
from advisor.layoutrecord import RECORD_FILE, load_record, read_record, record_text
from advisor.models import REKEY_SECRETS, Backend, Layout, RekeySpec, Step
from advisor.plugincall import backend_owner, blame, call_backend, sequence
from advisor.pluginmanager import LoadedPlugins

STATE_FILE = "rekey.json"
LOG_FILE = "rekey.log"
STATE_VERSION = 1
#: Under the root: /persist survives the boot's rollback, /var/lib does not.
DEFAULT_STATE_DIR = "persist/var/lib/advisor/rekey"


@dataclass(frozen=True)
class RekeyPlan:
    """The steps of one rekey, as the executor runs them and the script shows them."""

    spec: RekeySpec
    steps: tuple[Step, ...]

    @property
    def fingerprint(self) -> str:
        """A hash of every step, so ``--resume`` can tell the plan has not changed."""
        return steps_fingerprint(self.steps)


def build_plan(spec: RekeySpec, backend: Backend) -> RekeyPlan:
    """The backend's rekey steps for ``spec``, checked as an install's steps are (with
    the rekey's secrets, :data:`~advisor.models.REKEY_SECRETS`). A :class:`UsageError`
    when the backend cannot rekey (no steps), a :class:`PluginError` naming it for a
    step that cannot run or an id used twice."""
    steps = rekey_steps_of(spec, backend)
    if not steps:
        raise UsageError(
            f"the {backend.name} backend cannot change its passphrase: it has no rekey "
            "steps (see docs/plugins.md, rekey_steps)"
        )
    return RekeyPlan(spec, steps)


def rekey_steps_of(spec: RekeySpec, backend: Backend) -> tuple[Step, ...]:
    """``backend.rekey_steps(spec)``, each step checked, ids unique (empty: it cannot
    rekey); a :class:`PluginError` naming the backend otherwise."""
    owner = backend_owner(backend)
    given = sequence(owner, "rekey_steps", call_backend(backend, "rekey_steps", spec))
    steps = checked_steps(owner, "rekey_steps", given, REKEY_SECRETS)
    ids = [step.id for step in steps]
    twice = sorted({step_id for step_id in ids if ids.count(step_id) > 1})
    if twice:
        detail = f"step id {twice[0]!r} is used twice in the rekey (the journal keys on ids)"
        raise PluginError(blame(owner, detail))
    return steps


def default_state_dir(root: Path) -> Path:
    """Where a rekey of the system under ``root`` keeps its state unless told: on its
    /persist, which must be there (a :class:`UsageError` says to give --state-dir)."""
    persist = root / "persist"
    if not persist.is_dir():
        raise UsageError(
            f"{persist} is not there: the rekey's journal must survive a reboot, so it goes "
            "to the installed system's /persist; mount it, or give --state-dir DIR"
        )
    return root / DEFAULT_STATE_DIR


def check_devices(layout: Layout) -> None:
    """Refuse, before anything is asked or done, a layout whose disks, headers or header
    backups are not where its record says (a disk unplugged, a medium not mounted)."""
    for member in layout.members:
        named = [("data device", member.data_device), ("header", member.header)]
        for what, path in named:
            if path is not None and not Path(path).exists():
                raise UsageError(
                    f"disk {member.number}'s {what} {path} is not there: attach it (the layout "
                    "record names it), then run advisor rekey again"
                )
        backup = member.header_backup
        if backup is not None and not Path(backup).is_file():
            raise UsageError(
                f"disk {member.number}'s header backup {backup} is not there: mount its "
                "medium at that path (the layout record names it), then run advisor rekey "
                "again; the rekey takes it anew, since the old one still opens with the old "
                "passphrase"
            )


# ----------------------------------------------------------------------- the state


def prepare_state_dir(state_dir: Path) -> None:
    """Make ``state_dir`` ready for a new rekey: create it (0700); clear a finished
    rekey's journal and state (its log goes on); refuse one that did not finish."""
    if state_dir.exists() and not state_dir.is_dir():
        raise UsageError(f"--state-dir {str(state_dir)!r} is not a directory")
    try:
        make_private_dirs(state_dir)
    except OSError as error:
        raise UsageError(
            f"--state-dir {str(state_dir)!r} cannot be created: {error.strerror}"
        ) from None
    with locked(state_dir):
        events = journal_events(state_dir)
        if events and events[-1].get("event") != "complete":
            raise UsageError(
                f"{state_dir} holds a rekey that did not finish: continue it with --resume "
                "(the old and new passphrases are asked again)"
            )
        for name in (JOURNAL_FILE, STATE_FILE, RECORD_FILE):
            (state_dir / name).unlink(missing_ok=True)


def save_state(state_dir: Path, plan: RekeyPlan) -> None:
    """Write the rekey's options, fingerprint and layout record to ``state_dir`` before
    its first step, so ``--resume`` rebuilds the same steps."""
    spec = plan.spec
    options = {"recovery_key": spec.recovery_key, "fast_kdf": spec.fast_kdf}
    data = {"version": STATE_VERSION, "fingerprint": plan.fingerprint, "options": options}
    write_atomically(state_dir / RECORD_FILE, record_text(spec.layout).encode(), 0o600)
    write_atomically(state_dir / STATE_FILE, (json.dumps(data, indent=2) + "\n").encode(), 0o600)


def load_state(state_dir: Path) -> tuple[RekeySpec, str]:
    """The spec and fingerprint of the rekey in ``state_dir`` (for --resume); a
    :class:`UsageError` when there is none, or not one advisor wrote."""
    path = state_dir / STATE_FILE
    if not path.exists():
        raise UsageError(f"nothing to resume: {path} does not exist")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict) or data.get("version") != STATE_VERSION:
            raise ValueError(f"not version {STATE_VERSION} of advisor's rekey state")
        options, fingerprint = data["options"], data["fingerprint"]
        flags = {name: options[name] for name in ("recovery_key", "fast_kdf")}
        if not isinstance(fingerprint, str) or not all(
            isinstance(value, bool) for value in flags.values()
        ):
            raise TypeError("a field has the wrong type")
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise UsageError(f"{path} is not a rekey state advisor wrote: {error}") from None
    layout = read_record(state_dir / RECORD_FILE)
    return RekeySpec(layout=layout, **flags), fingerprint


def rebuild_plan(state_dir: Path, backend: Backend, spec: RekeySpec, fingerprint: str) -> RekeyPlan:
    """The plan of the rekey in ``state_dir``, exactly as it began; a
    :class:`UsageError` if it would come out differently now."""
    plan = build_plan(spec, backend)
    if plan.fingerprint != fingerprint:
        raise UsageError(
            f"the steps of the rekey in {state_dir} would differ now (another advisor "
            "version or backend plugin?): finish it with the version that began it"
        )
    return plan


# ------------------------------------------------------------------ the secrets


def rekey_secrets(old: str, new: str, recovery_key: str | None) -> dict[str, str]:
    """The secrets the rekey's steps are fed, by name (:data:`REKEY_SECRETS`); those made
    of two are the two one a line (:data:`~advisor.install.plan.SECRET_LINES`)."""
    values = {"passphrase": old, "new-passphrase": new}
    if recovery_key is not None:
        values["recovery-key"] = recovery_key
    for name, parts in SECRET_LINES.items():
        if all(part in values for part in parts):
            values[name] = "\n".join(values[part] for part in parts)
    return values


def check_passphrases(old: str, new: str) -> None:
    """Refuse a new passphrase that is the old one: removing the old key slot would then
    remove the only one that opens the disk."""
    if old == new:
        raise UsageError("the new passphrase is the current one: choose another")


def check_given_again(
    plan: RekeyPlan, state_dir: Path, executor: Executor, say: Callable[[str], None]
) -> None:
    """On a resume, before any step: every step done earlier whose probe takes a secret
    must still find its effect with the secrets given now (the new passphrase opens
    where it was added). Otherwise the secrets differ from the first run's: a
    :class:`UsageError`, and nothing is done."""
    done, _ = step_states(state_dir)
    for step in plan.steps:
        if step.id not in done or step.probe is None or step.probe_secret is None:
            continue
        if step.probe_secret not in executor.secrets:
            continue  # the recovery key, once every step that uses it is done
        if not executor.probe(step, step.probe):
            raise UsageError(
                f"step {step.id} ({step.title}) was done, and its check fails with the "
                f"{step.probe_secret.replace('-', ' ')} given now: give the same passphrases "
                "as the rekey that began it; nothing was changed"
            )
    say("the passphrases given match the steps done earlier")


# --------------------------------------------------------------------- running


def make_executor(
    plan: RekeyPlan,
    state_dir: Path,
    values: Mapping[str, str],
    progress: Progress,
    stop_after: str | None,
) -> Executor:
    """The install's executor, for the rekey's steps, logging to ``rekey.log``."""
    return Executor(
        plan,
        state_dir,
        values,
        progress,
        # No rekey step destroys data: the last look before one is never needed.
        check_target=lambda: None,
        stop_after=stop_after,
        log_name=LOG_FILE,
    )


def run(executor: Executor, state_dir: Path, plan: RekeyPlan, *, resume: bool) -> Outcome:
    """Run the rekey: for a new one, its state is saved first."""
    if not resume:
        save_state(state_dir, plan)
    return executor.run()


def check_stop_after(plan: RekeyPlan, stop_after: str | None) -> None:
    """Refuse a ``--stop-after`` that names no step of ``plan``."""
    if stop_after is not None and stop_after not in {step.id for step in plan.steps}:
        raise UsageError(
            f"--stop-after {stop_after!r}: no such step (see 'advisor rekey --dry-run')"
        )


def check_terminal(plan: RekeyPlan, at_terminal: bool) -> None:
    """Refuse to begin without a terminal when a step needs the person there."""
    if at_terminal:
        return
    for step in plan.steps:
        if step.interactive:
            raise UsageError(
                f"step {step.id} ({step.title}) needs you at the terminal, and this rekey "
                "has none: run advisor rekey at a terminal"
            )


# --------------------------------------------------------------------- showing it


def render_script(plan: RekeyPlan, record: Path) -> str:
    """The rekey as a shell script a reviewer can read; the secrets from variables."""
    spec = plan.spec
    layout = spec.layout
    names = sorted(
        {name for step in plan.steps for name in (step.secret, step.probe_secret) if name},
        key=REKEY_SECRETS.index,
    )
    parts = [part for name in names for part in SECRET_LINES.get(name, (name,))]
    lines = [
        "#!/bin/sh",
        comment_line(
            f"advisor rekey plan {plan.fingerprint}: backend {layout.backend}, pool "
            f"{layout.settings.pool}, {len(layout.members)} disk(s), from {record}"
        ),
        *(
            comment_line(
                f"disk {m.number}: {m.data_device}"
                + (f", header {m.header}" if m.header else "")
                + (f", header backup {m.header_backup}" if m.header_backup else "")
            )
            for m in layout.members
        ),
        secrets_comment(list(dict.fromkeys(parts))),
        "set -eu",
        "",
    ]
    return "\n".join([*lines, *script_steps(plan.steps)]) + "\n"


def result_json(
    plan: RekeyPlan, outcome: Outcome, state_dir: Path, record: Path, recovery_added: bool
) -> dict[str, Any]:
    """What a rekey did, for ``--json``: never a secret (not the recovery key either:
    only whether one was added)."""
    layout = plan.spec.layout
    return {
        "backend": layout.backend,
        "pool": layout.settings.pool,
        "record": str(record),
        "completed": outcome.completed,
        "stopped_after": outcome.stopped_after,
        "interrupted": outcome.interrupted,
        "recovery_key_added": recovery_added,
        "members": [
            {
                "number": member.number,
                "data_device": member.data_device,
                "header": member.header,
                "header_backup": member.header_backup,
            }
            for member in layout.members
        ],
        "steps": [step.id for step in plan.steps],
        "state_dir": str(state_dir),
        "log": str(outcome.log),
        "seconds": round(outcome.seconds, 3),
    }


def resume_command(state_dir: Path, options: Sequence[str]) -> str:
    """The command that continues the rekey in ``state_dir``, with ``options`` (the
    secrets' files)."""
    return shlex.join(["advisor", "rekey", "--resume", "--state-dir", str(state_dir), *options])


# --------------------------------------------------------------------- the command


@dataclass(frozen=True)
class RekeyRequest:
    """What ``advisor rekey`` was asked, from its options (see ``advisor rekey --help``)."""

    root: Path
    record: Path | None = None
    passphrase_file: Path | None = None
    new_passphrase_file: Path | None = None
    recovery_key: bool = False
    recovery_key_file: Path | None = None
    state_dir: Path | None = None
    resume: bool = False
    dry_run: bool = False
    stop_after: str | None = None
    fast_kdf: bool = False
    json: bool = False


def rekey_command(request: RekeyRequest, plugins: LoadedPlugins) -> int:
    """Run ``advisor rekey``: its exit status (0 done or stopped as asked, 1 a step
    failed, 130 Ctrl-C); a :class:`UsageError` for bad input, before anything is done."""
    from advisor.console import line_printer, print_json
    from advisor.install.executor import StepFailed
    from advisor.install.progress import StepPrinter

    # Not install.session: it loads the disk probe (pyudev), which a rekey does not need,
    # and every import costs seconds on a slow machine.
    from advisor.secrets import MIN_PASSPHRASE, read_secret

    plan, record, state_dir = _plan_of(request, plugins)
    check_stop_after(plan, request.stop_after)
    if request.dry_run:
        sys.stdout.write(render_script(plan, record))
        return 0
    if os.geteuid() != 0:
        raise UsageError("advisor rekey changes the disks' key slots and must run as root")
    check_devices(plan.spec.layout)
    at_terminal = sys.stdin.isatty() and sys.stderr.isatty()  # a person to ask and show
    check_terminal(plan, at_terminal)
    recovery = recovery_key_needed(plan.steps, state_dir if request.resume else None)
    if request.recovery_key_file is not None and not request.recovery_key and not request.resume:
        raise UsageError("--recovery-key-file is for --recovery-key")
    check_recovery_options(request.recovery_key_file, recovery, at_terminal, "rekey")
    if not request.resume:
        prepare_state_dir(state_dir)
    old = read_secret(
        request.passphrase_file,
        "current disk passphrase",
        option="--passphrase-file",
        interactive=at_terminal,
        confirm=False,
    )
    new = read_secret(
        request.new_passphrase_file,
        "new disk passphrase",
        option="--new-passphrase-file",
        interactive=at_terminal,
        minimum=MIN_PASSPHRASE,
    )
    check_passphrases(old, new)
    key = recovery_key(request.recovery_key_file, recovery, at_terminal, "rekey")
    messages = line_printer(stderr=True)
    executor = make_executor(
        plan, state_dir, rekey_secrets(old, new, key), StepPrinter(messages), request.stop_after
    )
    if request.resume:
        check_given_again(plan, state_dir, executor, lambda text: messages(text, "dim"))
    if recovery == "new" and key is not None:
        show_recovery_key(key, request.recovery_key_file, at_terminal)
    resume = resume_command(state_dir, _resume_options(request))
    try:
        outcome = run(executor, state_dir, plan, resume=request.resume)
    except StepFailed as failure:
        messages(f"advisor: error: {failure}", "bold red")
        for text in failure.stderr_tail.splitlines():
            messages(f"  {text}", "")
        messages(f"Full log: {failure.log}", "")
        first = "Continue" if failure.interrupted else "Fix the cause, then continue"
        messages(f"{first} with: {resume}", "")
        return 130 if failure.interrupted else 1
    added = any(uses_recovery_key(step) for step in plan.steps)
    if request.json:
        print_json(result_json(plan, outcome, state_dir, record, added))
    else:
        render_result(plan, outcome, record, resume)
    return 130 if outcome.interrupted else 0


def _plan_of(request: RekeyRequest, plugins: LoadedPlugins) -> tuple[RekeyPlan, Path, Path]:
    """The plan, the record it comes from, and the state directory: a new rekey's from
    the layout record, or the one in ``--state-dir`` for ``--resume``."""
    if request.resume:
        if request.record is not None or request.recovery_key or request.fast_kdf:
            raise UsageError(
                "--resume continues the rekey as it began: leave out --record, "
                "--recovery-key and --insecure-fast-kdf"
            )
        state_dir = request.state_dir or default_state_dir(request.root)
        spec, fingerprint = load_state(state_dir)
        backend = plugins.backend(spec.layout.backend)
        return (
            rebuild_plan(state_dir, backend, spec, fingerprint),
            state_dir / RECORD_FILE,
            state_dir,
        )
    layout, record = load_record(request.root, request.record)
    backend = plugins.backend(layout.backend)
    plan = build_plan(RekeySpec(layout, request.recovery_key, request.fast_kdf), backend)
    if request.dry_run:  # touches nothing: no state directory is needed
        return plan, record, request.state_dir or request.root / DEFAULT_STATE_DIR
    return plan, record, request.state_dir or default_state_dir(request.root)


def _resume_options(request: RekeyRequest) -> list[str]:
    """The options a resume of this rekey needs again: the secrets' files (absolute)."""
    options: list[str] = []
    for option, path in (
        ("--passphrase-file", request.passphrase_file),
        ("--new-passphrase-file", request.new_passphrase_file),
        ("--recovery-key-file", request.recovery_key_file),
    ):
        if path is not None:
            options += [option, str(path.absolute())]
    return options


def render_result(plan: RekeyPlan, outcome: Outcome, record: Path, resume: str) -> None:
    """The end of a rekey for a person: a table of the disks and what each now opens
    with, or where it stopped and how to go on."""
    from advisor.console import line_printer

    line = line_printer(stderr=False)
    layout = plan.spec.layout
    if not outcome.completed:
        line(f"Stopped after step {outcome.stopped_after}. Continue with: {resume}", "yellow")
        line(f"Log: {outcome.log}", "")
        return
    from rich.table import Table
    from rich.text import Text

    from advisor.console import stdout_console

    table = Table(show_edge=False, pad_edge=False)
    for column in ("Disk", "Device", "Header", "Header backup"):
        table.add_column(column, overflow="fold")
    for member in layout.members:
        backup = member.header_backup
        table.add_row(
            Text(str(member.number), style="bold"),
            Text(member.data_device),
            Text(member.header or "on the disk"),
            Text(f"{backup} (taken anew, opens with the new passphrase)" if backup else "none"),
        )
    console = stdout_console()
    console.print(
        Text(
            f"Changed the passphrase of {layout.backend} pool {layout.settings.pool} in "
            f"{outcome.seconds:.1f} s: the new one opens every disk, the old one none.",
            style="bold",
        )
    )
    console.print(table)
    console.print(Text(f"Layout record: {record}   Log: {outcome.log}"))
