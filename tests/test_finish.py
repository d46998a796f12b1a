"""``advisor finish``: its steps (pure), the script --dry-run prints, and its refusals.
The steps run for real, against a stand-in nixos-install, in tests/vm/test_finish.py."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from helpers import RunCli
from test_configuration import VARIANTS

from advisor.install.executor import Outcome, StepFailed
from advisor.install.finish import WRITTEN_BY_NIXOS_INSTALL, build_finish, outcome_json
from advisor.install.progress import finish_failure, finish_result
from advisor.layoutrecord import RECORD_FILE, record_text

LAYOUT = VARIANTS["luks-systemd"]


def test_the_steps_in_order() -> None:
    finish = build_finish(
        LAYOUT, "/mnt", "/var/lib/advisor/finish-rpool/config", nixos_install=True
    )
    assert [step.id for step in finish.steps] == [
        "nixos-install", "installed", "keep-config", "persist-nixos-state", "keep-nixos-state",
        "copy-config-out", "keep-record", "check", "unmount", "export", "check-exported",
    ]  # fmt: skip
    install = finish.steps[0].argv
    host = LAYOUT.settings.hostname
    assert install == (
        "nixos-install", "--root", "/mnt", "--flake", f"/mnt/etc/nixos#{host}",
        "--no-root-passwd", "--no-channel-copy",
    )  # fmt: skip
    assert finish.steps[-3].argv == ("umount", "-R", "/mnt")
    assert finish.steps[-2].argv == ("zpool", "export", LAYOUT.settings.pool)
    # The unmount and the export are probed on --resume: done when nothing is mounted
    # and the pool is no longer imported.
    assert finish.steps[-3].probe is not None and finish.steps[-3].probe[-2:] == (
        "unmounted",
        "/mnt",
    )
    assert finish.steps[-2].probe is not None and finish.steps[-2].probe[-2:] == (
        "exported",
        LAYOUT.settings.pool,
    )
    record = "/var/lib/advisor/finish-rpool/config/advisor.json"
    assert finish.steps[-1].argv[-6:] == (
        "check", "--root", "/mnt", "--record", record, "--before-reboot"
    )  # fmt: skip


def test_without_nixos_install_the_system_must_be_installed_already() -> None:
    finish = build_finish(LAYOUT, "/target", "/s/advisor.json", nixos_install=False)
    assert finish.steps[0].id == "installed"
    assert finish.steps[0].argv == ("test", "-L", "/target/nix/var/nix/profiles/system")


def test_the_fingerprint_follows_the_steps() -> None:
    one = build_finish(LAYOUT, "/mnt", "/s/advisor.json", nixos_install=True)
    again = build_finish(LAYOUT, "/mnt", "/s/advisor.json", nixos_install=True)
    other = build_finish(LAYOUT, "/target", "/s/advisor.json", nixos_install=True)
    assert one.fingerprint == again.fingerprint != other.fingerprint


def test_what_nixos_install_writes_is_listed_with_its_fate() -> None:
    kept = {w.path for w in WRITTEN_BY_NIXOS_INSTALL if w.kept}
    assert kept == {"/etc/nixos/flake.lock", "/var/lib/nixos"}
    # Each kept path is copied by a step.
    steps = build_finish(LAYOUT, "/mnt", "/s/advisor.json", nixos_install=True).steps
    copied = " ".join(" ".join(step.argv) for step in steps if step.argv[0] == "cp")
    assert "/mnt/etc/nixos/." in copied and "/mnt/var/lib/nixos/." in copied


class Lines:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def __call__(self, text: str, style: str) -> None:
        self.lines.append(text)


def test_the_result_says_reboot_and_what_was_kept(tmp_path: Path) -> None:
    finish = build_finish(LAYOUT, "/mnt", "/s/advisor.json", nixos_install=True)
    lines = Lines()
    finish_result(lines, finish, Outcome(True, None, tmp_path / "install.log", 12.0), tmp_path)
    text = "\n".join(lines.lines)
    assert "the pool rpool is exported" in text and lines.lines[-1] == "Next: reboot"
    assert "/var/lib/nixos: kept on /persist" in text
    stopped = Lines()
    finish_result(stopped, finish, Outcome(False, "check", tmp_path / "install.log", 1.0), tmp_path)
    assert stopped.lines[0] == (
        f"Stopped after step check. Continue with: advisor finish --root /mnt --resume "
        f"--state-dir {tmp_path}"
    )
    data = outcome_json(finish, Outcome(True, None, tmp_path / "install.log", 12.0), tmp_path)
    assert data["next"] == "reboot" and data["steps"][0] == "nixos-install"
    json.dumps(data)


def test_at_a_terminal_what_was_kept_is_a_table(tmp_path: Path) -> None:
    from rich.console import Console

    finish = build_finish(LAYOUT, "/mnt", "/s/config", nixos_install=True)
    lines = Lines()
    out = io.StringIO()
    console = Console(file=out, width=160, color_system=None)
    outcome = Outcome(True, None, tmp_path / "install.log", 12.0)
    finish_result(lines, finish, outcome, tmp_path, console)
    table = out.getvalue()
    assert "Kept on /persist" in table
    row = next(text for text in table.splitlines() if "/var/lib/nixos" in text)
    assert "yes" in row
    assert "/var/lib/nixos: kept" not in "\n".join(lines.lines)  # not twice
    assert lines.lines[-1] == "Next: reboot"


def test_a_failure_says_how_to_continue(tmp_path: Path) -> None:
    finish = build_finish(LAYOUT, "/mnt", "/s/advisor.json", nixos_install=True)
    lines = Lines()
    failure = StepFailed(finish.steps[-2], 9, "cannot export 'rpool': pool is busy", tmp_path / "l")
    finish_failure(lines, failure, tmp_path, "/mnt")
    text = "\n".join(lines.lines)
    assert "pool is busy" in text
    assert f"advisor finish --root /mnt --resume --state-dir {tmp_path}" in text


@pytest.fixture
def record(tmp_path: Path) -> Path:
    path = tmp_path / RECORD_FILE
    path.write_text(record_text(LAYOUT))
    return path


def test_dry_run_prints_every_step(run_cli: RunCli, record: Path, tmp_path: Path) -> None:
    result = run_cli("finish", "--root", "/mnt", "--record", str(record), "--dry-run",
                     "--state-dir", str(tmp_path / "state"))  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("#!/bin/sh\n")
    assert "zpool export rpool" in result.stdout
    assert "umount -R /mnt" in result.stdout
    assert f"cp -a /mnt/persist/etc/nixos/. {tmp_path / 'state' / 'config'}/" in result.stdout
    assert not (tmp_path / "state").exists()  # touched nothing


def test_no_record_is_a_usage_error(run_cli: RunCli, tmp_path: Path) -> None:
    result = run_cli("finish", "--root", str(tmp_path / "target"), "--dry-run")
    assert result.returncode == 2
    assert "no layout record" in result.stderr and "Traceback" not in result.stderr


def test_a_root_where_nothing_is_mounted_is_refused(
    run_cli: RunCli, record: Path, tmp_path: Path
) -> None:
    target = tmp_path / "target"
    target.mkdir()
    result = run_cli("finish", "--root", str(target), "--record", str(record),
                     "--state-dir", str(tmp_path / "state"))  # fmt: skip
    assert result.returncode == 2
    assert "nothing is mounted there" in result.stderr
    assert not (tmp_path / "state").exists()


def test_resume_without_a_finish_is_refused(run_cli: RunCli, record: Path, tmp_path: Path) -> None:
    result = run_cli("finish", "--root", "/mnt", "--record", str(record), "--resume",
                     "--state-dir", str(tmp_path / "state"))  # fmt: skip
    assert result.returncode == 2
    assert "nothing to resume" in result.stderr
