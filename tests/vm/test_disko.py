"""disko's own create and mount scripts, from the layout ``advisor export disko`` writes, on a
real kernel with real dm-crypt and OpenZFS, in a throw-away VM.

The scripts are disko's: evaluated on the host with the vendored disko (``nixeval.eval_disko``)
and run in the guest as nixos-anywhere runs them, as root, on a blank disk, with the disk
passphrase in /tmp/secret.key (disko's convention for ``--disk-encryption-keys``). One boot
per backend plays the whole story:

1. create, then mount, as a first nixos-anywhere run does, the configuration put where the
   install puts it; canaries written on the pool and on the ESP;
2. everything closed (unmounted, exported, LUKS closed, the live host id back), as after a
   reboot into the installer, then the create script run a second time: it must be harmless,
   the same partitions, LUKS volume, pool, blank snapshot and ESP, the canaries still there;
3. the mount script again, then the install's own end-state checks (``guest.end_state_script``
   and ``advisor check --before-reboot``), then the next boot driven by the generated
   configuration (``guest.second_boot_script``: unlock, import, rollback, /persist kept).
"""

from __future__ import annotations

import shlex
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
    PASSWORD,
    TIMEOUT,
    assert_end_state,
    assert_second_boot,
    end_state_script,
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
{f"cryptsetup luksUUID {luks}" if luks else ""}
zpool get -H -o value guid rpool
zfs get -H -o name,value guid -r rpool
}}"""


def export(backend: str, out: Path) -> None:
    """``advisor export disko`` for one blank disk into ``out``."""
    # Interim (until the export lands): a hand-written disko config and advisor config.
    out.mkdir()
    esp = "0b5e1f2c-3d4e-4f5a-8b6c-7d8e9f0a1b2c"
    data = "6a3d2c1b-5e4f-4a8b-9c0d-1e2f3a4b5c6d"
    (out / "password").write_text(PASSWORD + "\n")
    subprocess.run(
        [sys.executable, "-m", "advisor", "config", "--backend", backend, "--out", str(out),
         "--data-device", f"/dev/disk/by-partuuid/{data}",
         "--esp-device", f"/dev/disk/by-partuuid/{esp}", "--host-id", HOST_ID,
         "--hostname", "vmtest", "--user", "alice", "--password-file", str(out / "password")],
        check=True, capture_output=True,
    )  # fmt: skip
    (out / "password").unlink()
    pool_member = '{ type = "zfs"; pool = "rpool"; }'
    if backend == "luks":
        pool_member = f"""{{ type = "luks"; name = "cryptroot"; passwordFile = "{SECRET_KEY}";
      extraFormatArgs = [ "--type" "luks2" "--sector-size" "4096" "--pbkdf" "pbkdf2"
        "--pbkdf-force-iterations" "1000" ];
      content = {pool_member}; }}"""
    encryption = ""
    hook = ""
    if backend == "zfs-native":
        encryption = (
            'encryption = "aes-256-gcm"; keyformat = "passphrase"; '
            f'keylocation = "file://{SECRET_KEY}";'
        )
        hook = 'postCreateHook = "zfs set keylocation=prompt rpool";'
    # As the install: the pool created under the configured host id (H2's proposal to H1).
    hook += (
        f' preCreateHook = "zgenhostid -f -o /etc/hostid.advisor {HOST_ID}'
        ' && mv -f /etc/hostid.advisor /etc/hostid";'
    )
    typecode = "8309" if backend == "luks" else "BF00"
    (out / "disko.nix").write_text(f"""{{
  disko.devices = {{
    disk.disk01 = {{ type = "disk"; device = "{DISK}"; content = {{ type = "gpt"; partitions = {{
      ESP = {{ priority = 1; start = "1M"; size = "1G"; type = "EF00"; label = "ESP";
        uuid = "{esp}";
        content = {{ type = "filesystem"; format = "vfat"; extraArgs = [ "-F" "32" "-n" "ESP" ];
          mountpoint = "/boot"; mountOptions = [ "umask=0077" ]; }}; }};
      data = {{ priority = 2; size = "100%"; type = "{typecode}"; label = "data";
        uuid = "{data}"; content = {pool_member}; }};
    }}; }}; }};
    zpool.rpool = {{ type = "zpool"; options = {{ ashift = "12"; autotrim = "on"; }};
      rootFsOptions = {{ acltype = "posixacl"; canmount = "off"; compression = "zstd";
        normalization = "none"; relatime = "on"; xattr = "sa"; dnodesize = "auto";
        mountpoint = "none"; {encryption} }};
      {hook}
      datasets = {{
        "local/root" = {{ type = "zfs_fs"; mountpoint = "/";
          options = {{ canmount = "noauto"; mountpoint = "legacy"; }};
          postCreateHook = "zfs list -H -t snapshot -o name rpool/local/root@blank >/dev/null 2>&1 || zfs snapshot rpool/local/root@blank"; }};
        "local/nix" = {{ type = "zfs_fs"; mountpoint = "/nix";
          options = {{ mountpoint = "legacy"; atime = "off"; }}; }};
        "safe/home" = {{ type = "zfs_fs"; mountpoint = "/home"; options.mountpoint = "legacy"; }};
        "safe/persist" = {{ type = "zfs_fs"; mountpoint = "/persist";
          options.mountpoint = "legacy"; }};
      }};
    }};
  }};
}}
""")  # noqa: E501


def guest_script(backend: str, cfg: dict[str, Any]) -> str:
    """The whole story in one boot (the module's docstring), ``cfg`` the configuration."""
    close = "cryptsetup close cryptroot" if backend == "luks" else "true"
    luks = cfg["boot"]["initrd"].get("luks", {}).get("devices", {}).get("cryptroot", {})
    luks = luks.get("device")
    ids = identities(cfg["fileSystems"]["/boot"]["device"], luks)
    return f"""{LIVE_HOSTID}
(umask 077 && head -c {len(PASSPHRASE)} passphrase > {SECRET_KEY})
result key_mode "$(stat -c %a {SECRET_KEY})"
bash create.sh > create-1.log 2>&1 || {{ result create1 failed; cat create-1.log; exit 1; }}
{ids} > ids-1.txt
bash mount.sh > mount-1.log 2>&1 < {SECRET_KEY}
# The configuration where the install writes it (nixos-install does not put it on the disk).
mkdir -p /mnt/etc/nixos /mnt/persist/etc/nixos
cp config/configuration.nix config/advisor.json config/flake.nix /mnt/etc/nixos/
cp -a /mnt/etc/nixos/. /mnt/persist/etc/nixos/
echo data > /mnt/persist/data-canary
echo esp > /mnt/boot/esp-canary
sync
# Back to the installer after a reboot: nothing mounted, imported or open; its own host id.
umount -R /mnt
zpool export rpool
{close}
ln -sfn /run/ro-store/hostid /etc/hostid
bash create.sh > create-2.log 2>&1 || {{ result create2 failed; cat create-2.log; exit 1; }}
{ids} > ids-2.txt
# zfs-native's key is asked for now (keylocation=prompt): on stdin, as typed at the prompt.
bash mount.sh > mount-2.log 2>&1 < {SECRET_KEY}
result data "$(cat /mnt/persist/data-canary)"
result esp "$(cat /mnt/boot/esp-canary)"
rm {SECRET_KEY}
{end_state_script(luks or "-")}{close}
# The reboot: the next boot's own host id file (written from networking.hostId).
rm -f /etc/hostid
{second_boot_script(backend, cfg)}
"""


@pytest.mark.parametrize("backend", ["luks", "zfs-native"])
def test_disko_scripts_then_boot(
    backend: str, vm_kernel: Path, vm_rwdir: Path, make_disk: MakeDisk
) -> None:
    rw = vm_rwdir
    write_secrets(rw)
    export(backend, rw / "config")
    scripts = nixeval.eval_disko(rw / "config" / "disko.nix")
    (rw / "create.sh").write_text(scripts["create"])
    (rw / "mount.sh").write_text(scripts["mount"])
    cfg = nixeval.eval_config(rw / "config" / "configuration.nix")
    script = guest_script(backend, cfg)
    result = run_in_vm(script, [make_disk("8G", serial="disk01")], rwdir=rw, timeout=TIMEOUT)
    assert result.returncode == 0, result.describe()
    results = result.results
    assert results["key_mode"] == "600"

    # The second run of the create script changed nothing and lost nothing.
    first, second = ((rw / f"ids-{n}.txt").read_text() for n in (1, 2))
    assert "rpool/local/root@blank" in first
    assert second == first
    assert results["data"] == "data" and results["esp"] == "esp"
    assert (
        "not creating zpool rpool as a pool with that name already exists"
        in (rw / "create-2.log").read_text()
    )

    # The same end state as advisor install's, and the next boot works.
    assert_end_state(rw, backend)
    assert_second_boot(rw, backend, results, results)

    # The passphrase went through /tmp/secret.key only: not in disko's traces (set -x),
    # the console, or any file but the test's own secrets.
    leaked = [
        str(path.relative_to(rw))
        for path in rw.rglob("*")
        if path.is_file()
        and path.name not in ("passphrase", "password")
        and not path.name.endswith(".img")
        and PASSPHRASE.encode() in path.read_bytes()
    ]
    assert leaked == []
    assert shlex.quote(PASSPHRASE) not in result.stdout + result.stderr
