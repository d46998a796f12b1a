"""``advisor check`` on a real kernel: each check the issue names made to fail for its
reason, with exit status 1, on a fresh install (then put right).

One install, in one boot, keeps this file's VM time low: luks-detached with a header
backup, a sops age key and an initrd SSH key, so every kind of check has something to
look at. That each backend passes the check right after its install (the install's last
step), just before the reboot (the pool exported) and after the simulated reboot is
tested in test_install.py, in the boots it has already.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

import pytest
from guest import HOST_ID, LIVE_HOSTID, TIMEOUT, write_secrets
from harness import MakeDisk, run_in_vm

pytestmark = pytest.mark.vm

PUBKEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl me@x"
HEADER = "/dev/disk/by-id/virtio-usbkey"
BACKUP = "/tmp/backup/header.backup"
MISSING = "00000000-0000-4000-8000-000000000000"
ROOT = "/mnt"
CONFIG = f"{ROOT}/etc/nixos/configuration.nix"
#: The ESP's entry in the configuration, as a sed address.
ESP_ENTRY = r'/^  fileSystems."\/boot" = {$/,/^  };$/'
ROLLBACK_UNIT = r"/^  boot.initrd.systemd.services.rollback = {$/,/^  };$/"


def install_command(rw: Path) -> str:
    args = [
        "--backend", "luks-detached", "--disk", "virtio-disk01", "--yes-wipe", "virtio-disk01",
        "--header", HEADER, "--header-backup", BACKUP, "--root", ROOT, "--host-id", HOST_ID,
        "--insecure-fast-kdf", "--user", "alice", "--sops",
        "--remote-unlock-keys", f"{rw}/authorized_keys",
        "--passphrase-file", f"{rw}/passphrase", "--password-file", f"{rw}/password",
        "--state-dir", f"{rw}/state", "--allow-bios",
    ]  # fmt: skip
    return "$PYTHON -m advisor install " + shlex.join(args)


def script(rw: Path) -> str:
    """Install, then break one thing (or, on the configuration, a few) at a time, check,
    and put it right."""
    sops_key = f"{ROOT}/persist/var/lib/sops-nix/key.txt"
    return f"""{LIVE_HOSTID}
check() {{  # check NAME [OPTIONS...]: its JSON to NAME.json, its exit status a result
  name=$1; shift
  if $PYTHON -m advisor check --json "$@" > "$name.json" 2> "$name.err"
  then result "$name" 0; else result "$name" $?; fi
}}
mkfs.ext4 -q /dev/disk/by-id/virtio-backup
mkdir -p /tmp/backup && mount /dev/disk/by-id/virtio-backup /tmp/backup
if {install_command(rw)} > install.out 2>&1; then result install ok;
else result install failed; cat install.out; exit 1; fi
check installed --root {ROOT}

# A /persist key missing, the rollback unit removed from the configuration, and a device
# path that does not exist (the ESP's, in the configuration): each check fails for its
# own reason, and no other check fails.
mv {sops_key} /tmp/key.txt
cp {CONFIG} /tmp/configuration.nix
sed -i '{ROLLBACK_UNIT}d' {CONFIG}
sed -i '{ESP_ENTRY} s|by-partuuid/[0-9a-f-]*|by-partuuid/{MISSING}|' {CONFIG}
check broken --root {ROOT}
mv /tmp/key.txt {sops_key}
cp /tmp/configuration.nix {CONFIG}

# The header backup missing (its medium not mounted).
umount /tmp/backup
check no-backup --root {ROOT}
mount /dev/disk/by-id/virtio-backup /tmp/backup

# The pool left imported just before the reboot.
check left-imported --root {ROOT} --before-reboot

# Exported (the configuration kept aside: it was on the root), then imported once under
# another host id: its labels keep that id. (Exported under the right one, the check
# passes: test_install.py.)
cp -a {ROOT}/etc/nixos /tmp/nixos
umount -R {ROOT}; zpool export rpool
zgenhostid -f 0badc0de
zpool import -d /dev/mapper -N rpool; zpool export rpool
check hostid-changed --root {ROOT} --before-reboot --record /tmp/nixos/advisor.json
"""


def load(rw: Path, name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((rw / f"{name}.json").read_text())
    return data


def statuses(rw: Path, name: str) -> dict[str, str]:
    return {check["id"]: check["status"] for check in load(rw, name)["checks"]}


def failed(rw: Path, name: str) -> dict[str, str]:
    """The failed checks of run ``name``, with what each found."""
    return {c["id"]: c["detail"] for c in load(rw, name)["checks"] if c["status"] == "fail"}


def test_each_check_fails_for_its_reason(
    vm_kernel: Path, vm_rwdir: Path, make_disk: MakeDisk
) -> None:
    rw = vm_rwdir
    write_secrets(rw)
    (rw / "authorized_keys").write_text(PUBKEY + "\n")
    disks = [
        make_disk("8G", serial="disk01"),
        make_disk("64M", serial="usbkey"),
        make_disk("256M", serial="backup"),
    ]
    result = run_in_vm(script(rw), disks, rwdir=rw, timeout=TIMEOUT)
    assert result.returncode == 0, result.describe()
    results = result.results

    # The install ran the check as its last step and printed its summary.
    out = (rw / "install.out").read_text()
    assert "Checked (advisor check --root /mnt):" in out
    assert "rpool is still imported" in out and " 0 fail" in out
    # The pool exported, what needs its datasets is skipped, saying why.
    exported = statuses(rw, "hostid-changed")
    assert exported["pool"] == "pass" and exported["blank"] == "skip"
    assert exported["file-sops-age-key"] == "skip"

    # Right after the install: every check passes, the pool still imported only warns.
    assert results["installed"] == "0", failed(rw, "installed")
    installed = statuses(rw, "installed")
    assert installed.pop("pool") == "warn" and installed.pop("trim") == "skip"
    assert set(installed.values()) == {"pass"}, installed
    for check in ("file-sops-age-key", "file-initrd-ssh-key", "header-backup", "devnodes"):
        assert check in installed
    # sshd makes its host key at its first start: not there yet, and that is fine.
    host_key = next(c for c in load(rw, "installed")["checks"] if c["id"] == "file-ssh-host-key")
    assert "not there yet" in host_key["detail"]

    # Each breakage: exit 1, the check that names it failed, and no other.
    expected = {
        "broken": {
            "file-sops-age-key": "does not exist: the first boot needs it",
            "rollback": "no initrd unit runs 'zfs rollback -r rpool/local/root@blank'",
            "devices": f"/dev/disk/by-partuuid/{MISSING} does not exist",
        },
        "no-backup": {"header-backup": f"{BACKUP} does not exist"},
        "left-imported": {"pool": "rpool is still imported"},
        "hostid-changed": {"hostid": "last imported under host id 0badc0de"},
    }
    for name, checks in expected.items():
        assert results[name] == "1", (name, load(rw, name))
        found = failed(rw, name)
        assert set(found) == set(checks), (name, found)
        for check, words in checks.items():
            assert words in found[check], (name, found)
