"""The checks of ``advisor check``: pure functions from :class:`~.facts.Facts` to
:class:`~.facts.CheckResult`, each saying what it looked at and how to fix a failure.

The configuration's options are read as Nix evaluated them (``facts.config``); where it
could not be evaluated, a check that needs it says so (skipped) and the checks that the
layout record can answer fall back on the record. docs/check.md lists every check, with
the NixOS option declarations they rely on.
"""

from __future__ import annotations

import posixpath
import re
import shlex
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from advisor.datasets import PERSISTED_FILES
from advisor.models import RemoteUnlock

from .facts import CheckResult, Facts, FileFact, HeaderFact, Stage, Status, TokenFact

#: The mkAfter priority (nixpkgs lib/modules.nix: mkAfter = mkOrder 1500): text in
#: postResumeCommands at this order comes after the pool import's (the default, 1000).
AFTER_ORDER = 1500
#: Where the configuration must keep what survives a boot.
PERSIST = "/persist"
#: boot.initrd.luks.devices (nixpkgs luksroot.nix), the containers the initrd opens. Spelt
#: as one dotted string: the core keeps no built-in backend's name as a string of its own.
LUKS_DEVICES: tuple[str, ...] = tuple("boot.initrd.luks.devices".split("."))  # noqa: SIM905


def get(config: Mapping[str, Any] | None, *path: str) -> Any:
    """The option at ``path`` in the evaluated ``config``, or ``None`` where it is unset."""
    node: Any = config
    for key in path:
        node = content(node)  # a set given through lib.mkForce and the like
        if not isinstance(node, Mapping) or key not in node:
            return None
        node = node[key]
    return node


def content(value: Any) -> Any:
    """An option's value without the ``lib.mkAfter``/``mkDefault`` wrapping the harness
    shows (``{"_order": 1500, "content": ...}``)."""
    while (
        isinstance(value, Mapping)
        and "content" in value
        and ("_order" in value or "_override" in value)
    ):
        value = value["content"]
    return value


def _result(
    check_id: str,
    title: str,
    status: Status,
    detail: str,
    looked_at: Sequence[str] = (),
    fix: str = "",
) -> CheckResult:
    return CheckResult(check_id, title, status, detail, tuple(looked_at), fix)


def _not_evaluated(check_id: str, title: str, facts: Facts) -> CheckResult:
    return _result(
        check_id,
        title,
        Status.SKIP,
        f"the configuration could not be evaluated ({facts.config_problem})",
        (facts.configuration,),
    )


def _pool_not_imported(check_id: str, title: str, facts: Facts, what: str) -> CheckResult:
    pool = facts.layout.settings.pool
    return _result(
        check_id,
        title,
        Status.SKIP,
        f"the pool {pool} is not imported here (exported for the reboot?): {what} (advisor "
        "install checks it while the pool is imported)",
        (f"zpool list {pool}",),
    )


# -- the configuration ------------------------------------------------------------------


def check_configuration(facts: Facts) -> CheckResult:
    """The configuration evaluates with Nix (against stand-in module arguments)."""
    title = "configuration.nix evaluates"
    where = (facts.configuration, "nix-instantiate --eval --strict --json")
    if facts.config is not None:
        return _result(
            "configuration", title, Status.PASS, f"evaluated {facts.configuration}", where
        )
    if facts.config_unparsable:
        return _result(
            "configuration",
            title,
            Status.FAIL,
            facts.config_problem,
            where,
            "correct the syntax error Nix names (nixos-install would stop at it); "
            f"'nix-instantiate --parse {shlex.quote(facts.configuration)}' shows it",
        )
    return _result(
        "configuration",
        title,
        Status.WARN
        if "nix-instantiate is not installed" not in facts.config_problem
        else Status.SKIP,
        f"{facts.config_problem}; the checks that read the configuration are skipped, the "
        "others use the layout record",
        where,
        "install Nix (nix-instantiate), or keep the configuration to plain options "
        "(an edit that reads 'config' cannot be evaluated without NixOS)",
    )


# -- devices ------------------------------------------------------------------------------


def check_devices(facts: Facts) -> CheckResult:
    """Every device path the record and the configuration name exists."""
    title = "every device path named exists"
    missing = sorted(path for path, exists in facts.devices.items() if not exists)
    looked = sorted(facts.devices)
    if not looked:
        return _result("devices", title, Status.SKIP, "no device path is named", looked)
    if missing:
        return _result(
            "devices",
            title,
            Status.FAIL,
            f"{', '.join(missing)} {'does' if len(missing) == 1 else 'do'} not exist: the "
            "boot waits for what the configuration names, then stops",
            looked,
            "attach the device (a detached header's medium), or find its stable link "
            "(ls -l /dev/disk/by-id /dev/disk/by-partuuid) and correct configuration.nix "
            f"and {posixpath.basename(facts.record)}",
        )
    return _result("devices", title, Status.PASS, f"all {len(looked)} exist", looked)


def check_devnodes(facts: Facts) -> CheckResult:
    """The pool's devices are in the folder the initrd imports the pool from."""
    title = "the pool's devices are under boot.zfs.devNodes"
    if facts.config is None:
        return _not_evaluated("devnodes", title, facts)
    devnodes = get(facts.config, "boot", "zfs", "devNodes")
    devnodes = content(devnodes) if devnodes is not None else "/dev/disk/by-id"
    looked = [f"boot.zfs.devNodes = {devnodes}", *facts.pool_devices]
    pool = facts.layout.settings.pool
    fix = (
        f"set boot.zfs.devNodes to the folder of the pool's devices ('zpool status -P {pool}' "
        "shows them; /dev/mapper for a pool on LUKS, /dev/disk/by-partuuid for a disk "
        "without a by-id link)"
    )
    if facts.devnodes_targets is None:
        return _result(
            "devnodes", title, Status.FAIL, f"{devnodes} does not exist here", looked, fix
        )
    absent = [device for device, target in facts.pool_devices.items() if target is None]
    if absent:
        return _result(
            "devnodes", title, Status.SKIP,
            f"{', '.join(absent)} {'does' if len(absent) == 1 else 'do'} not exist here (a "
            "container not opened?)",
            looked,
        )  # fmt: skip
    outside = [
        device
        for device, target in facts.pool_devices.items()
        if target not in facts.devnodes_targets
    ]
    if outside:
        return _result(
            "devnodes",
            title,
            Status.FAIL,
            f"{', '.join(outside)} {'is' if len(outside) == 1 else 'are'} not in {devnodes}: "
            f"the initrd's 'zpool import -d {devnodes}' would not find "
            f"{'it' if len(outside) == 1 else 'them'}",
            looked,
            fix,
        )
    return _result("devnodes", title, Status.PASS, f"every pool device is in {devnodes}", looked)


# -- the pool -----------------------------------------------------------------------------


def check_pool(facts: Facts) -> CheckResult:
    """Exported before the reboot; imported cleanly on the running system."""
    pool = facts.layout.settings.pool
    title = f"the pool {pool} is " + (
        "imported cleanly" if facts.stage is Stage.RUNNING else "exported for the reboot"
    )
    looked = [f"zpool list {pool}", *(f"zdb -l {label.device}" for label in facts.labels)]
    if facts.stage is Stage.RUNNING:
        if not facts.imported:
            return _result(
                "pool", title, Status.FAIL, f"{pool} is not imported", looked,
                "run advisor check on the installed system, or give --root for a mounted one",
            )  # fmt: skip
        if facts.health == "ONLINE":
            return _result("pool", title, Status.PASS, f"{pool} is ONLINE", looked)
        status = Status.WARN if facts.health == "DEGRADED" else Status.FAIL
        return _result(
            "pool", title, status, f"{pool} is {facts.health}", looked,
            f"'zpool status -x {pool}' says what is wrong and what to do (replace a missing disk)",
        )  # fmt: skip
    if facts.imported:
        status = Status.FAIL if facts.stage is Stage.BEFORE_REBOOT else Status.WARN
        return _result(
            "pool",
            title,
            status,
            f"{pool} is still imported: a pool not exported looks in use to the first boot",
            looked,
            f"advisor finish, or: umount -R {shlex.quote(facts.root)} && zpool export {pool}",
        )
    readable = [label for label in facts.labels if not label.problem]
    if not readable:
        return _result(
            "pool", title, Status.SKIP,
            "no label of the pool could be read: "
            + "; ".join(label.problem for label in facts.labels),
            looked,
        )  # fmt: skip
    active = [label.device for label in readable if label.state != 1]
    if active:
        return _result(
            "pool",
            title,
            Status.FAIL,
            f"the labels of {', '.join(active)} say the pool is in use (not exported), yet it "
            "is not imported here: another system has it, or it was not exported cleanly",
            looked,
            f"import it and export it again here: zpool import -N {pool} && zpool export {pool}",
        )
    return _result("pool", title, Status.PASS, f"{pool} is exported cleanly", looked)


def check_hostid(facts: Facts) -> CheckResult:
    """networking.hostId, the record's host id, the pool's labels and the running system
    agree."""
    title = "networking.hostId matches the pool and the system"
    pool = facts.layout.settings.pool
    recorded = facts.layout.settings.host_id
    configured = content(get(facts.config, "networking", "hostId"))
    expected = configured if isinstance(configured, str) else recorded
    looked = [
        f"networking.hostId = {configured}" if configured else f"advisor.json host_id = {recorded}",
        *(f"zdb -l {label.device}" for label in facts.labels),
    ]
    if facts.config is not None and configured is None:
        return _result(
            "hostid", title, Status.FAIL, "the configuration sets no networking.hostId", looked,
            f'set networking.hostId = "{recorded}"; (ZFS on NixOS requires it)',
        )  # fmt: skip
    if expected != recorded:
        return _result(
            "hostid",
            title,
            Status.FAIL,
            f"networking.hostId is {expected}, but the pool was created under {recorded} "
            "(the layout record)",
            looked,
            f'set networking.hostId = "{recorded}"; in configuration.nix',
        )
    problems = [
        f"{label.device} was last imported under host id {label.hostid}"
        + (f" (host {label.hostname})" if label.hostname else "")
        for label in facts.labels
        if not label.problem and label.hostid is not None and label.hostid != expected
    ]
    fix = (
        f"import it once under {expected} and export it: zgenhostid -f {expected}; "
        f"zpool import -N {pool}; zpool export {pool} (from the installer); or set "
        "networking.hostId to the id the pool has"
    )
    if problems:
        return _result(
            "hostid", title, Status.FAIL,
            "; ".join(problems) + f", not networking.hostId {expected}: a boot that finds the "
            "pool not exported refuses to import it (boot.zfs.forceImportRoot = false)",
            looked, fix,
        )  # fmt: skip
    if facts.stage is Stage.RUNNING:
        looked.append("/etc/hostid")
        if facts.system_hostid != expected:
            return _result(
                "hostid", title, Status.FAIL,
                f"this system's host id is {facts.system_hostid}, networking.hostId {expected}",
                looked, "rebuild and reboot (nixos-rebuild boot): NixOS writes /etc/hostid "
                "from networking.hostId",
            )  # fmt: skip
        if facts.hostid_mismatch_status:
            return _result(
                "hostid", title, Status.FAIL,
                "zpool status reports a mismatch between the pool's host id and this system's",
                looked, fix,
            )  # fmt: skip
    unread = [label.device for label in facts.labels if label.problem]
    if unread and len(unread) == len(facts.labels):
        return _result(
            "hostid", title, Status.SKIP,
            "no label of the pool could be read: "
            + "; ".join(label.problem for label in facts.labels),
            looked,
        )  # fmt: skip
    return _result(
        "hostid", title, Status.PASS,
        f"{expected} everywhere"
        + ("" if facts.stage is Stage.RUNNING else " (NixOS writes /etc/hostid from it)"),
        looked,
    )  # fmt: skip


def check_root_dataset(facts: Facts) -> CheckResult:
    """The root mounted is the rolled-back dataset."""
    title = "/ is the rolled-back root dataset"
    dataset = facts.layout.root_dataset
    if not facts.imported:
        return _pool_not_imported("root-dataset", title, facts, "nothing of it is mounted")
    source = facts.mounts.get("/")
    looked = [f"findmnt {facts.root}"]
    if source == dataset:
        return _result("root-dataset", title, Status.PASS, f"{facts.root} is {dataset}", looked)
    found = f"{facts.root} is {source}" if source else f"nothing is mounted at {facts.root}"
    return _result(
        "root-dataset",
        title,
        Status.FAIL,
        f"{found}, not {dataset}",
        looked,
        f"mount {dataset} at {facts.root} (mount -t zfs {dataset} {shlex.quote(facts.root)}), "
        'and keep fileSystems."/".device = "' + dataset + '"',
    )


# -- rollback -----------------------------------------------------------------------------


def rollback_snapshots(facts: Facts) -> list[str]:
    """The snapshots the configuration rolls back to (the root's first), or the root's
    blank snapshot alone when the configuration could not be evaluated."""
    found = [facts.layout.blank_snapshot]
    for script in _rollback_scripts(facts.config):
        for snapshot in re.findall(r"zfs rollback -r (\S+@\S+)", script):
            if snapshot not in found:
                found.append(snapshot)
    return found


def _rollback_scripts(config: Mapping[str, Any] | None) -> list[str]:
    scripts = [
        str(content(get(service, "script")))
        for service in (get(config, "boot", "initrd", "systemd", "services") or {}).values()
        if isinstance(service, Mapping) and get(service, "script") is not None
    ]
    hook = content(get(config, "boot", "initrd", "postResumeCommands"))
    if isinstance(hook, str):
        scripts.append(hook)
    return scripts


def check_blank(facts: Facts) -> CheckResult:
    """The blank snapshots the rollback returns to exist."""
    title = "the @blank snapshots exist"
    if facts.snapshots is None:
        return _pool_not_imported("blank", title, facts, "its snapshots cannot be listed")
    wanted = rollback_snapshots(facts)
    missing = [snapshot for snapshot in wanted if snapshot not in facts.snapshots]
    looked = [f"zfs list -t snapshot -r {facts.layout.settings.pool}", *wanted]
    if missing:
        return _result(
            "blank",
            title,
            Status.FAIL,
            f"{', '.join(missing)} {'does' if len(missing) == 1 else 'do'} not exist: the "
            "rollback at boot fails, and with it the boot",
            looked,
            "take the snapshot while the dataset is still empty (zfs snapshot DATASET@blank), "
            "or recreate the dataset empty and snapshot it",
        )
    return _result("blank", title, Status.PASS, ", ".join(wanted), looked)


def check_rollback(facts: Facts) -> CheckResult:
    """The initrd rolls the root back after the pool's import, before / is mounted."""
    title = "the rollback runs before / is mounted"
    if facts.config is None:
        return _not_evaluated("rollback", title, facts)
    pool, snapshot = facts.layout.settings.pool, facts.layout.blank_snapshot
    command = f"zfs rollback -r {snapshot}"
    if get(facts.config, "boot", "initrd", "systemd", "enable") is True:
        return _systemd_rollback(facts, pool, command, title)
    looked = ["boot.initrd.postResumeCommands"]
    hook = get(facts.config, "boot", "initrd", "postResumeCommands")
    fix = (
        f'boot.initrd.postResumeCommands = lib.mkAfter "{command}"; (after the import '
        "zfs.nix adds to the same hook)"
    )
    if command not in str(content(hook) or ""):
        return _result(
            "rollback", title, Status.FAIL,
            f"the scripted initrd's postResumeCommands do not run '{command}': the root "
            "keeps what the last boot wrote",
            looked, fix,
        )  # fmt: skip
    order = hook.get("_order", 1000) if isinstance(hook, Mapping) else 1000
    if order < AFTER_ORDER:
        return _result(
            "rollback", title, Status.FAIL,
            "the rollback is not ordered after the pool's import (lib.mkAfter): it may run "
            "before the pool is there",
            looked, fix,
        )  # fmt: skip
    return _result(
        "rollback", title, Status.PASS,
        f"postResumeCommands run '{command}' after the import (lib.mkAfter)", looked,
    )  # fmt: skip


def _systemd_rollback(facts: Facts, pool: str, command: str, title: str) -> CheckResult:
    services = get(facts.config, "boot", "initrd", "systemd", "services") or {}
    units = [
        name
        for name, service in services.items()
        if isinstance(service, Mapping) and command in str(content(get(service, "script")) or "")
    ]
    looked = ["boot.initrd.systemd.services"]
    import_unit = f"zfs-import-{pool}.service"
    fix = (
        f"keep boot.initrd.systemd.services.rollback as advisor wrote it: wantedBy "
        f'["initrd.target"], after ["{import_unit}"], before ["sysroot.mount"], script '
        f'"{command}" (docs/configuration.md, "Root rollback")'
    )
    if not units:
        return _result(
            "rollback", title, Status.FAIL,
            f"no initrd unit runs '{command}': the root keeps what the last boot wrote",
            looked, fix,
        )  # fmt: skip
    name = units[0]
    service = services[name]
    looked = [f"boot.initrd.systemd.services.{name}"]
    wrong = []
    if "initrd.target" not in _words(service, "wantedBy", "requiredBy"):
        wrong.append("it is not wanted by initrd.target (it never runs)")
    if import_unit not in _words(service, "after"):
        wrong.append(f"it is not after {import_unit} (the pool may not be imported yet)")
    if "sysroot.mount" not in _words(service, "before"):
        wrong.append("it is not before sysroot.mount (/ may be mounted before the rollback)")
    if wrong:
        return _result("rollback", title, Status.FAIL, "; ".join(wrong), looked, fix)
    return _result(
        "rollback", title, Status.PASS,
        f"{name}.service: wanted by initrd.target, after {import_unit}, before sysroot.mount",
        looked,
    )  # fmt: skip


def _words(service: Mapping[str, Any], *options: str) -> list[str]:
    words: list[str] = []
    for option in options:
        value = content(service.get(option))
        if isinstance(value, list):
            words += [str(content(item)) for item in value]
    return words


def check_persist_boot(facts: Facts) -> CheckResult:
    """/persist is mounted in the initrd (neededForBoot)."""
    title = "/persist is neededForBoot"
    if facts.config is None:
        return _not_evaluated("persist-boot", title, facts)
    entry = get(facts.config, "fileSystems", PERSIST)
    looked = [f'fileSystems."{PERSIST}"']
    if content(get(entry, "neededForBoot")) is True:
        return _result(
            "persist-boot", title, Status.PASS, f"{PERSIST} is mounted in the initrd", looked
        )
    return _result(
        "persist-boot",
        title,
        Status.FAIL,
        (f"fileSystems.\"{PERSIST}\" is not set" if entry is None else f"{PERSIST} is not "
         "neededForBoot")
        + ": it is mounted after the activation that reads the sops age key and the SSH "
        "host keys from it",
        looked,
        f'fileSystems."{PERSIST}".neededForBoot = true;',
    )  # fmt: skip


# -- files on /persist --------------------------------------------------------------------


@dataclass(frozen=True)
class ExpectedFile:
    """A file the configuration reads from /persist."""

    id: str
    title: str
    #: Its path on the installed system.
    path: str
    #: A private key: mode 0600 or stricter; else only not writable by others.
    private: bool
    #: Needed at the first boot (the initrd or the first activation reads it); else the
    #: system creates it at first boot (machine-id, sshd's host key).
    first_boot: bool
    #: What makes it (for the fix).
    made_by: str


def expected_files(facts: Facts) -> list[ExpectedFile]:
    """The files the configuration expects under /persist: machine-id, the SSH host keys,
    the initrd's SSH host key, the sops age key (those it configures). Without an
    evaluated configuration, the record's settings say which."""
    files = [
        ExpectedFile(
            "file-machine-id",
            "the machine id is kept",
            PERSIST + path,
            False,
            False,
            "systemd, at the first boot",
        )
        for path in PERSISTED_FILES
        if path == "/etc/machine-id"
    ]
    config, settings = facts.config, facts.layout.settings
    for key in get(config, "services", "openssh", "hostKeys") or []:
        path = content(get(key, "path"))
        if isinstance(path, str):
            files.append(
                ExpectedFile(
                    "file-ssh-host-key",
                    "the SSH host key",
                    path,
                    True,
                    False,
                    "sshd, at its first start",
                )
            )
    initrd_keys = content(get(config, "boot", "initrd", "network", "ssh", "hostKeys"))
    if config is None:
        initrd_keys = [RemoteUnlock(()).host_key] if settings.remote_unlock_keys else []
    for path in initrd_keys or []:
        files.append(
            ExpectedFile(
                "file-initrd-ssh-key",
                "the initrd's SSH host key",
                str(content(path)),
                True,
                True,
                "advisor config --remote-unlock-keys (or ssh-keygen -t ed25519 -N '' -f PATH)",
            )
        )
    sops = content(get(config, "sops", "age", "keyFile"))
    if config is None:
        sops = facts.layout.sops_age_key_file
    if isinstance(sops, str):
        files.append(
            ExpectedFile(
                "file-sops-age-key",
                "the sops age key",
                sops,
                True,
                True,
                "advisor config --sops (or age-keygen -o PATH)",
            )
        )
    return _numbered(files)


def _numbered(files: list[ExpectedFile]) -> list[ExpectedFile]:
    """Two files of one kind get ids ``x`` and ``x-2``."""
    seen: dict[str, int] = {}
    out = []
    for item in files:
        seen[item.id] = seen.get(item.id, 0) + 1
        if seen[item.id] > 1:
            item = replace(item, id=f"{item.id}-{seen[item.id]}")
        out.append(item)
    return out


def check_file(facts: Facts, expected: ExpectedFile) -> CheckResult:
    """One file the configuration expects: there (when needed by now), root's, safe mode."""
    title = expected.title + f" ({expected.path})"
    if not expected.path.startswith(PERSIST + "/"):
        return _result(
            expected.id, title, Status.WARN,
            f"{expected.path} is not under {PERSIST}: the root is rolled back at every boot, "
            "so it is made anew each time",
            (expected.path,), f"keep it under {PERSIST} (the dataset that survives a boot)",
        )  # fmt: skip
    if facts.mounts.get(PERSIST) is None:
        if not facts.imported:
            return _pool_not_imported(expected.id, title, facts, f"{PERSIST} is not mounted")
        return _result(
            expected.id, title, Status.SKIP,
            f"{PERSIST} is not mounted under {facts.root}", (f"findmnt {facts.root}{PERSIST}",),
        )  # fmt: skip
    fact = facts.files.get(expected.path)
    if fact is None or fact.mode is None:
        looked = (fact.looked if fact else expected.path,)
        if not expected.first_boot and facts.stage is not Stage.RUNNING:
            return _result(
                expected.id, title, Status.PASS,
                f"not there yet: {expected.made_by} creates it", looked,
            )  # fmt: skip
        status = Status.FAIL if expected.first_boot else Status.WARN
        return _result(
            expected.id, title, status,
            f"{expected.path} does not exist"
            + (": the first boot needs it" if expected.first_boot else ""),
            looked, f"create it: {expected.made_by}; mode 0600, owned by root",
        )  # fmt: skip
    return _file_mode(expected, fact, title)


def _file_mode(expected: ExpectedFile, fact: FileFact, title: str) -> CheckResult:
    mode = fact.mode or 0
    looked = (fact.looked,)
    problems = []
    if not fact.regular:
        problems.append("is not a regular file")
    if fact.uid != 0:
        problems.append(f"is owned by uid {fact.uid}, not root")
    if expected.private and mode & 0o077:
        problems.append(f"has mode {mode:04o}: others can read it (a private key: 0600)")
    elif mode & 0o022:
        problems.append(f"has mode {mode:04o}: others can write it")
    if problems:
        return _result(
            expected.id, title, Status.FAIL, f"{expected.path} " + ", ".join(problems), looked,
            f"chown root:root {shlex.quote(fact.looked)} && chmod "
            f"{'0600' if expected.private else '0444'} {shlex.quote(fact.looked)}",
        )  # fmt: skip
    return _result(expected.id, title, Status.PASS, f"mode {mode:04o}, owned by root", looked)


# -- the LUKS header's backup -------------------------------------------------------------


def check_header_backup(facts: Facts, fact: HeaderFact) -> CheckResult:
    """A header backup exists and still matches the header (no passphrase needed)."""
    several = len(facts.layout.members) > 1
    check_id = "header-backup" + (f"-disk{fact.member}" if several else "")
    title = "the LUKS header backup matches" + (f" (disk {fact.member})" if several else "")
    looked = (fact.header, fact.backup)
    renew = (
        f"make a new one: cryptsetup luksHeaderBackup {shlex.quote(fact.header)} "
        f"--header-backup-file NEWFILE, then replace {shlex.quote(fact.backup)} with it"
    )
    if not fact.backup_exists:
        return _result(
            check_id, title, Status.FAIL,
            f"{fact.backup} does not exist: a damaged or lost header then loses the data",
            looked, f"mount the medium it is on, or {renew}",
        )  # fmt: skip
    if not fact.header_exists:
        return _result(
            check_id, title, Status.FAIL, f"the header {fact.header} is not there", looked,
            "attach the header's medium",
        )  # fmt: skip
    if fact.same_bytes:
        return _result(
            check_id, title, Status.PASS,
            f"{fact.backup} holds the same bytes as the header", looked,
        )  # fmt: skip
    if fact.problem:
        return _result(check_id, title, Status.FAIL, fact.problem, looked, renew)
    return _result(check_id, title, Status.FAIL, header_difference(fact), looked, renew)


def header_difference(fact: HeaderFact) -> str:
    """Why a backup that is not byte for byte the header's differs, from their dumps."""
    if not fact.backup_dump:
        return f"{fact.backup} is not a LUKS header"
    if _dump_field(fact.header_dump, "UUID") != _dump_field(fact.backup_dump, "UUID"):
        return f"{fact.backup} is the backup of another LUKS header (another UUID)"
    if _dump_section(fact.header_dump, "Keyslots") != _dump_section(fact.backup_dump, "Keyslots"):
        return (
            "the header's keyslots changed since the backup (a passphrase added, changed or "
            "removed): the backup opens the data only with the passphrases of its time"
        )
    return (
        "the header's metadata changed since the backup (not its keyslots: a token, a label "
        "or a flag)"
    )


def _dump_field(dump: str, name: str) -> str | None:
    match = re.search(rf"^{name}:\s*(\S+)", dump, re.MULTILINE)
    return match[1] if match else None


def _dump_section(dump: str, name: str) -> str:
    """The lines of one section of ``cryptsetup luksDump`` (``Keyslots:`` to the next
    heading at the line's start)."""
    lines, inside = [], False
    for line in dump.splitlines():
        if re.match(r"^\S.*:\s*$", line):
            inside = line.strip() == f"{name}:"
            continue
        if inside:
            lines.append(line.rstrip())
    return "\n".join(lines)


def check_header_backups(facts: Facts) -> list[CheckResult]:
    """A check per backup; a warning for a detached header with none."""
    results = [check_header_backup(facts, fact) for fact in facts.headers]
    for member in facts.layout.members:
        if member.header is not None and member.header_backup is None:
            several = len(facts.layout.members) > 1
            results.append(
                _result(
                    "header-backup" + (f"-disk{member.number}" if several else ""),
                    "the LUKS header backup matches",
                    Status.WARN,
                    f"no backup of the detached header {member.header} is recorded: lose the "
                    "header and the data is gone",
                    (facts.record,),
                    f"cryptsetup luksHeaderBackup {shlex.quote(member.header)} "
                    "--header-backup-file FILE on another medium, and record it: advisor "
                    "config --header-backup FILE",
                )
            )
    return results


# -- unlocking with a token --------------------------------------------------------------


def check_unlock_token(facts: Facts, fact: TokenFact) -> CheckResult:
    """The header holds the token the container's crypttab options unlock with: without
    it, systemd-cryptsetup falls back to asking for a passphrase, which an unattended
    machine has nobody to type (and, with the passphrase removed, only the recovery key
    answers)."""
    several = len(facts.layout.members) > 1
    check_id = "unlock-token" + (f"-disk{fact.member}" if several else "")
    title = "the header holds the unlock token" + (f" (disk {fact.member})" if several else "")
    looked = (f"boot.initrd.luks.devices.{fact.name}.crypttabExtraOpts", fact.header)
    if fact.found is None:
        return _result(
            check_id, title, Status.FAIL, fact.problem, looked,
            "attach the header's device (and run advisor check as root)",
        )  # fmt: skip
    missing = [kind for kind in fact.wanted if kind not in fact.found]
    if missing:
        device = {"systemd-tpm2": "--tpm2-device=auto", "systemd-fido2": "--fido2-device=auto"}
        enroll = " ".join(device.get(kind, "") for kind in missing).strip()
        return _result(
            check_id, title, Status.FAIL,
            f"the configuration unlocks {fact.name} with a {', '.join(missing)} token, and "
            f"{fact.header} has none (tokens: {', '.join(fact.found) or 'none'}): the boot "
            "would ask for a passphrase instead",
            looked,
            f"systemd-cryptenroll {enroll or '<the method>'} {shlex.quote(fact.header)}",
        )  # fmt: skip
    return _result(
        check_id, title, Status.PASS,
        f"{fact.header} holds {', '.join(fact.wanted)}, as the crypttab options ask", looked,
    )  # fmt: skip


# -- TRIM ---------------------------------------------------------------------------------


def check_trim(facts: Facts) -> CheckResult:
    """TRIM as the assessment answered: the record's setting and the configuration's."""
    title = "TRIM matches the assessment"
    if facts.assessment_trim is None:
        return _result("trim", title, Status.SKIP, "no assessment given (--from-assessment FILE)")
    wanted = facts.assessment_trim
    looked = [f"{facts.assessment}: ssd_trim", "advisor.json: settings.trim"]
    found = {"the layout record's trim": facts.layout.settings.trim}
    if facts.config is not None:
        looked.append("services.zfs.trim.enable")
        found["services.zfs.trim.enable"] = (
            content(get(facts.config, "services", "zfs", "trim", "enable")) is True
        )
        for name, device in (get(facts.config, *LUKS_DEVICES) or {}).items():
            looked.append(f"boot.initrd.luks.devices.{name}.allowDiscards")
            found[f"boot.initrd.luks.devices.{name}.allowDiscards"] = (
                content(get(device, "allowDiscards")) is True
            )
    wrong = [name for name, value in found.items() if value != wanted]
    answer = "yes" if wanted else "no"
    if wrong:
        return _result(
            "trim",
            title,
            Status.FAIL,
            f"the assessment answered ssd_trim = {answer}, but "
            + ", ".join(f"{name} is {str(found[name]).lower()}" for name in wrong),
            looked,
            "write the configuration again from the assessment (advisor config "
            "--from-assessment FILE ...), or answer the assessment again",
        )
    return _result(
        "trim", title, Status.PASS, f"ssd_trim = {answer}, and the configuration agrees", looked
    )


#: Every check, in the order they are shown.
CHECKS: tuple[Callable[[Facts], CheckResult | list[CheckResult]], ...] = (
    check_configuration,
    check_devices,
    check_devnodes,
    check_pool,
    check_hostid,
    check_root_dataset,
    check_blank,
    check_rollback,
    check_persist_boot,
    lambda facts: [check_file(facts, expected) for expected in expected_files(facts)],
    check_header_backups,
    lambda facts: [check_unlock_token(facts, fact) for fact in facts.tokens],
    check_trim,
)


def run_checks(facts: Facts) -> list[CheckResult]:
    """Every check's result for ``facts``, in order."""
    results: list[CheckResult] = []
    for check in CHECKS:
        outcome = check(facts)
        results += outcome if isinstance(outcome, list) else [outcome]
    return results
