"""What the real-kernel tests share: the secrets, the live system's host id, the trace of
every command line, readers of the plan script, the install log and the evaluated
configuration, and the end state of an install with the next boot that follows it (what
``advisor install`` leaves and what disko's own scripts must leave too)."""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

PASSPHRASE = "canary-passphrase-93f1c"
PASSWORD = "canary-password-5d2e8"
TIMEOUT = 900
HOST_ID = "8f2a91c4"

# Every program the install starts is recorded with its full command line (strace follows
# the whole process tree): the secrets must never appear there (they go on stdin).
TRACE = "strace -f -qq -e trace=execve -s 4096 -o $RWDIR/execve.log"


def leaked_secrets(
    rwdir: Path,
    canaries: Sequence[str] = (PASSPHRASE, PASSWORD),
    *,
    allowed: Sequence[str] = ("passphrase", "password"),
    skip: Sequence[str] = (),
) -> list[str]:
    """The files below ``rwdir`` (the shared folder: logs, traces, generated files) that
    hold one of the ``canaries``, but for the secret files the test wrote itself
    (``allowed`` names), names starting with one of ``skip`` and disk images."""
    return [
        str(path.relative_to(rwdir))
        for path in rwdir.rglob("*")
        if path.is_file()
        and path.name not in allowed
        and not path.name.startswith(tuple(skip))
        and not path.name.endswith(".img")
        and any(canary.encode() in path.read_bytes() for canary in canaries)
    ]


def write_secrets(rwdir: Path) -> None:
    (rwdir / "passphrase").write_text(PASSPHRASE + "\n")
    (rwdir / "password").write_text(PASSWORD + "\n")


#: As on the NixOS installer, /etc/hostid is a link into a read-only store (the installer's
#: own id, 8425e349, in its little-endian bytes).
LIVE_HOSTID = """
mkdir -p /run/ro-store && mount -t tmpfs tmpfs /run/ro-store
printf '\\111\\343\\045\\204' > /run/ro-store/hostid
mount -o remount,ro /run/ro-store
ln -sfn /run/ro-store/hostid /etc/hostid
result live_hostid "$(hostid)"
"""


def rollback_command(cfg: Mapping[str, Any]) -> str:
    initrd = cfg["boot"]["initrd"]
    if initrd["systemd"]["enable"]:
        return str(initrd["systemd"]["services"]["rollback"]["script"])
    return str(initrd["postResumeCommands"]["content"])


def planned_commands(script: str) -> list[tuple[str, str]]:
    """(step id, command) of each step of a plan script, the secret's ``printf |`` removed."""
    lines = script.splitlines()
    steps = []
    for number, line in enumerate(lines):
        if match := re.match(r"# \[\d+/\d+\] ([\w-]+): ", line):
            command = re.sub(r"^printf '[^']*' \"\$ADVISOR_\w+\" \| ", "", lines[number + 1])
            steps.append((match[1], command))
    return steps


def logged_commands(log: str) -> list[tuple[str, str]]:
    """(step id, command) of each step the install log shows run, the stdin note removed."""
    pattern = re.compile(r"\S+ step \d+/\d+ ([\w-]+): (.*?)(?: \(stdin: <\w+>\))?$")
    return [(m[1], m[2]) for line in log.splitlines() if (m := pattern.match(line))]


def crypttab_options(device: dict[str, Any], header: str | None) -> str:
    """The options column luksroot.nix writes for a ``boot.initrd.luks.devices`` entry
    (its ``stage1Crypttab``), ``header`` being where the test finds the header."""
    options = list(device.get("crypttabExtraOpts", []))
    if device.get("allowDiscards"):
        options.append("discard")
    if device.get("bypassWorkqueues"):
        options += ["no-read-workqueue", "no-write-workqueue"]
    if header is not None:
        options.append(f"header={header}")
    return ",".join(options) or "-"


#: Where the header of luks-detached lives in the VM tests (a disk of its own: a USB key).
HEADER_DEVICE = "/dev/disk/by-id/virtio-usbkey"
#: The datasets of the reference layout, the blank snapshot included.
LAYOUT = (
    "rpool/local/root", "rpool/local/root@blank", "rpool/local/nix", "rpool/safe/home",
    "rpool/safe/persist",
)  # fmt: skip


def end_state_script(luks_header: str) -> str:
    """Guest commands run on a freshly installed system mounted at /mnt, the configuration in
    /mnt/etc/nixos and /mnt/persist/etc/nixos: record its end state in $RWDIR (read by
    :func:`assert_end_state`), leave the canaries the next boot looks for, unmount and
    export, then run ``advisor check --before-reboot`` (result ``check_before``, report
    check-before.json). ``luks_header`` is the device ``cryptsetup luksDump`` reads (any
    path for zfs-native: its dump is not looked at). LUKS stays open."""
    return f"""result hostid "$(hostid)"
result hostid_file "$(stat -c %F /etc/hostid)"
zpool status rpool > zpool-status.txt
zpool get -H -o property,value ashift,autotrim rpool > zpool-get.txt
zfs get -H -o name,property,value -r encryption,keystatus,mountpoint,canmount rpool > zfs-get.txt
zfs list -H -t all -o name > zfs-list.txt
findmnt -rn -o TARGET,FSTYPE,OPTIONS | awk '$1 ~ "^/mnt"' > mounts.txt
cryptsetup status cryptroot > luks-status.txt 2>&1 || true
cryptsetup luksDump {luks_header} > luks-dump.txt 2>&1 || true
rm -rf etc-nixos && cp -r /mnt/etc/nixos etc-nixos
ls /mnt/persist/etc/nixos > persist-config.txt
echo gone > /mnt/etc/rollback-canary
echo kept > /mnt/persist/kept-canary
sync
umount -R /mnt
zpool export rpool
# Just before the reboot: exported, and still what the configuration says (docs/check.md).
if $PYTHON -m advisor check --root /mnt --before-reboot --record etc-nixos/advisor.json \
  --json > check-before.json; then result check_before 0; else result check_before $?; fi
"""


#: The files ``advisor install`` writes to /etc/nixos and keeps in /persist/etc/nixos.
INSTALLED_CONFIG = ("advisor.json", "configuration.nix", "flake.nix")


def assert_end_state(
    rw: Path, backend: str, config_files: Sequence[str] = INSTALLED_CONFIG
) -> None:
    """What :func:`end_state_script` recorded in ``rw`` is the reference layout for
    ``backend``: the datasets and their blank snapshot, ashift 12, the encryption (ZFS's or
    LUKS2 with 4096-byte sectors), legacy mount points, the ESP mounted private, and the
    configuration (``config_files``, sorted) kept in /persist."""
    zfs_list = (rw / "zfs-list.txt").read_text().split()
    for dataset in LAYOUT:
        assert dataset in zfs_list
    assert "ashift\t12" in (rw / "zpool-get.txt").read_text()
    zfs_get = (rw / "zfs-get.txt").read_text()
    if backend == "zfs-native":
        assert "rpool\tencryption\taes-256-gcm" in zfs_get
        assert "rpool/safe/persist\tkeystatus\tavailable" in zfs_get
    else:
        assert "rpool\tencryption\toff" in zfs_get
        assert "is active and is in use" in (rw / "luks-status.txt").read_text()
        dump = (rw / "luks-dump.txt").read_text()
        assert "Version:       \t2" in dump and "sector: 4096 [bytes]" in dump
    assert "rpool/local/root\tmountpoint\tlegacy" in zfs_get
    mounts = (rw / "mounts.txt").read_text()
    assert "/mnt/boot vfat" in mounts
    assert "fmask=0077" in mounts or "umask=0077" in mounts
    assert (rw / "persist-config.txt").read_text().split() == list(config_files)


def second_boot_script(backend: str, cfg: Mapping[str, Any]) -> str:
    """Guest commands playing the next boot with only what the evaluated configuration
    ``cfg`` says: the host id, the unlock (LUKS, or ZFS's key from ./passphrase), the import
    from ``boot.zfs.devNodes``, the configuration's own rollback command; then ``advisor
    check`` on the rolled-back root (result ``check_after``, report check-after.json) and the
    results :func:`assert_second_boot` reads. Ends with the pool exported."""
    zfs = cfg["boot"]["zfs"]
    # The installed system's host id is networking.hostId (NixOS writes /etc/hostid from
    # it, into the initrd too): the pool is imported under it, as advisor check verifies.
    lines = [f"zgenhostid -f {shlex.quote(cfg['networking']['hostId'])}"]
    if backend != "zfs-native":
        device = cfg["boot"]["initrd"]["luks"]["devices"]["cryptroot"]
        header = ""
        if "header" in device:
            # A header file reaches the initrd through boot.initrd.secrets.
            secrets = cfg["boot"]["initrd"].get("secrets", {})
            header = f"--header {shlex.quote(secrets.get(device['header'], device['header']))}"
        lines.append(
            f"cryptsetup open {header} --key-file=- {shlex.quote(device['device'])} cryptroot"
            f" < <(head -c {len(PASSPHRASE)} passphrase)"
        )
    lines.append(f"zpool import -d {shlex.quote(zfs['devNodes'])} -N rpool")
    if backend == "zfs-native":
        for root in zfs["requestEncryptionCredentials"]:
            lines.append(f"zfs load-key {shlex.quote(root)} < passphrase")
    lines.append('result keystatus "$(zfs get -H -o value keystatus rpool)"')
    lines.append(rollback_command(cfg).strip())
    root = cfg["fileSystems"]["/"]
    persist = cfg["fileSystems"]["/persist"]
    esp = cfg["fileSystems"]["/boot"]
    lines += [
        f"mount -t {root['fsType']} {root['device']} /mnt",
        "if [ -e /mnt/etc/rollback-canary ]; then result rollback failed;"
        " else result rollback ok; fi",
        # After the reboot: advisor check on the rolled-back root, /persist mounted in it
        # (and the header's backup medium, which the check compares with the header).
        f"mkdir -p /mnt/persist && mount -t {persist['fsType']} {persist['device']} /mnt/persist",
        *(
            ["mkdir -p /tmp/backup", "mount -o ro /dev/disk/by-id/virtio-backup /tmp/backup"]
            if backend == "luks-detached"
            else []
        ),
        "if $PYTHON -m advisor check --root /mnt --json > check-after.json;"
        " then result check_after 0; else result check_after $?; fi",
        "umount /mnt/persist",
        *(["umount /tmp/backup"] if backend == "luks-detached" else []),
        "mkdir -p /tmp/persist /tmp/esp",
        f"mount -t {persist['fsType']} {persist['device']} /tmp/persist",
        "result persist $(cat /tmp/persist/kept-canary)",
        "result persisted_config $(ls /tmp/persist/etc/nixos/configuration.nix)",
        f"mount -t {esp['fsType']} -o {','.join(esp['options'])} {esp['device']} /tmp/esp",
        'result esp_mode "$(stat -c %a /tmp/esp)"',
        'result blank "$(zfs list -H -t snapshot -o name rpool/local/root@blank)"',
        "umount /tmp/esp /tmp/persist /mnt",
        "zpool export rpool",
    ]
    if backend == "luks-detached":
        data = cfg["boot"]["initrd"]["luks"]["devices"]["cryptroot"]["device"]
        lines += [
            "cryptsetup close cryptroot",
            f"if cryptsetup isLuks {data}; then result isluks yes; else result isluks no; fi",
            # blkid still shows the GPT entry, but must find no content signature.
            f'result blkid_type "$(blkid -p -o value -s TYPE {data} || true)"',
            f'result signatures "$(wipefs --no-act --noheadings {data} | wc -l)"',
        ]
    return "\n".join(lines) + "\n"


def check_statuses(rw: Path, stage: str) -> dict[str, str]:
    """Each check's status in the report ``advisor check`` left for ``stage``
    (``"check_before"`` or ``"check_after"``)."""
    report = json.loads((rw / f"{stage.replace('_', '-')}.json").read_text())
    return {check["id"]: check["status"] for check in report["checks"]}


def assert_second_boot(
    rw: Path, backend: str, before: Mapping[str, str], after: Mapping[str, str]
) -> None:
    """``advisor check`` passed before the reboot (``before``: the results of the run that
    ran :func:`end_state_script`) and after it (``after``: those of
    :func:`second_boot_script`), and the next boot unlocked, imported and rolled back the
    root to blank while /persist kept its files."""
    for stage, results in (("check_before", before), ("check_after", after)):
        failed = {k: v for k, v in check_statuses(rw, stage).items() if v == "fail"}
        assert results[stage] == "0", (stage, failed)
    statuses = check_statuses(rw, "check_before")
    assert statuses["pool"] == "pass" and statuses["hostid"] == "pass"
    assert statuses["blank"] == "skip"  # the pool exported: its snapshots are not listed
    statuses = check_statuses(rw, "check_after")
    assert statuses["root-dataset"] == "pass" and statuses["blank"] == "pass"
    assert after["keystatus"] in ("available", "-")  # "-": not encrypted by ZFS
    assert after["rollback"] == "ok"
    assert after["persist"] == "kept"
    assert after["persisted_config"] == "/tmp/persist/etc/nixos/configuration.nix"
    assert after["esp_mode"] == "700"
    assert after["blank"] == "rpool/local/root@blank"
    if backend == "luks-detached":
        assert after["isluks"] == "no"  # without its header, nothing says LUKS
        assert after["blkid_type"] == ""  # no LUKS, no file system: nothing to see
        assert after["signatures"] == "0"
