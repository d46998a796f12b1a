"""Unlock methods: how they compose with the backends, the steps they add to an install,
the configuration they give, and the refusals (issue 15). The real TPM2 is in
tests/vm/test_unlock.py."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import nixeval
import pytest
from helpers import PLAN_SPEC, RunCli, detached, pool_spec

from advisor.errors import PluginRefusal, UsageError
from advisor.install.plan import INSTALL_SECRETS, build_plan, render_script
from advisor.luksmeta import token_types, wanted_tokens
from advisor.models import InstallSpec, Settings, UnlockMethod, carries
from advisor.pluginmanager import load_plugins
from advisor.settings import check_settings
from advisor_luks import LuksBackend
from advisor_luks_detached import LuksDetachedBackend
from advisor_unlock import Fido2Unlock, PassphraseUnlock, Tpm2PinUnlock, Tpm2Unlock
from advisor_zfs_native import ZfsNativeBackend

METHODS: tuple[UnlockMethod, ...] = (
    PassphraseUnlock(),
    Tpm2Unlock(),
    Tpm2PinUnlock(),
    Fido2Unlock(),
)
DATA = "/dev/disk/by-partuuid/6a3d2c1b-5e4f-4a8b-9c0d-1e2f3a4b5c6d"


def unlocking(spec: InstallSpec, method: str, **settings: Any) -> InstallSpec:
    return replace(spec, settings=replace(spec.settings, unlock=method, **settings))


def plan_ids(spec: InstallSpec, method: UnlockMethod) -> list[str]:
    return [step.id for step in build_plan(spec, LuksBackend(), generate_hardware_config=False,
                                           method=method).steps]  # fmt: skip


def test_the_built_in_methods_are_loaded_through_their_entry_point() -> None:
    plugins = load_plugins(environ={})
    assert [m.name for m in plugins.unlock_methods] == ["passphrase", "tpm2", "tpm2+pin", "fido2"]
    record = next(r for r in plugins.records if r.name == "unlock")
    assert record.unlock_methods == ["passphrase", "tpm2", "tpm2+pin", "fido2"]
    luks, native = plugins.backend("luks"), plugins.backend("zfs-native")
    assert [m.name for m in plugins.unlock_methods_for(luks)] == [m.name for m in METHODS]
    # ZFS native encryption has no key slots: a passphrase only (docs/threat-model.md).
    assert [m.name for m in plugins.unlock_methods_for(native)] == ["passphrase"]
    assert carries(LuksDetachedBackend(), Tpm2Unlock())
    with pytest.raises(UsageError, match=r"no such unlock method.*installed: passphrase, tpm2"):
        plugins.unlock_method("tpm3")


def test_tpm2_enrolls_after_the_container_with_the_passphrase_on_stdin() -> None:
    spec = unlocking(PLAN_SPEC, "tpm2", tpm2_pcrs="0+7")
    plan = build_plan(spec, LuksBackend(), generate_hardware_config=False, method=Tpm2Unlock())
    ids = [step.id for step in plan.steps]
    at = ids.index("luks-open")
    assert ids[at + 1 : at + 4] == ["add-recovery-key", "test-recovery-key", "enroll"]
    assert ids[-1] == "check"  # the passphrase is kept: nothing after the check
    add, test, enroll = (plan.step(i) for i in ("add-recovery-key", "test-recovery-key", "enroll"))
    # The passphrase that opens it, then the recovery key, one a line, on stdin.
    assert add.argv == ("cryptsetup", "luksAddKey", DATA)
    assert add.secret == "passphrase-and-recovery-key" and add.secret_newline
    assert add.probe_secret == "recovery-key"  # done when the recovery key opens it
    assert test.secret == "recovery-key"
    # The passphrase on stdin, which the keyfile wrapper turns into /dev/fd/3: systemd
    # before 256 cannot read a key file from a pipe.
    assert enroll.argv[1:4] == ("-m", "advisor.install.keyfile", "--")
    assert enroll.argv[4:] == (
        "systemd-cryptenroll", "--unlock-key-file=/dev/fd/3", "--tpm2-device=auto",
        "--tpm2-pcrs=0+7", DATA,
    )  # fmt: skip
    assert enroll.secret == "passphrase" and not enroll.secret_newline
    assert not enroll.interactive
    assert enroll.probe is not None and enroll.probe[-3:] == ("token", "systemd-tpm2", DATA)
    assert all(step.secret in (None, *INSTALL_SECRETS) for step in plan.steps)


def test_the_passphrase_is_removed_last_when_not_kept() -> None:
    spec = unlocking(PLAN_SPEC, "tpm2", keep_passphrase=False)
    plan = build_plan(spec, LuksBackend(), generate_hardware_config=False, method=Tpm2Unlock())
    assert [step.id for step in plan.steps][-2:] == ["check", "remove-passphrase"]
    remove = plan.step("remove-passphrase")
    assert remove.argv == ("cryptsetup", "luksRemoveKey", DATA)
    assert remove.secret == "passphrase" and remove.probe_secret == "passphrase"
    assert remove.probe is not None and remove.probe[-8:-4] == ("refused", "--exit", "2", "--")


@pytest.mark.parametrize("method", [Tpm2PinUnlock(), Fido2Unlock()])
def test_a_pin_or_a_touch_enrolls_at_the_terminal(method: UnlockMethod) -> None:
    spec = unlocking(PLAN_SPEC, method.name)
    plan = build_plan(spec, LuksBackend(), generate_hardware_config=False, method=method)
    enroll = plan.step("enroll")
    assert enroll.interactive and enroll.secret is None  # systemd-cryptenroll asks there
    assert "--unlock-key-file=/dev/stdin" not in enroll.argv
    expected = {"tpm2+pin": "--tpm2-with-pin=yes", "fido2": "--fido2-device=auto"}
    assert expected[method.name] in enroll.argv
    script = render_script(plan)
    assert "needs you at the terminal" in script
    assert "systemd-cryptenroll --fido2-device=auto" in script or method.name == "tpm2+pin"


def test_every_disk_of_a_pool_is_enrolled_under_its_tag() -> None:
    spec = unlocking(pool_spec(2), "tpm2", keep_passphrase=False)
    ids = plan_ids(spec, Tpm2Unlock())
    for tag in ("disk1", "disk2"):
        assert ids.index(f"{tag}-luks-open") < ids.index(f"{tag}-enroll")
        assert f"{tag}-remove-passphrase" in ids
    assert ids.index("disk2-enroll") < ids.index("create-pool")


def test_the_passphrase_method_adds_no_step() -> None:
    plain = build_plan(PLAN_SPEC, LuksBackend(), generate_hardware_config=False)
    spec = unlocking(PLAN_SPEC, "passphrase")
    same = build_plan(spec, LuksBackend(), generate_hardware_config=False, method=METHODS[0])
    assert [s.id for s in same.steps] == [s.id for s in plain.steps]


def check(settings: Settings, backend: object = None) -> Settings:
    return check_settings(settings, backend or LuksBackend(), (), METHODS)  # type: ignore[arg-type]


def test_refusals_name_the_flag_and_the_way_out() -> None:
    base = PLAN_SPEC.settings
    assert check(replace(base, unlock="tpm2")).unlock == "tpm2"
    with pytest.raises(UsageError, match=r"zfs-native backend cannot carry it.*choose passphrase"):
        check(replace(base, unlock="tpm2"), ZfsNativeBackend())
    with pytest.raises(PluginRefusal, match="scripted initrd cannot unlock with a TPM2"):
        check(replace(base, unlock="fido2", initrd="scripted"))
    with pytest.raises(UsageError, match="the passphrase is the only way in"):
        check(replace(base, keep_passphrase=False))
    with pytest.raises(UsageError, match="no such unlock method"):
        check(replace(base, unlock="yubikey"))
    for pcrs in ("24", "7+7", "seven", "7,11", ""):
        with pytest.raises(UsageError, match="--tpm2-pcrs"):
            check(replace(base, unlock="tpm2", tpm2_pcrs=pcrs))
    assert check(replace(base, unlock="tpm2", tpm2_pcrs="0+2+7")).tpm2_pcrs == "0+2+7"


def test_a_detached_header_carries_the_token_and_its_backup_is_taken_anew() -> None:
    header, backup = "/dev/disk/by-id/usb-key", "/backup/header.img"
    spec = unlocking(detached(PLAN_SPEC, [header], [backup]), "tpm2", keep_passphrase=False)
    assert check(spec.settings, LuksDetachedBackend()).unlock == "tpm2"
    plan = build_plan(
        spec, LuksDetachedBackend(), generate_hardware_config=False, method=Tpm2Unlock()
    )
    ids = [step.id for step in plan.steps]
    # The token goes into the header (systemd-cryptenroll has no --header: the header is
    # its device), then the backup taken at format time is replaced.
    assert plan.step("enroll").argv[-1] == header
    assert plan.step("add-recovery-key").argv[-1] == header
    at = ids.index("enroll")
    assert ids[at + 1] == "refresh-header-backup"
    refresh = plan.step("refresh-header-backup")
    assert refresh.argv[-4:] == ("refresh-header-backup", header, backup, DATA)
    assert refresh.secret == "recovery-key"  # it still opens after the passphrase goes
    # Once the passphrase is gone, the backup must lose it too.
    assert ids[-2:] == ["remove-passphrase", "refresh-header-backup-again"]


def test_token_types_read_the_luks2_metadata() -> None:
    metadata = {"tokens": {"1": {"type": "systemd-fido2"}, "0": {"type": "systemd-tpm2"}}}
    assert token_types(json.dumps(metadata)) == ["systemd-tpm2", "systemd-fido2"]
    assert token_types(json.dumps({"tokens": {}})) == []
    with pytest.raises(ValueError, match="no tokens"):
        token_types("[]")
    options = ["tpm2-device=auto", "nofail", "fido2-device=/dev/hidraw0", "tpm2-device=auto"]
    assert wanted_tokens(options) == ["systemd-tpm2", "systemd-fido2"]


CONFIG = [
    "config", "--data-device", DATA, "--esp-device", "/dev/disk/by-partuuid/0b5e1f2c",
    "--user", "alice", "--hostname", "atlas", "--host-id", "8f2a91c4",
]  # fmt: skip


@pytest.mark.parametrize(
    ("method", "option", "tpm2"),
    [("tpm2", "tpm2-device=auto", True), ("tpm2+pin", "tpm2-device=auto", True),
     ("fido2", "fido2-device=auto", False)],
)  # fmt: skip
def test_config_unlocks_with_the_method_in_the_systemd_initrd(
    run_cli: RunCli, tmp_path: Path, method: str, option: str, tpm2: bool
) -> None:
    (tmp_path / "password").write_text("a user password\n")
    out = tmp_path / "etc-nixos"
    result = run_cli(
        *CONFIG, "--backend", "luks", "--out", str(out), "--unlock", method,
        "--password-file", str(tmp_path / "password"),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    nixeval.parse(out / "configuration.nix")
    cfg = nixeval.eval_config(out / "configuration.nix")
    device = cfg["boot"]["initrd"]["luks"]["devices"]["cryptroot"]
    assert device["crypttabExtraOpts"] == [option]
    systemd = cfg["boot"]["initrd"]["systemd"]
    assert systemd["tpm2" if tpm2 else "fido2"] == {"enable": True}
    assert ("tpm2" in systemd) is tpm2 and ("fido2" in systemd) is not tpm2
    assert json.loads((out / "advisor.json").read_text())["settings"]["unlock"] == method


def test_config_refuses_a_method_the_backend_cannot_carry(run_cli: RunCli, tmp_path: Path) -> None:
    (tmp_path / "password").write_text("a user password\n")
    out = tmp_path / "etc-nixos"
    for backend, extra in (("zfs-native", []), ("luks", ["--initrd", "scripted"])):
        result = run_cli(
            *CONFIG, "--backend", backend, "--out", str(out), "--unlock", "tpm2",
            "--password-file", str(tmp_path / "password"), *extra,
        )  # fmt: skip
        assert result.returncode == 2, result.stderr
        assert "tpm2" in result.stderr and "Traceback" not in result.stderr
        assert not out.exists()  # nothing half-written


def test_a_pool_of_containers_keeps_nofail_beside_the_method() -> None:
    from test_configuration import golden_layout

    from advisor.nixos.generate import generate

    layout = golden_layout("luks", "systemd")
    spec = pool_spec(2)
    members = tuple(
        replace(layout.members[0], number=m.number, luks_name=m.luks_name,
                data_device=m.data_partuuid_device, esp_device=m.esp_device)
        for m in spec.members
    )  # fmt: skip
    layout = replace(
        layout,
        members=members,
        settings=replace(layout.settings, unlock="fido2"),
        unlock_options=("fido2-device=auto",),
    )
    text = generate(layout, LuksBackend(), method=Fido2Unlock()).files["configuration.nix"]
    assert text.count('crypttabExtraOpts = [ "fido2-device=auto" "nofail" ];') == 2


def test_a_saved_assessment_gives_its_method_for_its_backend_only(
    run_cli: RunCli, tmp_path: Path
) -> None:
    saved = tmp_path / "assessment.json"
    result = run_cli("assess", "--profile", "journalist", "--save", str(saved))
    assert result.returncode == 0, result.stderr
    assert json.loads(saved.read_text())["unlock"]["method"] == "fido2"
    (tmp_path / "password").write_text("a user password\n")
    for extra, method in (([], "fido2"), (["--backend", "zfs-native"], "passphrase")):
        out = tmp_path / f"etc-{method}"
        result = run_cli(
            *CONFIG, "--from-assessment", str(saved), "--out", str(out), *extra,
            "--password-file", str(tmp_path / "password"),
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        assert json.loads((out / "advisor.json").read_text())["settings"]["unlock"] == method
