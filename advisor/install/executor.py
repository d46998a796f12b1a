"""Running an install plan: one step at a time, journaled, logged, resumable.

The state directory holds three files:

``spec.json``
    the install spec and the plan's fingerprint, written before the first step, so
    ``--resume`` rebuilds exactly the same plan (same partition GUIDs, same host id);
``journal.jsonl``
    one line per event (``plan``, ``started``, ``done``, ``failed``, ``probed``,
    ``restored``), fsynced as it is written: a step is finished when its ``done`` line is
    on disk. The first event is written only once the target disk has passed its last
    check, so a run refused there leaves no install behind;
``install.log``
    every command with its exit status, time and output, secrets replaced by
    ``<redacted>``.

Secrets exist only in memory and on the stdin of the steps that need them. Ctrl-C is
caught and honoured between steps: the running step finishes (its child runs in its
own session, so the terminal's SIGINT does not reach it) and the journal stays exact.
A second Ctrl-C stops the running step's command at once; ``--resume`` then probes it.
An interactive step (``Step.interactive``) is the exception: it runs at the terminal,
in its foreground, so the Ctrl-C reaches it as it reaches any program the person runs;
if it then fails, it counts as stopped by Ctrl-C. Its output is not captured: the log
records its command and exit status, and says the output went to the terminal.
One run at a time holds the state directory (an exclusive ``flock`` on it).

``advisor rekey`` runs its steps with the same executor (any :class:`Runnable`: steps and
their fingerprint), in a state directory of its own with its own files and log name
(:mod:`advisor.install.rekey`). A probe can be fed a secret (``Step.probe_secret``): "the
new passphrase opens the disk" is how a resume knows a key was added.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any, Protocol

from advisor import runner
from advisor.errors import AdvisorError, UsageError
from advisor.files import make_private_dirs, write_atomically
from advisor.install.plan import Plan, command_line
from advisor.models import InstallSpec, Member, Settings, Step
from advisor.records import check_fields, tuples_of

SPEC_FILE = "spec.json"
JOURNAL_FILE = "journal.jsonl"
LOG_FILE = "install.log"
STATE_VERSION = 5  # 2: the settings shared with the configuration are one table; 3: disks;
# 4: the plan ends with advisor check; 5: the unlock method's settings and steps


class StepFailed(AdvisorError):
    """A step exited non-zero, or a second Ctrl-C stopped it (``interrupted``). Carries
    what the user needs to fix it and resume."""

    def __init__(
        self, step: Step, number: int, stderr_tail: str, log: Path, *, interrupted: bool = False
    ) -> None:
        what = "was stopped by Ctrl-C" if interrupted else "failed"
        super().__init__(f"step {number} ({step.id}: {step.title}) {what}")
        self.step = step
        self.number = number
        self.stderr_tail = stderr_tail
        self.log = log
        self.interrupted = interrupted


class Runnable(Protocol):
    """What the executor runs: an install's :class:`~advisor.install.plan.Plan`, or the
    steps of another journaled command (``advisor rekey``)."""

    @property
    def steps(self) -> tuple[Step, ...]: ...
    @property
    def fingerprint(self) -> str: ...


class Progress(Protocol):
    """What the executor reports while it runs (see
    :class:`advisor.install.progress.StepPrinter`)."""

    def started(self, number: int, total: int, step: Step) -> None: ...
    def finished(self, number: int, total: int, step: Step, seconds: float) -> None: ...
    def skipped(self, number: int, total: int, step: Step, reason: str) -> None: ...


@dataclass(frozen=True)
class Outcome:
    completed: bool
    stopped_after: str | None
    log: Path
    seconds: float
    interrupted: bool = False  # stopped by Ctrl-C rather than --stop-after
    #: What each step run by this invocation printed on stdout (redacted), by step id:
    #: the install's summary shows the last step's (``advisor check --summary``).
    outputs: Mapping[str, str] = field(default_factory=dict)


def save_spec(state_dir: Path, plan: Plan) -> None:
    """Start a new install's state: refuse if an unfinished one is there."""
    make_private_dirs(state_dir)
    if (state_dir / JOURNAL_FILE).exists():
        raise UsageError(
            f"{state_dir} holds an earlier install: continue it with --resume, or remove "
            "the directory to start over"
        )
    write_plan_file(state_dir / SPEC_FILE, plan)


def write_plan_file(path: Path, plan: Plan) -> None:
    """Save ``plan``'s spec and fingerprint (0600: it names the disk and the host id)."""
    data = {"version": STATE_VERSION, "fingerprint": plan.fingerprint, "spec": asdict(plan.spec)}
    write_atomically(path, (json.dumps(data, indent=2) + "\n").encode(), 0o600)


def load_spec(state_dir: Path) -> tuple[InstallSpec, str]:
    """The spec and plan fingerprint of the install in ``state_dir`` (for --resume)."""
    path = state_dir / SPEC_FILE
    if not path.exists():
        raise UsageError(f"nothing to resume: {path} does not exist")
    return read_plan_file(path)


def read_plan_file(path: Path) -> tuple[InstallSpec, str]:
    """The spec and fingerprint :func:`write_plan_file` saved; a :class:`UsageError` for a
    file that is missing, not one advisor wrote, or has a field of the wrong type."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict) or "version" not in data:
            raise ValueError(f"not version {STATE_VERSION} of advisor's plan format")
        if data["version"] != STATE_VERSION:
            # Another advisor wrote it (version 1 had the settings among the spec's fields).
            raise UsageError(
                f"{path} was written by another advisor version (plan format version "
                f"{data['version']!r}; this advisor reads version {STATE_VERSION}): make the "
                "plan again with 'advisor plan', or finish an install with the version that "
                "started it"
            )
        fields = data["spec"]
        if not isinstance(fields, dict):
            raise TypeError("'spec' is not a table")
        spec = _spec_from_json(fields)
        fingerprint = data["fingerprint"]
        if not isinstance(fingerprint, str):
            raise TypeError("'fingerprint' is not a string")
    except FileNotFoundError:
        raise UsageError(f"{path} does not exist") from None
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise UsageError(f"{path} is not an install plan advisor wrote: {error}") from None
    return spec, fingerprint


def _spec_from_json(fields: Mapping[str, Any]) -> InstallSpec:
    """The :class:`InstallSpec` (with its :class:`Settings` and :class:`Member` records)
    that ``asdict`` turned into ``fields``; a ``TypeError`` or ``KeyError`` for a field
    that is unknown, missing or of the wrong type."""
    settings = fields.get("settings")
    if not isinstance(settings, dict):
        raise TypeError("field 'settings' is not a table")
    settings = tuples_of(settings)
    check_fields(Settings, settings)
    members = fields.get("members")
    if not isinstance(members, list) or not all(isinstance(m, dict) for m in members):
        raise TypeError("field 'members' is not a list of tables")
    for member in members:
        check_fields(Member, member)
    others = {name: value for name, value in fields.items() if name not in ("settings", "members")}
    check_fields(InstallSpec, others)
    return InstallSpec(
        **others,
        settings=Settings(**settings),
        members=tuple(Member(**member) for member in members),
    )


def journal_events(state_dir: Path) -> list[dict[str, Any]]:
    """The events in ``state_dir``'s journal, oldest first (none if there is no journal).

    A line cut short by a crash is left out; the executor removes it before it appends
    (:func:`drop_torn_line`), so the events after it are never hidden.
    """
    path = state_dir / JOURNAL_FILE
    if not path.exists():
        return []
    events = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(event, dict):
            events.append(event)
    return events


def drop_torn_line(path: Path) -> None:
    """Cut ``path`` back to its last complete line (a crash mid-write leaves a partial
    one, and a new event appended to it would be unreadable)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return
    if data and not data.endswith(b"\n"):
        os.truncate(path, data.rfind(b"\n") + 1)


@contextmanager
def locked(state_dir: Path) -> Iterator[None]:
    """Hold ``state_dir`` for one run: a second install or resume on it is refused."""
    fd = os.open(state_dir, os.O_RDONLY | os.O_DIRECTORY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            if error.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise
            raise UsageError(
                f"another advisor run is using {state_dir}: wait for it to finish"
            ) from None
        yield
    finally:
        os.close(fd)  # releases the lock


class _Interrupt:
    """Remembers a Ctrl-C until the executor can stop between steps; a second one stops
    the running step's command at once (``subprocess.run`` kills its child when a
    ``KeyboardInterrupt`` reaches it)."""

    def __init__(self) -> None:
        self.requested = False

    def handle(self, signum: int, frame: FrameType | None) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        sys.stderr.write(
            "\nadvisor: stopping after this step (press Ctrl-C again to stop it now)\n"
        )

    @contextmanager
    def installed(self) -> Iterator[None]:
        previous = signal.signal(signal.SIGINT, self.handle)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)


class Executor:
    """Runs a plan's steps in order, skipping what the journal says is done."""

    def __init__(
        self,
        plan: Runnable,
        state_dir: Path,
        secrets: Mapping[str, str],
        progress: Progress,
        *,
        check_target: Callable[[], None],
        stop_after: str | None = None,
        log_name: str = LOG_FILE,
    ) -> None:
        self.plan = plan
        self.state_dir = state_dir
        self.secrets = dict(secrets)
        self.progress = progress
        self.check_target = check_target
        self.stop_after = stop_after
        self.log_path = state_dir / log_name
        self._interrupt = _Interrupt()
        self._plan_recorded = False
        self._outputs: dict[str, str] = {}

    def run(self) -> Outcome:
        """Run every step not yet done; return when all are done or a stop was asked."""
        with locked(self.state_dir):
            drop_torn_line(self.state_dir / JOURNAL_FILE)
            return self._run()

    def _run(self) -> Outcome:
        events = journal_events(self.state_dir)
        recorded = [e.get("fingerprint") for e in events if e.get("event") == "plan"]
        if recorded and recorded[-1] != self.plan.fingerprint:
            raise UsageError(
                f"the plan changed since the install in {self.state_dir} began "
                "(different options or backend version): resume with the same version, "
                "or remove the directory to start over"
            )
        done = {e.get("step") for e in events if e.get("event") in ("done", "probed")}
        started = {e.get("step") for e in events if e.get("event") == "started"}
        self._plan_recorded = bool(recorded)

        begin = time.monotonic()
        total = len(self.plan.steps)
        target_checked = False
        with self._interrupt.installed():
            for number, step in enumerate(self.plan.steps, start=1):
                if step.id in done:
                    self._restore_if_gone(number, total, step)
                elif step.id in started and step.probe and self.probe(step, step.probe):
                    # Interrupted after its effect was in place, before it was journaled.
                    self._record({"event": "probed", "step": step.id})
                    self.progress.skipped(number, total, step, "already in place")
                else:
                    if step.destructive and not target_checked:
                        # The last look at the disk before anything is destroyed.
                        self.check_target()
                        target_checked = True
                    self._run_step(number, total, step)
                if self._interrupt.requested or step.id == self.stop_after:
                    seconds = time.monotonic() - begin
                    return Outcome(
                        False,
                        step.id,
                        self.log_path,
                        seconds,
                        self._interrupt.requested,
                        dict(self._outputs),
                    )
        self._record({"event": "complete"})
        return Outcome(
            True, None, self.log_path, time.monotonic() - begin, outputs=dict(self._outputs)
        )

    def probe(self, step: Step, probe: tuple[str, ...]) -> bool:
        """Whether ``step``'s effect is in place (``probe`` exits 0), its
        ``probe_secret`` on stdin; logged. Always captured, even for an interactive step:
        a resume decides without asking the person."""
        secret = None
        if step.probe_secret is not None:
            secret = self.secrets[step.probe_secret] + ("\n" if step.secret_newline else "")
        result = runner.run(probe, secret=secret, check=False, start_new_session=True, env=step.env)
        stdin_note = f" (stdin: <{step.probe_secret}>)" if step.probe_secret else ""
        self._log(
            f"probe {step.id}: {command_line(step, probe)}{stdin_note} -> exit {result.returncode}"
        )
        return result.returncode == 0

    def _restore_if_gone(self, number: int, total: int, step: Step) -> None:
        """A step finished earlier: bring its effect back if a restart undid it."""
        if not step.restore or (step.probe and self.probe(step, step.probe)):
            self.progress.skipped(number, total, step, "done earlier")
            return
        for argv in step.restore:
            self._execute(number, total, step, argv, "restore")
        self._record({"event": "restored", "step": step.id})
        self.progress.skipped(number, total, step, "done earlier; brought back")

    def _run_step(self, number: int, total: int, step: Step) -> None:
        self.progress.started(number, total, step)
        self._record({"event": "started", "step": step.id})
        seconds = self._execute(number, total, step, step.argv, "step")
        self._record({"event": "done", "step": step.id, "seconds": round(seconds, 3)})
        self.progress.finished(number, total, step, seconds)

    def _execute(
        self, number: int, total: int, step: Step, argv: tuple[str, ...], kind: str
    ) -> float:
        """Run one of ``step``'s commands (``kind``: step or restore) with its secret on
        stdin, or at the terminal, and log it; its run time, or :class:`StepFailed`."""
        secret = None
        if step.secret is not None:
            secret = self.secrets[step.secret] + ("\n" if step.secret_newline else "")
        stdin_note = f" (stdin: <{step.secret}>)" if step.secret else ""
        if step.interactive:
            stdin_note = " (at the terminal)"
        self._log(f"{kind} {number}/{total} {step.id}: {command_line(step, argv)}{stdin_note}")
        begin = time.monotonic()
        try:
            result = self._start(step, argv, secret)
        except runner.CommandError as error:  # not found, timed out
            self._log(f"  {error}")
            self._record({"event": "failed", "step": step.id})
            raise StepFailed(step, number, str(error), self.log_path) from None
        except KeyboardInterrupt:  # the second Ctrl-C: the command was killed
            self._log("  stopped by Ctrl-C before it finished")
            self._record({"event": "failed", "step": step.id, "interrupted": True})
            raise StepFailed(step, number, "", self.log_path, interrupted=True) from None
        seconds = time.monotonic() - begin
        stdout, stderr = self._redact(result.stdout), self._redact(result.stderr)
        if kind == "step":
            self._outputs[step.id] = stdout
        self._log(f"  exit {result.returncode} after {seconds:.2f} s")
        for name, text in (("stdout", stdout), ("stderr", stderr)):
            for line in text.rstrip().splitlines():
                self._log(f"  {name}: {line}")
        if step.interactive:
            self._log("  its output went to the terminal, not to this log")
        if result.returncode != 0 and step.interactive and self._interrupt.requested:
            # The person's Ctrl-C reached the program at the terminal and ended it.
            self._record({"event": "failed", "step": step.id, "interrupted": True})
            raise StepFailed(step, number, "", self.log_path, interrupted=True)
        if result.returncode != 0:
            self._record({"event": "failed", "step": step.id, "exit": result.returncode})
            tail = "\n".join(stderr.strip().splitlines()[-10:])
            raise StepFailed(step, number, tail, self.log_path)
        return seconds

    def _start(self, step: Step, argv: tuple[str, ...], secret: str | None) -> runner.Result:
        """Run ``argv`` for ``step`` through the runner: captured, in a session of its own
        (the terminal's Ctrl-C waits for the step's end); or, for an interactive step, at
        the terminal with no time limit, since it waits for a person."""
        if step.interactive:
            return runner.run(argv, check=False, env=step.env, terminal=True, timeout=None)
        return runner.run(argv, secret=secret, check=False, env=step.env, start_new_session=True)

    def _redact(self, text: str) -> str:
        for value in self.secrets.values():
            if value:
                text = text.replace(value, "<redacted>")
        return text

    def _record(self, event: dict[str, Any]) -> None:
        if not self._plan_recorded:
            # The journal begins with the first thing done, after the target check.
            self._plan_recorded = True
            self._record({"event": "plan", "fingerprint": self.plan.fingerprint})
        event = {**event, "time": _now()}
        path = self.state_dir / JOURNAL_FILE
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, 0o600)
        try:
            os.write(fd, (json.dumps(event) + "\n").encode())
            os.fsync(fd)  # a step counts as done only once this line is on disk
        finally:
            os.close(fd)

    def _log(self, line: str) -> None:
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW
        fd = os.open(self.log_path, flags, 0o600)
        try:
            os.write(fd, f"{_now()} {self._redact(line)}\n".encode())
        finally:
            os.close(fd)


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
