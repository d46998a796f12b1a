"""Unlocking with hardware on a real kernel: ``advisor install --unlock`` enrolls into a
software TPM 2.0 (swtpm, attached to the VM by the harness), and the next boot opens the
container the way the systemd initrd does, from the evaluated configuration's crypttab
options, with ``systemd-cryptsetup`` (docs/unlock.md, "What was tested").

- ``tpm2``: two boots on the same disk and the same TPM. The second opens with no
  passphrase, rolls back and keeps /persist; once PCR 7 is extended the TPM refuses, and
  the recovery key (shown once: here written to a file) opens the disk.
- ``tpm2+pin`` and ``fido2``: one boot. The fido2 install is refused without a terminal
  before it touches the disk; the tpm2+pin install runs on a pseudo-terminal where the
  PIN is typed, and then a wrong PIN is refused and the right one opens.
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
    rollback_command,
    write_secrets,
)
from harness import MakeDisk, run_in_vm

pytestmark = pytest.mark.vm

HERE = Path(__file__).resolve().parent
AGENT = HERE / "ask_password_agent.py"
ANSWER_PROMPTS = HERE.parent / "answer_prompts.py"
DISK = "virtio-disk01"
PIN = "4711-canary-pin"
#: The data partition (the configuration names it by its partition UUID).
DATA = f"/dev/disk/by-id/{DISK}-part2"


def install_args(rwdir: Path, method: str, *extra: str) -> str:
    return shlex.join([
        "--backend", "luks", "--disk", DISK, "--root", "/mnt", "--insecure-fast-kdf",
        "--hostname", "vmtest", "--user", "alice", "--host-id", HOST_ID, "--allow-bios",
        "--unlock", method, "--yes-wipe", DISK,
        "--passphrase-file", f"{rwdir}/passphrase", "--password-file", f"{rwdir}/password",
        "--state-dir", f"{rwdir}/state-{method}", *extra,
    ])  # fmt: skip


def container(cfg: dict[str, Any]) -> tuple[str, str]:
    """The container's device and its crypttab options, as the configuration writes them."""
    device = cfg["boot"]["initrd"]["luks"]["devices"]["cryptroot"]
    return device["device"], crypttab_options(device, None)


def attach(device: str, options: str, result: str) -> str:
    """systemd-cryptsetup as the initrd's unit runs it, its exit status recorded."""
    return (
        f"/lib/systemd/systemd-cryptsetup attach cryptroot {shlex.quote(device)} - "
        f"{shlex.quote(options)} < /dev/null; result {result} $?"
    )


def with_agent(answer_file: str, log: str, command: str) -> str:
    """``command`` with a password agent answering its first question from
    ``answer_file`` (as a person at the boot prompt) and cancelling any other."""
    return (
        f"rm -f agent.stop; $PYTHON {AGENT} {answer_file} {log} agent.stop &\n"
        f"{command}\ntouch agent.stop; wait\n"
    )


def test_tpm2_unlocks_the_next_boot_and_the_recovery_key_the_one_after_a_pcr_change(
    vm_kernel: Path, vm_rwdir: Path, make_disk: MakeDisk
) -> None:
    rw = vm_rwdir
    write_secrets(rw)
    disk = make_disk("8G", serial="disk01")
    tpm = rw / "tpm-state"
    recovery = rw / "recovery.key"
    first = f"""{LIVE_HOSTID}
$PYTHON -m advisor install {install_args(rw, "tpm2", "--dry-run")} > plan.sh
if {TRACE} $PYTHON -m advisor install {
        install_args(rw, "tpm2", "--recovery-key-file", str(recovery))
    } > install.out 2> install.err
then result install ok; else result install failed; cat install.out install.err; exit 1; fi
cryptsetup luksDump /dev/disk/by-id/{DISK}-part2 > luks-dump.txt
cp -r /mnt/etc/nixos etc-nixos
echo gone > /mnt/etc/rollback-canary
echo kept > /mnt/persist/kept-canary
sync
umount -R /mnt
zpool export rpool
cryptsetup close cryptroot
"""
    result = run_in_vm(first, [disk], rwdir=rw, timeout=TIMEOUT, tpm=tpm)
    assert result.returncode == 0, result.describe()
    dump = (rw / "luks-dump.txt").read_text()
    assert "systemd-tpm2" in dump and "tpm2-hash-pcrs:   7" in dump.replace("\t", " ")
    key = recovery.read_text().strip()
    # Shown once: written to the file asked for, nowhere else.
    leaked = [
        str(path.relative_to(rw))
        for path in rw.rglob("*")
        if path.is_file()
        and path.name not in ("passphrase", "password", "recovery.key")
        and not path.name.endswith(".img")
        and path.parent.name != "tpm-state"
        and any(s.encode() in path.read_bytes() for s in (PASSPHRASE, PASSWORD, key))
    ]
    assert leaked == []
    plan = (rw / "plan.sh").read_text()
    assert "systemd-cryptenroll --unlock-key-file=/dev/fd/3 --tpm2-device=auto" in plan
    assert "$ADVISOR_RECOVERY_KEY" in plan

    config = rw / "etc-nixos" / "configuration.nix"
    nixeval.parse(config)
    cfg = nixeval.eval_config(config)
    assert cfg["boot"]["initrd"]["systemd"]["tpm2"]["enable"] is True
    device, options = container(cfg)
    assert options == "tpm2-device=auto,no-read-workqueue,no-write-workqueue" or (
        options == "tpm2-device=auto"
    )
    # headless: never fall back to asking, so a TPM refusal shows as a failed attach.
    headless = f"{options},headless=true"
    second = f"""zgenhostid -f {HOST_ID}
{attach(device, headless, "tpm_unlock")}
zpool import -d {shlex.quote(cfg["boot"]["zfs"]["devNodes"])} -N rpool
{rollback_command(cfg).strip()}
mount -t zfs {cfg["fileSystems"]["/"]["device"]} /mnt
if [ -e /mnt/etc/rollback-canary ]; then result rollback failed; else result rollback ok; fi
mkdir -p /mnt/persist && mount -t zfs {cfg["fileSystems"]["/persist"]["device"]} /mnt/persist
result persist "$(cat /mnt/persist/kept-canary)"
if $PYTHON -m advisor check --root /mnt --json > check-after.json; then result check 0;
else result check $?; fi
umount /mnt/persist /mnt
zpool export rpool
/lib/systemd/systemd-cryptsetup detach cryptroot
# A changed boot chain: PCR 7 no longer holds the value the key was sealed to.
tpm2_pcrextend 7:sha256={"ab" * 32}
set +e
{attach(device, headless, "tpm_after_extend")}
{with_agent("recovery.key", "asks.log", attach(device, options, "recovery_unlock"))}
result asked "$(head -c 200 asks.log)"
cryptsetup status cryptroot > /dev/null; result open $?
"""
    boot = run_in_vm(second, [disk], rwdir=rw, timeout=TIMEOUT, tpm=tpm)
    assert boot.returncode == 0, boot.describe()
    results = boot.results
    assert results["tpm_unlock"] == "0", boot.describe()  # no passphrase, no question
    assert results["rollback"] == "ok" and results["persist"] == "kept"
    report = json.loads((rw / "check-after.json").read_text())
    assert results["check"] == "0", [c for c in report["checks"] if c["status"] == "fail"]
    assert results["tpm_after_extend"] != "0"  # the TPM refuses a changed PCR 7
    assert results["recovery_unlock"] == "0", boot.describe()
    assert results["open"] == "0"
    assert results["asked"]  # the fallback asked, as the boot would, and the key answered


def test_tpm2_pin_is_typed_at_the_terminal_and_fido2_is_refused_without_one(
    vm_kernel: Path, vm_rwdir: Path, make_disk: MakeDisk
) -> None:
    rw = vm_rwdir
    write_secrets(rw)
    disk = make_disk("8G", serial="disk01")
    (rw / "pin").write_text(PIN + "\n")
    (rw / "wrong-pin").write_text("0000-wrong\n")
    # systemd-cryptenroll at the terminal: the disk passphrase, then the PIN twice.
    (rw / "pin.json").write_text(
        json.dumps(
            [
                ["Please enter current passphrase for disk", PASSPHRASE],
                ["Please enter TPM2 PIN:", PIN],
                ["Please enter TPM2 PIN (repeat):", PIN],
            ]
        )
    )
    recovery = rw / "recovery.key"
    pin_install = install_args(rw, "tpm2+pin", "--recovery-key-file", str(recovery))
    script = f"""{LIVE_HOSTID}
set +e
$PYTHON -m advisor install {install_args(rw, "fido2")} > fido2.out 2> fido2.err < /dev/null
result fido2 $?
blkid -p /dev/disk/by-id/{DISK} > /dev/null; result blank $?
{TRACE} $PYTHON {ANSWER_PROMPTS} pin.txt pin.json -- $PYTHON -m advisor install {pin_install}
result pin_install $?
set -e
cryptsetup luksDump /dev/disk/by-id/{DISK}-part2 > luks-dump.txt
cp -r /mnt/etc/nixos etc-nixos
sync; umount -R /mnt; zpool export rpool; cryptsetup close cryptroot
set +e
# As the boot opens it (crypttab: the configuration's tpm2-device=auto, checked below):
# the PIN asked through the password agent, a wrong one first.
{with_agent("wrong-pin", "wrong.log", attach(DATA, "tpm2-device=auto", "wrong_pin"))}
cryptsetup status cryptroot > /dev/null; result open_wrong $?
# The PIN typed is cached in root's keyring (AcceptCached): a new boot has none.
keyctl clear @u
{with_agent("pin", "right.log", attach(DATA, "tpm2-device=auto", "right_pin"))}
cryptsetup status cryptroot > /dev/null; result open_right $?
result asked "$(head -c 200 right.log)"
"""
    result = run_in_vm(script, [disk], rwdir=rw, timeout=TIMEOUT, tpm=rw / "tpm-state")
    assert result.returncode == 0, result.describe()
    results = result.results
    assert results["fido2"] == "2"
    assert "needs you at the terminal" in (rw / "fido2.err").read_text()
    assert results["blank"] == "2"  # refused before anything was written
    transcript = (rw / "pin.txt").read_text(errors="replace")
    assert results["pin_install"] == "0", transcript
    assert PIN not in transcript and PASSPHRASE not in transcript  # typed, not echoed
    dump = (rw / "luks-dump.txt").read_text()
    assert "systemd-tpm2" in dump and "tpm2-pin:         true" in dump.replace("\t", " ")
    execs = (rw / "execve.log").read_text()
    assert PIN not in execs and PASSPHRASE not in execs
    cfg = nixeval.eval_config(rw / "etc-nixos" / "configuration.nix")
    device, options = container(cfg)
    assert device.startswith("/dev/disk/by-partuuid/")  # the partition attached above
    assert options.split(",")[0] == "tpm2-device=auto"
    assert results["wrong_pin"] != "0" and results["open_wrong"] != "0", result.describe()
    assert results["right_pin"] == "0" and results["open_right"] == "0", result.describe()
    assert "PIN" in results["asked"]


def test_a_detached_header_carries_the_tpm2_token(
    vm_kernel: Path, vm_rwdir: Path, make_disk: MakeDisk
) -> None:
    """luks-detached: the token goes into the header on its own device, the header's
    backup is taken anew after the enrollment (the install's last check compares them),
    and systemd-cryptsetup opens the data from the header with the TPM2 alone."""
    rw = vm_rwdir
    write_secrets(rw)
    disks = [
        make_disk("8G", serial="disk01"),
        make_disk("64M", serial="usbkey"),
        make_disk("256M", serial="backup"),
    ]
    header = "/dev/disk/by-id/virtio-usbkey"
    detached = install_args(
        rw, "tpm2", "--recovery-key-file", str(rw / "recovery.key"),
        "--header", header, "--header-backup", "/tmp/backup/header.backup",
    ).replace("--backend luks", "--backend luks-detached")  # fmt: skip
    script = f"""{LIVE_HOSTID}
mkfs.ext4 -q /dev/disk/by-id/virtio-backup
mkdir -p /tmp/backup && mount /dev/disk/by-id/virtio-backup /tmp/backup
if $PYTHON -m advisor install {detached} > install.out 2> install.err
then result install ok; else result install failed; cat install.out install.err; exit 1; fi
cryptsetup luksDump {header} > header-dump.txt
cryptsetup luksDump /tmp/backup/header.backup > backup-dump.txt
cp -r /mnt/etc/nixos etc-nixos
sync; umount -R /mnt; zpool export rpool; cryptsetup close cryptroot
set +e
/lib/systemd/systemd-cryptsetup attach cryptroot {DATA} - \\
    header={header},tpm2-device=auto,headless=true < /dev/null; result tpm_unlock $?
cryptsetup status cryptroot > /dev/null; result open $?
"""
    result = run_in_vm(script, disks, rwdir=rw, timeout=TIMEOUT, tpm=rw / "tpm-state")
    assert result.returncode == 0, result.describe()
    assert result.results["install"] == "ok"
    # The install's last step, advisor check, found the backup equal to the header.
    assert "Checked" in (rw / "install.out").read_text()
    assert "systemd-tpm2" in (rw / "header-dump.txt").read_text()
    assert "systemd-tpm2" in (rw / "backup-dump.txt").read_text()  # the backup taken anew
    cfg = nixeval.eval_config(rw / "etc-nixos" / "configuration.nix")
    device = cfg["boot"]["initrd"]["luks"]["devices"]["cryptroot"]
    assert device["header"] == header
    assert device["crypttabExtraOpts"] == ["tpm2-device=auto"]
    assert result.results["tpm_unlock"] == "0", result.describe()
    assert result.results["open"] == "0"
