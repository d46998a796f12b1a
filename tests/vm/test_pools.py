"""Pools on several disks, on a real kernel: mirrors and raidz, one passphrase for all,
a boot without one of the disks, every ESP, swap, and datasets of the user's own.

As in ``test_install.py``, nothing is replaced between ``advisor install`` and the kernel,
and the boots after the install are played with only what the evaluated configuration
names. Two things of the installed system's boot run here for real:

- the unlock: each container is opened by systemd's own ``systemd-cryptsetup attach``
  with the options NixOS writes to the initrd's crypttab, its passphrase asked through
  systemd's password-agent protocol, with root's user keyring shared as the generated
  units share it (``KeyringMode=shared``). The test's agent answers the first question
  only, so a second question fails the unlock and the test;
- the boot loader: ``bootctl install`` puts systemd-boot on the first ESP, as
  ``nixos-install`` does, and the configuration's own ``extraInstallCommands`` copies it
  to the other ESPs (with the mount points moved under /tmp: the guest's / is read-only).

Each test shares its boots between its assertions: an install, then the boots the test
needs, each reading what the one before left on the disk images.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

import nixeval
import pytest
from guest import (
    HOST_ID,
    LIVE_HOSTID,
    PASSPHRASE,
    PASSWORD,
    TIMEOUT,
    TRACE,
    crypttab_options,
    logged_commands,
    planned_commands,
    rollback_command,
    write_secrets,
)
from harness import Disk, MakeDisk, run_in_vm

pytestmark = pytest.mark.vm

AGENT = Path(__file__).resolve().parent / "ask_password_agent.py"
#: A layout file with a kept dataset (backed up, with properties of its own) and one that
#: every boot rolls back.
LAYOUT = """\
[datasets."safe/db"]
mountpoint = "/srv/db"
properties = { recordsize = "16K", "com.sun:auto-snapshot" = "true", quota = "1G" }

[datasets."local/scratch"]
mountpoint = "/scratch"
rollback = true
properties = { compression = "lz4" }
"""


def secrets_args(rw: Path) -> list[str]:
    return [
        "--passphrase-file", f"{rw}/passphrase", "--password-file", f"{rw}/password",
        "--allow-bios",
    ]  # fmt: skip


def spec_args(backend: str, disk_ids: list[str], *extra: str) -> list[str]:
    """The options that decide the plan, for a pool over ``disk_ids``."""
    args = [
        "--backend", backend, "--root", "/mnt", "--insecure-fast-kdf",
        "--hostname", "vmtest", "--user", "alice", "--host-id", HOST_ID, *extra,
    ]  # fmt: skip
    for disk_id in disk_ids:
        args += ["--disk", disk_id]
    return args


def yes_wipe(disk_ids: list[str]) -> list[str]:
    return [word for disk_id in disk_ids for word in ("--yes-wipe", disk_id)]


def install_script(rw: Path, plan: list[str], disk_ids: list[str], before: str = "") -> str:
    """Plan (saved), install exactly that plan under strace, record the pool and the
    mounts, copy the configuration out, and leave canaries."""
    run = ["--plan", "plan.json", *yes_wipe(disk_ids), *secrets_args(rw)]
    run += ["--state-dir", f"{rw}/state"]
    return f"""{before}{LIVE_HOSTID}
$PYTHON -m advisor plan {shlex.join(plan)} --save plan.json > plan.sh
if {TRACE} $PYTHON -m advisor install {shlex.join(run)} > install.out 2> install.err; then
  result install ok
else result install failed; cat install.out install.err; exit 1; fi
zpool status -P rpool > zpool-status.txt
result health "$(zpool list -H -o health rpool)"
findmnt -rn -o TARGET,FSTYPE,OPTIONS | awk '$1 ~ "^/mnt"' > mounts.txt
cp -r /mnt/etc/nixos etc-nixos
echo gone > /mnt/etc/rollback-canary
echo kept > /mnt/persist/kept-canary
"""


def teardown(names: list[str]) -> str:
    """Unmount, export and close: what a power-off leaves of the running install."""
    close = "".join(f"cryptsetup close {name}\n" for name in names)
    return f"sync\numount -R /mnt\nzpool export rpool\n{close}"


def unlock_script(cfg: dict[str, Any], present: set[str] | None = None) -> str:
    """Open every container the configuration names with systemd-cryptsetup, as the
    initrd's units do, with one answer to give; record each attach's status and the
    questions asked. ``present``: the containers whose disks are attached (a missing
    one is left out, as ``nofail`` leaves it)."""
    initrd = cfg["boot"]["initrd"]
    devices: dict[str, dict[str, Any]] = initrd["luks"]["devices"]
    secrets = initrd.get("secrets", {})
    lines = [
        # The generated units' KeyringMode=shared: root's user keyring in the session's.
        "keyctl link @u @s > /dev/null",
        "rm -f asks.log agent.stop",
        f"$PYTHON {AGENT} passphrase asks.log agent.stop &",
    ]
    for name, device in sorted(devices.items()):
        if present is not None and name not in present:
            continue
        header = device.get("header")
        if header is not None:
            header = secrets.get(header, header)  # a header file reaches the initrd so
        options = crypttab_options(device, header)
        lines.append(
            f"/lib/systemd/systemd-cryptsetup attach {name} {shlex.quote(device['device'])} "
            f"- {shlex.quote(options)} < /dev/null; result attach_{name} $?"
        )
    lines += ["touch agent.stop; wait", 'result asks "$(wc -l < asks.log)"']
    return "\n".join(lines) + "\n"


def import_and_roll_back(cfg: dict[str, Any]) -> str:
    """Import as the initrd does and run the configuration's own rollback."""
    zfs = cfg["boot"]["zfs"]
    lines = [f"zpool import -d {shlex.quote(zfs['devNodes'])} -N rpool"]
    for root in zfs.get("requestEncryptionCredentials", []):
        # ZFS asks once for the pool's key, whatever the number of disks.
        lines.append(f"zfs load-key {shlex.quote(root)} < passphrase")
    lines += [
        'result health "$(zpool list -H -o health rpool)"',
        "zpool status -P rpool > zpool-status-$BOOT.txt",
        rollback_command(cfg).strip(),
    ]
    return "\n".join(lines) + "\n"


def mount_script(cfg: dict[str, Any], mountpoints: list[str]) -> str:
    """Mount ``mountpoints`` as the configuration's fileSystems say, under /mnt."""
    lines = []
    for mountpoint in mountpoints:
        entry = cfg["fileSystems"][mountpoint]
        target = "/mnt" + (mountpoint if mountpoint != "/" else "")
        options = f"-o {','.join(entry['options'])} " if entry.get("options") else ""
        lines.append(
            f"mkdir -p {target}; mount -t {entry['fsType']} {options}{entry['device']} {target}"
        )
    return "\n".join(lines) + "\n"


def check_canaries(layout: bool) -> str:
    """Results saying whether the root came back blank and /persist kept its file (and
    the layout file's datasets: the kept one its file, the rolled-back one not)."""
    lines = [
        "if [ -e /mnt/etc/rollback-canary ]; then result rollback failed; "
        "else result rollback ok; fi",
        "result persist $(cat /mnt/persist/kept-canary)",
    ]
    if layout:
        lines += [
            "result db $(cat /mnt/srv/db/kept-canary)",
            "if [ -e /mnt/scratch/canary ]; then result scratch kept; else result scratch gone; fi",
        ]
    return "\n".join(lines) + "\n"


def evaluated(rw: Path) -> dict[str, Any]:
    config = rw / "etc-nixos" / "configuration.nix"
    nixeval.parse(config)
    cfg: dict[str, Any] = nixeval.eval_config(config)
    assert cfg["networking"]["hostId"] == HOST_ID
    return cfg


def pool_states(status: str) -> list[tuple[str, str]]:
    """(name, state) of the pool, its vdevs and devices, from ``zpool status``."""
    lines = status.split("config:", 1)[1].split("errors:", 1)[0].splitlines()
    rows = [line.split() for line in lines if line.strip()]
    return [(row[0], row[1]) for row in rows if row[0] != "NAME"]


def check_install(rw: Path, result: Any, topology: str, members: int) -> str:
    """What every several-disk install must show; returns ``zpool status``."""
    assert result.returncode == 0, result.describe()
    assert result.results["install"] == "ok"
    assert result.results["health"] == "ONLINE"
    status = (rw / "zpool-status.txt").read_text()
    states = pool_states(status)
    assert [name for name, _ in states[:2]] == ["rpool", f"{topology}-0"], status
    assert len(states) == members + 2 and {state for _, state in states} == {"ONLINE"}, status
    # The reviewed plan is the one that ran, every disk's steps included.
    planned = planned_commands((rw / "plan.sh").read_text())
    assert planned == logged_commands((rw / "state" / "install.log").read_text())
    assert {step for step, _ in planned} >= {f"disk{n}-partition" for n in range(1, members + 1)}
    mounts = (rw / "mounts.txt").read_text()
    for n in range(1, members + 1):
        esp = "/mnt/boot" if n == 1 else f"/mnt/boot-{n}"
        assert f"{esp} vfat" in mounts, mounts
    # Secrets: on stdin only, whatever the number of disks.
    execs = (rw / "execve.log").read_text()
    assert "zpool" in execs and PASSPHRASE not in execs and PASSWORD not in execs
    return status


def test_luks_mirror_with_swap_and_datasets_boots_on_one_disk_and_resilvers(
    vm_kernel: Path, vm_rwdir: Path, make_disk: MakeDisk
) -> None:
    rw = vm_rwdir
    write_secrets(rw)
    (rw / "layout.toml").write_text(LAYOUT)
    disks = [make_disk("8G", serial="disk01"), make_disk("8G", serial="disk02")]
    ids = ["virtio-disk01", "virtio-disk02"]
    plan = spec_args("luks", ids, "--swap", "256M", "--layout", f"{rw}/layout.toml")
    script = install_script(rw, plan, ids)
    script += """
for n in 1 2; do cryptsetup luksDump /dev/disk/by-id/virtio-disk0$n-part2 > luks-dump-$n.txt; done
zfs get -H -o name,property,value recordsize,compression,quota,com.sun:auto-snapshot \\
    rpool/safe/db rpool/local/scratch > layout-props.txt
zfs list -H -t snapshot -o name > snapshots.txt
echo kept > /mnt/srv/db/kept-canary
echo gone > /mnt/scratch/canary
blkid -o value -s TYPE /dev/disk/by-id/virtio-disk02-part3 > swap-type.txt || true
"""
    script += teardown(["cryptroot1", "cryptroot2"])
    first = run_in_vm(script, disks, rwdir=rw, timeout=TIMEOUT)
    status = check_install(rw, first, "mirror", 2)
    assert "/dev/mapper/cryptroot1" in status and "/dev/mapper/cryptroot2" in status
    for n in (1, 2):
        dump = (rw / f"luks-dump-{n}.txt").read_text()
        assert "Version:       \t2" in dump and "sector: 4096 [bytes]" in dump
    props = (rw / "layout-props.txt").read_text()
    for line in ("rpool/safe/db\trecordsize\t16K", "rpool/safe/db\tquota\t1G",
                 "rpool/safe/db\tcom.sun:auto-snapshot\ttrue",
                 "rpool/local/scratch\tcompression\tlz4"):  # fmt: skip
        assert line in props, props
    snapshots = (rw / "snapshots.txt").read_text().split()
    assert "rpool/local/root@blank" in snapshots and "rpool/local/scratch@blank" in snapshots
    assert "rpool/safe/db@blank" not in snapshots

    cfg = evaluated(rw)
    assert set(cfg["boot"]["initrd"]["luks"]["devices"]) == {"cryptroot1", "cryptroot2"}
    assert cfg["fileSystems"]["/srv/db"] == {"device": "rpool/safe/db", "fsType": "zfs"}
    assert "rpool/local/scratch@blank" in rollback_command(cfg)
    swaps = cfg["swapDevices"]
    assert [swap["randomEncryption"] for swap in swaps] == [{"enable": True}] * 2
    esps = ["/boot", "/boot-2"]

    # The next boot, every disk there: one passphrase typed, the root blank, /persist and
    # the kept dataset kept, systemd-boot on every ESP, swap the way NixOS opens it.
    layout_mounts = ["/", "/persist", "/srv/db", "/scratch"]
    boot = "BOOT=next\n" + unlock_script(cfg) + import_and_roll_back(cfg)
    boot += mount_script(cfg, layout_mounts) + check_canaries(layout=True)
    boot += esp_sync_script(cfg, esps) + swap_script(swaps)
    boot += teardown(["cryptroot1", "cryptroot2"])
    second = run_in_vm(boot, disks, rwdir=rw, timeout=TIMEOUT)
    assert second.returncode == 0, second.describe()
    results = second.results
    assert results["attach_cryptroot1"] == results["attach_cryptroot2"] == "0"
    assert results["asks"] == "1"  # typed once: the second container used the cache
    assert results["health"] == "ONLINE"
    assert (results["rollback"], results["persist"]) == ("ok", "kept")
    assert (results["db"], results["scratch"]) == ("kept", "gone")
    check_esps(rw, results, esps)
    check_swaps(rw, results, len(swaps))

    # A dead disk: the same boot with disk02's image detached.
    degraded = "BOOT=degraded\n" + unlock_script(cfg, present={"cryptroot1"})
    degraded += import_and_roll_back(cfg) + mount_script(cfg, ["/", "/persist"])
    degraded += check_canaries(layout=False)
    degraded += "echo while-degraded > /mnt/persist/degraded-canary\n"
    degraded += teardown(["cryptroot1"])
    third = run_in_vm(degraded, disks[:1], rwdir=rw, timeout=TIMEOUT)
    assert third.returncode == 0, third.describe()
    assert third.results["asks"] == "1"
    assert third.results["health"] == "DEGRADED"
    assert (third.results["rollback"], third.results["persist"]) == ("ok", "kept")
    assert "UNAVAIL" in (rw / "zpool-status-degraded.txt").read_text()

    # The disk back: both open with one passphrase, ZFS resilvers what it missed.
    back = "BOOT=back\n" + unlock_script(cfg) + import_and_roll_back(cfg)
    back += """zpool online rpool /dev/mapper/cryptroot2 || true
zpool wait -t resilver rpool
result healed "$(zpool list -H -o health rpool)"
zpool status -P rpool > zpool-status-healed.txt
"""
    back += mount_script(cfg, ["/", "/persist"])
    back += "result written $(cat /mnt/persist/degraded-canary)\n"
    back += teardown(["cryptroot1", "cryptroot2"])
    fourth = run_in_vm(back, disks, rwdir=rw, timeout=TIMEOUT)
    assert fourth.returncode == 0, fourth.describe()
    assert fourth.results["asks"] == "1"
    assert fourth.results["healed"] == "ONLINE"
    assert fourth.results["written"] == "while-degraded"
    healed = (rw / "zpool-status-healed.txt").read_text()
    assert [state for _, state in pool_states(healed)] == ["ONLINE"] * 4, healed
    assert "errors: No known data errors" in healed, healed


def esp_sync_script(cfg: dict[str, Any], esps: list[str]) -> str:
    """Install systemd-boot on the first ESP as nixos-install does (bootctl), then run the
    configuration's own ESP sync with the mount points moved under /tmp/sys; list what
    each ESP then holds."""
    lines = []
    script = cfg["boot"]["loader"]["systemd-boot"]["extraInstallCommands"]
    for esp in sorted(esps, key=len, reverse=True):  # /boot-2 before /boot
        script = script.replace(f" {esp}", f" /tmp/sys{esp}")
    for esp in esps:
        entry = cfg["fileSystems"][esp]
        lines.append(
            f"mkdir -p /tmp/sys{esp}; mount -t vfat -o {','.join(entry['options'])} "
            f"{entry['device']} /tmp/sys{esp}"
        )
    lines += [
        "bootctl install --esp-path=/tmp/sys/boot --no-variables > bootctl.out 2>&1",
        f"bash -e <<'SYNC'\n{script}\nSYNC",
    ]
    for n, esp in enumerate(esps, start=1):
        lines.append(
            f"(cd /tmp/sys{esp} && find . -type f ! -name random-seed | sort | "
            f"xargs sha256sum) > esp-{n}.txt"
        )
    lines.append("umount " + " ".join(f"/tmp/sys{esp}" for esp in esps))
    return "\n".join(lines) + "\n"


def check_esps(rw: Path, results: dict[str, str], esps: list[str]) -> None:
    """Every ESP holds what systemd-boot put on the first: the same files, byte for
    byte, the loader at the firmware's fallback path among them."""
    listings = [(rw / f"esp-{n}.txt").read_text() for n in range(1, len(esps) + 1)]
    assert "./EFI/BOOT/BOOTX64.EFI" in listings[0], listings[0]
    assert "./EFI/systemd/systemd-bootx64.efi" in listings[0]
    assert "./loader/loader.conf" in listings[0]
    assert all(listing == listings[0] for listing in listings), listings


def swap_script(swaps: list[dict[str, Any]]) -> str:
    """Open each swap device the way NixOS's randomEncryption does (swap.nix: ``cryptsetup
    plainOpen -c <cipher> -d <source>`` with its defaults, aes-xts-plain64 and
    /dev/urandom, then mkswap), and turn it on."""
    lines = []
    for n, swap in enumerate(swaps, start=1):
        random = swap["randomEncryption"]
        cipher = random.get("cipher", "aes-xts-plain64")
        source = random.get("source", "/dev/urandom")
        lines += [
            f"cryptsetup plainOpen -c {cipher} -d {source} {swap['device']} swaptest{n}",
            f"mkswap /dev/mapper/swaptest{n} > /dev/null",
            f"swapon /dev/mapper/swaptest{n}; result swapon_{n} $?",
            f"cryptsetup status swaptest{n} > swap-status-{n}.txt",
            f"swapoff /dev/mapper/swaptest{n}; cryptsetup close swaptest{n}",
        ]
    return "\n".join(lines) + "\n"


def check_swaps(rw: Path, results: dict[str, str], count: int) -> None:
    """Each swap device was a plain dm-crypt mapping (a random key, no header), and
    swapon took it."""
    for n in range(1, count + 1):
        assert results[f"swapon_{n}"] == "0"
        status = (rw / f"swap-status-{n}.txt").read_text()
        assert "type:    PLAIN" in status and "cipher:  aes-xts-plain64" in status, status


def test_zfs_native_raidz1_over_three_disks(
    vm_kernel: Path, vm_rwdir: Path, make_disk: MakeDisk
) -> None:
    rw = vm_rwdir
    write_secrets(rw)
    disks = [make_disk("8G", serial=f"disk0{n}") for n in (1, 2, 3)]
    ids = [f"virtio-disk0{n}" for n in (1, 2, 3)]
    script = install_script(rw, spec_args("zfs-native", ids, "--topology", "raidz1"), ids)
    script += 'result keystatus "$(zfs get -H -o value keystatus rpool)"\n' + teardown([])
    first = run_in_vm(script, disks, rwdir=rw, timeout=TIMEOUT)
    status = check_install(rw, first, "raidz1", 3)
    for n in (1, 2, 3):  # the pool's members are the partitions, by id
        assert f"/dev/disk/by-id/virtio-disk0{n}-part2" in status
    assert first.results["keystatus"] == "available"
    cfg = evaluated(rw)
    assert cfg["boot"]["zfs"]["devNodes"] == "/dev/disk/by-id"
    boot = "BOOT=next\n" + import_and_roll_back(cfg) + mount_script(cfg, ["/", "/persist"])
    boot += check_canaries(layout=False) + teardown([])
    second = run_in_vm(boot, disks, rwdir=rw, timeout=TIMEOUT)
    assert second.returncode == 0, second.describe()
    assert second.results["health"] == "ONLINE"
    assert (second.results["rollback"], second.results["persist"]) == ("ok", "kept")


def test_luks_detached_mirror_one_header_per_disk(
    vm_kernel: Path, vm_rwdir: Path, make_disk: MakeDisk
) -> None:
    rw = vm_rwdir
    write_secrets(rw)
    disks = [
        make_disk("8G", serial="disk01"),
        make_disk("8G", serial="disk02"),
        make_disk("64M", serial="keys"),
        make_disk("64M", serial="backup"),
    ]
    ids = ["virtio-disk01", "virtio-disk02"]
    headers = ["/tmp/keys/header-1.img", "/tmp/keys/header-2.img"]
    backups = ["/tmp/backup/header-1.backup", "/tmp/backup/header-2.backup"]
    extra = [word for pair in zip(headers, backups, strict=True)
             for word in ("--header", pair[0], "--header-backup", pair[1])]  # fmt: skip
    media = """
for medium in keys backup; do
  mkfs.ext4 -q /dev/disk/by-id/virtio-$medium; mkdir -p /tmp/$medium
  mount /dev/disk/by-id/virtio-$medium /tmp/$medium
done
"""
    script = install_script(rw, spec_args("luks-detached", ids, *extra), ids, before=media)
    script += teardown(["cryptroot1", "cryptroot2"])
    for n in (1, 2):
        data = f"/dev/disk/by-id/virtio-disk0{n}-part2"
        script += f"""
if cryptsetup isLuks {data}; then result isluks_{n} yes; else result isluks_{n} no; fi
result signatures_{n} "$(wipefs --no-act --noheadings {data} | wc -l)"
printf %s {shlex.quote(PASSPHRASE)} | cryptsetup open --test-passphrase --key-file=- \\
    --header {backups[n - 1]} {data}; result backup_opens_{n} $?
cp {headers[n - 1]} header-{n}.img
"""
    first = run_in_vm(script, disks, rwdir=rw, timeout=TIMEOUT)
    status = check_install(rw, first, "mirror", 2)
    assert "/dev/mapper/cryptroot2" in status
    for n in (1, 2):
        # No header on the disk, nothing to see; the backup alone opens it.
        assert first.results[f"isluks_{n}"] == "no"
        assert first.results[f"signatures_{n}"] == "0"
        assert first.results[f"backup_opens_{n}"] == "0"
    cfg = evaluated(rw)
    secrets = cfg["boot"]["initrd"]["secrets"]
    assert set(secrets.values()) == set(headers)
    # The next boot with the headers' medium (files of the initrd): typed once.
    boot = "BOOT=next\nmkdir -p /tmp/keys; mount /dev/disk/by-id/virtio-keys /tmp/keys\n"
    boot += unlock_script(cfg) + import_and_roll_back(cfg) + mount_script(cfg, ["/", "/persist"])
    boot += check_canaries(layout=False) + teardown(["cryptroot1", "cryptroot2"])
    second = run_in_vm(boot, disks[:3], rwdir=rw, timeout=TIMEOUT)
    assert second.returncode == 0, second.describe()
    assert second.results["attach_cryptroot1"] == second.results["attach_cryptroot2"] == "0"
    assert second.results["asks"] == "1"
    assert second.results["health"] == "ONLINE"
    assert (second.results["rollback"], second.results["persist"]) == ("ok", "kept")


#: A cryptsetup that runs the real one, then takes its time: a SIGKILL in that time
#: leaves the step's effect in place but not recorded, as a power cut would.
SLOW_CRYPTSETUP = """#!/bin/sh
/usr/sbin/cryptsetup "$@"; status=$?
sleep 4
exit $status
"""


def summary_script(names: list[str]) -> str:
    """The end state, without random ids or times (test_install's, for several disks)."""
    status = "".join(
        f"cryptsetup status {name} | grep -E 'type|cipher|sector size'\n" for name in names
    )
    return f"""
{{
  zfs list -H -t all -o name,mountpoint,canmount,compression | sort
  zpool get -H -o property,value ashift,autotrim rpool
  zpool status rpool | awk '$1 ~ /^(raidz|mirror|cryptroot)/ {{print $1, $2}}'
  findmnt -rn -o TARGET,FSTYPE | awk '$1 ~ "^/mnt"' | sort
  ls /mnt/etc/nixos /mnt/persist/etc/nixos
  {status}
}}"""


def test_a_three_disk_install_stopped_and_killed_resumes_to_the_same_end(
    vm_kernel: Path, vm_rwdir: Path, make_disk: MakeDisk
) -> None:
    """A raidz1 over three disks, stopped after several steps, restarted twice (pool
    exported, containers closed, the live host id back) and killed with SIGKILL in the
    middle of a step, resumes to the end state of an install that ran straight through."""
    rw = vm_rwdir
    write_secrets(rw)
    disks = [make_disk("8G", serial=f"disk0{n}") for n in range(1, 7)]
    names = ["cryptroot1", "cryptroot2", "cryptroot3"]
    whole_ids = ["virtio-disk01", "virtio-disk02", "virtio-disk03"]
    part_ids = ["virtio-disk04", "virtio-disk05", "virtio-disk06"]
    whole = spec_args("luks", whole_ids, "--topology", "raidz1")
    whole += [*yes_wipe(whole_ids), *secrets_args(rw), "--state-dir", f"{rw}/state"]
    parts = spec_args("luks", part_ids, "--topology", "raidz1")
    parts += [*yes_wipe(part_ids), *secrets_args(rw), "--state-dir", f"{rw}/state2"]
    resume = ["install", "--resume", "--state-dir", f"{rw}/state2", *secrets_args(rw)]
    restart = "umount -R /mnt 2>/dev/null || true\nzpool export rpool 2>/dev/null || true\n"
    restart += "".join(f"cryptsetup close {name} 2>/dev/null || true\n" for name in names)
    restart += "ln -sfn /run/ro-store/hostid /etc/hostid\n"
    (rw / "slow").mkdir()
    (rw / "slow" / "cryptsetup").write_text(SLOW_CRYPTSETUP)
    (rw / "slow" / "cryptsetup").chmod(0o755)
    journal = f"{rw}/state2/journal.jsonl"
    script = f"""{LIVE_HOSTID}
$PYTHON -m advisor install {shlex.join(whole)} > whole.out
{summary_script(names)} > whole.txt
{restart}
$PYTHON -m advisor install {shlex.join(parts)} --stop-after disk2-partition > stop-0.out
$PYTHON -m advisor {shlex.join(resume)} --stop-after disk1-luks-open > stop-1.out 2>&1
{restart}
# Killed while disk2's container is being formatted: its luksFormat has run, and the
# journal says the step started but not that it finished.
PATH=$RWDIR/slow:$PATH setsid $PYTHON -m advisor {shlex.join(resume)} > killed.out 2>&1 &
killed=$!
until grep -q '"step": "disk2-luks-format"' {journal} 2>/dev/null; do sleep 0.1; done
sleep 2
kill -KILL -- -$killed; wait $killed || true
tail -n 1 {journal} > killed-last.json
$PYTHON -m advisor {shlex.join(resume)} --stop-after create-pool > stop-2.out 2>&1
$PYTHON -m advisor {shlex.join(resume)} --stop-after disk3-mount-esp > stop-3.out 2>&1
{restart}
$PYTHON -m advisor {shlex.join(resume)} > resumed.out 2>&1
{summary_script(names)} > resumed.txt
result hostid "$(hostid)"
"""
    result = run_in_vm(script, disks, rwdir=rw, timeout=TIMEOUT * 2)
    assert result.returncode == 0, result.describe()
    assert "Stopped after step disk2-partition" in (rw / "stop-0.out").read_text()
    for number, stop in ((1, "disk1-luks-open"), (2, "create-pool"), (3, "disk3-mount-esp")):
        assert f"Stopped after step {stop}" in (rw / f"stop-{number}.out").read_text()
    last = json.loads((rw / "killed-last.json").read_text())
    assert (last["event"], last["step"]) == ("started", "disk2-luks-format")
    assert "Installed luks" in (rw / "resumed.out").read_text()
    assert result.results["hostid"] == HOST_ID
    whole_state = (rw / "whole.txt").read_text()
    assert "raidz1-0 ONLINE" in whole_state and "cryptroot3 ONLINE" in whole_state
    assert (rw / "resumed.txt").read_text() == whole_state
    events = [
        json.loads(line) for line in (rw / "state2" / "journal.jsonl").read_text().splitlines()
    ]
    # The killed step was found done by its probe, not run again over the new container.
    assert any(e["event"] == "probed" and e.get("step") == "disk2-luks-format" for e in events)
    restored = {e["step"] for e in events if e["event"] == "restored"}
    assert {"disk1-luks-open", "disk2-luks-open", "create-pool", "mount-root"} <= restored


def test_refusals_on_real_disks(vm_kernel: Path, vm_rwdir: Path, make_disk: MakeDisk) -> None:
    """The same disk under two names, one member mounted, a wrong --yes-wipe for the second
    disk, too few, mixed sizes: each refused with exit status 2, and no disk touched; then
    the disks left blank make a zfs-native mirror."""
    rw = vm_rwdir
    write_secrets(rw)
    disks: list[Disk] = [
        make_disk("8G", serial="disk01"),
        make_disk("8G", serial="disk02"),
        make_disk("8G", serial="disk03"),
        make_disk("12G", serial="disk04"),
    ]

    def install(name: str, ids: list[str], confirm: list[str], *extra: str) -> str:
        args = [*spec_args("luks", ids), *extra, *yes_wipe(confirm), *secrets_args(rw)]
        args += ["--state-dir", f"{rw}/state-{name}"]
        return (
            f"$PYTHON -m advisor install {shlex.join(args)} > {name}.out 2> {name}.err; "
            f"result {name} $?"
        )

    script = f"""
mkfs.ext4 -q /dev/disk/by-id/virtio-disk02
mkdir -p /tmp/m && mount /dev/disk/by-id/virtio-disk02 /tmp/m
set +e
{install("twice", ["virtio-disk01", "vda"], ["virtio-disk01"])}
{install("mounted", ["virtio-disk01", "virtio-disk02"], ["virtio-disk01", "virtio-disk02"])}
{install("wrong", ["virtio-disk01", "virtio-disk03"], ["virtio-disk01", "virtio-disk02"])}
{install("missing", ["virtio-disk01", "virtio-disk03"], ["virtio-disk01"])}
{install("few", ["virtio-disk01", "virtio-disk03"], [], "--topology", "raidz1")}
{install("mixed", ["virtio-disk01", "virtio-disk04"], ["virtio-disk01", "virtio-disk04"])}
set -e
for n in 1 3 4; do
  result blank_$n "$(blkid -p /dev/disk/by-id/virtio-disk0$n > /dev/null; echo $?)"
done
$PYTHON -m advisor disks --json > disks.json
# The two disks left blank make a zfs-native mirror (the raidz test boots one).
{
        install(
            "mirror",
            ["virtio-disk01", "virtio-disk03"],
            ["virtio-disk01", "virtio-disk03"],
            "--backend",
            "zfs-native",
        )
    }
zpool status -P rpool > zpool-status.txt
result health "$(zpool list -H -o health rpool)"
"""
    result = run_in_vm(script, disks, rwdir=rw, timeout=TIMEOUT)
    assert result.returncode == 0, result.describe()
    expected = {
        "twice": "are the same disk",
        "mounted": "mounted at /tmp/m",
        "wrong": "--yes-wipe 'virtio-disk02' does not name a target disk",
        "missing": "--yes-wipe names 1 of the 2 disks: add --yes-wipe virtio-disk03",
        "few": "--topology raidz1 needs at least 3 disks",
        "mixed": "differ in size by more than 3%",
    }
    for name, message in expected.items():
        assert result.results[name] == "2", (name, (rw / f"{name}.err").read_text())
        assert message in (rw / f"{name}.err").read_text(), name
    assert "4.0 GiB in all stays unused" in (rw / "mixed.err").read_text()
    for n in (1, 3, 4):
        assert result.results[f"blank_{n}"] == "2"  # nothing was written
    listing = json.loads((rw / "disks.json").read_text())
    by_id = {d["disk_id"]: d for d in listing["disks"]}
    assert by_id["virtio-disk01"]["same_size_as"] == ["virtio-disk03"]
    assert by_id["virtio-disk04"]["same_size_as"] == []
    assert result.results["mirror"] == "0", (rw / "mirror.err").read_text()
    states = pool_states((rw / "zpool-status.txt").read_text())
    assert states == [
        ("rpool", "ONLINE"),
        ("mirror-0", "ONLINE"),
        ("/dev/disk/by-id/virtio-disk01-part2", "ONLINE"),
        ("/dev/disk/by-id/virtio-disk03-part2", "ONLINE"),
    ]
