"""The effects of ``advisor check``: everything it reads from the machine, gathered once
into :class:`~.facts.Facts` (the pure checks in :mod:`.checks` then judge them).

It only reads: ``zdb -l`` (the pool's labels, imported or exported), ``zpool list`` and
``zpool status``, ``zfs list``, ``cryptsetup isLuks`` and ``luksDump`` (no passphrase),
``stat`` of files, ``/proc/self/mounts``, and the configuration evaluated by Nix. Every
program runs through :mod:`advisor.runner`.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from advisor import nixeval, runner
from advisor.layoutrecord import load_record
from advisor.luksmeta import token_types, wanted_tokens
from advisor.models import Layout, LayoutMember

from .checks import LUKS_DEVICES, content, expected_files, get
from .facts import Facts, FileFact, HeaderFact, Label, Stage, TokenFact

#: A LUKS2 header is 16 MiB at most by default (cryptsetup's --luks2-metadata-size and
#: keyslots area); a backup larger than this is not one advisor made.
MAX_HEADER_BYTES = 64 * 1024 * 1024
TIMEOUT = 120


def gather(
    root: Path,
    record: Path | None,
    stage: Stage,
    assessment_trim: bool | None = None,
    assessment: str | None = None,
) -> Facts:
    """The facts of the system under ``root`` (its layout record found there, or
    ``record``) at ``stage``; ``assessment_trim`` is a saved assessment's TRIM answer."""
    layout, record_path = load_record(root, record)
    configuration = record_path.parent / "configuration.nix"
    evaluation = nixeval.evaluate_configuration(configuration)
    unparsable = False
    problem = evaluation.problem
    if evaluation.config is None and configuration.is_file():
        syntax = nixeval.parse_problem(configuration)
        if syntax is not None:
            unparsable, problem = True, syntax
    config = evaluation.config
    pool = layout.settings.pool
    pool_devices = {device: _real(device) for device in _pool_devices(layout, config)}
    health = _health(pool)
    mounts = _mounts(root)
    facts = Facts(
        root=str(root),
        stage=stage,
        layout=layout,
        record=str(record_path),
        configuration=str(configuration),
        config=config,
        config_problem=problem,
        config_unparsable=unparsable,
        devices=_devices(root, layout, config),
        pool_devices=pool_devices,
        devnodes_targets=_devnodes(config),
        labels=tuple(_label(device) for device in pool_devices),
        imported=health is not None,
        health=health,
        hostid_mismatch_status=health is not None and _hostid_mismatch(pool),
        snapshots=_snapshots(pool) if health is not None else None,
        mounts=mounts,
        system_hostid=_system_hostid() if stage is Stage.RUNNING else None,
        headers=tuple(header_fact(member) for member in layout.members if member.header_backup),
        tokens=token_facts(layout, config),
        assessment_trim=assessment_trim,
        assessment=assessment,
    )
    files = {
        expected.path: _file(root, expected.path)
        for expected in expected_files(facts)
        if expected.path.startswith("/")
    }
    return replace(facts, files=files)


def _run(argv: list[str]) -> runner.Result | None:
    """``argv``'s result, or ``None`` when it cannot run (not installed, hung)."""
    try:
        return runner.run(argv, check=False, timeout=TIMEOUT)
    except runner.CommandError:
        return None


def _real(path: str) -> str | None:
    return str(Path(path).resolve()) if Path(path).exists() else None


def _device_exists(root: Path, path: str) -> bool:
    """A device (``/dev/...``) on this machine; a header file there or under ``root``."""
    if path.startswith("/dev/"):
        return Path(path).exists()
    return Path(path).exists() or (root / path.lstrip("/")).exists()


def _devices(root: Path, layout: Layout, config: Mapping[str, Any] | None) -> dict[str, bool]:
    """Every device path the record and the configuration name, and whether it exists."""
    paths: list[str] = []
    for member in layout.members:
        paths += [member.data_device, member.esp_device]
        paths += [path for path in (member.swap_device, member.header) if path]
    for entry in (get(config, "fileSystems") or {}).values():
        device = content(get(entry, "device"))
        if isinstance(device, str) and device.startswith("/dev/"):
            paths.append(device)
    for entry in content(get(config, "swapDevices")) or []:
        device = content(get(entry, "device"))
        if isinstance(device, str):
            paths.append(device)
    secrets = get(config, "boot", "initrd", "secrets") or {}
    for entry in (get(config, *LUKS_DEVICES) or {}).values():
        for option in ("device", "header"):
            path = content(get(entry, option))
            if isinstance(path, str):
                # A header file reaches the initrd through boot.initrd.secrets: its source.
                source = content(secrets.get(path)) if isinstance(secrets, Mapping) else None
                paths.append(source if isinstance(source, str) else path)
    return {path: _device_exists(root, path) for path in dict.fromkeys(paths)}


def _pool_devices(layout: Layout, config: Mapping[str, Any] | None) -> list[str]:
    """Each member's device in the pool: its opened container (``/dev/mapper/NAME``,
    as the configuration's ``boot.initrd.luks.devices`` names it) or its partition."""
    luks = get(config, *LUKS_DEVICES) or {}
    by_device = {
        content(get(entry, "device")): name
        for name, entry in luks.items()
        if isinstance(entry, Mapping)
    }
    devices = []
    for member in layout.members:
        name = by_device.get(member.data_device)
        if name is None and config is None and _is_luks(member):
            name = member.luks_name
        devices.append(f"/dev/mapper/{name}" if name else member.data_device)
    return devices


def _is_luks(member: LayoutMember) -> bool:
    if member.header is not None:
        return True
    result = _run(["cryptsetup", "isLuks", member.data_device])
    return result is not None and result.returncode == 0


def _devnodes(config: Mapping[str, Any] | None) -> tuple[str, ...] | None:
    """The real paths of the entries of ``boot.zfs.devNodes`` (NixOS's default
    ``/dev/disk/by-id``), ``None`` when it is no folder."""
    folder = content(get(config, "boot", "zfs", "devNodes")) or "/dev/disk/by-id"
    try:
        entries = sorted(Path(folder).iterdir())
    except OSError:
        return None
    return tuple(str(entry.resolve()) for entry in entries)


def _label(device: str) -> Label:
    """``zdb -l DEVICE``: the pool's name, state, host id and vdev paths on it."""
    if not Path(device).exists():
        return Label(device, problem=f"{device} does not exist (a container not opened?)")
    result = _run(["zdb", "-l", device])
    if result is None:
        return Label(device, problem="zdb could not run")
    return parse_label(device, result.returncode, result.stdout, result.stderr)


def parse_label(device: str, returncode: int, text: str, errors: str = "") -> Label:
    """The :class:`Label` ``zdb -l DEVICE`` printed (``text``, with its exit status and
    error output): the first label's pool name, state, host id (decimal there) and host
    name, and every vdev path it records."""

    def first(name: str) -> str | None:
        match = re.search(rf"^\s+{name}: '?([^'\n]*)'?$", text, re.MULTILINE)
        return match[1] if match else None

    pool = first("name")
    if returncode != 0 or pool is None:
        tail = " ".join(errors.strip().splitlines()[-2:])
        return Label(device, problem=f"zdb -l found no ZFS label on {device} {tail}".strip())
    state, hostid = first("state"), first("hostid")
    return Label(
        device,
        pool=pool,
        state=int(state) if state and state.isdigit() else None,
        hostid=f"{int(hostid):08x}" if hostid and hostid.isdigit() else None,
        hostname=first("hostname"),
        paths=tuple(dict.fromkeys(re.findall(r"^\s+path: '([^']*)'", text, re.MULTILINE))),
    )


def _health(pool: str) -> str | None:
    """The pool's health when it is imported here, else ``None``."""
    result = _run(["zpool", "list", "-H", "-o", "health", pool])
    if result is None or result.returncode != 0:
        return None
    return result.stdout.strip() or "UNKNOWN"


def _hostid_mismatch(pool: str) -> bool:
    result = _run(["zpool", "status", pool])
    return result is not None and "Mismatch between pool hostid" in result.stdout


def _snapshots(pool: str) -> frozenset[str]:
    result = _run(["zfs", "list", "-H", "-t", "snapshot", "-o", "name", "-r", pool])
    if result is None or result.returncode != 0:
        return frozenset()
    return frozenset(result.stdout.split())


def _mounts(root: Path) -> dict[str, str | None]:
    """The source mounted at the installed system's ``/`` and ``/persist`` (under
    ``root``), from /proc/self/mounts (the last mount at a point is the one seen)."""
    found: dict[str, str] = {}
    try:
        text = Path("/proc/self/mounts").read_text(encoding="utf-8")
    except OSError:
        text = ""
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 2:
            point = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m[1], 8)), fields[1])
            found[point] = fields[0]
    base = root.resolve()
    return {"/": found.get(str(base)), "/persist": found.get(str(base / "persist"))}


def _file(root: Path, path: str) -> FileFact:
    looked = str(root / path.lstrip("/"))
    try:
        info = os.lstat(looked)
    except OSError:
        return FileFact(path, looked)
    return FileFact(
        path, looked, stat.S_IMODE(info.st_mode), info.st_uid, stat.S_ISREG(info.st_mode)
    )


def _system_hostid() -> str | None:
    """This system's host id from /etc/hostid (four bytes, little-endian on the
    platforms NixOS on ZFS runs on; what ``hostid`` prints)."""
    result = _run(["hostid"])
    if result is not None and result.returncode == 0 and result.stdout.strip():
        return result.stdout.strip().lower()
    return None


def token_facts(layout: Layout, config: Mapping[str, Any] | None) -> tuple[TokenFact, ...]:
    """The tokens of each container whose crypttab options (the configuration's
    ``crypttabExtraOpts``) make systemd-cryptsetup unlock with one."""
    devices = get(config, *LUKS_DEVICES) or {}
    facts = []
    for member in layout.members:
        options = content(get(devices.get(member.luks_name), "crypttabExtraOpts")) or []
        wanted = wanted_tokens(str(option) for option in options)
        if not wanted:
            continue
        header = member.header or member.data_device
        fact = TokenFact(member.number, member.luks_name, header, tuple(wanted))
        result = _run(["cryptsetup", "luksDump", "--dump-json-metadata", header])
        if result is None or result.returncode != 0:
            tail = result.stderr.strip().splitlines()[-1:] if result is not None else []
            problem = f"cryptsetup luksDump {header} failed" + (f": {tail[0]}" if tail else "")
            facts.append(replace(fact, problem=problem))
            continue
        try:
            facts.append(replace(fact, found=tuple(token_types(result.stdout))))
        except ValueError as error:
            facts.append(replace(fact, problem=f"{header}: {error}"))
    return tuple(facts)


def header_fact(member: LayoutMember) -> HeaderFact:
    """``member``'s LUKS header (detached, or at the start of its partition) and its
    backup, compared byte for byte, then by ``luksDump`` when they differ."""
    header = member.header or member.data_device
    backup = str(member.header_backup)
    fact = HeaderFact(
        member.number,
        header,
        backup,
        backup_exists=Path(backup).is_file(),
        header_exists=Path(header).exists(),
    )
    if not (fact.backup_exists and fact.header_exists):
        return fact
    try:
        size = Path(backup).stat().st_size
        if size == 0 or size > MAX_HEADER_BYTES:
            return replace(fact, same_bytes=False, problem=f"{backup} is {size} bytes: no header")
        copy = Path(backup).read_bytes()
        with Path(header).open("rb") as source:
            original = source.read(len(copy))
    except OSError as error:
        return replace(fact, problem=f"cannot read the header or its backup: {error}")
    if original == copy:
        return replace(fact, same_bytes=True)
    return replace(fact, same_bytes=False, header_dump=_dump(header), backup_dump=_dump(backup))


def _dump(path: str) -> str:
    result = _run(["cryptsetup", "luksDump", path])
    return result.stdout if result is not None and result.returncode == 0 else ""
