"""The executor with real commands on the host: journal, log, resume, interruption."""

from __future__ import annotations

import fcntl
import json
import os
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from advisor import runner
from advisor.errors import UsageError
from advisor.install.executor import (
    Executor,
    Outcome,
    StepFailed,
    journal_events,
    load_spec,
    read_plan_file,
    save_spec,
    write_plan_file,
)
from advisor.install.plan import Plan
from advisor.models import InstallSpec, Member, Settings, Step

CANARY = "exec-canary-4c1d"
SPEC = InstallSpec(
    backend="luks",
    settings=Settings(host_id="8f2a91c4", hostname="h", user="u"),
    members=(Member(1, "/dev/disk/by-id/x", "x", "x", 1, esp_partuuid="e", data_partuuid="d"),),
)


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []

    def started(self, number: int, total: int, step: Step) -> None:
        self.events.append(("started", step.id))

    def finished(self, number: int, total: int, step: Step, seconds: float) -> None:
        self.events.append(("finished", step.id))

    def skipped(self, number: int, total: int, step: Step, reason: str) -> None:
        self.events.append((f"skipped: {reason}", step.id))


def touch_steps(folder: Path, count: int) -> list[Step]:
    return [
        Step(
            f"s{i}",
            f"step {i}",
            ("touch", str(folder / f"s{i}")),
            probe=("test", "-e", str(folder / f"s{i}")),
            destructive=i == 2,
        )
        for i in range(1, count + 1)
    ]


def execute(
    plan: Plan, state: Path, *, stop_after: str | None = None, checks: list[str] | None = None
) -> tuple[Outcome, Recorder]:
    recorder = Recorder()
    executor = Executor(
        plan,
        state,
        {"passphrase": CANARY},
        recorder,
        check_target=lambda: (checks if checks is not None else []).append("checked"),
        stop_after=stop_after,
    )
    return executor.run(), recorder


def test_runs_every_step_and_journals_it(tmp_path: Path) -> None:
    plan = Plan(SPEC, tuple(touch_steps(tmp_path, 3)))
    state = tmp_path / "state"
    save_spec(state, plan)
    checks: list[str] = []
    outcome, _ = execute(plan, state, checks=checks)
    assert outcome.completed
    assert [f.name for f in sorted(tmp_path.glob("s?"))] == ["s1", "s2", "s3"]
    events = [(e["event"], e.get("step")) for e in journal_events(state)]
    assert events[0] == ("plan", None)
    assert events[-1] == ("complete", None)
    assert events.count(("done", "s2")) == 1
    assert checks == ["checked"]  # once, before the first destructive step
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    for name in ("journal.jsonl", "install.log", "spec.json"):
        assert stat.S_IMODE((state / name).stat().st_mode) == 0o600
    assert load_spec(state) == (SPEC, plan.fingerprint)


def test_secret_goes_to_stdin_and_never_to_the_log_or_journal(tmp_path: Path) -> None:
    out = tmp_path / "got"
    step = Step("secret", "read stdin", ("sh", "-c", f"cat > {out}; cat {out} >&2"),
                secret="passphrase")  # fmt: skip
    plan = Plan(SPEC, (step,))
    state = tmp_path / "state"
    save_spec(state, plan)
    execute(plan, state)
    assert out.read_text() == CANARY  # no newline unless the step asks for one
    for name in ("journal.jsonl", "install.log", "spec.json"):
        assert CANARY not in (state / name).read_text()
    assert "<redacted>" in (state / "install.log").read_text()
    assert "(stdin: <passphrase>)" in (state / "install.log").read_text()


def test_failure_names_the_step_and_resume_continues(tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    check = f"test -e {gate} || {{ echo no gate >&2; exit 3; }}"
    steps = [
        *touch_steps(tmp_path, 2),
        Step("check", "needs the gate", ("sh", "-c", check)),
        Step("last", "last", ("touch", str(tmp_path / "last"))),
    ]
    plan = Plan(SPEC, tuple(steps))
    state = tmp_path / "state"
    save_spec(state, plan)
    with pytest.raises(StepFailed) as info:
        execute(plan, state)
    assert info.value.step.id == "check" and info.value.number == 3
    assert info.value.stderr_tail == "no gate"
    assert info.value.log == state / "install.log"
    assert not (tmp_path / "last").exists()

    gate.touch()
    outcome, recorder = execute(plan, state)
    assert outcome.completed
    assert recorder.events[:2] == [("skipped: done earlier", "s1"), ("skipped: done earlier", "s2")]
    assert ("started", "check") in recorder.events
    assert (tmp_path / "last").exists()


def test_stop_after_and_resume_reach_the_same_end(tmp_path: Path) -> None:
    plan = Plan(SPEC, tuple(touch_steps(tmp_path, 4)))
    state = tmp_path / "state"
    save_spec(state, plan)
    outcome, _ = execute(plan, state, stop_after="s2")
    assert not outcome.completed and outcome.stopped_after == "s2"
    assert not outcome.interrupted
    assert not (tmp_path / "s3").exists()
    outcome, recorder = execute(plan, state)
    assert outcome.completed
    assert [e for e in recorder.events if e[0] == "started"] == [
        ("started", "s3"),
        ("started", "s4"),
    ]


def test_interrupted_step_is_probed_on_resume(tmp_path: Path) -> None:
    plan = Plan(SPEC, tuple(touch_steps(tmp_path, 2)))
    state = tmp_path / "state"
    save_spec(state, plan)
    # As if the process died after s1 ran but before its "done" line was written.
    (tmp_path / "s1").touch()
    with (state / "journal.jsonl").open("w") as journal:
        journal.write(json.dumps({"event": "plan", "fingerprint": plan.fingerprint}) + "\n")
        journal.write(json.dumps({"event": "started", "step": "s1"}) + "\n")
        journal.write('{"event": "don')  # cut short by the crash
    outcome, recorder = execute(plan, state)
    assert outcome.completed
    assert recorder.events[0] == ("skipped: already in place", "s1")


def test_ctrl_c_stops_between_steps(tmp_path: Path) -> None:
    # The step sends SIGINT to the installer while it runs, as a terminal would.
    interrupt = Step(
        "interrupt",
        "Ctrl-C arrives",
        ("sh", "-c", f"kill -INT {os.getpid()}; sleep 0.2; touch {tmp_path / 'finished'}"),
    )
    plan = Plan(SPEC, (interrupt, *touch_steps(tmp_path, 1)))  # fmt: skip
    state = tmp_path / "state"
    save_spec(state, plan)
    outcome, _ = execute(plan, state)
    assert not outcome.completed and outcome.stopped_after == "interrupt"
    assert outcome.interrupted
    assert (tmp_path / "finished").exists()  # the running step was not killed
    assert not (tmp_path / "s1").exists()
    assert ("done", "interrupt") in [(e["event"], e.get("step")) for e in journal_events(state)]


def test_a_changed_plan_is_not_resumed(tmp_path: Path) -> None:
    plan = Plan(SPEC, tuple(touch_steps(tmp_path, 2)))
    state = tmp_path / "state"
    save_spec(state, plan)
    execute(plan, state, stop_after="s1")
    other = Plan(SPEC, tuple(touch_steps(tmp_path, 3)))
    with pytest.raises(UsageError, match="plan changed"):
        execute(other, state)


def test_new_install_refuses_an_existing_state(tmp_path: Path) -> None:
    plan = Plan(SPEC, tuple(touch_steps(tmp_path, 1)))
    state = tmp_path / "state"
    save_spec(state, plan)
    execute(plan, state)
    with pytest.raises(UsageError, match="--resume"):
        save_spec(state, plan)


def test_missing_program_is_a_step_failure(tmp_path: Path) -> None:
    plan = Plan(SPEC, (Step("ghost", "no such program", ("advisor-no-such-program",)),))
    state = tmp_path / "state"
    save_spec(state, plan)
    with pytest.raises(StepFailed, match="ghost"):
        execute(plan, state)
    assert ("failed", "ghost") in [(e["event"], e.get("step")) for e in journal_events(state)]


def test_a_saved_plan_reads_back_as_the_same_spec(tmp_path: Path) -> None:
    plan = Plan(SPEC, tuple(touch_steps(tmp_path, 2)))
    path = tmp_path / "plan.json"
    write_plan_file(path, plan)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert read_plan_file(path) == (SPEC, plan.fingerprint)


@pytest.mark.parametrize("version", [1, 3, 99])
def test_a_plan_of_another_advisor_version_says_to_make_it_again(
    tmp_path: Path, version: int
) -> None:
    path = tmp_path / "plan.json"
    write_plan_file(path, Plan(SPEC, tuple(touch_steps(tmp_path, 1))))
    path.write_text(json.dumps({**json.loads(path.read_text()), "version": version}))
    with pytest.raises(UsageError, match=f"plan format version {version}; this advisor reads"):
        read_plan_file(path)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d["spec"]["members"][0].update(disk_size="1"), "'disk_size' has the wrong"),
        (lambda d: d["spec"].update(members={}), "field 'members' is not a list of tables"),
        (lambda d: d["spec"]["settings"].update(trim=1), "field 'trim' has the wrong type"),
        (lambda d: d["spec"].update(settings=[]), "field 'settings' is not a table"),
        (lambda d: d["spec"].update(pool_options={"ashift": 12}), "'pool_options'"),
        (lambda d: d["spec"].update(extra="x"), "unknown field 'extra'"),
        (lambda d: d["spec"]["settings"].pop("host_id"), "host_id"),
        (lambda d: d["spec"]["members"][0].pop("disk_id"), "disk_id"),
        (lambda d: d.pop("version"), "version 5"),
        (lambda d: d.update(spec=[]), "'spec' is not a table"),
        (lambda d: d.pop("fingerprint"), "fingerprint"),
    ],
)
def test_a_damaged_plan_file_is_refused_with_a_message(
    tmp_path: Path, change: Callable[[dict[str, Any]], object], message: str
) -> None:
    path = tmp_path / "plan.json"
    write_plan_file(path, Plan(SPEC, tuple(touch_steps(tmp_path, 1))))
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))
    with pytest.raises(UsageError, match="not an install plan advisor wrote") as error:
        read_plan_file(path)
    assert message in str(error.value)


def test_a_plan_file_that_is_not_json_or_missing_is_refused(tmp_path: Path) -> None:
    (tmp_path / "plan.json").write_bytes(b"\xff\x00 not json")
    with pytest.raises(UsageError, match="not an install plan"):
        read_plan_file(tmp_path / "plan.json")
    with pytest.raises(UsageError, match="does not exist"):
        read_plan_file(tmp_path / "missing.json")


def test_events_after_a_torn_line_are_kept(tmp_path: Path) -> None:
    plan = Plan(SPEC, tuple(touch_steps(tmp_path, 3)))
    state = tmp_path / "state"
    save_spec(state, plan)
    with (state / "journal.jsonl").open("w") as journal:
        journal.write(json.dumps({"event": "plan", "fingerprint": plan.fingerprint}) + "\n")
        journal.write(json.dumps({"event": "done", "step": "s1"}) + "\n")
        journal.write('{"event": "don')  # cut short by a crash
    execute(plan, state, stop_after="s2")
    # The resume's events follow a whole line, so the next resume sees s2 as done.
    assert ("done", "s2") in [(e["event"], e.get("step")) for e in journal_events(state)]
    _, recorder = execute(plan, state)
    assert [e for e in recorder.events if e[0] == "started"] == [("started", "s3")]


def test_a_refused_target_leaves_no_journal(tmp_path: Path) -> None:
    plan = Plan(SPEC, (Step("wipe", "destroy", ("true",), destructive=True),))
    state = tmp_path / "state"
    save_spec(state, plan)

    def refuse() -> None:
        raise UsageError("the disk is in use now")

    with pytest.raises(UsageError, match="in use"):
        Executor(plan, state, {}, Recorder(), check_target=refuse).run()
    assert not (state / "journal.jsonl").exists()
    save_spec(state, plan)  # nothing was begun: a new install may start here


def test_a_second_run_on_the_same_state_is_refused(tmp_path: Path) -> None:
    plan = Plan(SPEC, tuple(touch_steps(tmp_path, 1)))
    state = tmp_path / "state"
    save_spec(state, plan)
    fd = os.open(state, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # another run holds it
        with pytest.raises(UsageError, match="another advisor run"):
            execute(plan, state)
    finally:
        os.close(fd)
    assert execute(plan, state)[0].completed


def restorable_steps(folder: Path) -> tuple[Step, ...]:
    """``open`` makes a file a restart would lose; ``stamp`` has no probe."""
    opened, stamps = folder / "opened", folder / "stamps"
    return (
        Step(
            "open",
            "open",
            ("sh", "-c", f"cat > {opened}"),
            secret="passphrase",
            probe=("test", "-e", str(opened)),
            restore=(("sh", "-c", f"cat > {opened}"),),
        ),
        Step(
            "stamp",
            "stamp",
            ("sh", "-c", f"echo run >> {stamps}"),
            restore=(("sh", "-c", f"echo restore >> {stamps}"),),
        ),
        Step("last", "last", ("touch", str(folder / "last"))),
    )


def test_resume_brings_back_what_a_restart_undid(tmp_path: Path) -> None:
    plan = Plan(SPEC, restorable_steps(tmp_path))
    state = tmp_path / "state"
    save_spec(state, plan)
    execute(plan, state, stop_after="stamp")
    (tmp_path / "opened").unlink()  # as a reboot closes a LUKS mapping
    outcome, recorder = execute(plan, state)
    assert outcome.completed
    assert recorder.events[:2] == [
        ("skipped: done earlier; brought back", "open"),
        ("skipped: done earlier; brought back", "stamp"),  # no probe: always restored
    ]
    assert (tmp_path / "opened").read_text() == CANARY  # the restore got the secret
    assert (tmp_path / "stamps").read_text() == "run\nrestore\n"
    events = [(e["event"], e.get("step")) for e in journal_events(state)]
    assert ("restored", "open") in events
    assert CANARY not in (state / "install.log").read_text()


def test_resume_leaves_in_place_what_is_still_there(tmp_path: Path) -> None:
    plan = Plan(SPEC, restorable_steps(tmp_path))
    state = tmp_path / "state"
    save_spec(state, plan)
    execute(plan, state, stop_after="open")
    (tmp_path / "opened").write_text("kept")
    _, recorder = execute(plan, state)
    assert recorder.events[0] == ("skipped: done earlier", "open")
    assert (tmp_path / "opened").read_text() == "kept"


def test_a_failed_restore_names_the_step(tmp_path: Path) -> None:
    broken = Step("open", "open", ("true",), probe=("false",), restore=(("sh", "-c", "exit 3"),))
    plan = Plan(SPEC, (broken, Step("last", "last", ("true",))))
    state = tmp_path / "state"
    save_spec(state, plan)
    execute(plan, state, stop_after="open")
    with pytest.raises(StepFailed, match="open"):
        execute(plan, state)


def test_a_second_ctrl_c_stops_the_running_step(tmp_path: Path) -> None:
    # Two SIGINTs while the step runs: the first asks to stop, the second kills it.
    pid = os.getpid()
    step = Step(
        "long",
        "a long step",
        ("sh", "-c", f"kill -INT {pid}; sleep 0.3; kill -INT {pid}; sleep 30; touch {tmp_path}/x"),
    )
    plan = Plan(SPEC, (step,))
    state = tmp_path / "state"
    save_spec(state, plan)
    with pytest.raises(StepFailed, match=r"long: a long step\) was stopped by Ctrl-C") as failure:
        execute(plan, state)
    assert failure.value.interrupted
    assert not (tmp_path / "x").exists()
    events = [(e["event"], e.get("step")) for e in journal_events(state)]
    assert events[-1] == ("failed", "long")


# --- Steps with an environment, and steps at the terminal ------------------------------------


def test_a_step_gets_its_env_and_the_log_shows_it(tmp_path: Path) -> None:
    out = tmp_path / "got"
    env = {"FOO": "two words", "BAR": "x"}
    probe = ("sh", "-c", f'test "$FOO" = "two words" && test -e {out}')
    step = Step("env", "use FOO", ("sh", "-c", f'printf %s "$FOO" > {out}'), env=env, probe=probe)
    plan = Plan(SPEC, (step,))
    state = tmp_path / "state"
    save_spec(state, plan)
    execute(plan, state)
    assert out.read_text() == "two words"
    assert "FOO" not in os.environ  # the step's own, not the install's
    log = (state / "install.log").read_text()
    assert "step 1/1 env: env 'FOO=two words' BAR=x sh -c" in log
    # The probe gets it too: an interrupted step is found in place on resume.
    (state / "journal.jsonl").write_text(
        json.dumps({"event": "plan", "fingerprint": plan.fingerprint})
        + "\n"
        + json.dumps({"event": "started", "step": "env"})
        + "\n"
    )
    _, recorder = execute(plan, state)
    assert recorder.events == [("skipped: already in place", "env")]


ANSWER_PROMPTS = Path(__file__).parent / "answer_prompts.py"
#: Runs the executor on the steps given as JSON, with the install's progress printer and
#: its failure report: in a child process whose terminal is the test's pseudo-terminal.
RUN_AT_TERMINAL = """
import json, sys
from pathlib import Path
from advisor.console import line_printer
from advisor.install.executor import Executor, StepFailed, load_spec
from advisor.install.plan import Plan
from advisor.install.progress import StepPrinter, step_failure
from advisor.models import Step

state = Path(sys.argv[1])
steps = tuple(Step(**{**s, "argv": tuple(s["argv"])}) for s in json.loads(sys.argv[2]))
plan = Plan(load_spec(state)[0], steps)
printer = line_printer(stderr=True)
try:
    Executor(plan, state, {}, StepPrinter(printer), check_target=lambda: None).run()
except StepFailed as failure:
    step_failure(printer, failure, state, plan)
    sys.exit(1)
print("install finished")
"""


def at_terminal(
    tmp_path: Path, state: Path, steps: list[dict[str, Any]], answers: list[tuple[str, str]]
) -> tuple[int, str]:
    """Run :data:`RUN_AT_TERMINAL` on a pseudo-terminal, typing each answer once its prompt
    shows: its exit status and what the terminal showed."""
    answers_file, transcript = tmp_path / "answers.json", tmp_path / "transcript"
    answers_file.write_text(json.dumps(answers))
    command = [sys.executable, "-c", RUN_AT_TERMINAL, str(state), json.dumps(steps)]
    status = subprocess.run(
        [sys.executable, ANSWER_PROMPTS, transcript, answers_file, "--", *command],
        check=False,
        timeout=120,
    ).returncode
    return status, transcript.read_text(errors="replace").replace("\r\n", "\n")


def test_an_interactive_step_reads_what_the_person_types_at_the_terminal(tmp_path: Path) -> None:
    out = tmp_path / "typed"
    # One line from stdin, one from /dev/tty: the step has the terminal as its stdin and
    # as its controlling terminal (where PIN prompts such as systemd's are read).
    script = f'printf "Answer: "; read a; printf "PIN: "; read p < /dev/tty; echo "$a $p" > {out}'
    steps: list[dict[str, Any]] = [
        {"id": "before", "title": "a captured step", "argv": ["sh", "-c", "echo quiet-output"]},
        {"id": "ask", "title": "Type two lines", "argv": ["sh", "-c", script],
         "interactive": True, "env": {"FOO": "bar"}},
    ]  # fmt: skip
    plan = Plan(SPEC, tuple(Step(**{**s, "argv": tuple(s["argv"])}) for s in steps))
    state = tmp_path / "state"
    save_spec(state, plan)
    answers = [("Answer: ", "forty-two"), ("PIN: ", "1234")]
    status, shown = at_terminal(tmp_path, state, steps, answers)
    assert status == 0, shown
    assert out.read_text() == "forty-two 1234\n"
    # The person is told before the step's own prompt.
    assert shown.index("step 2 needs you at the terminal: Type two lines") < shown.index("Answer:")
    assert "install finished" in shown and "quiet-output" not in shown  # in the log
    events = [(e["event"], e.get("step")) for e in journal_events(state)]
    assert events[-3:] == [("started", "ask"), ("done", "ask"), ("complete", None)]
    log = (state / "install.log").read_text()
    assert "step 2/2 ask: env FOO=bar sh -c" in log and "(at the terminal)" in log
    assert "stdout: quiet-output" in log and "its output went to the terminal" in log
    assert "forty-two" not in log  # what was typed stays on the terminal


def test_a_failed_interactive_step_says_so_and_a_resume_runs_it_again(tmp_path: Path) -> None:
    out = tmp_path / "confirmed"
    script = f'printf "Type yes: "; read a; test "$a" = yes && touch {out}'
    steps: list[dict[str, Any]] = [{"id": "confirm", "title": "Confirm",
                                    "argv": ["sh", "-c", script], "interactive": True,
                                    "probe": None}]  # fmt: skip
    plan = Plan(SPEC, tuple(Step(**{**s, "argv": tuple(s["argv"])}) for s in steps))
    state = tmp_path / "state"
    save_spec(state, plan)
    status, shown = at_terminal(tmp_path, state, steps, [("Type yes: ", "no")])
    assert status == 1 and not out.exists()
    assert "step 1 (confirm: Confirm) failed" in shown
    assert "It ran at the terminal: its output is above, not in the log." in shown
    assert [(e["event"], e.get("exit")) for e in journal_events(state)][-1] == ("failed", 1)
    status, shown = at_terminal(tmp_path, state, steps, [("Type yes: ", "yes")])
    assert status == 0 and out.exists(), shown
    assert [e["event"] for e in journal_events(state)][-2:] == ["done", "complete"]


def test_the_runner_gives_the_terminal_no_secret() -> None:
    # The terminal is the command's stdin: a secret would have nowhere else to go.
    with pytest.raises(ValueError, match="no secret"):
        runner.run(("true",), secret=CANARY, terminal=True)
    with pytest.raises(ValueError, match="no new session"):
        runner.run(("true",), start_new_session=True, terminal=True)


def test_the_outcome_keeps_what_each_step_printed(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    echo = Step("say", "say it", ("sh", "-c", f"echo 'checks: 1 pass'; echo {CANARY}"))
    plan = Plan(SPEC, (*touch_steps(tmp_path, 1), echo))
    outcome, _ = execute(plan, state)
    assert outcome.outputs == {"s1": "", "say": "checks: 1 pass\n<redacted>\n"}
    # A resume runs nothing again: nothing printed this time.
    again, _ = execute(plan, state)
    assert again.completed and again.outputs == {}
