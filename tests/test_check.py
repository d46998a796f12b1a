"""``advisor check``'s checks, pure: facts in, results out. The configurations are the
golden ones (tests/golden), evaluated by real Nix through the packaged harness; the
facts of the machine are set by hand, one fact at a time made wrong."""

from __future__ import annotations

import copy
from dataclasses import replace
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from advisor import nixeval
from advisor.check.checks import expected_files, header_difference, run_checks
from advisor.check.facts import (
    CheckResult,
    Facts,
    FileFact,
    HeaderFact,
    Label,
    Stage,
    Status,
    TokenFact,
)
from advisor.check.probe import parse_label
from advisor.layoutrecord import read_record

GOLDEN = Path(__file__).resolve().parent / "golden"
NAMES = sorted(path.name for path in GOLDEN.iterdir())
HOST_ID = "8f2a91c4"


@cache
def golden_config(name: str) -> dict[str, Any]:
    evaluation = nixeval.evaluate_configuration(GOLDEN / name / "configuration.nix")
    assert evaluation.config is not None, evaluation.problem
    return evaluation.config


def healthy(name: str, stage: Stage = Stage.INSTALLED, **changes: Any) -> Facts:
    """The facts of a sound install of golden variant ``name``, then ``changes``."""
    layout = read_record(GOLDEN / name / "advisor.json")
    if layout.members[0].header is not None:
        member = replace(layout.members[0], header_backup="/media/backup/header.img")
        layout = replace(layout, members=(member,))
    config = copy.deepcopy(golden_config(name))
    luks = config["boot"]["initrd"].get("luks", {}).get("devices", {})
    pool_device = f"/dev/mapper/{next(iter(luks))}" if luks else layout.members[0].data_device
    pool = layout.settings.pool
    facts = Facts(
        root="/mnt" if stage is not Stage.RUNNING else "/",
        stage=stage,
        layout=layout,
        record="/mnt/etc/nixos/advisor.json",
        configuration="/mnt/etc/nixos/configuration.nix",
        config=config,
        devices={layout.members[0].data_device: True, layout.members[0].esp_device: True},
        pool_devices={pool_device: "/dev/dm-0"},
        devnodes_targets=("/dev/dm-0", "/dev/vda2"),
        labels=(Label(pool_device, pool=pool, state=0, hostid=HOST_ID, paths=(pool_device,)),),
        imported=True,
        health="ONLINE",
        snapshots=frozenset({layout.blank_snapshot}),
        mounts={"/": layout.root_dataset, "/persist": layout.persist_dataset},
        system_hostid=HOST_ID if stage is Stage.RUNNING else None,
        headers=tuple(
            HeaderFact(m.number, str(m.header), str(m.header_backup), True, True, True)
            for m in layout.members
            if m.header_backup
        ),
    )
    files = {
        expected.path: FileFact(expected.path, "/mnt" + expected.path, 0o600, 0)
        for expected in expected_files(facts)
    }
    return replace(facts, **{"files": files, **changes})


def results(facts: Facts) -> dict[str, CheckResult]:
    return {result.id: result for result in run_checks(facts)}


def failures(facts: Facts) -> dict[str, str]:
    return {r.id: r.detail for r in run_checks(facts) if r.status is Status.FAIL}


@pytest.mark.parametrize("name", NAMES)
def test_a_sound_install_passes_every_check(name: str) -> None:
    found = results(healthy(name))
    assert not [r for r in found.values() if r.status is Status.FAIL]
    # Right after the install the pool is still imported: a warning with its fix.
    assert found["pool"].status is Status.WARN and "zpool export" in found["pool"].fix
    for check_id in ("configuration", "devices", "devnodes", "hostid", "root-dataset",
                     "blank", "rollback", "persist-boot"):  # fmt: skip
        assert found[check_id].status is Status.PASS, found[check_id]
        assert found[check_id].looked_at  # every check says what it looked at
    running = results(healthy(name, Stage.RUNNING))
    assert {r.status for r in running.values()} <= {Status.PASS, Status.SKIP, Status.WARN}
    assert running["pool"].status is Status.PASS


def test_every_check_that_fails_says_how_to_fix_it() -> None:
    broken = healthy(
        "luks-systemd-remote-sops",
        Stage.BEFORE_REBOOT,
        devices={"/dev/disk/by-id/gone": False},
        files={},
        snapshots=frozenset(),
    )
    found = [r for r in run_checks(broken) if r.status is Status.FAIL]
    assert {r.id for r in found} >= {"devices", "pool", "blank", "file-initrd-ssh-key"}
    assert all(r.fix and r.looked_at for r in found)


# -- the pool, by stage -------------------------------------------------------------------


def test_an_imported_pool_fails_just_before_the_reboot() -> None:
    pool = results(healthy("luks-systemd", Stage.BEFORE_REBOOT))["pool"]
    assert pool.status is Status.FAIL and "still imported" in pool.detail
    assert pool.fix == "advisor finish, or: umount -R /mnt && zpool export rpool"


def test_an_exported_pool_passes_and_the_mounted_checks_are_skipped() -> None:
    facts = healthy("luks-systemd", Stage.BEFORE_REBOOT, imported=False, health=None)
    facts = replace(facts, snapshots=None, mounts={"/": None, "/persist": None})
    facts = replace(facts, labels=(replace(facts.labels[0], state=1),))
    found = results(facts)
    assert found["pool"].status is Status.PASS
    assert found["hostid"].status is Status.PASS  # read from the labels
    for check_id in ("root-dataset", "blank", "file-machine-id"):
        assert found[check_id].status is Status.SKIP
        assert "not imported here" in found[check_id].detail


def test_a_pool_not_exported_cleanly_fails() -> None:
    facts = healthy("zfs-native-systemd", Stage.BEFORE_REBOOT, imported=False, health=None)
    assert "in use (not exported)" in failures(facts)["pool"]


def test_labels_that_cannot_be_read_skip_the_pool_and_host_id() -> None:
    facts = healthy("luks-systemd", imported=False, health=None, snapshots=None)
    facts = replace(facts, labels=(Label("/dev/mapper/cryptroot", problem="not opened"),))
    found = results(facts)
    assert found["pool"].status is Status.SKIP and found["hostid"].status is Status.SKIP


def test_the_running_system_wants_the_pool_imported_and_healthy() -> None:
    assert (
        "not imported" in failures(healthy("luks-systemd", Stage.RUNNING, imported=False))["pool"]
    )
    degraded = results(healthy("luks-systemd", Stage.RUNNING, health="DEGRADED"))["pool"]
    assert degraded.status is Status.WARN and "zpool status -x" in degraded.fix
    assert "FAULTED" in failures(healthy("luks-systemd", Stage.RUNNING, health="FAULTED"))["pool"]


# -- host id ------------------------------------------------------------------------------


def test_a_pool_last_imported_under_another_host_id_fails() -> None:
    facts = healthy("luks-systemd")
    facts = replace(facts, labels=(replace(facts.labels[0], hostid="0badc0de", hostname="iso"),))
    detail = failures(facts)["hostid"]
    assert "last imported under host id 0badc0de (host iso)" in detail
    assert HOST_ID in detail


def test_a_configuration_whose_host_id_changed_fails() -> None:
    facts = healthy("luks-systemd")
    config = copy.deepcopy(dict(facts.config or {}))
    config["networking"]["hostId"] = "0badc0de"
    detail = failures(replace(facts, config=config))["hostid"]
    assert "networking.hostId is 0badc0de" in detail and HOST_ID in detail


def test_the_running_system_must_have_the_configured_host_id() -> None:
    assert (
        "this system's host id is 12345678"
        in failures(healthy("zfs-native-systemd", Stage.RUNNING, system_hostid="12345678"))[
            "hostid"
        ]
    )
    assert (
        "mismatch"
        in failures(healthy("zfs-native-systemd", Stage.RUNNING, hostid_mismatch_status=True))[
            "hostid"
        ]
    )


# -- devices ------------------------------------------------------------------------------


def test_a_device_path_that_does_not_exist_fails() -> None:
    facts = healthy("luks-systemd", devices={"/dev/disk/by-partuuid/gone": False, "/dev/x": True})
    result = results(facts)["devices"]
    assert (
        result.status is Status.FAIL
        and "/dev/disk/by-partuuid/gone does not exist" in result.detail
    )
    assert result.looked_at == ("/dev/disk/by-partuuid/gone", "/dev/x")


def test_the_pool_devices_must_be_under_devnodes() -> None:
    outside = healthy("zfs-native-systemd", pool_devices={"/dev/disk/by-id/x-part2": "/dev/vdb2"})
    detail = failures(outside)["devnodes"]
    assert "not in /dev/disk/by-id" in detail
    assert "/dev/disk/by-id" in results(outside)["devnodes"].looked_at[0]
    assert (
        "does not exist here"
        in failures(healthy("luks-systemd", devnodes_targets=None))["devnodes"]
    )


# -- rollback, blank, neededForBoot -------------------------------------------------------


def without(facts: Facts, *path: str) -> Facts:
    """``facts`` with the option at ``path`` removed from the configuration."""
    config = copy.deepcopy(dict(facts.config or {}))
    node = config
    for key in path[:-1]:
        node = node[key]
    del node[path[-1]]
    return replace(facts, config=config)


def test_a_rollback_unit_removed_from_the_configuration_fails() -> None:
    facts = without(healthy("luks-systemd"), "boot", "initrd", "systemd", "services", "rollback")
    assert (
        "no initrd unit runs 'zfs rollback -r rpool/local/root@blank'"
        in failures(facts)["rollback"]
    )


@pytest.mark.parametrize(
    ("option", "words"),
    [
        ("after", "not after zfs-import-rpool.service"),
        ("before", "not before sysroot.mount"),
        ("wantedBy", "not wanted by initrd.target"),
    ],
)
def test_a_rollback_unit_ordered_wrongly_fails(option: str, words: str) -> None:
    facts = without(
        healthy("luks-systemd"), "boot", "initrd", "systemd", "services", "rollback", option
    )
    assert words in failures(facts)["rollback"]


def test_a_renamed_rollback_unit_still_counts() -> None:
    facts = healthy("luks-systemd")
    config = copy.deepcopy(dict(facts.config or {}))
    services = config["boot"]["initrd"]["systemd"]["services"]
    services["wipe-root"] = services.pop("rollback")
    assert "wipe-root.service" in results(replace(facts, config=config))["rollback"].detail


def test_the_scripted_rollback_must_come_after_the_import() -> None:
    facts = healthy("luks-scripted")
    assert "lib.mkAfter" in results(facts)["rollback"].detail
    config = copy.deepcopy(dict(facts.config or {}))
    hook = config["boot"]["initrd"]["postResumeCommands"]
    config["boot"]["initrd"]["postResumeCommands"] = hook["content"]  # mkAfter dropped
    assert (
        "not ordered after the pool's import" in failures(replace(facts, config=config))["rollback"]
    )
    gone = without(facts, "boot", "initrd", "postResumeCommands")
    assert "do not run" in failures(gone)["rollback"]


def test_a_missing_blank_snapshot_fails() -> None:
    assert (
        "rpool/local/root@blank does not exist"
        in failures(healthy("luks-systemd", snapshots=frozenset({"rpool/local/root@other"})))[
            "blank"
        ]
    )


def test_persist_not_needed_for_boot_fails() -> None:
    facts = without(healthy("luks-systemd"), "fileSystems", "/persist", "neededForBoot")
    result = results(facts)["persist-boot"]
    assert result.status is Status.FAIL
    assert result.fix == 'fileSystems."/persist".neededForBoot = true;'


# -- files on /persist --------------------------------------------------------------------


def test_the_files_expected_follow_the_configuration() -> None:
    ids = [f.id for f in expected_files(healthy("luks-systemd-remote-sops"))]
    assert ids == ["file-machine-id", "file-ssh-host-key", "file-initrd-ssh-key",
                   "file-sops-age-key"]  # fmt: skip
    assert [f.id for f in expected_files(healthy("luks-systemd"))] == [
        "file-machine-id",
        "file-ssh-host-key",
    ]


def test_a_missing_key_needed_at_first_boot_fails() -> None:
    facts = healthy("luks-systemd-remote-sops")
    files = dict(facts.files)
    del files["/persist/var/lib/sops-nix/key.txt"]
    detail = failures(replace(facts, files=files))["file-sops-age-key"]
    assert "does not exist: the first boot needs it" in detail


def test_files_made_at_first_boot_may_be_missing_before_it_only() -> None:
    for stage, status in ((Stage.INSTALLED, Status.PASS), (Stage.RUNNING, Status.WARN)):
        result = results(healthy("luks-systemd", stage, files={}))["file-ssh-host-key"]
        assert result.status is status, stage


@pytest.mark.parametrize(
    ("mode", "uid", "words"),
    [(0o644, 0, "mode 0644: others can read it"), (0o600, 1000, "owned by uid 1000")],
)
def test_a_key_with_an_unsafe_mode_or_owner_fails(mode: int, uid: int, words: str) -> None:
    facts = healthy("luks-systemd-remote-sops")
    path = "/persist/etc/secrets/initrd/ssh_host_ed25519_key"
    files = {**facts.files, path: FileFact(path, "/mnt" + path, mode, uid)}
    result = results(replace(facts, files=files))["file-initrd-ssh-key"]
    assert result.status is Status.FAIL and words in result.detail
    assert "chmod 0600" in result.fix


def test_a_machine_id_readable_by_all_is_fine() -> None:
    facts = healthy("luks-systemd")
    path = "/persist/etc/machine-id"
    files = {**facts.files, path: FileFact(path, "/mnt" + path, 0o444, 0)}
    assert results(replace(facts, files=files))["file-machine-id"].status is Status.PASS


def test_a_host_key_outside_persist_is_a_warning() -> None:
    facts = healthy("luks-systemd")
    config = copy.deepcopy(dict(facts.config or {}))
    config["services"]["openssh"]["hostKeys"] = [{"path": "/etc/ssh/key", "type": "ed25519"}]
    result = results(replace(facts, config=config))["file-ssh-host-key"]
    assert result.status is Status.WARN and "rolled back at every boot" in result.detail


# -- the unlock token ---------------------------------------------------------------------


def test_the_header_must_hold_the_token_the_crypttab_options_unlock_with() -> None:
    header = read_record(GOLDEN / "luks-systemd-tpm2" / "advisor.json").members[0].data_device
    enrolled = TokenFact(1, "cryptroot", header, ("systemd-tpm2",), ("systemd-recovery",
                                                                      "systemd-tpm2"))  # fmt: skip
    found = results(healthy("luks-systemd-tpm2", tokens=(enrolled,)))["unlock-token"]
    assert found.status is Status.PASS and header in found.looked_at
    missing = results(healthy("luks-systemd-tpm2", tokens=(replace(enrolled, found=()),)))
    result = missing["unlock-token"]
    assert result.status is Status.FAIL and "would ask for a passphrase" in result.detail
    assert result.fix == f"systemd-cryptenroll --tpm2-device=auto {header}"
    unreadable = replace(enrolled, found=None, problem=f"cryptsetup luksDump {header} failed")
    result = results(healthy("luks-systemd-tpm2", tokens=(unreadable,)))["unlock-token"]
    assert result.status is Status.FAIL and "luksDump" in result.detail


def test_the_probe_asks_only_about_containers_that_unlock_with_a_token() -> None:
    from advisor.check.probe import token_facts

    plain = read_record(GOLDEN / "luks-systemd" / "advisor.json")
    assert token_facts(plain, golden_config("luks-systemd")) == ()
    layout = read_record(GOLDEN / "luks-systemd-tpm2" / "advisor.json")
    (fact,) = token_facts(layout, golden_config("luks-systemd-tpm2"))
    # The partition does not exist here: the check says what failed rather than guess.
    assert fact.wanted == ("systemd-tpm2",) and fact.found is None
    assert fact.problem.startswith(f"cryptsetup luksDump {layout.members[0].data_device}")


# -- the header backup --------------------------------------------------------------------


def test_a_missing_header_backup_fails() -> None:
    facts = healthy("luks-detached-systemd")
    facts = replace(facts, headers=(replace(facts.headers[0], backup_exists=False),))
    result = results(facts)["header-backup"]
    assert result.status is Status.FAIL and "does not exist" in result.detail
    assert "cryptsetup luksHeaderBackup" in result.fix


def test_a_detached_header_without_a_backup_is_a_warning() -> None:
    facts = healthy("luks-detached-systemd")
    member = replace(facts.layout.members[0], header_backup=None)
    facts = replace(facts, layout=replace(facts.layout, members=(member,)), headers=())
    assert results(facts)["header-backup"].status is Status.WARN


DUMP = """LUKS header information
Version:       \t2
UUID:          \t{uuid}

Keyslots:
  0: luks2
\tKey:        512 bits
{more}Tokens:
Digests:
  0: pbkdf2
"""


@pytest.mark.parametrize(
    ("header", "words"),
    [
        (DUMP.format(uuid="a", more="  1: luks2\n"), "keyslots changed since the backup"),
        (DUMP.format(uuid="b", more=""), "another LUKS header"),
        (DUMP.format(uuid="a", more="") + "Label: x\n", "metadata changed"),
    ],
)
def test_what_a_header_that_changed_since_its_backup_means(header: str, words: str) -> None:
    fact = HeaderFact(1, "/dev/h", "/b", True, True, False, header, DUMP.format(uuid="a", more=""))
    assert words in header_difference(fact)
    assert "is not a LUKS header" in header_difference(replace(fact, backup_dump=""))


# -- TRIM, the configuration --------------------------------------------------------------


def test_trim_against_the_assessment() -> None:
    assert results(healthy("luks-systemd"))["trim"].status is Status.SKIP
    agree = healthy("luks-systemd", assessment_trim=False, assessment="a.json")
    assert results(agree)["trim"].status is Status.PASS
    detail = failures(healthy("luks-systemd", assessment_trim=True, assessment="a.json"))["trim"]
    assert "ssd_trim = yes" in detail and "services.zfs.trim.enable is false" in detail
    assert "allowDiscards is false" in detail


def test_a_configuration_that_cannot_be_evaluated() -> None:
    facts = healthy("luks-systemd", config=None, config_problem="it reads config.x")
    found = results(facts)
    assert found["configuration"].status is Status.WARN
    for check_id in ("rollback", "persist-boot", "devnodes"):
        assert found[check_id].status is Status.SKIP
    # The host id still comes from the record.
    assert found["hostid"].status is Status.PASS
    broken = replace(facts, config_unparsable=True, config_problem="x is not valid Nix")
    assert results(broken)["configuration"].status is Status.FAIL


def test_nixeval_says_why_it_could_not_evaluate(tmp_path: Path) -> None:
    assert "does not exist" in nixeval.evaluate_configuration(tmp_path / "none.nix").problem
    bad = tmp_path / "bad.nix"
    bad.write_text("{ config, ... }: { x = config.boot.kernel; }\n")
    problem = nixeval.evaluate_configuration(bad).problem
    assert "could not evaluate" in problem and nixeval.parse_problem(bad) is None
    bad.write_text("{ x = ; }\n")
    assert "is not valid Nix" in str(nixeval.parse_problem(bad))


# -- zdb's labels -------------------------------------------------------------------------

ZDB = """------------------------------------
LABEL 0
------------------------------------
    version: 5000
    name: 'tpool'
    state: 1
    txg: 15
    hostid: 2401931716
    hostname: 'virtme-ng'
    vdev_tree:
        type: 'disk'
        path: '/dev/disk/by-id/virtio-disk01-part1'
    labels = 0 1 2 3
"""


def test_a_zdb_label_is_read() -> None:
    label = parse_label("/dev/vda1", 0, ZDB)
    assert (label.pool, label.state, label.hostid, label.hostname) == (
        "tpool", 1, HOST_ID, "virtme-ng",
    )  # fmt: skip
    assert label.paths == ("/dev/disk/by-id/virtio-disk01-part1",)
    empty = parse_label("/dev/vda1", 2, "", "failed to unpack label 0")
    assert empty.problem.startswith("zdb -l found no ZFS label on /dev/vda1")


def test_options_set_through_mk_force_are_read() -> None:
    facts = healthy("luks-systemd")
    config = copy.deepcopy(dict(facts.config or {}))
    entry = config["fileSystems"]["/persist"]
    config["fileSystems"]["/persist"] = {"_override": 50, "content": entry}
    assert results(replace(facts, config=config))["persist-boot"].status is Status.PASS
