"""``advisor backup`` on a real kernel: raw sends a backup host cannot read, and the
refusal of plaintext to an untrusted one.

One boot: ``zfs-native`` is installed on one disk and a second pool on another disk
stands in for the backup host. ``advisor backup --untrusted`` sends raw: on the target
the key is unavailable, nothing mounts, the canary cannot be read (nor found in the
target disk's bytes), and only after ``zfs load-key`` with the passphrase does it read
back. Then a pool on LUKS (a real dm-crypt container on a third disk, as the ``luks``
backend makes it; tests/vm/test_install.py installs that backend in full) is backed up
with the layout record of a ``luks`` install: the same command is refused (exit 2, with
the reason) before anything is done, and ``--trusted`` sends it as plaintext.
"""

from __future__ import annotations

import itertools
import json
import shlex
from pathlib import Path

import pytest
from guest import HOST_ID, LIVE_HOSTID, PASSPHRASE, TIMEOUT, write_secrets
from harness import MakeDisk, run_in_vm

pytestmark = pytest.mark.vm

CANARY = "backup-canary-7e41d"
LATER = "backup-later-2c9b0"


def install(backend: str, disk: str, pool: str, rwdir: Path) -> str:
    """The install of ``backend`` on ``disk`` with its pool named ``pool``, at /mnt."""
    args = [
        "--backend", backend, "--disk", disk, "--yes-wipe", disk, "--pool", pool,
        "--root", "/mnt", "--insecure-fast-kdf", "--hostname", "vmtest", "--user", "alice",
        "--host-id", HOST_ID, "--passphrase-file", f"{rwdir}/passphrase",
        "--password-file", f"{rwdir}/password", "--state-dir", f"{rwdir}/state-{pool}",
        "--allow-bios",
    ]  # fmt: skip
    return f"""if $PYTHON -m advisor install {shlex.join(args)} > install-{pool}.out 2>&1; then
  result install_{pool} ok
else result install_{pool} failed; cat install-{pool}.out; exit 1; fi
"""


def backup(name: str, *args: str) -> str:
    """``advisor backup --root /mnt ARGS --json``, its exit status as result ``name``."""
    command = shlex.join(["--root", "/mnt", *args, "--json"])
    return f"""set +e
$PYTHON -m advisor backup {command} > {name}.json 2> {name}.err
result {name} $?
set -e
"""


def script(rwdir: Path) -> str:
    target = "/dev/disk/by-id/virtio-backuphost"
    return f"""{LIVE_HOSTID}
result t_start $(date +%s)
{install("zfs-native", "virtio-disk01", "rpool", rwdir)}
result t_installed $(date +%s)
cp /mnt/etc/nixos/advisor.json record.json
echo {CANARY} > /mnt/persist/canary
sync
# The backup host: a pool of its own on its own disk, mounted under /tmp (the guest's
# root is read-only).
zpool create -f -m /tmp/bp backuppool {target}
zfs create backuppool/laptop
{backup("raw", "--target", "backuppool/laptop", "--untrusted")}
result t_raw $(date +%s)
echo {LATER} > /mnt/persist/later
sync
{backup("raw_again", "--target", "backuppool/laptop", "--untrusted")}
zfs list -H -t all -o name -r backuppool > target-list.txt
result keystatus "$(zfs get -H -o value keystatus backuppool/laptop/safe/persist)"
result encryption "$(zfs get -H -o value encryption backuppool/laptop/safe/persist)"
result mounted "$(zfs get -H -o value mounted backuppool/laptop/safe/persist)"
if zfs mount backuppool/laptop/safe/persist 2> mount-nokey.err; then result mount_nokey yes
else result mount_nokey no; fi
if cat /tmp/bp/laptop/safe/persist/canary 2>/dev/null; then result read_nokey yes
else result read_nokey no; fi
zpool export backuppool
result plaintext_on_target "$(grep -a -c {CANARY} {target} || true)"
zpool import -d /dev/disk/by-id backuppool
zfs load-key backuppool/laptop/safe/persist < passphrase
result keystatus_loaded "$(zfs get -H -o value keystatus backuppool/laptop/safe/persist)"
zfs mount backuppool/laptop/safe/persist
result read_loaded "$(cat /tmp/bp/laptop/safe/persist/canary)"
result read_later "$(cat /tmp/bp/laptop/safe/persist/later)"
zfs unmount backuppool/laptop/safe/persist
result t_raw_done $(date +%s)
umount -R /mnt
zpool export rpool

# A LUKS pool, as the luks backend makes it (tests/vm/test_install.py installs one in
# full): ZFS sees plaintext. Its record is the installed one with the backend and pool
# changed.
cryptsetup luksFormat --batch-mode --type luks2 --pbkdf pbkdf2 --pbkdf-force-iterations 1000 \
  --key-file=- /dev/disk/by-id/virtio-disk02 < <(head -c {len(PASSPHRASE)} passphrase)
cryptsetup open --key-file=- /dev/disk/by-id/virtio-disk02 lukstest \
  < <(head -c {len(PASSPHRASE)} passphrase)
zpool create -f -O mountpoint=none -O canmount=off lpool /dev/mapper/lukstest
zfs create -o canmount=off lpool/safe
zfs create -o mountpoint=legacy lpool/safe/home
zfs create -o mountpoint=legacy lpool/safe/persist
mkdir -p /tmp/lpersist && mount -t zfs lpool/safe/persist /tmp/lpersist
echo {CANARY} > /tmp/lpersist/canary
umount /tmp/lpersist
$PYTHON - record.json luks.json <<'PY'
import json, sys
record = json.load(open(sys.argv[1]))
record["backend"], record["settings"]["pool"] = "luks", "lpool"
open(sys.argv[2], "w").write(json.dumps(record))
PY
result t_luks $(date +%s)
zfs create backuppool/luks
{backup("luks_untrusted", "--record", "luks.json", "--target", "backuppool/luks", "--untrusted")}
result luks_snapshots "$(zfs list -H -t snapshot -o name -r lpool/safe | wc -l)"
result luks_target_children "$(zfs list -H -o name -r backuppool/luks | wc -l)"
{backup("luks_trusted", "--record", "luks.json", "--target", "backuppool/luks", "--trusted")}
result luks_encryption "$(zfs get -H -o value encryption backuppool/luks/safe/persist)"
zfs mount backuppool/luks/safe/persist
result luks_read "$(cat /tmp/bp/luks/safe/persist/canary)"
zpool export lpool
cryptsetup close lukstest
zpool export backuppool
result t_end $(date +%s)
"""


def test_backup_raw_to_an_untrusted_pool_and_refusal_for_luks(
    vm_kernel: Path, vm_rwdir: Path, make_disk: MakeDisk
) -> None:
    rw = vm_rwdir
    write_secrets(rw)
    disks = [
        make_disk("8G", serial="disk01"),
        make_disk("1G", serial="disk02"),
        make_disk("128M", serial="backuphost"),
    ]
    run = run_in_vm(script(rw), disks, rwdir=rw, timeout=TIMEOUT)
    assert run.returncode == 0, run.describe()
    results = run.results
    marks = {k: int(v) for k, v in results.items() if k.startswith("t_")}
    steps = sorted(marks, key=marks.__getitem__)
    print(  # shown with -s: where the VM time goes
        f"VM time: {run.duration:.0f} s;",
        ", ".join(f"{b}: {marks[b] - marks[a]} s" for a, b in itertools.pairwise(steps)),
    )

    # zfs-native to an untrusted target: raw, full then incremental.
    assert results["raw"] == "0", (rw / "raw.err").read_text()
    first = json.loads((rw / "raw.json").read_text())
    assert first["trusted"] is False and first["target"] == "backuppool/laptop"
    sent = {t["source"]: t for t in first["transfers"]}
    assert set(sent) == {"rpool/safe", "rpool/safe/home", "rpool/safe/persist"}
    assert all(t["raw"] and t["incremental_from"] is None for t in sent.values())
    assert results["raw_again"] == "0", (rw / "raw_again.err").read_text()
    again = json.loads((rw / "raw_again.json").read_text())
    assert {t["incremental_from"] for t in again["transfers"]} == {first["snapshot"]}
    listed = (rw / "target-list.txt").read_text().split()
    assert f"backuppool/laptop/safe/persist@{again['snapshot']}" in listed
    assert not any("local" in name for name in listed)  # the root and the store stay home

    # The target holds ciphertext only: no key, no mount, no canary, not even in its bytes.
    assert results["encryption"] == "aes-256-gcm"
    assert results["keystatus"] == "unavailable"
    assert results["mounted"] == "no"
    assert results["mount_nokey"] == "no"
    assert "key" in (rw / "mount-nokey.err").read_text()
    assert results["read_nokey"] == "no"
    assert results["plaintext_on_target"] == "0"
    # With the passphrase (on stdin), on the target: it reads back.
    assert results["keystatus_loaded"] == "available"
    assert results["read_loaded"] == CANARY
    assert results["read_later"] == LATER
    for name in ("raw", "raw_again"):
        assert PASSPHRASE not in (rw / f"{name}.json").read_text()

    # LUKS to an untrusted target: refused with the reason, before anything is done.
    assert results["luks_untrusted"] == "2"
    refusal = (rw / "luks_untrusted.err").read_text()
    assert "refused" in refusal and "plaintext" in refusal and "natively encrypted" in refusal
    assert "Traceback" not in refusal
    assert results["luks_snapshots"] == "0"
    assert results["luks_target_children"] == "1"
    # To a trusted one it goes, as plaintext.
    assert results["luks_trusted"] == "0", (rw / "luks_trusted.err").read_text()
    trusted = json.loads((rw / "luks_trusted.json").read_text())
    assert trusted["trusted"] is True
    assert trusted["transfers"] and not any(t["raw"] for t in trusted["transfers"])
    assert results["luks_encryption"] == "off"
    assert results["luks_read"] == CANARY
