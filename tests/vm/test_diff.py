"""``advisor diff`` on a real kernel: a fresh install, files written on its root, and
OpenZFS's own ``zfs diff`` read back as what the next boot will erase.

One boot: zfs-native is installed (cheap key derivation), then with the pool mounted
under /mnt, as the installer leaves it, files are written where impermanence keeps them
and where it does not; ``advisor diff --root /mnt`` must list exactly the second ones.
The table, ``--json`` without ``--all`` and an unmounted root are tested on the host
(tests/test_diff.py): each command costs seconds under emulation.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import nixeval
import pytest
from guest import HOST_ID, LIVE_HOSTID, TIMEOUT, write_secrets
from harness import MakeDisk, run_in_vm

pytestmark = pytest.mark.vm

#: Written on the root and not kept: the next boot erases them (the path as the booted
#: system has it: "/mnt" is the root).
ERASED = {
    "/etc/adjtime": "f",
    "/etc/ssh/ssh_host_test_key": "f",
    "/etc/my notes": "f",  # a space: libzfs writes it \0040
    "/var/lib/app/state.db": "f",
    "/var/lib/app/cache/blob": "f",
    "/srv/site/index.html": "f",
    "/root/.bash_history": "f",
    "/notes.txt": "f",
}
#: Written where the configuration keeps them (environment.persistence), or on a dataset
#: that is not rolled back.
KEPT = {
    "/etc/nixos/extra.nix": "f",
    "/etc/machine-id": "f",
    "/var/log/test.log": "f",
    "/var/lib/nixos/uid-map-test": "f",
    "/persist/kept": "f",
    "/home/alice/notes": "f",
}
#: What NixOS writes again at every boot.
NOISE = {"/etc/static": "/nix/store/0000-etc/etc", "/etc/hosts": "/etc/static/hosts", "/tmp/x": "f"}
EXPECTED_ENTRIES = {
    "directories": ["/srv/site", "/var/lib/app"],
    "files": ["/etc/adjtime", "/etc/my notes", "/etc/ssh/ssh_host_test_key", "/notes.txt",
              "/root/.bash_history"],
}  # fmt: skip


def write_files() -> str:
    lines = []
    for path in (*ERASED, *KEPT, "/tmp/x"):
        target = shlex.quote(f"/mnt{path}")
        lines.append(f"mkdir -p $(dirname {target}) && echo data > {target}")
    for path, target in NOISE.items():
        if target != "f":
            lines.append(f"ln -sfn {shlex.quote(target)} /mnt{path}")
    return "\n".join(lines)


def test_diff_lists_what_the_next_boot_erases(
    vm_kernel: Path, vm_rwdir: Path, make_disk: MakeDisk
) -> None:
    rw = vm_rwdir
    write_secrets(rw)
    install = shlex.join([
        "--backend", "zfs-native", "--disk", "virtio-disk01", "--root", "/mnt",
        "--insecure-fast-kdf", "--hostname", "vmtest", "--user", "alice", "--host-id", HOST_ID,
        "--yes-wipe", "virtio-disk01", "--passphrase-file", f"{rw}/passphrase",
        "--password-file", f"{rw}/password", "--state-dir", f"{rw}/state", "--allow-bios",
    ])  # fmt: skip
    script = f"""{LIVE_HOSTID}
$PYTHON -m advisor install {install} > install.out 2> install.err || {{ cat install.err; exit 1; }}
result installed "$SECONDS"
{write_files()}
sync
zfs diff -H -F rpool/local/root@blank rpool/local/root > raw.txt
$PYTHON -m advisor diff --root /mnt --json --all > diff.json
$PYTHON -m advisor diff --root /mnt --nix > fragment.nix
result diffed "$SECONDS"
umount -R /mnt
zpool export rpool
"""
    result = run_in_vm(script, [make_disk("8G", serial="disk01")], rwdir=rw, timeout=TIMEOUT)
    assert result.returncode == 0, result.describe()
    raw = (rw / "raw.txt").read_text()
    assert "/mnt/etc/my\\0040notes" in raw  # the escape the parser undoes

    data = json.loads((rw / "diff.json").read_text())
    erased = {p for g in data["groups"] if g["status"] == "erased" for p in g["examples"]}
    kept = {p for g in data["groups"] if g["status"] == "persisted" for p in g["examples"]}
    # Exactly what was written and is not kept, with their parents that are entries.
    assert erased == {*ERASED, "/var/lib/app", "/var/lib/app/cache", "/srv/site"}, raw
    assert not erased & {*KEPT, *NOISE}
    # On the root and kept: marked. On /persist and /home: not on the root at all.
    assert {"/etc/nixos/extra.nix", "/etc/machine-id", "/var/log/test.log",
            "/var/lib/nixos/uid-map-test"} <= kept  # fmt: skip
    assert not kept & {"/persist/kept", "/home/alice/notes"}
    assert data["counts"]["erased"] == len(erased)
    noise = {g["entry"] for g in data["groups"] if g["status"] == "noise"}
    assert {"/etc/static", "/etc/hosts", "/tmp", "/persist", "/boot", "/etc/ssh"} <= noise

    fragment = rw / "fragment.nix"
    nixeval.parse(fragment)
    module = nixeval.eval_expression(f"import {fragment} {{ }}")
    assert module["environment"]["persistence"]["/persist"] == EXPECTED_ENTRIES
