"""Disk discovery: the pure parts on made-up facts, the udev walk on fake devices, and
once against the real machine."""

from __future__ import annotations

import errno
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest

from advisor.blockdevices import choose_disk_id, is_candidate
from advisor.errors import UsageError
from advisor.install.disks import (
    MIN_DISK_BYTES,
    Disk,
    DiskFacts,
    PartitionFacts,
    SwapEntry,
    SystemState,
    build_disk,
    check_exclusive,
    discover_disks,
    disk_of_device,
    disks_to_json,
    find_disk,
    firmware,
    firmware_warning,
    gather_disk_facts,
    guess_transport,
    imported_pools,
    overwrite_problems,
    parse_swaps,
    running_system_disks,
    running_system_pools,
)
from advisor.mounts import MountEntry, parse_mountinfo

GIB = 1024**3

MOUNTINFO = r"""22 27 0:21 / /proc rw,relatime - proc proc rw
27 1 254:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw,discard
28 27 254:2 / /mnt/my\040disk rw,relatime shared:5 master:1 - vfat /dev/vda2 rw
29 27 0:40 / /home rw,relatime - btrfs /dev/sdb1 rw,subvol=/home
30 27 0:41 / /nix/store ro - zfs rpool/local/nix rw
31 27 8:17 /sub\134dir /srv/tab\011name rw - xfs /dev/sdb1\040x rw
garbage line
32 27 8:18 / /broken rw shared:1
"""

SWAPS = """Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority
/dev/vda3                               partition\t8388604\t\t0\t\t-2
/swap\\040file                           file\t\t1048572\t\t0\t\t-3
"""


# --- /proc parsing -------------------------------------------------------------------------------


def test_parse_mountinfo_reads_devnum_mountpoint_fstype_and_source() -> None:
    entries = parse_mountinfo(MOUNTINFO)
    assert [entry.mountpoint for entry in entries] == [
        "/proc",
        "/",
        "/mnt/my disk",
        "/home",
        "/nix/store",
        "/srv/tab\tname",
    ]
    root = entries[1]
    assert root == MountEntry((254, 1), "/", "/", "ext4", "/dev/vda1")
    # Optional fields (shared:5 master:1) do not shift fstype and source.
    assert entries[2].fstype == "vfat"
    assert entries[2].source == "/dev/vda2"
    assert entries[5].root == "/sub\\dir"
    assert entries[5].source == "/dev/sdb1 x"


def test_parse_mountinfo_skips_lines_without_separator() -> None:
    assert parse_mountinfo("garbage\n32 27 8:18 / /broken rw shared:1\n") == []
    assert parse_mountinfo("") == []


def test_parse_swaps_unescapes_and_skips_header() -> None:
    assert parse_swaps(SWAPS) == [
        SwapEntry("/dev/vda3", "partition"),
        SwapEntry("/swap file", "file"),
    ]
    assert parse_swaps("Filename Type Size Used Priority\n") == []


# --- disk_id -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("links", "expected"),
    [
        (["ata-Samsung_SSD_S1", "wwn-0x5002538e4", "scsi-0ATA_Samsung"], "wwn-0x5002538e4"),
        (["nvme-Samsung_980_S6", "nvme-eui.0025385b"], "nvme-eui.0025385b"),
        (["scsi-SATA_disk", "ata-disk_SER"], "ata-disk_SER"),
        (["virtio-disk01", "lvm-pv-uuid-abc"], "virtio-disk01"),
        (["dm-name-cryptroot", "usb-Kingston_DT_123-0:0"], "usb-Kingston_DT_123-0:0"),
        (["md-uuid-1234", "other-thing"], "other-thing"),
        (["/dev/disk/by-id/scsi-1", "/dev/disk/by-id/virtio-x"], "scsi-1"),
    ],
)
def test_choose_disk_id_prefers_real_names(links: list[str], expected: str) -> None:
    assert choose_disk_id("sda", links, ["pci-0000:00:1f.2-ata-1"]) == expected


def test_choose_disk_id_falls_back_to_by_path_then_kernel_name() -> None:
    by_path = ["/dev/disk/by-path/virtio-pci-0000:00:02.0", "/dev/disk/by-path/pci-0000:00:02.0"]
    assert choose_disk_id("vda", [], by_path) == "pci-0000:00:02.0"
    assert choose_disk_id("vda", [], []) == "vda"


# --- building a Disk from facts ------------------------------------------------------------------


def _facts(**changes: Any) -> DiskFacts:
    """A healthy, unused 64 GiB SATA disk with one empty partition."""
    base = DiskFacts(
        name="sda",
        path="/dev/sda",
        devnum=(8, 0),
        size_bytes=64 * GIB,
        links=(
            "/dev/disk/by-id/ata-Disk_SER1",
            "/dev/disk/by-id/wwn-0x5000c500",
            "/dev/disk/by-path/pci-0000:00:1f.2-ata-1",
        ),
        serial="SER1",
        model="Disk",
        rotational=False,
        transport="sata",
        partitions=(
            PartitionFacts(
                name="sda1",
                path="/dev/sda1",
                devnum=(8, 1),
                number=1,
                size_bytes=63 * GIB,
                links=("/dev/disk/by-partuuid/1111",),
            ),
        ),
    )
    return replace(base, **changes)


def _part(**changes: Any) -> PartitionFacts:
    return replace(_facts().partitions[0], **changes)


def test_healthy_disk_is_usable_and_named_by_wwn() -> None:
    disk = build_disk(_facts(), SystemState())
    assert disk.usable
    assert disk.problems == ()
    assert disk.warnings == ()
    assert disk.disk_id == "wwn-0x5000c500"
    assert disk.stable_path == "/dev/disk/by-id/wwn-0x5000c500"
    assert disk.by_id[0] == "/dev/disk/by-id/wwn-0x5000c500"
    assert disk.by_path == ("/dev/disk/by-path/pci-0000:00:1f.2-ata-1",)
    assert disk.partitions[0].number == 1


def test_stable_path_falls_back_to_by_path_and_kernel_path() -> None:
    by_path_only = build_disk(_facts(links=("/dev/disk/by-path/pci-0000:00:02.0",)), SystemState())
    assert by_path_only.stable_path == "/dev/disk/by-path/pci-0000:00:02.0"
    bare = build_disk(_facts(links=()), SystemState())
    assert (bare.disk_id, bare.stable_path) == ("sda", "/dev/sda")


_MOUNTED = SystemState(mounts=(MountEntry((8, 1), "/", "/mnt/my disk", "ext4", "/dev/sda1"),))


@pytest.mark.parametrize(
    ("facts", "state", "expected"),
    [
        pytest.param(_facts(), _MOUNTED, "mounted at /mnt/my disk", id="partition-mounted"),
        pytest.param(
            _facts(),
            SystemState(mounts=(MountEntry((8, 0), "/", "/data", "xfs", "/dev/sda"),)),
            "mounted at /data",
            id="disk-mounted",
        ),
        pytest.param(
            _facts(),
            # btrfs: anonymous device number, the real device only in the source.
            SystemState(mounts=(MountEntry((0, 44), "/", "/home", "btrfs", "/dev/sda1"),)),
            "mounted at /home",
            id="btrfs-by-source",
        ),
        pytest.param(
            _facts(), SystemState(swap_devnums=frozenset({(8, 1)})), "holds active swap", id="swap"
        ),
        pytest.param(
            _facts(),
            SystemState(swap_paths=frozenset({"/dev/disk/by-partuuid/1111"})),
            "holds active swap",
            id="swap-by-link",
        ),
        pytest.param(
            _facts(partitions=(_part(holders=("dm-0",)),), holders=("md127",)),
            SystemState(),
            "held by md127, dm-0",
            id="holders",
        ),
        pytest.param(
            _facts(partitions=(_part(fstype="zfs_member", label="tank"),)),
            SystemState(),
            "a member of ZFS pool tank",
            id="zfs-partition",
        ),
        pytest.param(
            _facts(fstype="zfs_member", label=None, partitions=()),
            SystemState(),
            "a member of a ZFS pool",
            id="zfs-whole-disk-unnamed",
        ),
        pytest.param(
            _facts(),
            SystemState(running_disks=frozenset({"sda"})),
            "holds the running system",
            id="running-disk",
        ),
        pytest.param(
            _facts(partitions=(_part(fstype="zfs_member", label="rpool"),)),
            SystemState(running_pools=frozenset({"rpool"})),
            "holds the running system",
            id="running-pool",
        ),
        pytest.param(
            _facts(),
            SystemState(running_sources=frozenset({"/dev/sda1"})),
            "holds the running system",
            id="running-source",
        ),
        pytest.param(_facts(read_only=True), SystemState(), "read-only", id="read-only"),
        pytest.param(
            _facts(size_bytes=7 * GIB),
            SystemState(),
            "too small for NixOS (7.0 GiB; at least 8.0 GiB is needed)",
            id="too-small",
        ),
    ],
)
def test_each_refusal_reason_makes_the_disk_unusable(
    facts: DiskFacts, state: SystemState, expected: str
) -> None:
    disk = build_disk(facts, state)
    assert not disk.usable
    assert any(problem.startswith(expected) for problem in disk.problems), disk.problems


def test_problem_facts_are_reported_on_the_disk_and_its_partitions() -> None:
    state = replace(_MOUNTED, swap_devnums=frozenset({(8, 1)}))
    facts = _facts(partitions=(_part(holders=("dm-0",), fstype="zfs_member", label="tank"),))
    disk = build_disk(facts, state)
    part = disk.partitions[0]
    assert part.mountpoints == ("/mnt/my disk",)
    assert part.swap
    assert disk.swap
    assert disk.mountpoints == ()  # the whole disk itself is not mounted
    assert disk.holders == ("dm-0",)
    assert disk.zfs_pool == "tank"
    assert disk.problems[0] == "mounted at /mnt/my disk"


def test_running_system_comes_first() -> None:
    disk = build_disk(_facts(), replace(_MOUNTED, running_disks=frozenset({"sda"})))
    assert disk.running_system
    assert disk.problems[:2] == ("holds the running system", "mounted at /mnt/my disk")


def test_exactly_the_minimum_size_is_enough() -> None:
    assert build_disk(_facts(size_bytes=MIN_DISK_BYTES), SystemState()).usable


# --- warnings ------------------------------------------------------------------------------------


def _virtio(**changes: Any) -> DiskFacts:
    """A 64 GiB virtio disk with no serial, so no by-id link, and no partitions."""
    base = _facts(
        name="vda",
        path="/dev/vda",
        devnum=(254, 0),
        links=(),
        serial=None,
        model=None,
        transport="virtio",
        partitions=(),
    )
    return replace(base, **changes)


def test_virtio_disk_without_serial_is_warned_about_with_the_fix() -> None:
    disk = build_disk(_virtio(), SystemState())
    assert disk.usable  # a warning, not a refusal
    (warning,) = disk.warnings
    assert "NixOS's ZFS import at boot looks in /dev/disk/by-id and hangs" in warning
    assert "<serial>disk01</serial>" in warning
    assert "serial=disk01" in warning


def test_virtio_disk_with_serial_and_link_has_no_warning() -> None:
    disk = build_disk(
        _virtio(serial="disk01", links=("/dev/disk/by-id/virtio-disk01",)), SystemState()
    )
    assert disk.warnings == ()
    assert disk.disk_id == "virtio-disk01"


def test_any_disk_without_by_id_link_is_warned_about() -> None:
    disk = build_disk(_facts(links=("/dev/disk/by-path/pci-0000:00:1f.2-ata-1",)), SystemState())
    (warning,) = disk.warnings
    assert "looks in /dev/disk/by-id and hangs" in warning
    assert "libvirt" not in warning  # a SATA disk gets no VM advice


def test_removable_unknown_to_udev_and_existing_data_are_warned_about() -> None:
    facts = _facts(
        removable=True, udev_known=False, partitions=(_part(fstype="ext4", label="home"),)
    )
    disk = build_disk(facts, SystemState())
    assert disk.usable
    assert "removable: make sure this is the disk you mean" in disk.warnings
    assert any("udev has no record" in warning for warning in disk.warnings)
    assert 'has data (sda1: ext4 "home"): installing erases it' in disk.warnings


# --- transport and candidates --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "properties", "sys_path", "driver", "expected"),
    [
        ("vda", {}, "/sys/devices/pci0000:00/0000:00:02.0/virtio1/block/vda", None, "virtio"),
        ("xvda", {}, "", "virtio_blk", "virtio"),
        ("nvme0n1", {}, "", None, "nvme"),
        ("sda", {"ID_BUS": "ata", "ID_ATA_SATA": "1"}, "", None, "sata"),
        ("sda", {"ID_BUS": "ata"}, "", None, "ata"),
        ("sdb", {"ID_BUS": "usb"}, "", None, "usb"),
        ("sdb", {}, "/sys/devices/pci0000:00/0000:00:14.0/usb2/2-1/host6/block/sdb", None, "usb"),
        ("sdc", {"ID_BUS": "scsi"}, "", "sd", "scsi"),
        ("mmcblk0", {}, "", None, "mmc"),
        ("sdd", {}, "/sys/devices/pci0000:00/0000:00:1f.2/ata1/host0/block/sdd", None, "ata"),
        ("sde", {}, "/sys/devices/platform/thing/block/sde", None, None),
    ],
)
def test_guess_transport(
    name: str, properties: dict[str, str], sys_path: str, driver: str | None, expected: str | None
) -> None:
    assert guess_transport(name, properties, sys_path, driver) == expected


@pytest.mark.parametrize("name", ["loop0", "ram0", "zram0", "sr0", "dm-0", "md127", "nbd0", "zd0"])
def test_virtual_devices_are_not_candidates(name: str) -> None:
    assert not is_candidate(name, 64 * GIB)


def test_real_disks_with_media_are_candidates() -> None:
    assert is_candidate("vda", 64 * GIB)
    assert is_candidate("nvme0n1", 1)
    assert not is_candidate("sdb", 0)  # card reader without a card


# --- find_disk -----------------------------------------------------------------------------------


def _two_disks() -> list[Disk]:
    vda = build_disk(
        _virtio(serial="disk01", links=("/dev/disk/by-id/virtio-disk01",), model=None),
        SystemState(),
    )
    sda = build_disk(_facts(), SystemState(running_disks=frozenset({"sda"})))
    return [vda, sda]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("virtio-disk01", "vda"),
        ("/dev/disk/by-id/virtio-disk01", "vda"),
        ("vda", "vda"),
        ("/dev/vda", "vda"),
        (" wwn-0x5000c500 ", "sda"),
        ("ata-Disk_SER1", "sda"),
        ("pci-0000:00:1f.2-ata-1", "sda"),
        ("/dev/disk/by-path/pci-0000:00:1f.2-ata-1", "sda"),
    ],
)
def test_find_disk_accepts_every_name_of_a_disk(text: str, expected: str) -> None:
    assert find_disk(_two_disks(), text).name == expected


@pytest.mark.parametrize("text", ["sdz", "/dev/sda1", "", "/dev/disk/by-partuuid/1111"])
def test_find_disk_lists_the_disks_when_nothing_matches(text: str) -> None:
    with pytest.raises(UsageError) as raised:
        find_disk(_two_disks(), text)
    message = str(raised.value)
    assert f"no disk matches {text!r}" in message
    assert "virtio-disk01  64.0 GiB  (/dev/vda)" in message
    assert "wwn-0x5000c500  64.0 GiB  Disk  (/dev/sda)" in message
    assert "unusable: holds the running system" in message
    assert raised.value.exit_status == 2


def test_find_disk_without_disks_says_so() -> None:
    with pytest.raises(UsageError, match="no disks were found"):
        find_disk([], "vda")


# --- Other devices to be overwritten (a detached header) ------------------------------------------


def test_disk_of_device_finds_a_disk_or_the_disk_of_a_partition(tmp_path: Path) -> None:
    for name in ("sda", "sda1", "sdb"):
        (tmp_path / name).touch()
    (tmp_path / "usb-STICK-part1").symlink_to(tmp_path / "sda1")
    (tmp_path / "ata-OTHER").symlink_to(tmp_path / "sdb")
    stick = build_disk(
        _facts(path=str(tmp_path / "sda"), partitions=(_part(path=str(tmp_path / "sda1")),)),
        SystemState(),
    )
    other = build_disk(_facts(name="sdb", path=str(tmp_path / "sdb"), partitions=()), SystemState())
    disks = [other, stick]
    assert disk_of_device(disks, str(tmp_path / "usb-STICK-part1")) == stick
    assert disk_of_device(disks, str(tmp_path / "sda")) == stick
    assert disk_of_device(disks, str(tmp_path / "ata-OTHER")) == other
    assert disk_of_device(disks, str(tmp_path / "dm-0")) is None


def test_a_small_disk_may_take_a_header_but_not_a_mounted_one() -> None:
    small = build_disk(_facts(size_bytes=64 * 1024**2), SystemState())
    assert not small.usable
    assert overwrite_problems(small) == ()
    mounted = build_disk(_facts(size_bytes=64 * 1024**2), _MOUNTED)
    assert overwrite_problems(mounted) == ("mounted at /mnt/my disk",)


# --- JSON and firmware ---------------------------------------------------------------------------


def test_disks_to_json_is_plain_json_with_computed_fields() -> None:
    data = disks_to_json(_two_disks(), "bios")
    assert json.loads(json.dumps(data)) == data  # only lists, dicts, str, int, bool, None
    assert data["firmware"] == "bios"
    assert "systemd-boot" in data["firmware_warning"]
    vda, sda = data["disks"]
    assert vda["disk_id"] == "virtio-disk01"
    assert vda["stable_path"] == "/dev/disk/by-id/virtio-disk01"
    assert vda["usable"] is True
    assert vda["size_bytes"] == 64 * GIB
    assert sda["usable"] is False
    assert sda["problems"] == ["holds the running system"]
    assert sda["partitions"][0]["name"] == "sda1"
    assert sda["partitions"][0]["size_bytes"] == 63 * GIB


def test_firmware_reads_sys_firmware_efi(tmp_path: Path) -> None:
    assert firmware(tmp_path) == "bios"
    (tmp_path / "sys/firmware/efi").mkdir(parents=True)
    assert firmware(tmp_path) == "efi"


def test_firmware_warning_only_under_bios() -> None:
    assert firmware_warning("efi") is None
    warning = firmware_warning("bios")
    assert warning is not None
    assert "systemd-boot, which needs EFI" in warning
    assert "UEFI/OVMF" in warning


# --- the running system through a fake /sys ------------------------------------------------------


def _block(sys: Path, name: str, devnum: str, parent: str | None = None) -> Path:
    """Make /sys/devices/.../block/NAME (or a partition below PARENT), with its
    /sys/class/block and /sys/dev/block links, like the kernel does."""
    base = sys / "devices/virtual/block"
    node = base / parent / name if parent else base / name
    node.mkdir(parents=True)
    if parent:
        (node / "partition").write_text("1\n")
    for link in (sys / "class/block" / name, sys / "dev/block" / devnum):
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(node, link.parent))
    return node


def _slave(node: Path, name: str) -> None:
    (node / "slaves").mkdir(exist_ok=True)
    (node / "slaves" / name).mkdir()


def test_root_on_a_partition_is_traced_to_its_disk(tmp_path: Path) -> None:
    sys = tmp_path / "sys"
    _block(sys, "vda", "254:0")
    _block(sys, "vda1", "254:1", parent="vda")
    _block(sys, "vdb", "254:16")
    mounts = [
        MountEntry((254, 1), "/", "/", "ext4", "/dev/vda1"),
        MountEntry((254, 16), "/", "/data", "ext4", "/dev/vdb"),  # mounted, not the system
    ]
    assert running_system_disks(mounts, tmp_path) == {"vda"}


def test_root_on_dm_crypt_over_md_is_traced_to_every_disk(tmp_path: Path) -> None:
    sys = tmp_path / "sys"
    for disk, major_minor, partition in (("sda", "8:0", "8:2"), ("sdb", "8:16", "8:18")):
        _block(sys, disk, major_minor)
        _block(sys, f"{disk}2", partition, parent=disk)
    md = _block(sys, "md127", "9:127")
    _slave(md, "sda2")
    _slave(md, "sdb2")
    dm = _block(sys, "dm-0", "253:0")
    _slave(dm, "md127")
    mounts = [MountEntry((253, 0), "/", "/", "ext4", "/dev/mapper/root")]
    assert running_system_disks(mounts, tmp_path) == {"sda", "sdb"}


def test_installer_store_on_loop_is_traced_to_the_boot_medium(tmp_path: Path) -> None:
    sys = tmp_path / "sys"
    _block(sys, "sdc", "8:32")
    _block(sys, "sdc1", "8:33", parent="sdc")
    loop = _block(sys, "loop0", "7:0")
    (loop / "loop").mkdir()
    (loop / "loop/backing_file").write_text("/iso/nix-store.squashfs\n")
    mounts = [
        MountEntry((0, 30), "/", "/", "tmpfs", "tmpfs"),
        MountEntry((8, 33), "/", "/iso", "iso9660", "/dev/sdc1"),
        MountEntry((7, 0), "/", "/nix/.ro-store", "squashfs", "/dev/loop0"),
    ]
    assert running_system_disks(mounts, tmp_path) == {"sdc"}


def test_loop_backing_file_alone_leads_to_its_disk(tmp_path: Path) -> None:
    sys = tmp_path / "sys"
    _block(sys, "sdd", "8:48")
    loop = _block(sys, "loop1", "7:1")
    (loop / "loop").mkdir()
    (loop / "loop/backing_file").write_text("/run/medium/store.img\n")
    mounts = [
        MountEntry((8, 48), "/", "/run/medium", "ext4", "/dev/sdd"),  # not a system mount
        MountEntry((7, 1), "/", "/nix/store", "ext4", "/dev/loop1"),
    ]
    assert running_system_disks(mounts, tmp_path) == {"sdd"}
    assert running_system_disks(mounts[:1], tmp_path) == frozenset()


def test_zfs_root_names_its_pool() -> None:
    mounts = parse_mountinfo(MOUNTINFO)
    assert running_system_pools(mounts) == {"rpool"}


# --- the udev walk on fake devices ---------------------------------------------------------------


@dataclass
class FakeParent:
    driver: str | None


@dataclass
class FakeDevice:
    """The part of ``pyudev.Device`` that :func:`gather_disk_facts` uses."""

    sys_name: str
    sys_path: str
    device_number: int
    device_type: str = "disk"
    subsystem: str = "block"
    properties: dict[str, str] = field(default_factory=dict)
    device_links: tuple[str, ...] = ()
    children: list[FakeDevice] = field(default_factory=list)
    parent: FakeParent | None = None
    is_initialized: bool = True

    @property
    def device_node(self) -> str:
        return f"/dev/{self.sys_name}"


def _sysfs_device(
    tmp_path: Path, name: str, sectors: int, files: dict[str, str] | None = None
) -> Callable[..., FakeDevice]:
    """A sysfs directory with ``size`` and other attribute files, and a device factory."""
    node = tmp_path / "devices" / name
    node.mkdir(parents=True)
    (node / "size").write_text(f"{sectors}\n")
    for relative, text in (files or {}).items():
        path = node / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)

    def make(**kwargs: Any) -> FakeDevice:
        return FakeDevice(sys_name=name, sys_path=str(node), **kwargs)

    return make


def test_gather_reads_udev_properties_and_sysfs(tmp_path: Path) -> None:
    part = _sysfs_device(tmp_path, "sda1", 2048, {"partition": "1\n"})(
        device_number=os.makedev(8, 1),
        device_type="partition",
        properties={
            "ID_PART_ENTRY_UUID": "1111",
            "ID_FS_TYPE": "zfs_member",
            "ID_FS_LABEL": "tank",
        },
        device_links=("/dev/disk/by-partuuid/1111",),
    )
    files = {"queue/rotational": "1\n", "removable": "0\n", "ro": "0\n"}
    disk = _sysfs_device(tmp_path, "sda", 64 * GIB // 512, files)(
        device_number=os.makedev(8, 0),
        properties={
            "ID_SERIAL_SHORT": "SER1",
            "ID_SERIAL": "Disk_SER1",
            "ID_MODEL": "Disk",
            "ID_BUS": "ata",
            "ID_ATA_SATA": "1",
        },
        device_links=("/dev/disk/by-id/ata-Disk_SER1",),
        children=[part],
    )
    facts = gather_disk_facts(disk, tmp_path)
    assert facts.size_bytes == 64 * GIB
    assert (facts.serial, facts.model, facts.transport) == ("SER1", "Disk", "sata")
    assert facts.rotational is True
    assert facts.devnum == (8, 0)
    assert facts.partitions[0].devnum == (8, 1)
    assert facts.partitions[0].number == 1
    assert facts.partitions[0].size_bytes == 1024 * 1024
    assert build_disk(facts, SystemState()).zfs_pool == "tank"


def test_gather_without_udev_falls_back_to_sysfs(tmp_path: Path) -> None:
    (tmp_path / "sys/class/block/vda/holders/dm-3").mkdir(parents=True)
    disk = _sysfs_device(tmp_path, "vda", 32 * GIB // 512, {"serial": "overlayblk", "ro": "1\n"})(
        device_number=os.makedev(254, 0),
        parent=FakeParent("virtio_blk"),
        is_initialized=False,
    )
    facts = gather_disk_facts(disk, tmp_path)
    assert facts.serial == "overlayblk"
    assert facts.transport == "virtio"
    assert facts.read_only
    assert facts.rotational is None  # no queue/rotational file: unknown
    assert facts.holders == ("dm-3",)
    assert not facts.udev_known


def test_discover_disks_skips_virtual_and_empty_devices(tmp_path: Path) -> None:
    devices = [
        _sysfs_device(tmp_path, name, sectors)(device_number=os.makedev(250, number))
        for number, (name, sectors) in enumerate(
            [("vdb", 16 * GIB // 512), ("loop0", 1000), ("sdb", 0), ("vda", 16 * GIB // 512)]
        )
    ]

    class FakeContext:
        def list_devices(self, **match: str) -> list[FakeDevice]:
            assert match == {"subsystem": "block", "DEVTYPE": "disk"}
            return devices

    assert [disk.name for disk in discover_disks(FakeContext())] == ["vda", "vdb"]


# --- exclusive open ------------------------------------------------------------------------------


def test_check_exclusive_adds_a_problem_when_busy(monkeypatch: pytest.MonkeyPatch) -> None:
    def busy(path: str, flags: int) -> int:
        assert flags & os.O_EXCL
        raise OSError(errno.EBUSY, os.strerror(errno.EBUSY), path)

    monkeypatch.setattr(os, "open", busy)
    disk = check_exclusive(_two_disks()[0])
    assert disk.problems == ("in use by another program",)
    assert not disk.usable


def test_check_exclusive_warns_when_it_cannot_check(monkeypatch: pytest.MonkeyPatch) -> None:
    def denied(path: str, flags: int) -> int:
        raise OSError(errno.EACCES, os.strerror(errno.EACCES), path)

    monkeypatch.setattr(os, "open", denied)
    disk = check_exclusive(_two_disks()[0])
    assert disk.usable
    assert any("could not check" in warning for warning in disk.warnings)


def test_check_exclusive_keeps_a_free_device(tmp_path: Path) -> None:
    free = tmp_path / "image"
    free.write_bytes(b"\0" * 512)
    disk = replace(_two_disks()[0], path=str(free))
    assert check_exclusive(disk) == disk


# --- the real machine ----------------------------------------------------------------------------


def _root_disk() -> str | None:
    """The whole disk under /, found without advisor.install.disks: st_dev -> /sys/dev/block."""
    device = Path("/").stat().st_dev
    link = Path(f"/sys/dev/block/{os.major(device)}:{os.minor(device)}")
    if not link.exists():
        return None  # overlay, tmpfs, ZFS: no single block device
    node = link.resolve()
    return node.parent.name if (node / "partition").exists() else node.name


def test_discover_disks_on_this_machine() -> None:
    found = discover_disks()
    names = [disk.name for disk in found]
    assert len(names) == len(set(names))
    for disk in found:
        assert is_candidate(disk.name, disk.size_bytes)
        assert disk.path == f"/dev/{disk.name}"
        assert disk.usable == (disk.problems == ())
        if not disk.by_id:
            assert any("/dev/disk/by-id" in warning for warning in disk.warnings)
    root = _root_disk()
    if root is not None and is_candidate(root, 1):
        (disk,) = (disk for disk in found if disk.name == root)
        assert not disk.usable
        assert disk.running_system
        assert "holds the running system" in disk.problems
        assert any(problem.startswith("mounted at ") for problem in disk.problems)
    json.dumps(disks_to_json(found, firmware()))


def test_check_exclusive_on_the_disk_under_root() -> None:
    root = _root_disk()
    found = {disk.name: disk for disk in discover_disks()}
    if root is None or root not in found:
        assert root is None or not is_candidate(root, 1)
        return
    checked = check_exclusive(found[root])
    # Mounted, so never free: busy as root, or not checkable without access to it.
    assert "in use by another program" in checked.problems or any(
        "could not check" in warning for warning in checked.warnings
    )


def test_imported_pools_are_the_kstat_directories(tmp_path: Path) -> None:
    kstat = tmp_path / "spl" / "kstat" / "zfs"
    (kstat / "rpool").mkdir(parents=True)
    (kstat / "tank").mkdir()
    for name in ("arcstats", "dbufstats", "import_progress"):  # the module's own files
        (kstat / name).write_text("")
    assert imported_pools(tmp_path) == {"rpool", "tank"}
    assert imported_pools(tmp_path / "no-module") == frozenset()


def test_the_largest_group_of_disks_of_one_size() -> None:
    from advisor.blockdevices import largest_same_size_group, same_size

    assert same_size(1000, 1030) and not same_size(1000, 1031)
    gib = 1024**3
    sizes = {"a": 500 * gib, "b": 510 * gib, "c": 2000 * gib, "d": 2000 * gib, "e": 2001 * gib}
    assert largest_same_size_group(sizes) == ["c", "d", "e"]
    # A tie goes to the bigger disks.
    assert largest_same_size_group({"a": gib, "b": gib, "c": 8 * gib, "d": 8 * gib}) == ["c", "d"]
    assert largest_same_size_group({}) == []
