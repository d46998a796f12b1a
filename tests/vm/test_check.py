"""``advisor check`` on a real kernel: the three backends installed in one boot (one disk
each, a pool and a root of their own, one host id), each checked right after its
install, just before the reboot (the pool exported) and after a simulated reboot (the
pool unlocked, imported, rolled back and mounted as the next boot does); and each check
that the issue names made to fail for its reason, then put right.

One boot, to keep the VM time of this file low: the installs are the slow part.
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
MISSING = "00000000-0000-4000-8000-000000000000"
BACKUP = "/tmp/backup/header.backup"
#: Each backend's disk, pool, root, LUKS name and install options.
INSTALLS = {
    "luks": ("virtio-disk01", "poola", "/tmp/ra", "crypta", ["--sops"]),
    "zfs-native": ("virtio-disk02", "poolb", "/tmp/rb", None, []),
    "luks-detached": (
        "virtio-disk03", "poolc", "/tmp/rc", "cryptc",
        ["--header", HEADER, "--header-backup", BACKUP],
    ),
}  # fmt: skip


def install_command(backend: str, rw: Path) -> str:
    disk, pool, root, luks_name, extra = INSTALLS[backend]
    args = [
        "--backend", backend, "--disk", disk, "--yes-wipe", disk, "--root", root,
        "--pool", pool, "--host-id", HOST_ID, "--insecure-fast-kdf",
        "--user", "alice", "--passphrase-file", f"{rw}/passphrase",
        "--password-file", f"{rw}/password", "--state-dir", f"{rw}/state-{backend}",
        "--allow-bios", "--remote-unlock-keys", f"{rw}/authorized_keys", *extra,
    ]  # fmt: skip
    if luks_name is not None:
        args += ["--luks-name", luks_name]
    return "$PYTHON -m advisor install " + shlex.join(args)


#: Shell functions the script uses: run a check (its JSON kept as NAME.json, its status
#: recorded), and play a reboot for one backend.
FUNCTIONS = """
check() {  # check NAME ROOT [OPTIONS...]: JSON to NAME.json, exit status as a result
  name=$1; shift
  if $PYTHON -m advisor check --json --root "$@" > "$name.json" 2> "$name.err"
  then result "$name" 0; else result "$name" $?; fi
}
field() {  # field RECORD WHAT: a member's or the settings' field from a layout record
  $PYTHON -c 'import json,sys; r=json.load(open(sys.argv[1])); m=r["members"][0]
print(eval(sys.argv[2]))' "$1" "$2"
}
boot_again() {  # boot_again ROOT POOL RECORD: the next boot, from the record (pool exported)
  root=$1; pool=$2; record=$3
  name=$(field "$record" 'm["luks_name"]'); data=$(field "$record" 'm["data_device"]')
  header=$(field "$record" 'm["header"] or ""')
  if [ -e "/dev/mapper/$name" ]; then
    cryptsetup close "$name"
    tr -d '\\n' < passphrase | cryptsetup open ${header:+--header "$header"} \\
      --key-file=- "$data" "$name"
    zpool import -d /dev/mapper -N "$pool"
  else
    zpool import -d "$(dirname "$data")" -N "$pool"
    zfs load-key "$pool" < passphrase
  fi
  zfs rollback -r "$pool/local/root@blank"
  mount -t zfs "$pool/local/root" "$root"
  mkdir -p "$root/persist" && mount -t zfs "$pool/safe/persist" "$root/persist"
}
"""


def script(rw: Path) -> str:
    """Install all three, then break and mend one thing at a time, checking each time."""
    a, b, c = (INSTALLS[name] for name in ("luks", "zfs-native", "luks-detached"))
    ra, rb, rc = a[2], b[2], c[2]
    config_a = f"{ra}/etc/nixos/configuration.nix"
    installs = "\n".join(
        f"mkdir -p {INSTALLS[name][2]}\n"
        f"if {install_command(name, rw)} > install-{name}.out 2>&1; then result install-{name} ok;"
        f" else result install-{name} failed; cat install-{name}.out; exit 1; fi"
        for name in INSTALLS
    )
    every = f"a:{ra}:{a[1]} b:{rb}:{b[1]} c:{rc}:{c[1]}"
    esp = r'/^  fileSystems."\/boot" = {$/,/^  };$/'  # the ESP's entry, in sed
    return f"""{LIVE_HOSTID}{FUNCTIONS}
mkfs.ext4 -q /dev/disk/by-id/virtio-backup
mkdir -p /tmp/backup && mount /dev/disk/by-id/virtio-backup /tmp/backup
{installs}

# Right after the install (the install's own check passed too, see its summary).
check a-installed {ra}

# luks: a /persist key missing, the rollback unit removed from the configuration, and a
# device path that does not exist (the ESP's): each check fails for its own reason.
mv {ra}/persist/var/lib/sops-nix/key.txt /tmp/key.txt
cp {config_a} /tmp/configuration.nix
sed -i '/^  boot.initrd.systemd.services.rollback = {{$/,/^  }};$/d' {config_a}
sed -i '{esp} s|by-partuuid/[0-9a-f-]*|by-partuuid/{MISSING}|' {config_a}
check a-broken {ra}
mv /tmp/key.txt {ra}/persist/var/lib/sops-nix/key.txt
cp /tmp/configuration.nix {config_a}

# luks-detached: the header backup missing.
mv {BACKUP} /tmp/header.backup
check c-no-backup {rc}
mv /tmp/header.backup {BACKUP}

# zfs-native: left imported just before the reboot.
check b-left-imported {rb} --before-reboot

# Each exported for the reboot (its configuration kept aside: it was on the root).
for x in {every}; do
  IFS=: read -r tag root pool <<< "$x"
  cp -a "$root/etc/nixos" "/tmp/nixos-$tag"
  umount -R "$root"; zpool export "$pool"
  check "$tag-before-reboot" "$root" --before-reboot --record "/tmp/nixos-$tag/advisor.json"
done

# zfs-native: imported once under another host id (its labels keep it), then mended.
# Every pool is exported meanwhile, so no other pool's labels take that id.
zgenhostid -f 0badc0de
zpool import -d /dev/disk/by-id -N {b[1]}; zpool export {b[1]}
check b-hostid-label {rb} --before-reboot --record /tmp/nixos-b/advisor.json
zgenhostid -f {HOST_ID}
zpool import -d /dev/disk/by-id -N {b[1]}; zpool export {b[1]}

# The next boot of each: unlocked, imported, rolled back and mounted as it does.
for x in {every}; do
  IFS=: read -r tag root pool <<< "$x"
  boot_again "$root" "$pool" "/tmp/nixos-$tag/advisor.json"
  check "$tag-rebooted" "$root"
done

"""


def load(rw: Path, name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((rw / f"{name}.json").read_text())
    return data


def statuses(rw: Path, name: str) -> dict[str, str]:
    return {check["id"]: check["status"] for check in load(rw, name)["checks"]}


def failed(rw: Path, name: str) -> dict[str, str]:
    """The failed checks of run ``name`` with what they found."""
    return {c["id"]: c["detail"] for c in load(rw, name)["checks"] if c["status"] == "fail"}


def test_check_passes_on_each_backend_and_fails_for_the_right_reason(
    vm_kernel: Path, vm_rwdir: Path, make_disk: MakeDisk
) -> None:
    rw = vm_rwdir
    write_secrets(rw)
    (rw / "authorized_keys").write_text(PUBKEY + "\n")
    disks = [
        make_disk("8G", serial="disk01"),
        make_disk("8G", serial="disk02"),
        make_disk("8G", serial="disk03"),
        make_disk("64M", serial="usbkey"),
        make_disk("256M", serial="backup"),
    ]
    result = run_in_vm(script(rw), disks, rwdir=rw, timeout=TIMEOUT)
    assert result.returncode == 0, result.describe()
    results = result.results

    # The install ran the check as its last step and printed its summary.
    for backend in INSTALLS:
        out = (rw / f"install-{backend}.out").read_text()
        assert "Checked (advisor check --root" in out, out
        assert "still imported" in out and "checks: " in out and " 0 fail" in out, out

    # Right after the install, before the reboot and after it: no check fails.
    for tag in "abc":
        for stage in ("installed", "before-reboot", "rebooted"):
            name = f"{tag}-{stage}"
            assert results[name] == "0", (name, failed(rw, name))
    installed = statuses(rw, "a-installed")
    assert installed["pool"] == "warn"  # still imported: fine right after the install
    passed = ("configuration", "devices", "devnodes", "hostid", "root-dataset", "blank",
              "rollback", "persist-boot", "file-sops-age-key", "file-initrd-ssh-key")  # fmt: skip
    for check in passed:
        assert installed[check] == "pass", check
    # sshd makes its host key at its first start: not there yet, and that is fine.
    assert installed["file-ssh-host-key"] == "pass"
    exported = statuses(rw, "b-before-reboot")
    assert exported["pool"] == "pass" and exported["hostid"] == "pass"
    assert exported["file-machine-id"] == "skip" and exported["blank"] == "skip"
    assert statuses(rw, "c-before-reboot")["header-backup"] == "pass"
    rebooted = statuses(rw, "c-rebooted")
    assert rebooted["root-dataset"] == "pass" and rebooted["file-initrd-ssh-key"] == "pass"

    # Each breakage: exit 1, and the check that names it failed.
    expected = {
        "b-left-imported": {"pool": "still imported"},
        "b-hostid-label": {"hostid": "last imported under host id 0badc0de"},
        "c-no-backup": {"header-backup": "does not exist"},
        "a-broken": {
            "file-sops-age-key": "does not exist: the first boot needs it",
            "rollback": "no initrd unit runs",
            "devices": MISSING,
        },
    }
    for name, checks in expected.items():
        assert results[name] == "1", (name, load(rw, name))
        found = failed(rw, name)
        assert set(found) == set(checks), (name, found)  # that, and nothing else
        for check, words in checks.items():
            assert words in found[check], (name, found)
