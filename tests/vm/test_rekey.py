"""``advisor rekey`` on a real kernel, with real dm-crypt and OpenZFS, in one boot.

The three backends side by side, each on its own disk with its own pool, container name
and root, encrypted as the install encrypts, with the layout record ``advisor config``
writes (tests/vm/test_install.py runs whole installs; three took over ten minutes here).
Each is rekeyed under strace and interrupted between adding the new passphrase and
removing the old one: killed with SIGKILL as the add returns (luks, zfs-native: a
wrapper around the real tool kills advisor) or stopped there (luks-detached,
``--stop-after``); then ``--resume`` finishes it. Both passphrases open each LUKS disk
in between; afterwards the new one opens every disk and the header backup, the old one
neither, the recovery key still opens, no key slot is left over, and no secret is in any
command line, log, journal or file.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from guest import HOST_ID, PASSPHRASE, TIMEOUT, TRACE, leaked_secrets, write_secrets
from harness import MakeDisk, run_in_vm

pytestmark = pytest.mark.vm

NEW1 = "canary-new-one-7a1b2"
NEW2 = "canary-new-two-4c9d3"
HEADER = "/dev/disk/by-id/virtio-usbkey"
BACKUP = "/tmp/backup/header.backup"
#: Each backend: its disk, pool, container name (LUKS) and root (a folder of $RWDIR).
SYSTEMS = {
    "luks": ("virtio-diska", "poola", "crypta", "roota"),
    "zfs-native": ("virtio-diskb", "poolb", None, "rootb"),
    "luks-detached": ("virtio-diskc", "poolc", "cryptc", "rootc"),
}


#: luksFormat as the install runs it (advisor_luks.format_options, --insecure-fast-kdf).
FORMAT = "cryptsetup luksFormat --type luks2 --batch-mode --sector-size 4096 --pbkdf pbkdf2"
FORMAT += " --pbkdf-force-iterations 1000 --key-file=-"
#: zpool create -O as the install runs it for zfs-native (pool_encryption, fast KDF).
ENCRYPTION = "-O encryption=aes-256-gcm -O keyformat=passphrase -O keylocation=prompt"
ENCRYPTION += " -O pbkdf2iters=100000 -O mountpoint=none"


def encrypt(backend: str) -> str:
    """The guest commands that encrypt the backend's disk as the install does (the whole
    disk: the partitions change nothing for a rekey) and back up its LUKS header."""
    disk, pool, _, _ = SYSTEMS[backend]
    data = f"/dev/disk/by-id/{disk}"
    old = 'printf %s "$(head -n1 passphrase)"'  # as the install feeds luksFormat
    if backend == "luks":
        return (
            f"{old} | {FORMAT} {data}\n"
            f"cryptsetup luksHeaderBackup {data} --header-backup-file /tmp/backup/{pool}.backup"
        )
    if backend == "luks-detached":
        return (
            f"{old} | {FORMAT} --header {HEADER} {data}\n"
            f"cryptsetup luksHeaderBackup {HEADER} --header-backup-file {BACKUP}"
        )
    return f"head -n1 passphrase | zpool create {ENCRYPTION} {pool} {data}"


def write_record(backend: str, rw: Path) -> None:
    """The backend's layout record, written by ``advisor config`` (how a layout gets one;
    the install runs it too, tests/vm/test_install.py installs whole) on the host: it
    touches no disk, and under emulation it took a minute each. The root is in ``rw``."""
    disk, pool, name, root = SYSTEMS[backend]
    args = [
        sys.executable, "-m", "advisor", "config", "--out", f"{rw}/{root}/etc/nixos",
        "--backend", backend, "--data-device", f"/dev/disk/by-id/{disk}",
        "--esp-device", "/dev/disk/by-partuuid/0b5e1f2c-3d4e-4f5a-8b6c-7d8e9f0a1b2c",
        "--user", "alice", "--password-file", f"{rw}/password", "--host-id", HOST_ID,
        "--pool", pool,
    ]  # fmt: skip
    if name is not None:
        backup = BACKUP if backend == "luks-detached" else f"/tmp/backup/{pool}.backup"
        args += ["--luks-name", name, "--header-backup", backup]
    if backend == "luks-detached":
        args += ["--header", HEADER]
    subprocess.run(args, check=True, capture_output=True)
    (rw / root / "persist").mkdir()


def status(command: str, key: str) -> str:
    """``command``, its exit status recorded as ``KEY`` (the script goes on either way)."""
    return f"{command} && result {key} 0 || result {key} $?"


def opens(backend: str, secret: str, key: str, *, backup: bool = False) -> str:
    """Record whether ``secret`` (a file in $RWDIR, its first line) opens the system's
    disk, or with ``backup`` its data with the header backup: ``result KEY 0`` if so,
    else the exit status (cryptsetup: 2 for "no key available with this passphrase")."""
    disk, pool, _, _ = SYSTEMS[backend]
    data = f"/dev/disk/by-id/{disk}"
    if backend == "zfs-native":
        check = f"zfs load-key -n {pool}"
    elif backup:
        backup_file = BACKUP if backend == "luks-detached" else f"/tmp/backup/{pool}.backup"
        check = f"cryptsetup open --test-passphrase --header {backup_file} {data}"
    elif backend == "luks-detached":
        check = f"cryptsetup open --test-passphrase --header {HEADER} {data}"
    else:
        check = f"cryptsetup open --test-passphrase {data}"
    return status(f"head -n1 {secret} | {check} >/dev/null 2>&1", key)


def rekey(backend: str, rw: Path, old: str, new: str, *extra: str, trace: str = "") -> str:
    root = f"{rw}/{SYSTEMS[backend][3]}"
    args = ["--root", root, "--passphrase-file", f"{rw}/{old}", "--new-passphrase-file",
            f"{rw}/{new}", *extra]  # fmt: skip
    # --seccomp-bpf: only execve stops the traced processes (strace stopping at every
    # system call made each cryptsetup take 30 s under emulation).
    traced = TRACE.replace("strace ", "strace --seccomp-bpf ", 1).replace("execve.log", trace)
    prefix = f"{traced} " if trace else ""
    return f"{prefix}$PYTHON -m advisor rekey {shlex.join(args)}"


#: Wrappers in front of the real tools: when $RWDIR/kill-after exists, they run the tool,
#: then kill advisor (their parent) with SIGKILL as the add (or change-key) returns.
WRAPPER = """#!/bin/sh
"{real}" "$@"; status=$?
if [ "$1" = "{verb}" ] && [ -e "$RWDIR/kill-after" ]; then
  rm -f "$RWDIR/kill-after"; kill -9 "$PPID"; sleep 2
fi
exit $status
"""


def write_wrappers(rw: Path) -> None:
    """The wrappers of :data:`WRAPPER` in ``rw/bin``, around the real tools (the guest
    runs the host's userland: the same paths)."""
    (rw / "bin").mkdir()
    for tool, verb in (("cryptsetup", "luksAddKey"), ("zfs", "change-key")):
        real = shutil.which(tool, path="/usr/sbin:/sbin:/usr/bin:/bin")
        assert real is not None, tool
        (rw / "bin" / tool).write_text(WRAPPER.replace("{real}", real).replace("{verb}", verb))


def script(rw: Path) -> str:
    lines = [
        "mkfs.ext4 -q /dev/disk/by-id/virtio-backup",
        "mkdir -p /tmp/backup && mount /dev/disk/by-id/virtio-backup /tmp/backup",
        "start=$(date +%s)",
        *(encrypt(backend) for backend in SYSTEMS),
        "result setup_seconds $(( $(date +%s) - start ))",
        "chmod +x bin/cryptsetup bin/zfs",
        "start=$(date +%s)",
    ]
    for backend in SYSTEMS:
        _, pool, _, root = SYSTEMS[backend]
        luks = backend != "zfs-native"
        recovery = (
            ["--recovery-key", "--recovery-key-file", f"{rw}/recovery-{pool}"] if luks else []
        )
        state = f"{rw}/{root}/persist/var/lib/advisor/rekey"
        # The rekey, killed with SIGKILL as the first add returns (luks, zfs-native) or
        # stopped once the recovery key is added (luks-detached): between add and remove.
        first = rekey(backend, rw, "passphrase", "new1", "--insecure-fast-kdf", *recovery,
                      trace=f"execve-{pool}.log")  # fmt: skip
        if backend == "luks-detached":
            first += " --stop-after add-recovery"
        else:
            first = f"touch kill-after; PATH=$RWDIR/bin:$PATH {first}"
        lines += [
            status(f"{first} > rekey-{pool}.out 2>&1", f"stop_{pool}"),
            opens(backend, "passphrase", f"mid_old_{pool}"),
            opens(backend, "new1", f"mid_new1_{pool}"),
            f"cp {state}/journal.jsonl journal-mid-{pool}.jsonl",
        ]
        resume = rekey(backend, rw, "passphrase", "new1", "--resume", "--json",
                       *recovery[1:], trace=f"execve-resume-{pool}.log")  # fmt: skip
        lines += [
            status(f"{resume} > resume-{pool}.json 2> resume-{pool}.err", f"resume_{pool}"),
            opens(backend, "new1", f"new1_{pool}"),
            opens(backend, "passphrase", f"old_{pool}"),
        ]
        if luks:
            lines += [
                opens(backend, "new1", f"backup_new1_{pool}", backup=True),
                opens(backend, "passphrase", f"backup_old_{pool}", backup=True),
                opens(backend, f"recovery-{pool}", f"recovery_{pool}"),
            ]
        if backend == "luks":
            # Once more, whole: a finished rekey's state gives way to the next one.
            again = rekey(backend, rw, "new1", "new2", "--insecure-fast-kdf", "--json")
            lines += [
                status(f"{again} > again-{pool}.json 2> again-{pool}.err", f"again_{pool}"),
                opens(backend, "new2", f"again_new2_{pool}"),
                opens(backend, "new1", f"again_new1_{pool}"),
                opens(backend, "new2", f"again_backup_new2_{pool}", backup=True),
                opens(backend, "new1", f"again_backup_new1_{pool}", backup=True),
                opens(backend, f"recovery-{pool}", f"again_recovery_{pool}"),
            ]
        if luks:
            header = (
                HEADER if backend == "luks-detached" else f"/dev/disk/by-id/{SYSTEMS[backend][0]}"
            )
            lines.append(
                f'result slots_{pool} "$(cryptsetup luksDump {header} | grep -c ": luks2$")"'
            )
    lines.append("result rekeys_seconds $(( $(date +%s) - start ))")
    return "\n".join(lines) + "\n"


def test_rekey_every_backend(vm_kernel: Path, vm_rwdir: Path, make_disk: MakeDisk) -> None:
    rw = vm_rwdir
    write_secrets(rw)
    write_wrappers(rw)
    for backend in SYSTEMS:
        write_record(backend, rw)
    (rw / "new1").write_text(NEW1 + "\n")
    (rw / "new2").write_text(NEW2 + "\n")
    disks = [
        make_disk("1G", serial="diska"),
        make_disk("1G", serial="diskb"),
        make_disk("1G", serial="diskc"),
        make_disk("64M", serial="usbkey"),
        make_disk("256M", serial="backup"),
    ]
    begin = time.monotonic()
    result = run_in_vm(script(rw), disks, rwdir=rw, timeout=TIMEOUT)
    seconds = time.monotonic() - begin
    print(f"rekey VM run: {seconds:.0f} s, {result.results}")
    assert result.returncode == 0, result.describe()
    r = result.results
    for backend, (_, pool, name, root) in SYSTEMS.items():
        luks = name is not None
        out = (rw / f"rekey-{pool}.out").read_text()
        # Killed (137) or stopped (0) between the add and the removal.
        assert r[f"stop_{pool}"] == ("0" if backend == "luks-detached" else "137"), out
        mid = [
            json.loads(line) for line in (rw / f"journal-mid-{pool}.jsonl").read_text().splitlines()
        ]
        assert not any(e.get("step") == "remove-old" for e in mid), backend
        assert r[f"mid_new1_{pool}"] == "0", backend
        resumed = (rw / f"resume-{pool}.err").read_text()
        assert r[f"resume_{pool}"] == "0", resumed
        report = json.loads((rw / f"resume-{pool}.json").read_text())
        assert report["completed"] and report["backend"] == backend
        assert report["recovery_key_added"] is luks
        # Afterwards: the new passphrase opens, the old one does not (cryptsetup: 2, no
        # key available with this passphrase; zfs: an error).
        assert r[f"new1_{pool}"] == "0", backend
        assert r[f"old_{pool}"] == "2" if luks else r[f"old_{pool}"] != "0", backend
        log = (rw / root / "persist/var/lib/advisor/rekey/rekey.log").read_text()
        if not luks:
            # change-key replaces the wrapping at once: killed as it returned, only the
            # new passphrase opens, and the resume's probe finds it in place.
            assert r[f"mid_old_{pool}"] != "0"
            assert re.search(r"probe change-key: .* -> exit 0", log), log
            continue
        # LUKS: killed or stopped between add and remove, both passphrases open.
        assert r[f"mid_old_{pool}"] == "0", backend
        # The header backup was taken anew: it opens with the new passphrase only.
        assert (r[f"backup_new1_{pool}"], r[f"backup_old_{pool}"]) == ("0", "2"), backend
        assert r[f"recovery_{pool}"] == "0", backend
        assert r[f"slots_{pool}"] == "2", backend  # the new passphrase and the recovery key
        if backend == "luks":
            # Killed after luksAddKey returned, before the journal said so: the resume's
            # probe found the new key slot and did not add it again.
            assert re.search(r"probe add-new: .* -> exit 0", log), log
            again = json.loads((rw / f"again-{pool}.json").read_text())
            assert r[f"again_{pool}"] == "0" and again["completed"]
            assert (r[f"again_new2_{pool}"], r[f"again_new1_{pool}"]) == ("0", "2")
            assert (r[f"again_backup_new2_{pool}"], r[f"again_backup_new1_{pool}"]) == ("0", "2")
            assert r[f"again_recovery_{pool}"] == "0"
    # No secret in any command line, log, journal or file (the secrets' own files aside).
    execs = "".join(path.read_text() for path in rw.glob("execve-*.log"))
    for command in ("luksAddKey", "luksRemoveKey", "change-key", "refresh-header-backup"):
        assert command in execs, command
    recovery = [
        (rw / f"recovery-{pool}").read_text().strip()
        for _, pool, name, _ in SYSTEMS.values()
        if name is not None
    ]
    canaries = [PASSPHRASE, NEW1, NEW2, *recovery]
    allowed = ("passphrase", "password", "new1", "new2")
    assert leaked_secrets(rw, canaries, allowed=allowed, skip=("recovery-",)) == []
