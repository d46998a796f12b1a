"""``advisor rekey`` on a real kernel, with real dm-crypt and OpenZFS, in one boot.

The three backends are installed side by side (each its own disk, pool, container name
and root), then each is rekeyed twice: once whole under strace, and once killed with
SIGKILL between adding the new passphrase and removing the old one (luks, zfs-native:
a wrapper around the real tool kills advisor as the add returns) or stopped there
(luks-detached, ``--stop-after``), then resumed. After each: the new passphrase opens
every disk and the header backup, the old one neither, and no passphrase is in any
command line, log, journal or file.
"""

from __future__ import annotations

import json
import shlex
import shutil
import time
from pathlib import Path

import pytest
from guest import HOST_ID, PASSPHRASE, TIMEOUT, TRACE, write_secrets
from harness import MakeDisk, run_in_vm

pytestmark = pytest.mark.vm

NEW1 = "canary-new-one-7a1b2"
NEW2 = "canary-new-two-4c9d3"
HEADER = "/dev/disk/by-id/virtio-usbkey"
BACKUP = "/tmp/backup/header.backup"
#: Each backend: its disk, pool, container name (LUKS) and root.
SYSTEMS = {
    "luks": ("virtio-diska", "poola", "crypta", "/mnta"),
    "zfs-native": ("virtio-diskb", "poolb", None, "/mntb"),
    "luks-detached": ("virtio-diskc", "poolc", "cryptc", "/mntc"),
}


def install(backend: str, rw: Path) -> str:
    disk, pool, name, root = SYSTEMS[backend]
    args = [
        "--backend", backend, "--disk", disk, "--root", root, "--insecure-fast-kdf",
        "--hostname", "vmtest", "--user", "alice", "--host-id", HOST_ID, "--pool", pool,
        "--yes-wipe", disk, "--passphrase-file", f"{rw}/passphrase",
        "--password-file", f"{rw}/password", "--state-dir", f"{rw}/install-{pool}",
        "--allow-bios",
    ]  # fmt: skip
    if name is not None:
        args += ["--luks-name", name]
    if backend == "luks-detached":
        args += ["--header", HEADER, "--header-backup", BACKUP]
    return f"$PYTHON -m advisor install {shlex.join(args)} > install-{pool}.out 2>&1\n"


def opens(backend: str, secret: str, key: str, *, backup: bool = False) -> str:
    """Record whether ``secret`` (a file in $RWDIR, its first line) opens the system's
    disk, or with ``backup`` its data with the header backup: ``result KEY 0`` if so."""
    disk, pool, _, _ = SYSTEMS[backend]
    data = f"/dev/disk/by-id/{disk}-part2"
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


def status(command: str, key: str) -> str:
    """``command``, its exit status recorded as ``KEY`` (the script goes on either way)."""
    return f"{command} && result {key} 0 || result {key} $?"


def rekey(backend: str, rw: Path, old: str, new: str, *extra: str, trace: str = "") -> str:
    root = SYSTEMS[backend][3]
    args = ["--root", root, "--passphrase-file", f"{rw}/{old}", "--new-passphrase-file",
            f"{rw}/{new}", *extra]  # fmt: skip
    prefix = TRACE.replace("execve.log", trace) + " " if trace else ""
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
        *(install(backend, rw) for backend in SYSTEMS),
        "result installs_seconds $(( $(date +%s) - start ))",
        # luks has its header on the disk: give its record a header backup, as
        # 'advisor config --header-backup' would have.
        "cryptsetup luksHeaderBackup /dev/disk/by-id/virtio-diska-part2"
        " --header-backup-file /tmp/backup/poola.backup",
        "for f in /mnta/etc/nixos/advisor.json /mnta/persist/etc/nixos/advisor.json; do",
        "  $PYTHON -c 'import json,sys; p=sys.argv[1]; d=json.load(open(p));"
        ' d["members"][0]["header_backup"]="/tmp/backup/poola.backup";'
        ' json.dump(d, open(p, "w"))\' $f',
        "done",
        "chmod +x bin/cryptsetup bin/zfs",
        "start=$(date +%s)",
    ]
    for backend in SYSTEMS:
        _, pool, _, root = SYSTEMS[backend]
        luks = backend != "zfs-native"
        recovery = (
            ["--recovery-key", "--recovery-key-file", f"{rw}/recovery-{pool}"] if luks else []
        )
        state = f"{root}/persist/var/lib/advisor/rekey"
        first = rekey(backend, rw, "passphrase", "new1", "--insecure-fast-kdf", "--json",
                      *recovery, trace=f"execve-{pool}.log")  # fmt: skip
        lines += [
            status(f"{first} > rekey1-{pool}.json 2> rekey1-{pool}.err", f"rekey1_{pool}"),
            opens(backend, "new1", f"new1_{pool}"),
            opens(backend, "passphrase", f"old_{pool}"),
        ]
        if luks:
            lines += [
                opens(backend, "new1", f"backup_new1_{pool}", backup=True),
                opens(backend, "passphrase", f"backup_old_{pool}", backup=True),
                opens(backend, f"recovery-{pool}", f"recovery_{pool}"),
            ]
        # The second rekey, interrupted between adding new2 and removing new1.
        second = rekey(backend, rw, "new1", "new2", "--insecure-fast-kdf")
        if backend == "luks-detached":
            lines.append(
                f"{second} --stop-after test-new > rekey2-{pool}.out 2>&1"
                f" && result stop_{pool} 0 || result stop_{pool} $?"
            )
        else:
            lines.append(
                f"touch kill-after; PATH=$RWDIR/bin:$PATH {second} > rekey2-{pool}.out 2>&1"
                f" && result stop_{pool} 0 || result stop_{pool} $?"
            )
        lines += [
            opens(backend, "new1", f"mid_new1_{pool}"),
            opens(backend, "new2", f"mid_new2_{pool}"),
            f"cp {state}/journal.jsonl journal-mid-{pool}.jsonl",
        ]
        resume = rekey(backend, rw, "new1", "new2", "--resume", "--json",
                       trace=f"execve-resume-{pool}.log")  # fmt: skip
        lines += [
            status(f"{resume} > resume-{pool}.json 2> resume-{pool}.err", f"resume_{pool}"),
            opens(backend, "new2", f"end_new2_{pool}"),
            opens(backend, "new1", f"end_new1_{pool}"),
            opens(backend, "passphrase", f"end_old_{pool}"),
        ]
        if luks:
            disk = SYSTEMS[backend][0]
            header = HEADER if backend == "luks-detached" else f"/dev/disk/by-id/{disk}-part2"
            lines += [
                opens(backend, "new2", f"end_backup_new2_{pool}", backup=True),
                opens(backend, "new1", f"end_backup_new1_{pool}", backup=True),
                opens(backend, f"recovery-{pool}", f"end_recovery_{pool}"),
                f'result slots_{pool} "$(cryptsetup luksDump {header} | grep -c ": luks2$")"',
            ]
        lines.append(f"cp -r {state} state-{pool}")
    lines.append("result rekeys_seconds $(( $(date +%s) - start ))")
    return "\n".join(lines) + "\n"


def test_rekey_every_backend(vm_kernel: Path, vm_rwdir: Path, make_disk: MakeDisk) -> None:
    rw = vm_rwdir
    write_secrets(rw)
    write_wrappers(rw)
    (rw / "new1").write_text(NEW1 + "\n")
    (rw / "new2").write_text(NEW2 + "\n")
    disks = [
        make_disk("8G", serial="diska"),
        make_disk("8G", serial="diskb"),
        make_disk("8G", serial="diskc"),
        make_disk("64M", serial="usbkey"),
        make_disk("256M", serial="backup"),
    ]
    begin = time.monotonic()
    result = run_in_vm(script(rw), disks, rwdir=rw, timeout=TIMEOUT * 2)
    seconds = time.monotonic() - begin
    print(f"rekey VM run: {seconds:.0f} s, {result.results}")
    assert result.returncode == 0, result.describe()
    r = result.results
    for backend, (_, pool, _, _) in SYSTEMS.items():
        err = (rw / f"rekey1-{pool}.err").read_text()
        assert r[f"rekey1_{pool}"] == "0", err
        report = json.loads((rw / f"rekey1-{pool}.json").read_text())
        assert report["completed"] and report["backend"] == backend
        # After the first rekey: the new passphrase opens, the old one does not.
        refused = "2" if backend != "zfs-native" else r[f"old_{pool}"]
        assert refused != "0"  # zfs exits non-zero for a wrong key; cryptsetup 2
        assert (r[f"new1_{pool}"], r[f"old_{pool}"]) == ("0", refused), backend
        # Killed (137) or stopped (0) between the add and the removal.
        assert r[f"stop_{pool}"] == ("0" if backend == "luks-detached" else "137"), backend
        mid = [
            json.loads(line) for line in (rw / f"journal-mid-{pool}.jsonl").read_text().splitlines()
        ]
        assert not any(e["event"] == "done" and "remove" in e.get("step", "") for e in mid)
        assert r[f"mid_new2_{pool}"] == "0", backend
        resumed = (rw / f"resume-{pool}.err").read_text()
        assert r[f"resume_{pool}"] == "0", resumed
        assert json.loads((rw / f"resume-{pool}.json").read_text())["completed"]
        assert (r[f"end_new2_{pool}"], r[f"end_new1_{pool}"], r[f"end_old_{pool}"]) == (
            "0",
            refused,
            refused,
        ), backend
        log = (rw / f"state-{pool}" / "rekey.log").read_text()
        if backend == "zfs-native":
            # change-key replaces the wrapping at once: killed as it returned, the new
            # passphrase opens already, and the resume finds it in place (its probe).
            assert r[f"mid_new1_{pool}"] == refused
            assert "probe change-key" in log and "-> exit 0" in log
            continue
        # LUKS: killed or stopped between add and remove, both passphrases work.
        assert r[f"mid_new1_{pool}"] == "0", backend
        assert (r[f"backup_new1_{pool}"], r[f"backup_old_{pool}"]) == ("0", "2"), backend
        assert r[f"recovery_{pool}"] == "0"
        assert (r[f"end_backup_new2_{pool}"], r[f"end_backup_new1_{pool}"]) == ("0", "2")
        assert r[f"end_recovery_{pool}"] == "0"
        assert r[f"slots_{pool}"] == "2"  # new2 and the recovery key: nothing left over
        if backend == "luks":
            # The kill came after luksAddKey returned, before the journal said so: the
            # resume's probe found the new key slot and did not add it again.
            assert "probe add-new" in log
    # No secret in any command line, log, journal or file (the secrets' own files aside).
    execs = "".join(path.read_text() for path in rw.glob("execve-*.log"))
    assert "luksAddKey" in execs and "change-key" in execs and "luksRemoveKey" in execs
    recovery = [
        (rw / f"recovery-{pool}").read_text().strip()
        for _, pool, name, _ in SYSTEMS.values()
        if name is not None
    ]
    canaries = [PASSPHRASE, NEW1, NEW2, *recovery]
    leaked = [
        str(path.relative_to(rw))
        for path in rw.rglob("*")
        if path.is_file()
        and path.name not in ("passphrase", "password", "new1", "new2")
        and not path.name.startswith("recovery-")
        and not path.name.endswith(".img")
        and any(canary.encode() in path.read_bytes() for canary in canaries)
    ]
    assert leaked == []
