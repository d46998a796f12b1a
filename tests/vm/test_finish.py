"""``advisor finish`` on a real kernel: after an install, with a stand-in nixos-install
(tests/vm/standin/nixos-install writes what the real one writes under the root), killed
in the middle of nixos-install, stopped after its check, resumed to the end. Then the
next boot, played as the configuration says: what finish kept on /persist is there, and
what nixos-install left on the root is rolled back."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest
from guest import HOST_ID, LIVE_HOSTID, PASSPHRASE, TIMEOUT, write_secrets
from harness import MakeDisk, run_in_vm

pytestmark = pytest.mark.vm

STANDIN = Path(__file__).resolve().parent / "standin"


def test_finish_killed_stopped_and_resumed_leaves_a_system_ready_to_boot(
    vm_kernel: Path, vm_rwdir: Path, make_disk: MakeDisk
) -> None:
    rw = vm_rwdir
    write_secrets(rw)
    disks = [make_disk("8G", serial="disk01")]
    install = [
        "install", "--backend", "luks", "--disk", "virtio-disk01", "--root", "/mnt",
        "--insecure-fast-kdf", "--hostname", "vmtest", "--user", "alice", "--host-id", HOST_ID,
        "--yes-wipe", "virtio-disk01", "--passphrase-file", f"{rw}/passphrase",
        "--password-file", f"{rw}/password", "--state-dir", f"{rw}/state", "--allow-bios",
    ]  # fmt: skip
    finish = ["finish", "--root", "/mnt", "--state-dir", f"{rw}/finish"]
    journal = f"{rw}/finish/journal.jsonl"
    script = f"""{LIVE_HOSTID}
$PYTHON -m advisor {shlex.join(install)} > install.out 2>&1
export PATH={shlex.quote(str(STANDIN))}:$PATH
# Killed while nixos-install runs: it has written part of the system.
STANDIN_SLEEP=60 setsid $PYTHON -m advisor {shlex.join(finish)} > killed.out 2>&1 &
killed=$!
until [ -e /mnt/etc/NIXOS ]; do sleep 0.1; done
kill -KILL -- -$killed; wait $killed || true
tail -n 1 {journal} > killed-last.json
$PYTHON -m advisor {shlex.join(finish)} > again.out 2>&1 && result again ok || result again refused
$PYTHON -m advisor {shlex.join(finish)} --resume --stop-after check > stop.out 2>&1
result stopped_mounted "$(findmnt -rn -o TARGET /mnt)"
$PYTHON -m advisor {shlex.join(finish)} --resume --json > finish.json 2> finish.err
result imported "$(zpool list -H -o name 2>/dev/null | grep -c . || true)"
result mounted "$(findmnt -rn -o TARGET | grep -c '^/mnt' || true)"
# The next boot, as the configuration says: open, import, roll back, mount. (The
# container the install opened is closed by the reboot; finish leaves it.)
cryptsetup close cryptroot
cryptsetup open --key-file=- /dev/disk/by-id/virtio-disk01-part2 cryptroot \
  < <(head -c {len(PASSPHRASE)} passphrase)
zpool import -d /dev/mapper -N rpool
zfs rollback -r rpool/local/root@blank
mount -t zfs rpool/local/root /mnt
mkdir -p /tmp/persist /tmp/esp
mount -t zfs rpool/safe/persist /tmp/persist
mount /dev/disk/by-id/virtio-disk01-part1 /tmp/esp
result root_lock "$(ls /mnt/etc/nixos/flake.lock 2>&1 || true)"
result root_nixos "$(ls /mnt/etc/NIXOS 2>&1 || true)"
result kept_lock "$(cat /tmp/persist/etc/nixos/flake.lock | tr -d '\\n ')"
result kept_uids "$(cat /tmp/persist/var/lib/nixos/uid-map)"
result kept_record "$(ls /tmp/persist/etc/nixos | tr '\n' ' ')"
result boot_loader "$(cat /tmp/esp/EFI/systemd/systemd-bootx64.efi)"
umount /tmp/esp /tmp/persist /mnt
zpool export rpool
cryptsetup close cryptroot
"""
    result = run_in_vm(script, disks, rwdir=rw, timeout=TIMEOUT)
    assert result.returncode == 0, result.describe()
    results = result.results
    assert "Next:" in (rw / "install.out").read_text()
    last = json.loads((rw / "killed-last.json").read_text())
    assert (last["event"], last["step"]) == ("started", "nixos-install")
    # A second finish over an unfinished one is refused: it must be resumed.
    assert results["again"] == "refused"
    assert "holds an earlier finish" in (rw / "again.out").read_text()
    assert "Stopped after step check" in (rw / "stop.out").read_text()
    assert results["stopped_mounted"] == "/mnt"
    report = json.loads((rw / "finish.json").read_text())
    assert report["completed"] is True and report["next"] == "reboot", (
        rw / "finish.err"
    ).read_text()
    # Ready to reboot: the pool exported, nothing mounted under the root.
    assert results["imported"] == "0"
    assert results["mounted"] == "0"
    # The next boot: what nixos-install wrote on the root is gone, what finish kept is not.
    assert "No such file" in results["root_lock"]
    assert "No such file" in results["root_nixos"]
    assert results["kept_lock"] == '{"nodes":{"root":{"inputs":{}}},"root":"root","version":7}'
    assert results["kept_uids"] == '{"alice":1000}'
    assert results["kept_record"].split() == [
        "advisor.json",
        "configuration.nix",
        "flake.lock",
        "flake.nix",
    ]
    assert results["boot_loader"] == "stand-in"
    # nixos-install ran again after the kill, and without copying a channel.
    log = (rw / "finish" / "install.log").read_text()
    assert (
        log.count("nixos-install: nixos-install --root /mnt --flake '/mnt/etc/nixos#vmtest'") >= 2
    )
    assert "--no-channel-copy" in log
