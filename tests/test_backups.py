"""Backups: the policy, the sanoid/syncoid fragments (evaluated by real Nix), the sends
``advisor backup`` plans, the runner's pipeline, and the command's refusals."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

import nixeval
import pytest
from helpers import RunCli

from advisor import backups, runner
from advisor.backup.run import back_up, parse_sources
from advisor.backups import BackupRefused, SourceDataset, Target
from advisor.errors import PluginError, UsageError
from advisor.models import Backend, InstallSpec
from advisor.plugincheck import _check_native_encryption, samples
from advisor_luks import LuksBackend
from advisor_zfs_native import ZfsNativeBackend

GOLDEN = Path(__file__).resolve().parent / "golden"
REMOTE = "backup@vault.example:tank/atlas"


# -- targets and trust --------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "target"),
    [
        (REMOTE, Target("tank/atlas", "vault.example", "backup")),
        ("vault:tank", Target("tank", "vault", None)),
        ("192.168.1.9:tank/a/b", Target("tank/a/b", "192.168.1.9", None)),
        ("backup/atlas", Target("backup/atlas")),
    ],
)
def test_targets_parse(text: str, target: Target) -> None:
    parsed = backups.parse_target(text)
    assert parsed == target
    assert parsed.spec() == text
    assert parsed.remote is (target.host is not None)


@pytest.mark.parametrize(
    "text",
    [
        "", "u@h:", "u@h:tank/", "@h:tank", "u@-h:tank", "u@h:tank/@snap", "u@h:tank/a b",
        "u@h:tank;rm -rf /", "u@h:tank/$(id)", "u@h:tank/a#b", "u@h:'x'", "-oProxyCommand=x:tank",
        "u@h:1tank", "u@h:tank/" + "a" * 300,
    ],
)  # fmt: skip
def test_bad_targets_are_refused_with_the_rule(text: str) -> None:
    with pytest.raises(UsageError, match="--backup-target"):
        backups.parse_target(text)


def test_trust() -> None:
    assert backups.trust("trusted") is True
    assert backups.trust("untrusted") is False
    assert backups.trust(None) is False  # not said: the safe default
    with pytest.raises(UsageError, match="trusted or untrusted"):
        backups.trust("maybe")
    assert backups.trust_from_answers({"offsite_backups": "trusted"}) == "trusted"
    for answers in ({"offsite_backups": "untrusted"}, {"offsite_backups": "none"}, {}):
        assert backups.trust_from_answers(answers) == "untrusted"


# -- the policy ---------------------------------------------------------------------


def test_encrypted_datasets_always_go_raw() -> None:
    for trusted in (True, False):
        policy = backups.send_policy(encrypted=True, trusted=trusted, name="r/safe", target="t")
        assert policy.raw is True


def test_plaintext_goes_to_a_trusted_target_only() -> None:
    policy = backups.send_policy(encrypted=False, trusted=True, name="r/safe", target="t")
    assert policy.raw is False
    with pytest.raises(BackupRefused) as refused:
        backups.send_policy(encrypted=False, trusted=False, name="r/safe", target=REMOTE)
    message = str(refused.value)
    assert refused.value.exit_status == 2
    assert "r/safe" in message and REMOTE in message and "plaintext" in message
    # The ways out: native encryption inside LUKS, a trusted target, client-side tools.
    assert "natively encrypted dataset inside the LUKS pool" in message
    assert "--trusted" in message and "restic" in message


# -- the NixOS fragments ---------------------------------------------------------------


def _evaluated(tmp_path: Path, fragments: list[Any]) -> Any:
    path = tmp_path / "backup.nix"
    path.write_text(backups.fragment_text(fragments), encoding="utf-8")
    nixeval.parse(path)
    return _eval_module(path)


def _eval_module(path: Path) -> Any:
    """The NixOS module at ``path`` (no imports, as ``advisor backup --nix`` prints it),
    evaluated to data."""
    return nixeval.eval_expression(
        f"import {path} {{ config = {{ }}; lib = {{ }}; pkgs = {{ }}; }}"
    )


def test_native_to_an_untrusted_host_sends_raw(tmp_path: Path) -> None:
    target = backups.parse_target(REMOTE)
    cfg = _evaluated(tmp_path, backups.nix_fragments("rpool", target, trusted=False, native=True))
    sanoid, syncoid = cfg["services"]["sanoid"], cfg["services"]["syncoid"]
    assert sanoid["enable"] is True
    assert sanoid["datasets"] == {"rpool/safe": {"useTemplate": ["advisor"], "recursive": "zfs"}}
    assert sanoid["templates"]["advisor"]["autosnap"] is True
    assert syncoid["enable"] is True
    assert syncoid["commands"] == {
        "rpool/safe": {
            "target": f"{REMOTE}/safe",
            "recursive": True,
            "sendOptions": "w",
            "recvOptions": "u",
        }
    }
    # The SSH key and known_hosts of the syncoid user survive the root's rollback.
    persisted = cfg["environment"]["persistence"]["/persist"]["directories"]
    assert persisted == [
        {"directory": "/var/lib/syncoid", "user": "syncoid", "group": "syncoid", "mode": "0700"}
    ]


def test_luks_to_a_trusted_local_pool_sends_plaintext(tmp_path: Path) -> None:
    target = backups.parse_target("backup/atlas")
    cfg = _evaluated(tmp_path, backups.nix_fragments("rpool", target, trusted=True, native=False))
    command = cfg["services"]["syncoid"]["commands"]["rpool/safe"]
    assert command == {"target": "backup/atlas/safe", "recursive": True, "recvOptions": "u"}
    assert "environment" not in cfg  # no ssh, nothing to keep


def test_luks_to_an_untrusted_target_is_refused() -> None:
    with pytest.raises(BackupRefused, match="not encrypted by ZFS"):
        backups.nix_fragments("rpool", backups.parse_target(REMOTE), trusted=False, native=False)


def test_no_target_no_fragment_and_never_the_source_pool() -> None:
    assert backups.nix_fragments("rpool", None, trusted=False, native=True) == []
    with pytest.raises(UsageError, match="in the pool being backed up"):
        backups.nix_fragments(
            "rpool", backups.parse_target("rpool/backup"), trusted=True, native=True
        )


def test_the_configuration_carries_the_fragment(tmp_path: Path) -> None:
    """The golden variants with a backup, as advisor config writes them."""
    cfg = nixeval.eval_config(GOLDEN / "zfs-native-systemd-backup" / "configuration.nix")
    assert cfg["services"]["syncoid"]["commands"]["rpool/safe"]["sendOptions"] == "w"
    cfg = nixeval.eval_config(GOLDEN / "luks-systemd-backup-trusted" / "configuration.nix")
    assert "sendOptions" not in cfg["services"]["syncoid"]["commands"]["rpool/safe"]


# -- the sends advisor backup plans ------------------------------------------------------

LISTING = "rpool/safe\taes-256-gcm\nrpool/safe/home\taes-256-gcm\nrpool/safe/persist\taes-256-gcm\n"
SNAPSHOTS = "rpool/safe@a\nrpool/safe/home@a\nrpool/safe/persist@a\nrpool/safe/persist@b\n"


def test_sources_parse_parents_first_with_snapshots_oldest_first() -> None:
    sources = parse_sources(LISTING, SNAPSHOTS)
    assert [s.name for s in sources] == ["rpool/safe", "rpool/safe/home", "rpool/safe/persist"]
    assert all(s.encrypted for s in sources)
    assert sources[2].snapshots == ("a", "b")
    plain = parse_sources("lpool/safe\toff\n", "")
    assert plain == [SourceDataset("lpool/safe", False, ())]


def test_first_backup_is_full_and_raw() -> None:
    target = backups.parse_target("bp/laptop")
    held = backups.target_state("bp/laptop\n", target)
    transfers = backups.plan_transfers(
        "rpool", parse_sources(LISTING, ""), target, held, "advisor-1", trusted=False
    )
    assert [(t.source, t.target, t.raw, t.base) for t in transfers] == [
        ("rpool/safe", "bp/laptop/safe", True, None),
        ("rpool/safe/home", "bp/laptop/safe/home", True, None),
        ("rpool/safe/persist", "bp/laptop/safe/persist", True, None),
    ]
    assert transfers[0].send_argv() == ("zfs", "send", "-w", "rpool/safe@advisor-1")
    assert backups.receive_argv(target, "bp/laptop/safe") == (
        "zfs", "receive", "-u", "bp/laptop/safe",
    )  # fmt: skip


def test_next_backup_is_incremental_from_the_last_common_snapshot() -> None:
    target = backups.parse_target("bp/laptop")
    listing = "bp/laptop\nbp/laptop/safe\nbp/laptop/safe@a\nbp/laptop/safe/persist\n"
    listing += "bp/laptop/safe/persist@a\nbp/laptop/safe/persist@b\n"
    held = backups.target_state(listing, target)
    sources = parse_sources(LISTING, SNAPSHOTS)
    transfers = backups.plan_transfers("rpool", sources, target, held, "c", trusted=False)
    bases = {t.source: t.base for t in transfers}
    assert bases == {"rpool/safe": "a", "rpool/safe/home": None, "rpool/safe/persist": "b"}
    persist = next(t for t in transfers if t.source == "rpool/safe/persist")
    assert persist.send_argv() == ("zfs", "send", "-w", "-I", "@b", "rpool/safe/persist@c")


def test_a_target_without_a_common_snapshot_is_not_overwritten() -> None:
    target = backups.parse_target("bp/laptop")
    held = backups.target_state("bp/laptop\nbp/laptop/safe\nbp/laptop/safe@other\n", target)
    with pytest.raises(UsageError, match="no snapshot in common"):
        backups.plan_transfers(
            "rpool", parse_sources(LISTING, SNAPSHOTS), target, held, "c", trusted=False
        )


def test_a_missing_target_or_one_in_the_source_pool_is_refused() -> None:
    sources = parse_sources(LISTING, "")
    with pytest.raises(UsageError, match="create it on the target"):
        backups.plan_transfers("rpool", sources, Target("bp/x"), {}, "c", trusted=False)
    with pytest.raises(UsageError, match="in the pool being backed up"):
        held = {"rpool/bk": ()}
        backups.plan_transfers("rpool", sources, Target("rpool/bk"), held, "c", trusted=False)


def test_every_plaintext_dataset_is_named_in_the_refusal() -> None:
    sources = parse_sources(
        "lpool/safe\toff\nlpool/safe/home\toff\nlpool/safe/x\taes-256-gcm\n", ""
    )
    with pytest.raises(BackupRefused) as refused:
        backups.plan_transfers("lpool", sources, Target("bp/l"), {"bp/l": ()}, "c", trusted=False)
    assert "lpool/safe, lpool/safe/home are not encrypted" in str(refused.value)
    transfers = backups.plan_transfers(
        "lpool", sources, Target("bp/l"), {"bp/l": ()}, "c", trusted=True
    )
    assert [t.raw for t in transfers] == [False, False, True]


def test_remote_commands_go_through_ssh_quoted() -> None:
    target = backups.parse_target(REMOTE)
    assert backups.receive_argv(target, "tank/atlas/safe") == (
        "ssh", "-o", "BatchMode=yes", "backup@vault.example", "zfs receive -u tank/atlas/safe",
    )  # fmt: skip
    assert backups.target_listing_argv(target)[-1] == ("zfs list -H -o name -t all -r tank/atlas")


def test_dry_run_says_what_it_would_run_and_runs_nothing() -> None:
    target = backups.parse_target(REMOTE)
    result = back_up(
        "rpool",
        target,
        trusted=False,
        dry_run=True,
        now=datetime(2026, 12, 5, 2, 15, tzinfo=UTC),
        sources=parse_sources(LISTING, ""),
        held={"tank/atlas": ()},
    )
    assert result.snapshot == "advisor-20261205-021500"
    assert result.commands[0] == "zfs snapshot -r rpool/safe@advisor-20261205-021500"
    assert result.commands[1] == (
        "zfs send -w rpool/safe@advisor-20261205-021500 | ssh -o BatchMode=yes "
        "backup@vault.example 'zfs receive -u tank/atlas/safe'"
    )
    data = result.to_json()
    assert data["dry_run"] is True and len(data["transfers"]) == 3  # type: ignore[arg-type]


# -- the runner's pipeline ----------------------------------------------------------------


def test_pipeline_feeds_one_command_into_the_other() -> None:
    result = runner.run_pipeline(("printf", "a\\nb\\n"), ("wc", "-l"))
    assert result.stdout.strip() == "2"
    assert result.argv == ("printf", "a\\nb\\n", "|", "wc", "-l")


@pytest.mark.parametrize(
    ("producer", "consumer", "blamed"),
    [
        (("sh", "-c", "echo x; echo send-broke >&2; exit 3"), ("cat",), "status 3: send-broke"),
        (("echo", "x"), ("sh", "-c", "cat >/dev/null; echo no-space >&2; exit 1"), "no-space"),
        # The consumer gave up first: its reason, not the producer's SIGPIPE.
        (("yes",), ("sh", "-c", "head -c1 >/dev/null; echo recv-broke >&2; exit 1"), "recv-broke"),
        (("no-such-program-x",), ("cat",), "no-such-program-x: command not found"),
        (("echo",), ("no-such-program-y",), "no-such-program-y: command not found"),
    ],
)  # fmt: skip
def test_pipeline_checks_both_exit_statuses(
    producer: tuple[str, ...], consumer: tuple[str, ...], blamed: str
) -> None:
    with pytest.raises(runner.CommandError, match=blamed):
        runner.run_pipeline(producer, consumer)


def test_pipeline_times_out_and_kills_both() -> None:
    with pytest.raises(runner.CommandError, match=r"did not finish within 0\.5 s"):
        runner.run_pipeline(("sleep", "30"), ("cat",), timeout=0.5)


# -- the backend's declaration, checked by plugins --check -------------------------------


class _Liar(ZfsNativeBackend):
    name = "liar"
    native_encryption: ClassVar[bool] = True

    def pool_encryption(self, spec: InstallSpec) -> dict[str, str]:
        return {}


def test_plugins_check_refuses_a_backend_that_claims_native_encryption_falsely() -> None:
    liar: Backend = _Liar()
    _, spec = samples(liar)[0]
    with pytest.raises(PluginError, match="native_encryption is True"):
        _check_native_encryption(liar, spec)
    for honest in (ZfsNativeBackend(), LuksBackend()):
        _check_native_encryption(honest, samples(honest)[0][1])
    assert ZfsNativeBackend.native_encryption is True and LuksBackend.native_encryption is False


# -- the command -----------------------------------------------------------------------


def _record(tmp_path: Path, variant: str, **settings: Any) -> Path:
    """A layout record of a golden variant, with ``settings`` changed."""
    data = json.loads((GOLDEN / variant / "advisor.json").read_text())
    data["settings"].update(settings)
    path = tmp_path / "advisor.json"
    path.write_text(json.dumps(data))
    return path


def test_backup_nix_prints_a_module_that_evaluates(run_cli: RunCli, tmp_path: Path) -> None:
    record = _record(tmp_path, "zfs-native-systemd")
    result = run_cli("backup", "--record", str(record), "--target", REMOTE, "--nix")
    assert result.returncode == 0, result.stderr
    path = tmp_path / "backup.nix"
    path.write_text(result.stdout)
    cfg = _eval_module(path)
    assert cfg["services"]["syncoid"]["commands"]["rpool/safe"]["sendOptions"] == "w"
    data = run_cli("backup", "--record", str(record), "--target", REMOTE, "--nix", "--json")
    assert json.loads(data.stdout)["nix"] == result.stdout


def test_backup_of_luks_to_an_untrusted_target_exits_2(run_cli: RunCli, tmp_path: Path) -> None:
    record = _record(tmp_path, "luks-systemd")
    for extra in ((), ("--untrusted",)):
        result = run_cli("backup", "--record", str(record), "--target", REMOTE, "--nix", *extra)
        assert result.returncode == 2
        assert "refused" in result.stderr and "Traceback" not in result.stderr
    trusted = run_cli("backup", "--record", str(record), "--target", REMOTE, "--nix", "--trusted")
    assert trusted.returncode == 0, trusted.stderr
    assert '"w"' not in trusted.stdout


def test_backup_trust_comes_from_the_assessment(run_cli: RunCli, tmp_path: Path) -> None:
    record = _record(tmp_path, "luks-systemd")
    assessment = tmp_path / "assessment.json"
    for answer, status in (("trusted", 0), ("untrusted", 2)):
        saved = {"schema": 1, "system": {}, "answers": {"offsite_backups": answer}}
        assessment.write_text(json.dumps(saved))
        result = run_cli(
            "backup", "--record", str(record), "--target", REMOTE, "--nix",
            "--from-assessment", str(assessment),
        )  # fmt: skip
        assert result.returncode == status, result.stderr
    assessment.write_text("[]")
    result = run_cli(
        "backup", "--record", str(record), "--target", REMOTE, "--from-assessment",
        str(assessment),
    )  # fmt: skip
    assert result.returncode == 2 and "not an assessment" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--target", "tank;x"), "--target"),
        (("--target", "tank/a", "--trusted", "--untrusted"), "not allowed with"),
        (("--target", "tank/a", "--root", "/nonexistent"), "no layout record"),
    ],
)
def test_backup_bad_input_exits_2(run_cli: RunCli, args: tuple[str, ...], message: str) -> None:
    result = run_cli("backup", *args)
    assert result.returncode == 2 and message in result.stderr
    assert "Traceback" not in result.stderr


def test_config_writes_the_backup_and_refuses_plaintext_offsite(
    run_cli: RunCli, tmp_path: Path
) -> None:
    password = tmp_path / "password"
    password.write_text("pw\n")
    base = [
        "config", "--out", str(tmp_path / "o"), "--user", "alice", "--password-file",
        str(password), "--host-id", "8f2a91c4", "--esp-device",
        "/dev/disk/by-partuuid/0b5e1f2c-3d4e-4f5a-8b6c-7d8e9f0a1b2c", "--data-device",
        "/dev/disk/by-partuuid/6a3d2c1b-5e4f-4a8b-9c0d-1e2f3a4b5c6d", "--backup-target", REMOTE,
    ]  # fmt: skip
    native = run_cli(*base, "--backend", "zfs-native")
    assert native.returncode == 0, native.stderr
    cfg = nixeval.eval_config(tmp_path / "o" / "configuration.nix")
    assert cfg["services"]["syncoid"]["commands"]["rpool/safe"]["sendOptions"] == "w"
    record = json.loads((tmp_path / "o" / "advisor.json").read_text())
    assert record["settings"]["backup_target"] == REMOTE
    refused = run_cli(*base, "--backend", "luks", "--force")
    assert refused.returncode == 2 and "refused" in refused.stderr
    trusted = run_cli(*base, "--backend", "luks", "--force", "--backup-trust", "trusted")
    assert trusted.returncode == 0, trusted.stderr


def test_the_snapshot_name_is_utc_and_sortable() -> None:
    assert backups.snapshot_name("20261205-021500") == "advisor-20261205-021500"
    # Names sort as times do, so the newest is the last.
    assert sorted(["advisor-20261205-021500", "advisor-20261104-235959"])[-1].endswith("021500")


def test_a_record_with_a_target_generates_by_what_the_backend_declares() -> None:
    from advisor.layoutrecord import read_record
    from advisor.nixos.generate import backup_fragments

    layout = read_record(GOLDEN / "zfs-native-systemd" / "advisor.json")
    layout = replace(layout, settings=replace(layout.settings, backup_target=REMOTE))
    assert backup_fragments(layout, ZfsNativeBackend())[0].section == "Backups"
    with pytest.raises(BackupRefused):
        backup_fragments(replace(layout, backend="luks"), LuksBackend())


def test_backup_takes_the_configured_target_and_trust(run_cli: RunCli, tmp_path: Path) -> None:
    """``advisor config --backup-target`` wrote them into the layout record."""
    record = _record(tmp_path, "luks-systemd", backup_target=REMOTE, backup_trust="trusted")
    result = run_cli("backup", "--record", str(record), "--nix", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert (data["target"], data["trusted"]) == (REMOTE, True)
    # Another target on the command line does not inherit the configured one's trust.
    other = run_cli("backup", "--record", str(record), "--nix", "--target", "vault:tank/x")
    assert other.returncode == 2 and "refused" in other.stderr
    none = run_cli("backup", "--record", str(_record(tmp_path, "luks-systemd")), "--nix")
    assert none.returncode == 2 and "give --target" in none.stderr


def test_the_report_shows_each_send_and_the_dry_run_commands() -> None:
    from rich.console import Console

    from advisor.backup.report import render_backup

    target = backups.parse_target(REMOTE)
    held = {"tank/atlas": (), "tank/atlas/safe": ("a",)}
    result = back_up(
        "rpool", target, trusted=False, dry_run=True,
        now=datetime(2026, 12, 5, 2, 15, tzinfo=UTC),
        sources=parse_sources(LISTING, SNAPSHOTS), held=held,
    )  # fmt: skip
    console = Console(record=True, width=200)
    render_backup(console, result)
    text = console.export_text()
    assert "Would back up rpool to backup@vault.example:tank/atlas (untrusted)" in text
    assert "raw (-w)" in text and "@a" in text and "full" in text
    assert "zfs snapshot -r rpool/safe@advisor-20261205-021500" in text
