"""``advisor fleet deploy`` with a stand-in nixos-anywhere (nixos_anywhere_standin.py),
which records each call: the argv of each host, no secret in any argv, log or output,
at most --jobs hosts at once (from the recorded start and end times), a failing host
reported without stopping the others, and one host run again alone with --host."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from fleetdata import CANARY, NAMES, PASSWORD_CANARY, disk, write_inventory
from helpers import RunCli

STANDIN = Path(__file__).resolve().parent / "nixos_anywhere_standin.py"


#: The disks of each host of fleetdata's inventory, as fleet.json records them.
DISKS = {"web1": [disk("web1")], "web2": [disk("web2")], "db1": [disk("db1", 1), disk("db1", 2)]}


def fake_flake(folder: Path) -> Path:
    """A folder as 'advisor fleet' leaves it, as far as the deploy looks: flake.nix,
    fleet.json and each host's disko.nix (their content is the flake tests' business)."""
    folder.mkdir()
    (folder / "flake.nix").write_text("{ outputs = _: { }; }\n", encoding="utf-8")
    (folder / "flake.lock").write_text("{}\n", encoding="utf-8")
    guid = "0f3e0c8a-6f0e-4f7b-9a0e-7b3c1d2e4f5a"
    hosts = {}
    for number, (name, disks) in enumerate(DISKS.items()):
        (folder / "hosts" / name).mkdir(parents=True)
        (folder / "hosts" / name / "disko.nix").write_text("{ }\n", encoding="utf-8")
        entries = [
            {"disk": d, "esp_partuuid": guid, "data_partuuid": guid, "swap_partuuid": None}
            for d in disks
        ]
        host_id = "8425e349" if name == "web1" else f"0000000{number}"
        hosts[name] = {"host_id": host_id, "password_hash": None, "disks": entries}
    manifest = {"version": 1, "hosts": hosts}
    (folder / "fleet.json").write_text(json.dumps(manifest), encoding="utf-8")
    return folder


class Fleet:
    """An inventory, its flake, and the stand-in's records."""

    def __init__(self, folder: Path, run_cli: RunCli) -> None:
        self.folder = folder
        self.inventory = write_inventory(folder)
        self.flake = fake_flake(folder / "flake")
        self.records = folder / "records"
        self.records.mkdir()
        self.logs = folder / "logs"
        self.run_cli = run_cli

    def deploy(self, *options: str, fail: str = "", sleep: float = 0.0) -> Any:
        env = {
            "STANDIN_RECORDS": str(self.records),
            "STANDIN_FAIL": fail,
            "STANDIN_SLEEP": str(sleep),
            "TMPDIR": str(self.folder / "tmp"),
        }
        (self.folder / "tmp").mkdir(exist_ok=True)
        return self.run_cli(
            "fleet",
            "deploy",
            "--inventory",
            str(self.inventory),
            "--flake",
            str(self.flake),
            "--nixos-anywhere",
            str(STANDIN),
            "--log-dir",
            str(self.logs),
            *options,
            env=env,
        )

    def calls(self) -> list[dict[str, Any]]:
        found = [json.loads(p.read_text()) for p in sorted(self.records.glob("*.json"))]
        return sorted(found, key=lambda r: r["start"])


@pytest.fixture
def fleet(tmp_path: Path, run_cli: RunCli) -> Fleet:
    return Fleet(tmp_path, run_cli)


def overlap(calls: list[dict[str, Any]]) -> int:
    """The most calls that were running at one moment, from their start and end."""
    events = sorted([(c["start"], 1) for c in calls] + [(c["end"], -1) for c in calls])
    running = most = 0
    for _, change in events:
        running += change
        most = max(most, running)
    return most


def test_each_host_runs_nixos_anywhere_with_its_flake_key_and_target(fleet: Fleet) -> None:
    result = fleet.deploy("--jobs", "3")
    assert result.returncode == 0, result.stderr
    calls = {c["host"]: c for c in fleet.calls()}
    assert set(calls) == set(NAMES)
    flake = f"path:{fleet.flake}"
    for name, call in calls.items():
        argv = call["argv"]
        assert argv[:5] == [
            "--flake",
            f"{flake}#{name}",
            "--disk-encryption-keys",
            "/tmp/secret.key",
            argv[4],
        ]
        hardware = fleet.flake / "hosts" / name / "hardware-configuration.nix"
        assert argv[5:8] == ["--generate-hardware-config", "nixos-generate-config", str(hardware)]
        assert hardware.is_file()  # the stand-in wrote it, as nixos-anywhere does
        # The passphrase's file: private, the first line of the host's file, no newline.
        assert call["key_mode"] == "0o600"
        assert call["key_newline"] is False
        expected = hashlib.sha256(f"{CANARY}-{name}".encode()).hexdigest()
        assert call["key_sha256"] == expected
        # It was removed once the run ended.
        assert not Path(argv[4]).exists()
    assert calls["web1"]["argv"][-3:-1] == ["--extra-files", calls["web1"]["argv"][-2]]
    assert calls["web1"]["argv"][-1] == "root@192.0.2.11"
    assert calls["web2"]["argv"][-3:] == ["--ssh-port", "2222", "root@192.0.2.12"]
    assert calls["db1"]["argv"][-1] == "root@db1.example.org"
    assert "--extra-files" not in calls["db1"]["argv"]


def test_remote_unlock_gets_a_new_initrd_host_key_on_persist(fleet: Fleet) -> None:
    result = fleet.deploy("--host", "web1")
    assert result.returncode == 0, result.stderr
    (call,) = fleet.calls()
    tree = call["extra_files"]
    assert tree == {
        ".": "0o755",
        "persist": "0o755",
        "persist/etc": "0o755",
        "persist/etc/secrets": "0o700",
        "persist/etc/secrets/initrd": "0o700",
        "persist/etc/secrets/initrd/ssh_host_ed25519_key": "0o600",
    }
    log = (fleet.logs / "web1.log").read_text()
    assert "# initrd SSH host key: SHA256:" in log
    fingerprint = log.split("# initrd SSH host key: ")[1].split()[0]
    assert f"initrd SSH host key of web1: {fingerprint}" in result.stdout


def test_no_secret_in_any_argv_log_or_output(fleet: Fleet) -> None:
    result = fleet.deploy("--jobs", "2", fail="web2")
    texts = [result.stdout, result.stderr]
    texts += [json.dumps(c["argv"]) for c in fleet.calls()]
    texts += [p.read_text() for p in fleet.logs.glob("*.log")]
    assert len(texts) == 2 + 3 + 3
    for text in texts:
        assert CANARY not in text
        assert PASSWORD_CANARY not in text
    # Nothing of the run is left in its temporary folder.
    assert list((fleet.folder / "tmp").iterdir()) == []


def test_at_most_jobs_hosts_at_once(fleet: Fleet) -> None:
    result = fleet.deploy("--jobs", "2", sleep=0.6)
    assert result.returncode == 0, result.stderr
    calls = fleet.calls()
    assert len(calls) == 3
    # The third starts only when one of the first two has ended...
    assert overlap(calls) == 2
    # ...and with one job, one at a time.
    for path in fleet.records.iterdir():
        path.unlink()
    assert fleet.deploy("--jobs", "1", sleep=0.2).returncode == 0
    assert overlap(fleet.calls()) == 1


def test_a_failing_host_does_not_stop_the_others(fleet: Fleet) -> None:
    result = fleet.deploy("--jobs", "1", fail="web1")
    assert result.returncode == 1
    # web1 ran first and failed; the two after it ran all the same.
    assert [c["host"] for c in fleet.calls()] == ["web1", "web2", "db1"]
    assert "web1: FAILED" in result.stderr and "exit status 1" in result.stderr
    # A line as each host starts and ends, in the order they did (one job: in turn).
    events = [line for line in result.stderr.splitlines() if line.split(":")[0] in NAMES]
    assert [e.split(" in ")[0].split(" after ")[0] for e in events] == [
        "web1: started",
        "web1: FAILED",
        "web2: started",
        "web2: done",
        "db1: started",
        "db1: done",
    ]
    assert f"see {fleet.logs / 'web1.log'}" in result.stderr
    rows = {line.split()[0]: line.split() for line in result.stdout.splitlines()[1:4]}
    assert rows["web1"][1] == "FAILED" and rows["web1"][3] == str(fleet.logs / "web1.log")
    assert rows["web2"][1] == "ok" and rows["db1"][1] == "ok"
    assert "2 of 3 host(s) installed, 1 failed" in result.stdout
    rerun = next(line for line in result.stdout.splitlines() if line.startswith("run web1"))
    assert rerun.endswith("--host web1")
    log = (fleet.logs / "web1.log").read_text()
    assert "aborted: web1 is set to fail" in log and "### stand-in installing web1 ###" in log


def test_the_rerun_command_runs_that_host_alone(fleet: Fleet) -> None:
    first = fleet.deploy(fail="db1")
    assert first.returncode == 1
    line = next(line for line in first.stdout.splitlines() if line.startswith("run db1"))
    words = line.split(": ", 1)[1].split()
    assert words[:3] == ["advisor", "fleet", "deploy"]
    for path in fleet.records.iterdir():
        path.unlink()
    # The words after 'advisor' are this test's deploy's, but for the log folder.
    second = fleet.run_cli(
        *words[1:],
        "--log-dir",
        str(fleet.folder / "logs2"),
        env={"STANDIN_RECORDS": str(fleet.records)},
    )
    assert second.returncode == 0, second.stderr
    (call,) = fleet.calls()
    assert call["host"] == "db1"
    # Its hardware configuration is there from the first run: kept, not generated again.
    assert "--generate-hardware-config" not in call["argv"]
    assert "1 of 1 host(s) installed, 0 failed" in second.stdout


def test_dry_run_prints_the_commands_and_reads_no_secret(fleet: Fleet) -> None:
    (fleet.folder / "secrets" / "web2.key").unlink()  # a dry run reads no passphrase
    result = fleet.deploy("--dry-run")
    assert result.returncode == 0, result.stderr
    assert fleet.calls() == []
    lines = result.stdout.splitlines()
    assert lines[0] == "# web1: root@192.0.2.11"
    commands = [line for line in lines if not line.startswith("#")]
    assert len(commands) == 3
    assert "'<passphrase of web2: file " in commands[1]
    assert f"{fleet.folder / 'secrets' / 'web2.key'}>'" in commands[1]
    assert "'<initrd SSH host key of web1>'" in commands[0]
    assert CANARY not in result.stdout
    assert not fleet.logs.exists()


def test_a_passphrase_command_is_run_and_its_output_kept_secret(fleet: Fleet) -> None:
    script = fleet.folder / "print-passphrase"
    script.write_text(f'#!/bin/sh\necho "{CANARY}-$1"\necho ignored\n')
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    text = fleet.inventory.read_text().replace(
        'passphrase_file = "secrets/{host}.key"',
        f'passphrase_command = ["{script}", "{{host}}"]',
    )
    fleet.inventory.write_text(text)
    result = fleet.deploy("--host", "db1")
    assert result.returncode == 0, result.stderr
    (call,) = fleet.calls()
    assert call["key_sha256"] == hashlib.sha256(f"{CANARY}-db1".encode()).hexdigest()
    assert CANARY not in result.stdout + result.stderr


BAD_DEPLOY = {
    "unknown host": (("--host", "web9"), "--host 'web9': no such host"),
    "no jobs": (("--jobs", "0"), "--jobs 0"),
    "log folder in the flake": (("--log-dir", "FLAKE/logs"), "inside the flake"),
}


@pytest.mark.parametrize("kind", BAD_DEPLOY)
def test_bad_deploy_options_are_exit_2(fleet: Fleet, kind: str) -> None:
    given, words = BAD_DEPLOY[kind]
    result = fleet.deploy(*(option.replace("FLAKE", str(fleet.flake)) for option in given))
    assert result.returncode == 2, result.stderr
    assert words in result.stderr
    assert fleet.calls() == []


def test_a_missing_passphrase_stops_before_any_host(fleet: Fleet) -> None:
    (fleet.folder / "secrets" / "db1.key").unlink()
    result = fleet.deploy()
    assert result.returncode == 2
    assert "host 'db1': passphrase_file" in result.stderr
    assert fleet.calls() == []


def test_a_flake_without_the_host_is_refused(fleet: Fleet) -> None:
    (fleet.flake / "hosts" / "db1" / "disko.nix").unlink()
    result = fleet.deploy("--dry-run")
    assert result.returncode == 2
    assert "has no host 'db1'" in result.stderr


def test_a_flake_written_for_other_disks_is_refused(fleet: Fleet) -> None:
    """disko erases the disks the flake names: they must be the inventory's."""
    text = fleet.inventory.read_text().replace(disk("db1", 2), disk("db1", 3))
    fleet.inventory.write_text(text)
    result = fleet.deploy()
    assert result.returncode == 2
    assert "host 'db1': the flake was written for the disks" in result.stderr
    assert "advisor fleet --inventory" in result.stderr
    assert fleet.calls() == []
    # A fixed host id changed since: the pool would be made under the old one.
    fleet.inventory.write_text(
        text.replace(disk("db1", 3), disk("db1", 2)).replace("8425e349", "8425e34a")
    )
    result = fleet.deploy("--host", "web1")
    assert result.returncode == 2
    assert "host 'web1': the flake was written for host id 8425e349" in result.stderr
    assert fleet.calls() == []


def test_a_folder_advisor_fleet_did_not_write_is_refused(fleet: Fleet) -> None:
    (fleet.flake / "fleet.json").unlink()
    result = fleet.deploy("--dry-run")
    assert result.returncode == 2
    assert "holds no flake.nix and fleet.json" in result.stderr


def test_a_missing_program_is_exit_2(fleet: Fleet) -> None:
    result = fleet.run_cli(
        "fleet",
        "deploy",
        "--inventory",
        str(fleet.inventory),
        "--flake",
        str(fleet.flake),
        "--nixos-anywhere",
        str(fleet.folder / "none"),
    )
    assert result.returncode == 2
    assert "--nixos-anywhere PATH" in result.stderr


def test_run_logged_appends_both_streams_to_a_private_log(tmp_path: Path) -> None:
    from advisor import runner

    log = tmp_path / "host.log"
    log.write_text("# header\n")
    status = runner.run_logged(["sh", "-c", "echo out; echo err >&2; exit 3"], log)
    assert status == 3
    assert log.read_text() == "# header\nout\nerr\n"
    fresh = tmp_path / "new.log"
    assert runner.run_logged(["true"], fresh) == 0
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o600
    with pytest.raises(runner.CommandError, match="command not found"):
        runner.run_logged([str(tmp_path / "none")], log)
    with pytest.raises(runner.CommandError, match="did not finish within"):
        runner.run_logged(["sleep", "5"], log, timeout=0.2)


def test_json_results_and_a_warning_without_a_lock_file(fleet: Fleet) -> None:
    (fleet.flake / "flake.lock").unlink()
    result = fleet.deploy("--host", "web2", "--host", "db1", "--json", fail="db1")
    assert result.returncode == 1
    assert "nix flake lock" in result.stderr
    data = json.loads(result.stdout)
    assert [(r["host"], r["status"]) for r in data] == [("web2", "ok"), ("db1", "failed")]
    assert data[1]["detail"] == "exit status 1"
    assert data[1]["log"] == str(fleet.logs / "db1.log")
    assert data[0]["initrd_host_key_fingerprint"] is None


def test_interrupted_no_further_host_starts(fleet: Fleet) -> None:
    """Ctrl-C (SIGINT to the process group, as a terminal sends it) while the first of
    three hosts runs one at a time: it stops, the other two never start, exit 130."""
    argv = [sys.executable, "-m", "advisor", "fleet", "deploy", "--inventory"]
    argv += [str(fleet.inventory), "--flake", str(fleet.flake), "--jobs", "1"]
    argv += ["--nixos-anywhere", str(STANDIN), "--log-dir", str(fleet.logs)]
    (fleet.folder / "tmp").mkdir()
    env = {**os.environ, "STANDIN_RECORDS": str(fleet.records), "STANDIN_SLEEP": "30"}
    env["TMPDIR"] = str(fleet.folder / "tmp")
    child = subprocess.Popen(
        argv, env=env, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    log = fleet.logs / "web1.log"
    deadline = time.monotonic() + 30
    while "### stand-in installing web1" not in (log.read_text() if log.exists() else ""):
        assert time.monotonic() < deadline, "web1 never started"
        time.sleep(0.05)
    os.killpg(child.pid, signal.SIGINT)
    _, stderr = child.communicate(timeout=30)
    assert child.returncode == 130, stderr
    assert sorted(p.name for p in fleet.logs.iterdir()) == ["web1.log"]
    # The passphrases' folder is gone too.
    assert list((fleet.folder / "tmp").iterdir()) == []
