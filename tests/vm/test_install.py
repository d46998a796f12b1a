"""``advisor install`` on a real kernel, with real dm-crypt and OpenZFS, in a throw-away VM.

Nothing on the path from the CLI to the kernel is replaced: the guest runs the project's
own interpreter (``$PYTHON``) against virtio disks. Each backend is installed in one boot,
then a second boot on the same disk image plays the next boot of the installed system:
it unlocks and imports with exactly the devices, header and commands the generated
configuration names, runs the configuration's own rollback command, and checks that the
root came back blank while /persist kept its files.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import nixeval
import pytest
from guest import (
    HEADER_DEVICE,
    HOST_ID,
    LIVE_HOSTID,
    PASSPHRASE,
    PASSWORD,
    TIMEOUT,
    TRACE,
    assert_end_state,
    assert_second_boot,
    end_state_script,
    leaked_secrets,
    logged_commands,
    planned_commands,
    second_boot_script,
    write_secrets,
)
from harness import Disk, MakeDisk, run_in_vm

pytestmark = pytest.mark.vm


def run_args(disk: str, rwdir: Path) -> list[str]:
    """The options of a run that are not part of the plan: confirmation, secrets, state."""
    return [
        "--yes-wipe", disk, "--passphrase-file", f"{rwdir}/passphrase",
        "--password-file", f"{rwdir}/password", "--state-dir", f"{rwdir}/state", "--allow-bios",
    ]  # fmt: skip


def spec_args(backend: str, disk: str) -> list[str]:
    """The options that decide the plan."""
    args = [
        "--backend", backend, "--disk", disk, "--root", "/mnt", "--insecure-fast-kdf",
        "--hostname", "vmtest", "--user", "alice", "--host-id", HOST_ID,
    ]  # fmt: skip
    if backend == "luks-detached":
        # The header on a disk of its own (a USB key), its backup on yet another medium.
        args += ["--header", HEADER_DEVICE, "--header-backup", "/tmp/backup/header.backup"]
    return args


def install_args(backend: str, disk: str, rwdir: Path, *extra: str) -> str:
    return shlex.join([*spec_args(backend, disk), *run_args(disk, rwdir), *extra])


#: What a restart undoes, played in the guest: mounts, the pool import, LUKS, the host id.
RESTART = """umount -R /mnt 2>/dev/null || true
zpool export rpool
cryptsetup close cryptroot 2>/dev/null || true
ln -sfn /run/ro-store/hostid /etc/hostid
"""
BACKUP_MEDIUM = """
mkfs.ext4 -q /dev/disk/by-id/virtio-backup
mkdir -p /tmp/backup
mount /dev/disk/by-id/virtio-backup /tmp/backup
"""


def disks_for(backend: str, make_disk: MakeDisk) -> list[Disk]:
    disks = [make_disk("8G", serial="disk01")]
    if backend == "luks-detached":
        disks += [make_disk("64M", serial="usbkey"), make_disk("256M", serial="backup")]
    return disks


def phase_one(backend: str, rwdir: Path) -> str:
    """Save a plan, install it, record the result, leave canaries, shut everything down."""
    plan = shlex.join(spec_args(backend, "virtio-disk01"))
    run = shlex.join(["--plan", "plan.json", *run_args("virtio-disk01", rwdir)])
    close = "cryptsetup close cryptroot" if backend != "zfs-native" else "true"
    luks_header = "/dev/disk/by-id/virtio-disk01-part2"
    if backend == "luks-detached":
        luks_header = HEADER_DEVICE
    header = ""
    if backend == "luks-detached":
        header = BACKUP_MEDIUM
        close += f"""
cp /tmp/backup/header.backup header.backup
head -c 16777216 {HEADER_DEVICE} > header.head
result header_isluks $(cryptsetup isLuks {HEADER_DEVICE} && echo yes)"""
    return f"""{header}{LIVE_HOSTID}
$PYTHON -m advisor disks --json > disks.json
$PYTHON -m advisor plan {plan} --save plan.json > plan.sh
if {TRACE} $PYTHON -m advisor install {run} > install.out 2> install.err; then
  result install ok
else result install failed; cat install.out install.err; exit 1; fi
{end_state_script(luks_header)}{close}
result phase1 ok
"""


@pytest.mark.parametrize("backend", ["luks", "zfs-native", "luks-detached"])
def test_install_then_boot(
    backend: str, vm_kernel: Path, vm_rwdir: Path, make_disk: MakeDisk, tmp_path: Path
) -> None:
    rw = vm_rwdir
    write_secrets(rw)
    disks = disks_for(backend, make_disk)
    first = run_in_vm(phase_one(backend, rw), disks, rwdir=rw, timeout=TIMEOUT)
    assert first.returncode == 0, first.describe()
    assert first.results["install"] == "ok"

    # What the installer reports and leaves behind.
    summary = (rw / "install.out").read_text()
    assert f"Installed {backend}" in summary and "advisor finish --root /mnt" in summary
    # The live system's host id was a link into a read-only store: it was replaced.
    assert first.results["live_hostid"] == "8425e349"
    assert first.results["hostid"] == HOST_ID
    assert first.results["hostid_file"] == "regular file"
    # The reviewed plan is the one that ran: the same commands, GUIDs and host id included.
    planned = planned_commands((rw / "plan.sh").read_text())
    assert planned and planned == logged_commands((rw / "state" / "install.log").read_text())
    assert_end_state(rw, backend)

    # Secrets: on stdin only. The trace holds every command line of the run.
    execs = (rw / "execve.log").read_text()
    for command in ("wipefs", "sgdisk", "zgenhostid", "zpool", "mkpasswd", 'advisor", "config'):
        assert command in execs, command
    assert leaked_secrets(rw) == []

    # The generated configuration, as NixOS will read it.
    config = rw / "etc-nixos" / "configuration.nix"
    nixeval.parse(config)
    cfg = nixeval.eval_config(config)
    assert cfg["networking"]["hostId"] == HOST_ID

    if backend == "luks-detached":
        assert first.results["header_isluks"] == "yes"
        backup = (rw / "header.backup").read_bytes()
        assert backup and (rw / "header.head").read_bytes()[: len(backup)] == backup
    # The next boot: the installed disk (and the header's); the backup medium is there for
    # advisor check only, the unlock does not use it.
    second = run_in_vm(second_boot_script(backend, cfg), disks, rwdir=rw, timeout=TIMEOUT)
    assert second.returncode == 0, second.describe()
    assert_second_boot(rw, backend, first.results, second.results)


def summary_script(root: str = "/mnt") -> str:
    """A description of the end state that does not depend on random ids or times."""
    return f"""
{{
  zfs list -H -t all -o name,mountpoint,canmount,compression | sort
  zpool get -H -o property,value ashift,autotrim rpool
  zfs get -H -o property,value acltype,xattr,dnodesize,normalization rpool
  findmnt -rn -o TARGET,FSTYPE | awk '$1 ~ "^{root}"' | sort
  ls {root}/etc/nixos {root}/persist/etc/nixos
  cryptsetup status cryptroot 2>/dev/null | grep -E 'type|cipher|sector size' || true
}}"""


@pytest.mark.parametrize("backend", ["luks", "zfs-native"])
def test_interrupted_installs_resume_to_the_same_end(
    backend: str, vm_kernel: Path, vm_rwdir: Path, make_disk: MakeDisk
) -> None:
    """Stopped after step k for several k, twice with a restart in between (the pool
    exported, LUKS closed, the live host id back), the install resumes to the same end."""
    rw = vm_rwdir
    write_secrets(rw)
    disks = [make_disk("8G", serial="disk01"), make_disk("8G", serial="disk02")]
    whole = install_args(backend, "virtio-disk01", rw)
    opened = "luks-open" if backend == "luks" else "hostid"
    stops = ["partition", opened, "snapshot-blank", "mount-esp", "write-config"]
    restarts = {"snapshot-blank", "mount-esp"}
    parts = install_args(backend, "virtio-disk02", rw).replace(f"{rw}/state", f"{rw}/state2")
    resume = f"install --resume --state-dir {rw}/state2 --passphrase-file {rw}/passphrase"
    resume += f" --password-file {rw}/password --allow-bios"
    # Another root: /mnt is the first install's, and the root is checked first.
    taken = shlex.join(spec_args(backend, "virtio-disk02")).replace("--root /mnt", "--root /mnt2")
    script = f"""{LIVE_HOSTID}
$PYTHON -m advisor install {whole} > whole.out
{summary_script()} > whole.txt
if $PYTHON -m advisor plan {taken} > taken.out 2>&1; then result taken no; else result taken yes; fi
umount -R /mnt; zpool export rpool; cryptsetup close cryptroot 2>/dev/null || true
$PYTHON -m advisor install {parts} --stop-after {stops[0]} > stop-0.out
"""
    for number, stop in enumerate(stops[1:], start=1):
        # Progress goes to stderr.
        script += f"$PYTHON -m advisor {resume} --stop-after {stop} > stop-{number}.out 2>&1\n"
        if stop in restarts:
            script += RESTART
    script += f"$PYTHON -m advisor {resume} > resumed.out\n{summary_script()} > resumed.txt\n"
    script += 'result hostid "$(hostid)"\n'
    result = run_in_vm(script, disks, rwdir=rw, timeout=TIMEOUT * 2)
    assert result.returncode == 0, result.describe()
    # While the first install's pool is imported, a second one may not take its name.
    assert result.results["taken"] == "yes"
    assert (
        "a pool named rpool is imported on this machine already" in (rw / "taken.out").read_text()
    )
    for number, stop in enumerate(stops):
        assert f"Stopped after step {stop}" in (rw / f"stop-{number}.out").read_text()
    # After each restart the resume brought back what the restart undid.
    for out in ("stop-3.out", "stop-4.out"):
        assert "brought back" in (rw / out).read_text(), out
    assert f"Installed {backend}" in (rw / "resumed.out").read_text()
    assert result.results["hostid"] == HOST_ID
    whole_state = (rw / "whole.txt").read_text()
    assert "rpool/local/root@blank" in whole_state
    assert (rw / "resumed.txt").read_text() == whole_state
    events = [
        json.loads(line) for line in (rw / "state2" / "journal.jsonl").read_text().splitlines()
    ]
    started = [e["step"] for e in events if e["event"] == "started"]
    assert len(started) == len(set(started))  # no step ran twice
    restored = {e["step"] for e in events if e["event"] == "restored"}
    assert {"hostid", "create-pool", "mount-root"} <= restored


def test_refusals_and_warnings(vm_kernel: Path, vm_rwdir: Path, make_disk: MakeDisk) -> None:
    rw = vm_rwdir
    write_secrets(rw)
    disks = [
        make_disk("8G", serial="disk01"),
        make_disk("8G", serial="disk02"),
        make_disk("8G"),  # no serial: no /dev/disk/by-id link
    ]
    wrong = install_args("luks", "virtio-disk01", rw).replace(
        "--yes-wipe virtio-disk01", "--yes-wipe virtio-disk02"
    )
    mounted = install_args("luks", "virtio-disk02", rw)
    script = f"""
mkfs.ext4 -q /dev/disk/by-id/virtio-disk02
mkdir -p /tmp/m && mount /dev/disk/by-id/virtio-disk02 /tmp/m
set +e
$PYTHON -m advisor install {mounted} > mounted.out 2> mounted.err; result mounted $?
$PYTHON -m advisor install {wrong} > wrong.out 2> wrong.err; result wrong $?
set -e
$PYTHON -m advisor disks --json > disks.json
result table "$(blkid -p /dev/disk/by-id/virtio-disk01 > /dev/null; echo $?)"
"""
    result = run_in_vm(script, disks, rwdir=rw, timeout=TIMEOUT)
    assert result.returncode == 0, result.describe()
    assert result.results["mounted"] == "2"
    assert "mounted at /tmp/m" in (rw / "mounted.err").read_text()
    assert result.results["wrong"] == "2"
    assert "does not name a target disk" in (rw / "wrong.err").read_text()
    assert result.results["table"] == "2"  # the refused installs wrote nothing
    listing = json.loads((rw / "disks.json").read_text())
    by_name = {d["name"]: d for d in listing["disks"]}
    assert by_name["vda"]["usable"] and by_name["vda"]["disk_id"] == "virtio-disk01"
    assert not by_name["vdb"]["usable"]
    assert any("serial" in w for w in by_name["vdc"]["warnings"])
    assert not by_name["vdc"]["by_id"]


def test_a_disk_whose_identity_changed_is_not_touched(
    vm_kernel: Path, vm_rwdir: Path, make_disk: MakeDisk, tmp_path: Path
) -> None:
    rw = vm_rwdir
    write_secrets(rw)
    first = make_disk("8G", serial="disk01")
    args = install_args("luks", "virtio-disk01", rw)
    stop = run_in_vm(
        f"$PYTHON -m advisor install {args} --stop-after wipe-disk > stop.out", [first], rwdir=rw,
        timeout=TIMEOUT,
    )  # fmt: skip
    assert stop.returncode == 0, stop.describe()
    # Another disk, same serial, other size, where the first one was.
    other = make_disk("9G", serial="disk01")
    resume = f"install --resume --state-dir {rw}/state --passphrase-file {rw}/passphrase"
    resume += f" --password-file {rw}/password --allow-bios"
    script = f"""
set +e
$PYTHON -m advisor {resume} > resume.out 2> resume.err; result resume $?
set -e
result table "$(blkid -p /dev/disk/by-id/virtio-disk01 > /dev/null; echo $?)"
"""
    result = run_in_vm(script, [other], rwdir=rw, timeout=TIMEOUT)
    assert result.returncode == 0, result.describe()
    assert result.results["resume"] == "1"
    assert "not the disk that was confirmed" in (rw / "resume.err").read_text()
    assert result.results["table"] == "2"  # still blank: nothing was partitioned


ANSWER_PROMPTS = Path(__file__).parent.parent / "answer_prompts.py"


def test_prompts_at_a_terminal(vm_kernel: Path, vm_rwdir: Path, make_disk: MakeDisk) -> None:
    """Confirmation by typing the disk id, and the secrets asked twice, on a real terminal."""
    rw = vm_rwdir
    disk = make_disk("8G", serial="disk01")
    secrets = [
        ["Disk passphrase: ", PASSPHRASE], ["Disk passphrase again: ", PASSPHRASE],
        ["User password: ", PASSWORD], ["User password again: ", PASSWORD],
    ]  # fmt: skip
    confirm = "Type its id to go on: "
    answers = {
        "wrong-id": [[confirm, "virtio-disk02"]],
        "differ": [[confirm, "virtio-disk01"], secrets[0], [secrets[1][0], PASSPHRASE + "x"]],
        "typed": [[confirm, "virtio-disk01"], *secrets],
    }
    for name, pairs in answers.items():
        (rw / f"{name}.json").write_text(json.dumps(pairs))
    options = shlex.join([*spec_args("luks", "virtio-disk01"), "--allow-bios"])

    def on_terminal(name: str, *extra: str) -> str:
        state = shlex.join(["--state-dir", f"{rw}/state-{name}", *extra])
        return (
            f"$PYTHON {ANSWER_PROMPTS} {name}.txt {name}.json -- "
            f"$PYTHON -m advisor install {options} {state}; result {name} $?"
        )

    script = f"""
set +e
{on_terminal("wrong-id")}
{on_terminal("differ")}
result blank "$(blkid -p /dev/disk/by-id/virtio-disk01 > /dev/null; echo $?)"
{on_terminal("typed", "--stop-after", "luks-open")}
printf %s {shlex.quote(PASSPHRASE)} | cryptsetup open --test-passphrase --key-file=- \\
    /dev/disk/by-id/virtio-disk01-part2; result unlocks $?
"""
    result = run_in_vm(script, [disk], rwdir=rw, timeout=TIMEOUT)
    assert result.returncode == 0, result.describe()
    assert result.results["wrong-id"] == "2"
    assert "the typed id does not match the disk" in (rw / "wrong-id.txt").read_text()
    assert result.results["differ"] == "2"
    assert "the two disk passphrases differ" in (rw / "differ.txt").read_text()
    assert result.results["blank"] == "2"  # neither refused install wrote anything
    assert result.results["typed"] == "0", (rw / "typed.txt").read_text()
    assert result.results["unlocks"] == "0"  # the passphrase typed is the one LUKS took
    for name in answers:
        shown = (rw / f"{name}.txt").read_text()
        assert PASSPHRASE not in shown and PASSWORD not in shown  # no echo
