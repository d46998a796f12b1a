"""``advisor rekey`` without a disk: the steps each backend gives and their order, the
secrets they are fed, the state a resume reads, and the refusals. The real cryptsetup
and ZFS run in tests/vm/test_rekey.py."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from advisor import cli
from advisor.errors import PluginError, PluginRefusal, UsageError
from advisor.install import recovery, rekey
from advisor.install.executor import Executor
from advisor.install.plan import SECRET_LINES
from advisor.layoutrecord import read_record
from advisor.models import REKEY_SECRETS, Backend, Layout, LayoutMember, RekeySpec, Step
from advisor_luks import LuksBackend
from advisor_luks_detached import LuksDetachedBackend
from advisor_zfs_native import ZfsNativeBackend

GOLDEN = Path(__file__).parent / "golden"


def layout(backend: str, disks: int = 1, *, backups: bool = True) -> Layout:
    """The golden record of ``backend``, on ``disks`` disks, each with a header backup."""
    base = read_record(GOLDEN / f"{backend}-systemd" / "advisor.json")
    first = base.members[0]
    members = tuple(
        replace(
            first,
            number=n,
            data_device=f"/dev/disk/by-partuuid/0000000{n}-0000-4000-8000-000000000000",
            luks_name=f"cryptroot{n}",
            header=f"/dev/disk/by-id/usb-key{n}" if first.header else None,
            header_backup=f"/backup/header-{n}.img" if backups else None,
        )
        for n in range(1, disks + 1)
    )
    return replace(base, members=members)


def keys_after(steps: list[Step], members: int) -> list[set[str]]:
    """The passphrases that open each disk after ``steps`` (a model of the key slots:
    an add puts the last secret of its step's lines in, a removal takes the old out)."""
    slots = [{"passphrase"} for _ in range(members)]
    for step in steps:
        disk = int(m[1]) - 1 if (m := re.match(r"disk(\d+)-", step.id)) else 0
        verb = step.argv[1] if step.argv[0] == "cryptsetup" else ""
        if verb == "luksAddKey":
            assert step.secret is not None
            old, added = SECRET_LINES[step.secret]
            assert old in slots[disk], f"{step.id} adds with a key that no longer opens"
            slots[disk].add(added)
        elif verb == "luksRemoveKey":
            slots[disk].discard("passphrase")
    return slots


@pytest.mark.parametrize("backend", [LuksBackend(), LuksDetachedBackend()])
@pytest.mark.parametrize("recovery", [False, True])
def test_luks_never_leaves_a_moment_without_one_passphrase_for_every_disk(
    backend: LuksBackend, recovery: bool
) -> None:
    spec = RekeySpec(layout(backend.name, 3), recovery_key=recovery)
    steps = list(rekey.build_plan(spec, backend).steps)
    for end in range(len(steps) + 1):
        slots = keys_after(steps[:end], 3)
        # One passphrase opens all three at every moment: the old until the new is
        # everywhere, then the new.
        assert set.intersection(*slots) & {"passphrase", "new-passphrase"}, steps[end - 1].id
    final = keys_after(steps, 3)
    expected = {"new-passphrase", "recovery-key"} if recovery else {"new-passphrase"}
    assert final == [expected] * 3
    ids = [step.id for step in steps]
    # Every disk's new passphrase is added and tested before any old one is removed.
    last_test = max(ids.index(f"disk{n}-test-new") for n in (1, 2, 3))
    first_remove = min(ids.index(f"disk{n}-remove-old") for n in (1, 2, 3))
    assert last_test < first_remove
    # The header backups are taken anew after the removals, and the old passphrase is
    # checked gone at the end.
    assert ids.index("disk3-remove-old") < ids.index("disk1-refresh-header-backup")
    assert ids[-3:] == [f"disk{n}-check-old-gone" for n in (1, 2, 3)]


def test_luks_steps_feed_passphrases_on_stdin_and_probe_what_they_change() -> None:
    plan = rekey.build_plan(RekeySpec(layout("luks"), fast_kdf=True), LuksBackend())
    by_id = {step.id: step for step in plan.steps}
    add = by_id["add-new"]
    assert add.argv[:2] == ("cryptsetup", "luksAddKey") and "--pbkdf-force-iterations" in add.argv
    assert (add.secret, add.secret_newline) == ("old-and-new-passphrase", True)
    assert add.probe is not None and add.probe[:3] == ("cryptsetup", "open", "--test-passphrase")
    assert add.probe_secret == "new-passphrase"
    remove = by_id["remove-old"]
    assert remove.argv[:2] == ("cryptsetup", "luksRemoveKey") and remove.secret == "passphrase"
    assert remove.probe is not None and "refused" in remove.probe
    assert remove.probe_secret == "passphrase"
    refresh = by_id["refresh-header-backup"]
    data = plan.spec.layout.members[0].data_device
    # On-disk LUKS: the header is the data partition itself.
    assert refresh.argv[-3:] == (data, "/backup/header-1.img", data)
    assert (refresh.secret, refresh.probe_secret) == ("new-passphrase", "new-passphrase")
    for step in plan.steps:
        assert not any("canary" in word for word in step.argv)
        assert {step.secret, step.probe_secret} - {None} <= set(REKEY_SECRETS)


def test_no_header_backup_no_refresh() -> None:
    plan = rekey.build_plan(RekeySpec(layout("luks", backups=False)), LuksBackend())
    assert not any("header-backup" in step.id for step in plan.steps)


def test_luks_detached_names_its_header_in_every_command() -> None:
    plan = rekey.build_plan(RekeySpec(layout("luks-detached")), LuksDetachedBackend())
    for step in plan.steps:
        if step.argv[0] == "cryptsetup":
            assert step.argv[3:5] == ("--header", "/dev/disk/by-id/usb-key1") or (
                "--header" in step.argv
            ), step.id
    refresh = next(s for s in plan.steps if s.id == "refresh-header-backup")
    assert refresh.argv[-3] == "/dev/disk/by-id/usb-key1"  # the backup is of the header


def test_zfs_native_changes_the_wrapping_key_of_the_pool() -> None:
    plan = rekey.build_plan(RekeySpec(layout("zfs-native")), ZfsNativeBackend())
    assert [step.id for step in plan.steps] == [
        "test-old",
        "change-key",
        "test-new",
        "check-old-gone",
    ]
    change = plan.steps[1]
    assert change.argv == (
        "zfs", "change-key", "-o", "keyformat=passphrase", "-o", "keylocation=prompt", "rpool",
    )  # fmt: skip
    assert (change.secret, change.probe_secret) == ("new-passphrase", "new-passphrase")
    assert change.probe == ("zfs", "load-key", "-n", "rpool")
    with pytest.raises(PluginRefusal, match="no second key slot"):
        rekey.build_plan(RekeySpec(layout("zfs-native"), recovery_key=True), ZfsNativeBackend())


class _NoRekey(Backend):
    name = "plain"
    summary = "a backend without rekey steps"
    api_version = 3
    capabilities = {}  # noqa: RUF012 - a test double


class _BadSecret(_NoRekey):
    def rekey_steps(self, spec: RekeySpec) -> list[Step]:
        return [Step("leak", "feeds a secret there is none of", ("true",), secret="password")]


class _Twice(_NoRekey):
    def rekey_steps(self, spec: RekeySpec) -> list[Step]:
        return [Step("same", "one", ("true",)), Step("same", "two", ("true",))]


def test_a_backend_without_rekey_steps_cannot_rekey() -> None:
    with pytest.raises(UsageError, match="plain backend cannot change its passphrase"):
        rekey.build_plan(RekeySpec(layout("luks")), _NoRekey())


@pytest.mark.parametrize(
    ("backend", "message"),
    [
        (_BadSecret(), "secret 'password' is none of the secrets there are"),
        (_Twice(), "step id 'same' is used twice"),
    ],
)
def test_a_backends_bad_steps_are_its_error(backend: Backend, message: str) -> None:
    with pytest.raises(PluginError, match=message):
        rekey.build_plan(RekeySpec(layout("luks")), backend)


def test_the_script_feeds_both_passphrases_one_a_line() -> None:
    plan = rekey.build_plan(RekeySpec(layout("luks"), recovery_key=True), LuksBackend())
    script = rekey.render_script(plan, Path("/etc/nixos/advisor.json"))
    assert (
        'printf \'%s\\n%s\\n\' "$ADVISOR_PASSPHRASE" "$ADVISOR_NEW_PASSPHRASE" | '
        "cryptsetup luksAddKey" in script
    )
    assert "ADVISOR_RECOVERY_KEY (recovery-key)" in script
    assert script.count("# [") == len(plan.steps)


def test_secrets_and_recovery_key() -> None:
    values = rekey.rekey_secrets("old-one", "new-one", "rk")
    assert values["old-and-new-passphrase"] == "old-one\nnew-one"
    assert values["new-passphrase-and-recovery-key"] == "new-one\nrk"
    assert "recovery-key" not in rekey.rekey_secrets("a", "b", None)
    key = recovery.new_recovery_key()
    # 64 modhex letters (4 bits each: 256 bits), eight groups of eight.
    assert re.fullmatch(r"[cbdefghijklnrtuv]{8}(-[cbdefghijklnrtuv]{8}){7}", key)
    assert key != recovery.new_recovery_key()
    with pytest.raises(UsageError, match="new passphrase is the current one"):
        rekey.check_passphrases("same-pass", "same-pass")


def _journal(state: Path, *events: dict[str, str]) -> None:
    lines = [json.dumps({"event": "plan", "fingerprint": "x"}), *map(json.dumps, events)]
    (state / "journal.jsonl").write_text("\n".join(lines) + "\n")


def test_state_round_trip_and_what_a_resume_needs_of_the_recovery_key(tmp_path: Path) -> None:
    spec = RekeySpec(layout("luks", 2), recovery_key=True, fast_kdf=True)
    plan = rekey.build_plan(spec, LuksBackend())
    state = tmp_path / "state"
    rekey.prepare_state_dir(state)
    rekey.save_state(state, plan)
    assert rekey.load_state(state) == (spec, plan.fingerprint)
    assert rekey.rebuild_plan(state, LuksBackend(), spec, plan.fingerprint) == plan
    with pytest.raises(UsageError, match="would differ now"):
        rekey.rebuild_plan(state, LuksBackend(), spec, "0" * 16)
    assert recovery.recovery_key_needed(plan.steps, state) == "new"
    # Begun: the key was shown before the first step, and is asked for again.
    _journal(state, {"event": "started", "step": "disk1-test-old"})
    assert recovery.recovery_key_needed(plan.steps, state) == "given"
    _journal(state, {"event": "done", "step": "disk1-add-recovery"})
    assert recovery.recovery_key_needed(plan.steps, state) == "given"  # disk 2 still lacks it
    adding = [s.id for s in plan.steps if recovery.uses_recovery_key(s)]
    _journal(state, *({"event": "done", "step": step} for step in adding))
    assert recovery.recovery_key_needed(plan.steps, state) is None
    # A rekey that did not finish is not started over; one that did is cleared.
    with pytest.raises(UsageError, match="did not finish: continue it with --resume"):
        rekey.prepare_state_dir(state)
    _journal(state, {"event": "complete"})
    rekey.prepare_state_dir(state)
    assert not (state / "journal.jsonl").exists() and not (state / "rekey.json").exists()


def test_a_resume_with_another_new_passphrase_stops_before_anything(tmp_path: Path) -> None:
    """A done step's probe with the secrets given now must still pass."""
    expected = tmp_path / "expected"
    expected.write_text("right-new")
    opens = ("sh", "-c", f'read line; [ "$line" = "$(cat {expected})" ]')
    step = Step("add-new", "add", ("true",), secret="old-and-new-passphrase",
                secret_newline=True, probe=opens, probe_secret="new-passphrase")  # fmt: skip
    plan = rekey.RekeyPlan(RekeySpec(layout("luks")), (step,))
    state = tmp_path / "state"
    state.mkdir()
    _journal(state, {"event": "done", "step": "add-new"})

    def executor(new: str) -> Executor:
        values = rekey.rekey_secrets("old-pass", new, None)
        return rekey.make_executor(plan, state, values, _Quiet(), None)

    said: list[str] = []
    rekey.check_given_again(plan, state, executor("right-new"), said.append)
    assert said
    with pytest.raises(UsageError, match="give the same passphrases"):
        rekey.check_given_again(plan, state, executor("other-new"), said.append)
    log = (state / "rekey.log").read_text()
    assert "right-new" not in log and "other-new" not in log and "<new-passphrase>" in log


class _Quiet:
    def started(self, number: int, total: int, step: Step) -> None: ...
    def finished(self, number: int, total: int, step: Step, seconds: float) -> None: ...
    def skipped(self, number: int, total: int, step: Step, reason: str) -> None: ...


def test_check_devices_names_what_is_missing(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.write_bytes(b"")
    member = LayoutMember(1, str(data), "/dev/null", header_backup=str(tmp_path / "gone"))
    with pytest.raises(UsageError, match=r"header backup .*gone is not there: mount its medium"):
        rekey.check_devices(replace(layout("luks"), members=(member,)))
    member = replace(member, data_device=str(tmp_path / "nodisk"))
    with pytest.raises(UsageError, match=r"data device .*nodisk is not there"):
        rekey.check_devices(replace(layout("luks"), members=(member,)))


def verify(*args: str, stdin: str = "pass\n") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "advisor.install.verify", *args],
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.mark.parametrize(
    ("args", "status"),
    [
        (["--exit", "2", "--", "sh", "-c", "cat > /dev/null; exit 2"], 0),
        (["--exit", "2", "--", "sh", "-c", "exit 0"], 1),  # it still opens
        (["--exit", "2", "--", "sh", "-c", "exit 4"], 1),  # a missing device is no proof
        (["--message", "Incorrect key", "--", "sh", "-c", "echo Incorrect key >&2; exit 1"], 0),
        (["--message", "Incorrect key", "--", "sh", "-c", "echo no pool >&2; exit 1"], 1),
        (["--exit", "x", "--", "true"], 2),
        (["--exit", "2", "true"], 2),
    ],
)
def test_verify_refused(args: list[str], status: int) -> None:
    assert verify("refused", *args).returncode == status


def test_verify_refused_passes_the_passphrase_on_stdin() -> None:
    command = ["sh", "-c", '[ "$(cat)" = "pass" ] && exit 2; exit 0']
    assert verify("refused", "--exit", "2", "--", *command, stdin="pass").returncode == 0


def run_main(*args: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = cli.main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_cli_dry_run_prints_the_steps(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "mnt"
    (root / "persist" / "etc" / "nixos").mkdir(parents=True)
    record = GOLDEN / "luks-detached-systemd" / "advisor.json"
    (root / "persist" / "etc" / "nixos" / "advisor.json").write_bytes(record.read_bytes())
    code, out, _ = run_main("rekey", "--root", str(root), "--dry-run", capsys=capsys)
    assert code == 0
    assert out.startswith("#!/bin/sh\n# advisor rekey plan ")
    assert "cryptsetup luksRemoveKey --header" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--root", "/nonexistent"], "no layout record under '/nonexistent'"),
        (
            [
                "--record",
                str(GOLDEN / "zfs-native-systemd" / "advisor.json"),
                "--recovery-key",
                "--dry-run",
            ],
            "--recovery-key: a natively encrypted pool",
        ),
        (["--resume", "--recovery-key", "--state-dir", "/tmp"], "--resume continues the rekey"),
        (
            [
                "--record",
                str(GOLDEN / "luks-systemd" / "advisor.json"),
                "--dry-run",
                "--stop-after",
                "nope",
            ],
            "--stop-after 'nope': no such step",
        ),
    ],
)
def test_cli_refuses_bad_input_with_status_2(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_main("rekey", *args, capsys=capsys)
    assert code == 2 and message in err, err
    assert "Traceback" not in err
