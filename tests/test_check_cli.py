"""``advisor check`` as a command on this machine: its exit statuses, its output, and the
probes that need no pool (a configuration evaluated by Nix, LUKS headers and their
backups made by the real cryptsetup on files)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from helpers import RunCli

from advisor.check.checks import header_difference
from advisor.check.probe import header_fact
from advisor.models import LayoutMember

GOLDEN = Path(__file__).resolve().parent / "golden"


def installed_root(tmp_path: Path, name: str = "luks-systemd") -> Path:
    """A root as the install leaves it, for golden variant ``name`` (no pool here)."""
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    shutil.copytree(GOLDEN / name, root / "etc" / "nixos")
    (root / "persist").mkdir()
    return root


def test_no_layout_record_is_bad_input(run_cli: RunCli, tmp_path: Path) -> None:
    result = run_cli("check", "--root", str(tmp_path))
    assert result.returncode == 2
    assert "no layout record under" in result.stderr and "--record FILE" in result.stderr
    assert "Traceback" not in result.stderr


def test_before_reboot_is_for_the_installer(run_cli: RunCli) -> None:
    result = run_cli("check", "--root", "/", "--before-reboot")
    assert result.returncode == 2 and "--before-reboot is for the installer" in result.stderr


def test_a_check_that_fails_exits_1_and_says_so(run_cli: RunCli, tmp_path: Path) -> None:
    root = installed_root(tmp_path)
    result = run_cli("check", "--root", str(root), "--json")
    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert report["ok"] is False and report["stage"] == "installed"
    assert report["record"] == str(root / "etc" / "nixos" / "advisor.json")
    checks = {check["id"]: check for check in report["checks"]}
    # The golden configuration's partitions are not on this machine.
    assert checks["devices"]["status"] == "fail"
    assert "6a3d2c1b-5e4f-4a8b-9c0d-1e2f3a4b5c6d" in checks["devices"]["detail"]
    assert checks["devices"]["fix"]
    # What the configuration says is read by Nix, whatever the machine.
    for check_id in ("configuration", "rollback", "persist-boot"):
        assert checks[check_id]["status"] == "pass", checks[check_id]
    assert sum(report["counts"].values()) == len(report["checks"])


def test_the_summary_lists_only_what_needs_doing(run_cli: RunCli, tmp_path: Path) -> None:
    result = run_cli("check", "--root", str(installed_root(tmp_path)), "--summary")
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert lines[-1].startswith("checks: ") and " fail" in lines[-1]
    assert not [line for line in lines if line.startswith(("pass", "skip"))]
    assert any(line.startswith("fail  devices:") for line in lines)
    assert any(line.strip().startswith("fix: ") for line in lines)
    assert "advisor: check devices failed:" in result.stderr


def test_a_configuration_edited_to_remove_the_rollback(run_cli: RunCli, tmp_path: Path) -> None:
    root = installed_root(tmp_path)
    config = root / "etc" / "nixos" / "configuration.nix"
    text = config.read_text()
    start = text.index("  boot.initrd.systemd.services.rollback = {")
    end = text.index("  };\n", start) + len("  };\n")
    config.write_text(text[:start] + text[end:])
    report = json.loads(run_cli("check", "--root", str(root), "--json").stdout)
    rollback = next(c for c in report["checks"] if c["id"] == "rollback")
    assert rollback["status"] == "fail" and "no initrd unit runs" in rollback["detail"]


def test_a_configuration_that_is_not_nix_fails(run_cli: RunCli, tmp_path: Path) -> None:
    root = installed_root(tmp_path)
    (root / "etc" / "nixos" / "configuration.nix").write_text("{ x = ; }\n")
    report = json.loads(run_cli("check", "--root", str(root), "--json").stdout)
    checks = {check["id"]: check for check in report["checks"]}
    assert checks["configuration"]["status"] == "fail"
    assert "is not valid Nix" in checks["configuration"]["detail"]
    assert checks["rollback"]["status"] == "skip"


def test_trim_against_a_saved_assessment(run_cli: RunCli, tmp_path: Path) -> None:
    root = installed_root(tmp_path)
    assessment = tmp_path / "assessment.json"
    assessment.write_text(json.dumps({"schema": 1, "answers": {"ssd_trim": "yes"}, "system": {}}))
    report = json.loads(
        run_cli("check", "--root", str(root), "--json", "--from-assessment", str(assessment)).stdout
    )
    trim = next(c for c in report["checks"] if c["id"] == "trim")
    assert trim["status"] == "fail" and "ssd_trim = yes" in trim["detail"]
    assessment.write_text("{}")
    result = run_cli("check", "--root", str(root), "--from-assessment", str(assessment))
    assert result.returncode == 2 and "is not an assessment" in result.stderr


FAST = ["--pbkdf", "pbkdf2", "--pbkdf-force-iterations", "1000", "--batch-mode"]


def cryptsetup(*args: str, key: Path) -> None:
    subprocess.run(["cryptsetup", *args, "--key-file", str(key)], check=True, timeout=60)


def test_a_header_backup_compared_with_its_header(tmp_path: Path) -> None:
    """A LUKS2 container in a file, its backup taken, then a passphrase added: the check
    sees the backup match, then sees the keyslots change, with no passphrase of its own."""
    container, backup, key, new = (tmp_path / n for n in ("data.img", "h.bak", "key", "new"))
    key.write_text("old passphrase")
    new.write_text("new passphrase")
    with container.open("wb") as file:
        file.truncate(32 * 1024 * 1024)
    cryptsetup("luksFormat", "--type", "luks2", *FAST, str(container), key=key)
    subprocess.run(
        ["cryptsetup", "luksHeaderBackup", str(container), "--header-backup-file", str(backup)],
        check=True,
        timeout=60,
    )
    member = LayoutMember(1, str(container), "/dev/null", header_backup=str(backup))
    assert header_fact(member).same_bytes is True
    cryptsetup("luksAddKey", *FAST, str(container), str(new), key=key)
    fact = header_fact(member)
    assert fact.same_bytes is False and fact.header_dump and fact.backup_dump
    assert "keyslots changed since the backup" in header_difference(fact)
