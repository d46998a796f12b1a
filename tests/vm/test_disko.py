"""disko's own create and mount scripts, from the files ``advisor export disko`` writes, on
a real kernel with real dm-crypt and OpenZFS, in a throw-away VM.

The export runs on the host (the CLI, as a user runs it); its disko.nix is evaluated there
with the vendored disko (``nixeval.eval_disko``), and disko's scripts run in the guest as
nixos-anywhere runs them: as root, on a blank disk, the disk passphrase in /tmp/secret.key
(what ``--disk-encryption-keys`` puts there), on an installer whose /etc/hostid is a link
into a read-only store. One boot per backend plays the whole story:

1. create, then mount, as a first nixos-anywhere run does; the exported configuration put
   where the install puts it; a canary on the ESP;
2. the install's own end-state checks (``guest.end_state_script``: the layout recorded,
   canaries on / and /persist, everything unmounted and exported, ``advisor check
   --before-reboot``);
3. back on the installer (LUKS closed, its own host id), the create script a second time,
   as a second nixos-anywhere run would: it must be harmless, the same partitions, ESP,
   LUKS volume, pool, datasets and blank snapshot (their ids), nothing formatted again;
4. the next boot driven by the generated configuration (``guest.second_boot_script``:
   unlock, import, rollback, /persist kept, ``advisor check``), the ESP's canary there.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import nixeval
import pytest
from guest import (
    HOST_ID,
    LIVE_HOSTID,
    PASSPHRASE,
    TIMEOUT,
    assert_end_state,
    assert_second_boot,
    end_state_script,
    leaked_secrets,
    second_boot_script,
    write_secrets,
)
from harness import MakeDisk, run_in_vm

pytestmark = pytest.mark.vm

DISK = "/dev/disk/by-id/virtio-disk01"
#: Where nixos-anywhere's --disk-encryption-keys puts the passphrase for disko's scripts.
SECRET_KEY = "/tmp/secret.key"


def identities(esp: str, luks: str | None) -> str:
    """Guest commands printing what must survive from one run of the create script to the
    next: the partitions (GUIDs, types, names, sizes), the ESP's file system, the LUKS volume
    on ``luks`` (if any), the pool and each dataset and snapshot (their GUIDs)."""
    return f"""{{
lsblk -rno NAME,PARTUUID,PARTTYPE,PARTLABEL,SIZE {DISK}
blkid -s UUID -o value {esp}
{f'echo "LUKS $(cryptsetup luksUUID {luks})"' if luks else ""}
zpool get -H -o value guid rpool
zfs get -H -o name,value guid -r rpool
}}"""


def export(backend: str, rw: Path) -> Path:
    """``advisor export disko`` (the CLI, on the host) for one blank disk: the folder with
    disko.nix, configuration.nix, advisor.json and flake.nix."""
    out = rw / "config"
    completed = subprocess.run(
        [sys.executable, "-m", "advisor", "export", "disko", "--backend", backend,
         "--disk", DISK, "--host-id", HOST_ID, "--hostname", "vmtest", "--user", "alice",
         "--password-file", str(rw / "password"), "--insecure-fast-kdf", "--out", str(out)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr
    return out


def guest_script(backend: str, cfg: dict[str, Any]) -> str:
    """The whole story in one boot (the module's docstring), ``cfg`` the configuration."""
    close = "cryptsetup close cryptroot" if backend == "luks" else "true"
    luks = (
        cfg["boot"]["initrd"]["luks"]["devices"]["cryptroot"]["device"]
        if backend == "luks"
        else None
    )
    esp = cfg["fileSystems"]["/boot"]
    ids = identities(esp["device"], luks)
    # The key file as docs/disko.md has it written (printf '%s': no newline) for luks, and
    # with the newline `echo` would add for zfs-native: disko and ZFS must both drop it.
    key = "cat passphrase" if backend == "zfs-native" else f"head -c {len(PASSPHRASE)} passphrase"
    return f"""{LIVE_HOSTID}
(umask 077 && {key} > {SECRET_KEY})
result key_mode "$(stat -c %a {SECRET_KEY})"
bash create.sh > create-1.log 2>&1 || {{ result create1 failed; cat create-1.log; exit 1; }}
{ids} > ids-1.txt
bash mount.sh > mount.log 2>&1 || {{ result mount failed; cat mount.log; exit 1; }}
# The exported configuration where the install writes it (its write-config and copy-config
# steps; nixos-anywhere's --extra-files can put it there).
mkdir -p /mnt/etc/nixos /mnt/persist/etc/nixos
cp -a config/. /mnt/etc/nixos/
cp -a /mnt/etc/nixos/. /mnt/persist/etc/nixos/
echo esp > /mnt/boot/esp-canary
{end_state_script(luks or "-")}{close}
# Back on the installer (its own host id), disko's create script runs again.
ln -sfn /run/ro-store/hostid /etc/hostid
bash create.sh > create-2.log 2>&1 || {{ result create2 failed; cat create-2.log; exit 1; }}
{ids} > ids-2.txt
result keylocation "$(zfs get -H -o value keylocation rpool)"
rm {SECRET_KEY}
zpool export rpool
{close}
# The reboot: the next boot's own host id file (NixOS writes it from networking.hostId).
rm -f /etc/hostid
{second_boot_script(backend, cfg)}mkdir -p /tmp/esp
mount -t {esp["fsType"]} -o ro {esp["device"]} /tmp/esp
result esp "$(cat /tmp/esp/esp-canary)"
umount /tmp/esp
"""


@pytest.mark.parametrize("backend", ["luks", "zfs-native"])
def test_disko_scripts_on_a_blank_disk_twice_then_boot(
    backend: str, vm_kernel: Path, vm_rwdir: Path, make_disk: MakeDisk
) -> None:
    rw = vm_rwdir
    write_secrets(rw)
    exported = export(backend, rw)
    files = sorted(path.name for path in exported.iterdir())
    assert files == ["advisor.json", "configuration.nix", "disko.nix", "flake.nix"]
    scripts = nixeval.eval_disko(exported / "disko.nix")
    (rw / "create.sh").write_text(scripts["create"])
    (rw / "mount.sh").write_text(scripts["mount"])
    cfg = nixeval.eval_config(exported / "configuration.nix")
    assert cfg["networking"]["hostId"] == HOST_ID
    disk = make_disk("8G", serial="disk01")
    result = run_in_vm(guest_script(backend, cfg), [disk], rwdir=rw, timeout=TIMEOUT)
    assert result.returncode == 0, result.describe()
    results = result.results
    assert results["key_mode"] == "600"

    # The second run of the create script changed nothing and lost nothing: it found
    # everything there (the pool imported, not created) and left it as it was.
    first, second = ((rw / f"ids-{n}.txt").read_text() for n in (1, 2))
    assert "rpool/local/root@blank" in first
    assert (re.search(r"^LUKS [0-9a-f-]{36}$", first, re.M) is not None) == (backend == "luks")
    assert second == first
    assert results["esp"] == "esp"  # and /persist's: assert_second_boot below
    # (The logs are disko's set -x traces: a command shows there only if it ran.)
    created, rerun = ((rw / f"create-{n}.log").read_text() for n in (1, 2))
    formats = ["sgdisk --clear", "mkfs.vfat", "zpool create", "zfs snapshot"]
    formats += ["cryptsetup -q luksFormat"] if backend == "luks" else []
    assert [f for f in formats if f in created] == formats
    assert [f for f in formats if f in rerun] == []
    assert "not creating zpool rpool as a pool with that name already exists" in rerun
    # zfs-native: the key file at creation, the prompt afterwards (also after a re-run,
    # which sets it to the file again first); the next boot asks for it.
    assert results["keylocation"] == ("prompt" if backend == "zfs-native" else "none")

    # The same end state as advisor install's: the live system's host id (a link into a
    # read-only store) replaced by the configured one before the pool was created, the
    # layout, and the next boot driven by the configuration.
    assert results["live_hostid"] == "8425e349"
    assert results["hostid"] == HOST_ID and results["hostid_file"] == "regular file"
    assert_end_state(rw, backend, files)
    assert_second_boot(rw, backend, results, results)

    # The passphrase went through /tmp/secret.key only: not in disko's traces (set -x),
    # the console or any file but the test's own secrets; the password only as its hash.
    assert leaked_secrets(rw) == []
    assert PASSPHRASE not in result.stdout + result.stderr
