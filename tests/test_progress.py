"""What advisor install prints: plain lines off a terminal, rich styles on one."""

from __future__ import annotations

import io
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from advisor.console import line_printer
from advisor.install.executor import Outcome, StepFailed
from advisor.install.plan import Plan
from advisor.install.progress import StepPrinter, install_result, step_failure
from advisor.models import InstallSpec, Member, Settings, Step

SPEC = InstallSpec(
    backend="luks",
    settings=Settings(host_id="8f2a91c4", hostname="box", user="u"),
    members=(
        Member(
            1,
            "/dev/disk/by-id/virtio-disk01",
            "virtio-disk01",
            "disk01",
            1 << 33,
            esp_partuuid="e",
            data_partuuid="d",
        ),
    ),
)
STEP = Step("wipe-disk", "Erase the disk", ("wipefs", "--all", "/dev/x"), destructive=True)


class Lines:
    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []

    def __call__(self, text: str, style: str) -> None:
        self.lines.append((text, style))

    @property
    def text(self) -> str:
        return "\n".join(text for text, _ in self.lines)


def test_a_line_per_step_event() -> None:
    lines = Lines()
    printer = StepPrinter(lines)
    printer.started(1, 23, STEP)
    printer.finished(1, 23, STEP, 0.1234)
    printer.skipped(2, 23, STEP, "done earlier")
    assert lines.lines == [
        ("[1/23] Erase the disk ...", "bold"),
        ("[1/23] done in 0.12 s", "green"),
        ("[2/23] Erase the disk: done earlier", "dim"),
    ]


def test_a_step_at_the_terminal_is_announced_before_it_starts() -> None:
    lines = Lines()
    step = Step("tpm2-enrol", "Enrol the TPM2 (asks for a PIN)", ("true",), interactive=True)
    StepPrinter(lines).started(7, 23, step)
    assert lines.lines == [
        ("[7/23] Enrol the TPM2 (asks for a PIN) ...", "bold"),
        ("step 7 needs you at the terminal: Enrol the TPM2 (asks for a PIN)", "bold yellow"),
    ]


def test_the_result_names_the_log_and_the_next_steps(tmp_path: Path) -> None:
    lines = Lines()
    outcome = Outcome(True, None, tmp_path / "install.log", 61.04)
    install_result(lines, Plan(SPEC, (STEP,)), outcome, tmp_path)
    assert "Installed luks on /dev/disk/by-id/virtio-disk01 in 61.0 s." in lines.text
    assert f"Log: {tmp_path / 'install.log'}" in lines.text
    assert "  1. advisor finish --root /mnt" in lines.text
    assert "  2. reboot" in lines.text


def test_the_result_prints_what_the_check_step_said(tmp_path: Path) -> None:
    lines = Lines()
    said = "warn  pool: still imported\n      fix: zpool export rpool\nchecks: 1 warn, 0 fail\n"
    outcome = Outcome(True, None, tmp_path / "install.log", 1.0, outputs={"check": said})
    install_result(lines, Plan(SPEC, (STEP,)), outcome, tmp_path)
    assert ("Checked (advisor check --root /mnt):", "bold underline") in lines.lines
    assert ("  warn  pool: still imported", "yellow") in lines.lines
    assert ("  checks: 1 warn, 0 fail", "") in lines.lines
    # Before the next steps, which come last.
    assert lines.text.index("Checked") < lines.text.index("Next:")
    resumed = Lines()  # a resume after the check ran: nothing to print of it
    install_result(resumed, Plan(SPEC, (STEP,)), replace(outcome, outputs={}), tmp_path)
    assert "Checked" not in resumed.text


def test_a_stop_says_how_to_resume(tmp_path: Path) -> None:
    lines = Lines()
    outcome = Outcome(False, "wipe-disk", tmp_path / "install.log", 1.0, interrupted=True)
    options = ["--allow-bios", "--passphrase-file", "/root/my pass"]
    install_result(lines, Plan(SPEC, (STEP,)), outcome, tmp_path, options)
    assert lines.lines[0] == (
        f"Stopped after step wipe-disk. Continue with: advisor install --resume --state-dir "
        f"{tmp_path} --allow-bios --passphrase-file '/root/my pass'",
        "yellow",
    )
    assert "advisor finish" not in lines.text


OPEN = Step("luks-open", "Open", ("cryptsetup", "open", "--key-file=-", "/dev/x", "cryptroot"))


def test_a_failure_shows_the_tail_the_log_and_both_ways_on(tmp_path: Path) -> None:
    lines = Lines()
    failure = StepFailed(STEP, 1, "first line\nlast line", tmp_path / "install.log")
    step_failure(lines, failure, tmp_path / "state", Plan(SPEC, (STEP, OPEN)), ["--allow-bios"])
    assert lines.lines[0] == (
        "advisor: error: step 1 (wipe-disk: Erase the disk) failed",
        "bold red",
    )
    assert ("  first line", "") in lines.lines and ("  last line", "") in lines.lines
    assert f"--resume --state-dir {tmp_path / 'state'} --allow-bios" in lines.text
    assert (
        "To start over instead: umount -R /mnt; zpool export rpool; cryptsetup close cryptroot "
        f"(those the install got to), then remove {tmp_path / 'state'} and run"
    ) in lines.text


def test_a_step_stopped_by_ctrl_c_has_no_cause_to_fix(tmp_path: Path) -> None:
    lines = Lines()
    failure = StepFailed(STEP, 1, "", tmp_path / "install.log", interrupted=True)
    step_failure(lines, failure, tmp_path / "state", Plan(SPEC, (STEP,)))
    assert (
        lines.lines[0][0]
        == "advisor: error: step 1 (wipe-disk: Erase the disk) was stopped by Ctrl-C"
    )
    assert f"Continue with: advisor install --resume --state-dir {tmp_path / 'state'}" in lines.text
    assert "Fix the cause" not in lines.text


def test_without_a_container_there_is_none_to_close(tmp_path: Path) -> None:
    lines = Lines()
    failure = StepFailed(STEP, 1, "", tmp_path / "install.log")
    step_failure(lines, failure, tmp_path / "state", Plan(SPEC, (STEP,)))
    assert "umount -R /mnt; zpool export rpool (those" in lines.text
    assert "cryptsetup" not in lines.text


def test_off_a_terminal_lines_are_plain_and_rich_is_not_needed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stream = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stream)
    line_printer(stderr=True)("[1/2] a very long line " + "x" * 200, "bold")
    assert stream.getvalue() == "[1/2] a very long line " + "x" * 200 + "\n"  # not wrapped


def test_at_a_terminal_lines_are_styled(monkeypatch: pytest.MonkeyPatch) -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    from advisor import console

    stream = Terminal()
    monkeypatch.setattr(sys, "stdout", stream)
    console.stdout_console.cache_clear()
    monkeypatch.setenv("FORCE_COLOR", "1")
    monkeypatch.delenv("NO_COLOR", raising=False)
    try:
        line_printer(stderr=False)("Installed", "bold")
    finally:
        console.stdout_console.cache_clear()
    assert "\x1b[1mInstalled" in stream.getvalue()


def test_an_unattended_install_does_not_load_what_it_does_not_use() -> None:
    # rich is for terminals, cryptography for generated keys; uuid (via platform) and
    # secrets (via hmac) were dropped for os.urandom: each costs start-up time.
    code = (
        "import sys; from advisor import cli; from advisor.install import session, progress; "
        "from advisor.console import line_printer; "
        "line_printer(stderr=True)('x', 'bold'); line_printer(stderr=False)('y', ''); "
        "cli._load_plugins(); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('rich', 'cryptography', 'uuid', 'platform', 'secrets', 'hmac')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.splitlines()[-1] == "[]"
