"""Finding the disks NixOS could be installed on, and refusing the ones it must not touch.

Installing wipes a whole disk, so this module errs on the side of refusing: a disk that
is mounted, holds swap, is held by device-mapper or md, belongs to a ZFS pool, backs the
running system, is read-only or too small is reported with ``problems`` and is not
``usable``.

The work is split so that almost all of it is testable without udev:

* :func:`parse_mountinfo`, :func:`parse_swaps`, :func:`choose_disk_id`,
  :func:`guess_transport`, :func:`build_disk` and :func:`find_disk` are pure functions
  over plain data;
* :func:`running_system_disks` reads ``/sys`` below a root path, so tests point it at a
  fake tree (the style of :mod:`advisor.assess.system`);
* :func:`gather_disk_facts` is the one function that walks pyudev, and
  :func:`discover_disks` ties everything together;
* :func:`check_exclusive` opens a disk with ``O_EXCL``; it needs root, so it is separate
  and callers may skip it.
"""

from __future__ import annotations

import errno
import functools
import os
import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pyudev

from advisor.blockdevices import (
    choose_disk_id,
    is_candidate,
    same_size,
    sort_by_id,
)
from advisor.errors import UsageError
from advisor.install import libudev
from advisor.mounts import DevNum, MountEntry, parse_mountinfo, unescape_octal

GIB = 1024**3
#: Below this a NixOS system with a ZFS pool, an ESP and a few generations does not fit.
MIN_DISK_BYTES = 8 * GIB

BY_ID = "/dev/disk/by-id/"
BY_PATH = "/dev/disk/by-path/"


# Mount points whose devices make up the running system. /nix/.ro-store and /iso are
# where the NixOS installer ISO mounts its squashfs and the boot medium itself.
RUNNING_MOUNTPOINTS = frozenset(
    {"/", "/nix", "/nix/store", "/nix/.ro-store", "/iso", "/boot", "/boot/efi", "/efi"}
)

_VIRTIO_SERIAL_HINT = (
    "give the disk a serial (libvirt: add <serial>disk01</serial> to the <disk> element; "
    "QEMU: -device virtio-blk-pci,...,serial=disk01)"
)
_ZFS_BY_ID = "NixOS's ZFS import at boot looks in /dev/disk/by-id and hangs"


@dataclass(frozen=True)
class Partition:
    """A partition of a :class:`Disk`, with what currently uses it."""

    name: str
    path: str
    number: int | None
    size_bytes: int
    partuuid: str | None
    fstype: str | None
    label: str | None
    mountpoints: tuple[str, ...]
    swap: bool
    holders: tuple[str, ...]


@dataclass(frozen=True)
class Disk:
    """A whole disk, what is on it, and why it may not be installed on.

    ``by_id`` and ``by_path`` are full ``/dev/disk/...`` link paths, ``by_id`` in the
    order :func:`choose_disk_id` prefers. ``mountpoints`` are the whole disk's own (each
    partition lists its own); ``swap`` is true when the disk or any partition is active
    swap; ``holders`` are the kernel names (``dm-0``, ``md127``) holding the disk or any
    partition. ``problems`` make the disk unusable; ``warnings`` do not.
    """

    name: str
    path: str
    by_id: tuple[str, ...]
    by_path: tuple[str, ...]
    serial: str | None
    model: str | None
    size_bytes: int
    rotational: bool | None
    transport: str | None
    removable: bool
    partitions: tuple[Partition, ...]
    mountpoints: tuple[str, ...]
    swap: bool
    holders: tuple[str, ...]
    zfs_pool: str | None
    fstype: str | None
    running_system: bool
    problems: tuple[str, ...]
    warnings: tuple[str, ...]

    @property
    def usable(self) -> bool:
        """True when nothing forbids installing on this disk."""
        return not self.problems

    @property
    def disk_id(self) -> str:
        """The stable name a user types to confirm: by-id, else by-path, else kernel name."""
        return choose_disk_id(self.name, self.by_id, self.by_path)

    @property
    def stable_path(self) -> str:
        """The ``/dev/disk/by-*`` path of :attr:`disk_id`, or the kernel path without one."""
        disk_id = self.disk_id
        for link in (*self.by_id, *self.by_path):
            if Path(link).name == disk_id:
                return link
        return self.path


# --- Facts gathered from udev and sysfs (plain data, so tests can make them up) ---------


@dataclass(frozen=True)
class PartitionFacts:
    """What udev and sysfs say about one partition, before looking at what uses it."""

    name: str
    path: str
    devnum: DevNum
    number: int | None = None
    size_bytes: int = 0
    partuuid: str | None = None
    fstype: str | None = None
    label: str | None = None
    links: tuple[str, ...] = ()
    holders: tuple[str, ...] = ()


@dataclass(frozen=True)
class DiskFacts:
    """What udev and sysfs say about one whole disk. ``udev_known`` is false when udev
    has no record of it (no udevd), so links and file-system types are missing."""

    name: str
    path: str
    devnum: DevNum
    size_bytes: int
    links: tuple[str, ...] = ()
    serial: str | None = None
    model: str | None = None
    rotational: bool | None = None
    transport: str | None = None
    removable: bool = False
    read_only: bool = False
    fstype: str | None = None
    label: str | None = None
    holders: tuple[str, ...] = ()
    partitions: tuple[PartitionFacts, ...] = ()
    udev_known: bool = True


@dataclass(frozen=True)
class SwapEntry:
    """One line of ``/proc/swaps``: ``kind`` is ``partition`` or ``file``."""

    filename: str
    kind: str


@dataclass(frozen=True)
class SystemState:
    """What the running system uses, matched against each disk by :func:`build_disk`.

    ``swap_devnums`` are the device numbers of active swap devices; ``running_disks``
    the kernel names of the disks under the running system; ``running_pools`` the ZFS
    pools it is mounted from; ``running_sources`` the ``/dev`` paths its file systems
    are mounted from (for btrfs, whose mountinfo device number is not the disk's).
    """

    mounts: tuple[MountEntry, ...] = ()
    swap_devnums: frozenset[DevNum] = frozenset()
    swap_paths: frozenset[str] = frozenset()
    running_disks: frozenset[str] = frozenset()
    running_pools: frozenset[str] = frozenset()
    running_sources: frozenset[str] = frozenset()


# --- Parsing /proc --------------------------------------------------------------------


def parse_swaps(text: str) -> list[SwapEntry]:
    """Parse ``/proc/swaps`` (a header line, then ``filename type size used priority``)."""
    entries = []
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) >= 2:
            entries.append(SwapEntry(unescape_octal(fields[0]), fields[1]))
    return entries


# --- Pure decisions ---------------------------------------------------------------------


def guess_transport(
    name: str, properties: Mapping[str, str], sys_path: str = "", driver: str | None = None
) -> str | None:
    """How the disk is attached (``nvme``, ``sata``, ``usb``, ``virtio``...), or None.

    ``ID_BUS`` comes from udev; without it (no udevd, or virtio disks, for which udev
    sets no ``ID_BUS``) the kernel name, the sysfs path and the parent's driver tell.
    USB comes first: a USB stick is also a SCSI disk.
    """
    bus = properties.get("ID_BUS", "")
    if bus == "usb" or "/usb" in sys_path:
        return "usb"
    if bus == "nvme" or name.startswith("nvme"):
        return "nvme"
    if name.startswith("vd") or driver == "virtio_blk":
        return "virtio"
    if bus == "ata":
        return "sata" if properties.get("ID_ATA_SATA") == "1" else "ata"
    if name.startswith("mmcblk"):
        return "mmc"
    if bus:
        return bus
    if "/ata" in sys_path:
        return "ata"
    return None


def format_size(size_bytes: int) -> str:
    """A size in binary units with one decimal, as disk tools show it (``256.0 GiB``)."""
    value = float(size_bytes)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.1f} {unit}" if unit != "B" else f"{size_bytes} B"
        value /= 1024
    raise AssertionError("unreachable")  # pragma: no cover


def _mountpoints(
    devnum: DevNum, paths: Collection[str], mounts: Sequence[MountEntry]
) -> tuple[str, ...]:
    """Where a device is mounted: by device number (exact), or by source path (btrfs
    reports an anonymous device number, but its source is the real /dev path)."""
    found = [m.mountpoint for m in mounts if m.devnum == devnum or m.source in paths]
    return tuple(dict.fromkeys(found))


def _is_swap(devnum: DevNum, paths: Collection[str], state: SystemState) -> bool:
    return devnum in state.swap_devnums or any(path in state.swap_paths for path in paths)


def _partition(facts: PartitionFacts, state: SystemState) -> Partition:
    paths = {facts.path, *facts.links}
    return Partition(
        name=facts.name,
        path=facts.path,
        number=facts.number,
        size_bytes=facts.size_bytes,
        partuuid=facts.partuuid,
        fstype=facts.fstype,
        label=facts.label,
        mountpoints=_mountpoints(facts.devnum, paths, state.mounts),
        swap=_is_swap(facts.devnum, paths, state),
        holders=facts.holders,
    )


def _zfs_pool(facts: DiskFacts) -> str | None:
    """The pool the disk or one of its partitions belongs to (blkid's label of a
    ``zfs_member`` is the pool name); ``""`` for a member whose name is unknown."""
    for fstype, label in [(facts.fstype, facts.label)] + [
        (part.fstype, part.label) for part in facts.partitions
    ]:
        if fstype == "zfs_member":
            return label or ""
    return None


def _is_running(facts: DiskFacts, pool: str | None, state: SystemState) -> bool:
    paths = {facts.path, *facts.links}
    for part in facts.partitions:
        paths.update({part.path, *part.links})
    return (
        facts.name in state.running_disks
        or (pool is not None and pool != "" and pool in state.running_pools)
        or bool(paths & state.running_sources)
    )


def _problems(
    facts: DiskFacts,
    partitions: Sequence[Partition],
    *,
    mountpoints: Sequence[str],
    swap: bool,
    holders: Sequence[str],
    pool: str | None,
    running: bool,
) -> tuple[str, ...]:
    """Every reason this disk must not be wiped, most serious first."""
    problems = []
    if running:
        problems.append("holds the running system")
    all_mounts = list(
        dict.fromkeys([*mountpoints, *(m for p in partitions for m in p.mountpoints)])
    )
    if all_mounts:
        problems.append(f"mounted at {', '.join(all_mounts)}")
    if swap:
        problems.append("holds active swap")
    if holders:
        problems.append(
            f"held by {', '.join(holders)} (device-mapper, md RAID or another driver uses it)"
        )
    if pool is not None:
        problems.append(f"a member of ZFS pool {pool}" if pool else "a member of a ZFS pool")
    if facts.read_only:
        problems.append("read-only")
    if facts.size_bytes < MIN_DISK_BYTES:
        problems.append(_too_small(facts.size_bytes))
    return tuple(problems)


def _too_small(size_bytes: int) -> str:
    return (
        f"too small for NixOS ({format_size(size_bytes)}; "
        f"at least {format_size(MIN_DISK_BYTES)} is needed)"
    )


def overwrite_problems(disk: Disk) -> tuple[str, ...]:
    """Why nothing on ``disk`` may be overwritten, not even a small part of it such as a
    detached LUKS header: its :attr:`~Disk.problems`, except being too small for NixOS."""
    return tuple(problem for problem in disk.problems if problem != _too_small(disk.size_bytes))


def _warnings(facts: DiskFacts, by_id: Sequence[str]) -> tuple[str, ...]:
    """What the user should know before choosing this disk, though it is allowed."""
    warnings = []
    if not by_id:
        if facts.transport == "virtio" and not facts.serial:
            warnings.append(
                "no /dev/disk/by-id entry: a virtio disk without a serial has none, and "
                f"{_ZFS_BY_ID}; {_VIRTIO_SERIAL_HINT}"
            )
        else:
            warnings.append(f"no /dev/disk/by-id entry: {_ZFS_BY_ID}")
    if not facts.udev_known:
        # Without udev's database there are no /dev/disk links and no blkid results, so
        # an exported ZFS pool or a file system on the disk cannot be seen here.
        warnings.append(
            "udev has no record of this disk (is systemd-udevd running?): its /dev/disk "
            "links, file systems and ZFS pool membership cannot be seen"
        )
    if facts.removable:
        warnings.append("removable: make sure this is the disk you mean")
    contents = [
        f"{part.name}: {part.fstype}" + (f' "{part.label}"' if part.label else "")
        for part in facts.partitions
        if part.fstype
    ]
    if facts.fstype:
        contents.insert(0, f"{facts.name}: {facts.fstype}")
    if contents:
        warnings.append(f"has data ({'; '.join(contents)}): installing erases it")
    return tuple(warnings)


def build_disk(facts: DiskFacts, state: SystemState) -> Disk:
    """Combine a disk's facts with what the system uses into a :class:`Disk`."""
    partitions = tuple(_partition(part, state) for part in facts.partitions)
    paths = {facts.path, *facts.links}
    mountpoints = _mountpoints(facts.devnum, paths, state.mounts)
    swap = _is_swap(facts.devnum, paths, state) or any(part.swap for part in partitions)
    holders = tuple(dict.fromkeys([*facts.holders, *(h for p in partitions for h in p.holders)]))
    pool = _zfs_pool(facts)
    running = _is_running(facts, pool, state)
    by_id = sort_by_id(link for link in facts.links if link.startswith(BY_ID))
    by_path = tuple(sorted(link for link in facts.links if link.startswith(BY_PATH)))
    return Disk(
        name=facts.name,
        path=facts.path,
        by_id=by_id,
        by_path=by_path,
        serial=facts.serial,
        model=facts.model,
        size_bytes=facts.size_bytes,
        rotational=facts.rotational,
        transport=facts.transport,
        removable=facts.removable,
        partitions=partitions,
        mountpoints=mountpoints,
        swap=swap,
        holders=holders,
        zfs_pool=pool,
        fstype=facts.fstype,
        running_system=running,
        problems=_problems(
            facts,
            partitions,
            mountpoints=mountpoints,
            swap=swap,
            holders=holders,
            pool=pool,
            running=running,
        ),
        warnings=_warnings(facts, by_id),
    )


# --- Choosing a disk by what the user typed ------------------------------------------------


def describe(disk: Disk) -> str:
    """One line naming a disk the way a user recognises it."""
    parts = [disk.disk_id, format_size(disk.size_bytes)]
    if disk.model:
        parts.append(disk.model)
    if disk.disk_id != disk.name:
        parts.append(f"({disk.path})")
    line = "  ".join(parts)
    if disk.problems:
        line += f"  [unusable: {'; '.join(disk.problems)}]"
    return line


def _names(disk: Disk) -> set[str]:
    """Everything that names this disk: kernel name and path, links and their names."""
    links = (*disk.by_id, *disk.by_path)
    return {disk.name, disk.path, disk.disk_id, *links, *(Path(link).name for link in links)}


def find_disk(disks: Sequence[Disk], text: str) -> Disk:
    """The disk ``text`` names (disk_id, by-id/by-path link or its name, ``vda`` or
    ``/dev/vda``); a partition does not name its disk, so nothing gets wiped by a slip.

    Raises :class:`UsageError` listing the disks there are when nothing (or more than
    one disk) matches.
    """
    wanted = text.strip()
    matches = [disk for disk in disks if wanted and wanted in _names(disk)]
    if len(matches) == 1:
        return matches[0]
    reason = f"{text!r} names more than one disk" if matches else f"no disk matches {text!r}"
    if not disks:
        raise UsageError(f"{reason}: no disks were found")
    listing = "\n".join(f"  {describe(disk)}" for disk in disks)
    raise UsageError(f"{reason}; the disks are:\n{listing}")


def disk_of_device(disks: Sequence[Disk], path: str) -> Disk | None:
    """The disk the device ``path`` (a ``/dev/disk/...`` link or a kernel path) is, or
    holds as a partition; None when it is neither a disk of ``disks`` nor a partition of
    one (a device-mapper or loop device, say, or no device at all)."""
    real = os.path.realpath(path)
    for disk in disks:
        names = (disk.path, *disk.by_id, *disk.by_path, *(part.path for part in disk.partitions))
        if any(os.path.realpath(name) == real for name in names):
            return disk
    return None


# --- Firmware ---------------------------------------------------------------------------------


def firmware(root: Path = Path("/")) -> str:
    """``"efi"`` when the machine booted through EFI (the kernel exposes
    /sys/firmware/efi), else ``"bios"``."""
    return "efi" if (root / "sys/firmware/efi").is_dir() else "bios"


def firmware_warning(firmware: str) -> str | None:
    """Why a BIOS boot is a problem for the layout, or None under EFI."""
    if firmware == "efi":
        return None
    return (
        "this machine booted with BIOS firmware, but the layout boots with systemd-boot, "
        "which needs EFI; switch the firmware to UEFI and boot the installer again "
        '(libvirt: "Customize configuration before install" → Firmware: UEFI/OVMF)'
    )


# --- JSON ---------------------------------------------------------------------------------


def _jsonable(value: Any) -> Any:
    """Tuples become lists and dataclasses dicts, so the result is plain JSON data."""
    if isinstance(value, Partition):
        return {key: _jsonable(item) for key, item in vars(value).items()}
    if isinstance(value, tuple | list):
        return [_jsonable(item) for item in value]
    return value


def disk_to_json(disk: Disk) -> dict[str, Any]:
    """A disk as JSON data, with the computed ``disk_id``, ``stable_path`` and ``usable``."""
    data = {key: _jsonable(value) for key, value in vars(disk).items()}
    data.update(disk_id=disk.disk_id, stable_path=disk.stable_path, usable=disk.usable)
    return data


def same_size_as(disk: Disk, disks: Sequence[Disk]) -> list[str]:
    """The ids of the other usable disks of ``disks`` that are ``disk``'s size: what a
    mirror or raidz with it could be made of. Empty for a disk that is not usable."""
    if not disk.usable:
        return []
    return [
        other.disk_id
        for other in disks
        if other.usable and other.name != disk.name and same_size(other.size_bytes, disk.size_bytes)
    ]


def disks_to_json(disks: Sequence[Disk], firmware: str) -> dict[str, Any]:
    """The discovery result as JSON data (sizes in bytes); each disk also lists the
    usable disks of its size (``same_size_as``)."""
    return {
        "firmware": firmware,
        "firmware_warning": firmware_warning(firmware),
        "disks": [
            {**disk_to_json(disk), "same_size_as": same_size_as(disk, disks)} for disk in disks
        ],
    }


# --- Reading the running system from /sys --------------------------------------------------


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return None


def _list_dir(path: Path) -> tuple[str, ...]:
    try:
        return tuple(sorted(entry.name for entry in path.iterdir()))
    except OSError:
        return ()


def _sysfs_name(devnum: DevNum, sys_root: Path) -> str | None:
    """The kernel name of a block device number, from /sys/dev/block/MAJ:MIN."""
    link = sys_root / "dev/block" / f"{devnum[0]}:{devnum[1]}"
    if not link.exists():
        return None
    return link.resolve().name


def _mount_containing(path: str, mounts: Sequence[MountEntry]) -> MountEntry | None:
    """The mount a file lives on: the longest mount point that is a prefix of it."""
    best: MountEntry | None = None
    for mount in mounts:
        prefix = mount.mountpoint.rstrip("/") + "/"
        # ">=": of two mounts on one mount point, the later one is the visible one.
        if (path.startswith(prefix) or mount.mountpoint == "/") and (
            best is None or len(mount.mountpoint) >= len(best.mountpoint)
        ):
            best = mount
    return best


def physical_disks(name: str, sys_root: Path, mounts: Sequence[MountEntry]) -> frozenset[str]:
    """The whole disks a block device is built on.

    A partition leads to its disk, a dm or md device to its ``slaves``, and a loop
    device to the disk holding its backing file (the installer ISO's squashfs sits on a
    loop device whose file is on the boot medium).
    """
    found: set[str] = set()
    seen: set[str] = set()
    pending = [name]
    while pending:
        current = pending.pop()
        if current in seen:
            continue
        seen.add(current)
        node = sys_root / "class/block" / current
        if (node / "partition").exists():
            pending.append(node.resolve().parent.name)
            continue
        slaves = _list_dir(node / "slaves")
        if slaves:
            pending.extend(slaves)
            continue
        backing = _read(node / "loop/backing_file")
        if backing:
            mount = _mount_containing(backing, mounts)
            parent = _sysfs_name(mount.devnum, sys_root) if mount else None
            if parent:
                pending.append(parent)
            continue
        if node.exists():
            found.add(current)
    return frozenset(found)


def running_system_disks(mounts: Sequence[MountEntry], root: Path = Path("/")) -> frozenset[str]:
    """Kernel names of the disks under ``/``, ``/nix/store``, ``/boot`` and the boot medium."""
    disks: set[str] = set()
    for mount in mounts:
        if mount.mountpoint not in RUNNING_MOUNTPOINTS:
            continue
        name = _sysfs_name(mount.devnum, root / "sys")
        if name:
            disks |= physical_disks(name, root / "sys", mounts)
    return frozenset(disks)


def running_system_pools(mounts: Sequence[MountEntry]) -> frozenset[str]:
    """ZFS pools the running system is mounted from (a dataset's source is pool/path)."""
    return frozenset(
        mount.source.split("/")[0]
        for mount in mounts
        if mount.mountpoint in RUNNING_MOUNTPOINTS and mount.fstype == "zfs"
    )


def imported_pools(proc: Path = Path("/proc")) -> frozenset[str]:
    """The pools imported on this machine: the ZFS module keeps a kstat directory for each
    under ``/proc/spl/kstat/zfs`` (its other entries are files). Reading it spares a
    ``zpool`` process; without the module there is no such directory and no pool."""
    try:
        with os.scandir(proc / "spl" / "kstat" / "zfs") as entries:
            return frozenset(entry.name for entry in entries if entry.is_dir())
    except (FileNotFoundError, NotADirectoryError):
        return frozenset()


def running_system_sources(mounts: Sequence[MountEntry]) -> frozenset[str]:
    """The /dev paths the running system is mounted from."""
    return frozenset(
        mount.source
        for mount in mounts
        if mount.mountpoint in RUNNING_MOUNTPOINTS and mount.source.startswith("/dev/")
    )


def _swap_devnums(entries: Iterable[SwapEntry]) -> frozenset[DevNum]:
    """Device numbers of swap partitions (a name in /proc/swaps may be any alias)."""
    devnums = set()
    for entry in entries:
        if entry.kind != "partition":
            continue
        try:
            rdev = Path(entry.filename).stat().st_rdev
        except OSError:
            continue
        devnums.add((os.major(rdev), os.minor(rdev)))
    return frozenset(devnums)


def system_state(root: Path = Path("/")) -> SystemState:
    """Read mounts, swap and the running system's disks from the machine under ``root``."""
    mounts = tuple(parse_mountinfo(_read(root / "proc/self/mountinfo") or ""))
    swaps = parse_swaps(_read(root / "proc/swaps") or "")
    return SystemState(
        mounts=mounts,
        swap_devnums=_swap_devnums(swaps) if root == Path("/") else frozenset(),
        swap_paths=frozenset(entry.filename for entry in swaps),
        running_disks=running_system_disks(mounts, root),
        running_pools=running_system_pools(mounts),
        running_sources=running_system_sources(mounts),
    )


# --- udev --------------------------------------------------------------------------------------


def _prop(device: Any, key: str) -> str | None:
    """A udev property, or None; undecodable values (probert LP: 2017862) count as absent."""
    try:
        value = device.properties.get(key)
    except UnicodeDecodeError:
        return None
    if value is None:
        return None
    return str(value).strip() or None


def _int(text: str | None) -> int | None:
    return int(text) if text is not None and text.isdigit() else None


def _devnum(device: Any) -> DevNum:
    number = int(device.device_number)
    return os.major(number), os.minor(number)


def _size(sys_path: Path) -> int:
    """Size in bytes: sysfs ``size`` is always in 512-byte sectors, whatever the disk's
    logical block size."""
    return (_int(_read(sys_path / "size")) or 0) * 512


def _holders(name: str, root: Path) -> tuple[str, ...]:
    return _list_dir(root / "sys/class/block" / name / "holders")


def _partition_facts(device: Any, root: Path) -> PartitionFacts:
    sys_path = Path(device.sys_path)
    return PartitionFacts(
        name=device.sys_name,
        path=device.device_node or f"/dev/{device.sys_name}",
        devnum=_devnum(device),
        number=_int(_prop(device, "PARTN") or _read(sys_path / "partition")),
        size_bytes=_size(sys_path),
        partuuid=_prop(device, "ID_PART_ENTRY_UUID"),
        fstype=_prop(device, "ID_FS_TYPE"),
        label=_prop(device, "ID_FS_LABEL"),
        links=tuple(sorted(device.device_links)),
        holders=_holders(device.sys_name, root),
    )


def gather_disk_facts(device: Any, root: Path = Path("/")) -> DiskFacts:
    """Everything udev and sysfs say about one whole-disk ``pyudev.Device``."""
    sys_path = Path(device.sys_path)
    parent = device.parent
    properties = {
        key: value for key in ("ID_BUS", "ID_ATA_SATA") if (value := _prop(device, key)) is not None
    }
    rotational = _read(sys_path / "queue/rotational")
    partitions = sorted(
        (
            _partition_facts(child, root)
            for child in device.children
            if child.subsystem == "block" and child.device_type == "partition"
        ),
        key=lambda part: (part.number is None, part.number or 0, part.name),
    )
    return DiskFacts(
        name=device.sys_name,
        path=device.device_node or f"/dev/{device.sys_name}",
        devnum=_devnum(device),
        size_bytes=_size(sys_path),
        links=tuple(sorted(device.device_links)),
        # udev's short serial first; virtio and NVMe disks also expose it in sysfs,
        # which is all there is when udevd is not running.
        serial=_prop(device, "ID_SERIAL_SHORT")
        or _prop(device, "ID_SERIAL")
        or _read(sys_path / "serial")
        or _read(sys_path / "device/serial")
        or None,  # an empty sysfs file means no serial
        model=_prop(device, "ID_MODEL") or _read(sys_path / "device/model") or None,
        rotational=None if rotational is None else rotational == "1",
        transport=guess_transport(
            device.sys_name,
            properties,
            device.sys_path,
            parent.driver if parent is not None else None,
        ),
        removable=_read(sys_path / "removable") == "1",
        read_only=_read(sys_path / "ro") == "1",
        fstype=_prop(device, "ID_FS_TYPE"),
        label=_prop(device, "ID_FS_LABEL"),
        holders=_holders(device.sys_name, root),
        partitions=tuple(partitions),
        udev_known=bool(device.is_initialized),
    )


def _natural_key(name: str) -> tuple[tuple[int, int | str], ...]:
    """Sort by the numbers in a name as numbers: ``nvme2n1`` before ``nvme10n1``."""
    return tuple(
        (0, int(part)) if part.isdigit() else (1, part) for part in re.split(r"(\d+)", name) if part
    )


@functools.cache
def udev_context() -> pyudev.Context:
    """This process's one connection to udev; listing devices through it reads them
    afresh. Making it loads libudev, also where ctypes cannot find it (NixOS), or raises
    :class:`UsageError` saying what to do (:mod:`advisor.install.libudev`)."""
    return libudev.open_context()


def discover_disks(context: Any = None) -> list[Disk]:
    """The whole disks of this machine, each with what forbids installing on it."""
    context = context if context is not None else udev_context()
    root = Path("/")
    state = system_state(root)
    disks = []
    for device in context.list_devices(subsystem="block", DEVTYPE="disk"):
        if not is_candidate(device.sys_name, _size(Path(device.sys_path))):
            continue
        disks.append(build_disk(gather_disk_facts(device, root), state))
    return sorted(disks, key=lambda disk: _natural_key(disk.name))


# --- Exclusive open (needs root) ----------------------------------------------------------------


def exclusive_open_error(path: str) -> int | None:
    """Open ``path`` read-only with ``O_EXCL`` and close it again: None when that works,
    else the errno. On a block device ``O_EXCL`` fails with EBUSY while anything holds
    it (a mount, swap, dm, md, an imported ZFS pool, or a partition of it held so)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_EXCL)
    except OSError as error:
        return error.errno
    os.close(fd)
    return None


def check_exclusive(disk: Disk) -> Disk:
    """``disk`` with a problem added if another program has it open exclusively, or a
    warning if that could not be checked (it needs root)."""
    error = exclusive_open_error(disk.path)
    if error is None:
        return disk
    if error == errno.EBUSY:
        return replace(disk, problems=(*disk.problems, "in use by another program"))
    return replace(
        disk,
        warnings=(
            *disk.warnings,
            f"could not check whether another program uses it ({os.strerror(error)}; run as root)",
        ),
    )
