"""probe_system against fake /proc and /sys trees, and once against the real machine."""

from __future__ import annotations

from pathlib import Path

import pytest

from advisor.assess.system import probe_system
from advisor.models import SystemFacts

X86_CPUINFO = """\
processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Core(TM) i7-8650U CPU @ 1.90GHz
flags\t\t: fpu vme de pse tsc msr pae mce cx8 apic sep mtrr {extra}sse sse2 ss ht tm pbe
bugs\t\t: spectre_v1 spectre_v2
bogomips\t: 4199.88

processor\t: 1
vendor_id\t: GenuineIntel
flags\t\t: fpu vme de pse tsc msr pae mce cx8 apic sep mtrr {extra}sse sse2 ss ht tm pbe
"""

ARM_CPUINFO = """\
processor\t: 0
BogoMIPS\t: 108.00
Features\t: fp asimd evtstrm {extra}pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid
CPU implementer\t: 0x41
CPU architecture: 8

processor\t: 1
BogoMIPS\t: 108.00
Features\t: fp asimd evtstrm {extra}pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid
"""

MEMINFO = """\
MemTotal:       16314480 kB
MemFree:         1234567 kB
MemAvailable:    9876543 kB
SwapTotal:             0 kB
"""


def _write(root: Path, relative: str, text: str) -> None:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def _disk(root: Path, name: str, rotational: str | None) -> None:
    """A /sys/block entry; ``rotational=None`` leaves out queue/rotational."""
    device = root / "sys/block" / name
    device.mkdir(parents=True)
    if rotational is not None:
        _write(device, "queue/rotational", rotational)


# --- AES instructions ------------------------------------------------------------------


def test_x86_flags_with_aes(tmp_path: Path) -> None:
    _write(tmp_path, "proc/cpuinfo", X86_CPUINFO.format(extra="pclmulqdq aes avx "))
    assert probe_system(tmp_path).aes_instructions is True


def test_x86_flags_without_aes(tmp_path: Path) -> None:
    _write(tmp_path, "proc/cpuinfo", X86_CPUINFO.format(extra="pclmulqdq avx "))
    assert probe_system(tmp_path).aes_instructions is False


def test_aes_must_be_a_whole_flag(tmp_path: Path) -> None:
    # "vaes" and "aes_ni" are not the "aes" flag; substring matching would wrongly say True.
    _write(tmp_path, "proc/cpuinfo", X86_CPUINFO.format(extra="vaes aes_ni "))
    assert probe_system(tmp_path).aes_instructions is False


def test_arm_features_with_aes(tmp_path: Path) -> None:
    _write(tmp_path, "proc/cpuinfo", ARM_CPUINFO.format(extra="aes "))
    assert probe_system(tmp_path).aes_instructions is True


def test_arm_features_without_aes(tmp_path: Path) -> None:
    _write(tmp_path, "proc/cpuinfo", ARM_CPUINFO.format(extra=""))
    assert probe_system(tmp_path).aes_instructions is False


def test_no_cpuinfo_is_unknown(tmp_path: Path) -> None:
    assert probe_system(tmp_path).aes_instructions is None


def test_cpuinfo_without_flags_line_is_unknown(tmp_path: Path) -> None:
    _write(tmp_path, "proc/cpuinfo", "processor\t: 0\nmodel name\t: Mystery CPU\n")
    assert probe_system(tmp_path).aes_instructions is None


# --- memory ----------------------------------------------------------------------------


def test_memtotal_kb_to_bytes(tmp_path: Path) -> None:
    _write(tmp_path, "proc/meminfo", MEMINFO)
    assert probe_system(tmp_path).memory_bytes == 16314480 * 1024


def test_memtotal_not_first_line(tmp_path: Path) -> None:
    _write(tmp_path, "proc/meminfo", "MemFree: 10 kB\nMemTotal: 2048 kB\n")
    assert probe_system(tmp_path).memory_bytes == 2048 * 1024


def test_no_meminfo_is_unknown(tmp_path: Path) -> None:
    assert probe_system(tmp_path).memory_bytes is None


@pytest.mark.parametrize("text", ["MemFree: 10 kB\n", "MemTotal:\n", "MemTotal: lots kB\n"])
def test_meminfo_without_usable_memtotal_is_unknown(tmp_path: Path, text: str) -> None:
    _write(tmp_path, "proc/meminfo", text)
    assert probe_system(tmp_path).memory_bytes is None


def test_cpu_count_only_for_real_root(tmp_path: Path) -> None:
    assert probe_system(tmp_path).cpu_count is None


# --- solid-state disk ------------------------------------------------------------------


def test_non_rotational_disk_is_ssd(tmp_path: Path) -> None:
    _disk(tmp_path, "sda", "1\n")
    _disk(tmp_path, "nvme0n1", "0\n")
    assert probe_system(tmp_path).solid_state_disk is True


def test_all_rotational_disks_are_not_ssd(tmp_path: Path) -> None:
    _disk(tmp_path, "sda", "1\n")
    _disk(tmp_path, "sdb", "1\n")
    assert probe_system(tmp_path).solid_state_disk is False


def test_virtual_devices_are_ignored(tmp_path: Path) -> None:
    # Virtual devices report rotational=0; they must not make a spinning disk look like an SSD.
    _disk(tmp_path, "sda", "1\n")
    for name in ("loop0", "zram0", "dm-0", "ram0", "md127", "sr0", "nbd0", "zd0"):
        _disk(tmp_path, name, "0\n")
    assert probe_system(tmp_path).solid_state_disk is False


def test_only_virtual_devices_is_unknown(tmp_path: Path) -> None:
    for name in ("loop0", "loop1", "zram0", "dm-0", "dm-1"):
        _disk(tmp_path, name, "0\n")
    assert probe_system(tmp_path).solid_state_disk is None


def test_empty_sys_block_is_unknown(tmp_path: Path) -> None:
    (tmp_path / "sys/block").mkdir(parents=True)
    assert probe_system(tmp_path).solid_state_disk is None


def test_missing_sys_block_is_unknown(tmp_path: Path) -> None:
    assert probe_system(tmp_path).solid_state_disk is None


def test_disk_without_rotational_file_is_skipped(tmp_path: Path) -> None:
    _disk(tmp_path, "vda", None)
    assert probe_system(tmp_path).solid_state_disk is None
    _disk(tmp_path, "vdb", "0\n")
    assert probe_system(tmp_path).solid_state_disk is True


# --- EFI -------------------------------------------------------------------------------


def test_efi_dir_present(tmp_path: Path) -> None:
    (tmp_path / "sys/firmware/efi").mkdir(parents=True)
    assert probe_system(tmp_path).efi_firmware is True


def test_efi_dir_absent(tmp_path: Path) -> None:
    (tmp_path / "sys/firmware/acpi").mkdir(parents=True)
    assert probe_system(tmp_path).efi_firmware is False


# --- whole tree and real machine -------------------------------------------------------


def test_full_fake_tree(tmp_path: Path) -> None:
    _write(tmp_path, "proc/cpuinfo", X86_CPUINFO.format(extra="aes "))
    _write(tmp_path, "proc/meminfo", MEMINFO)
    _disk(tmp_path, "nvme0n1", "0\n")
    (tmp_path / "sys/firmware/efi").mkdir(parents=True)
    assert probe_system(tmp_path) == SystemFacts(
        aes_instructions=True,
        memory_bytes=16314480 * 1024,
        cpu_count=None,
        solid_state_disk=True,
        efi_firmware=True,
    )


def test_real_machine_smoke() -> None:
    facts = probe_system()
    assert isinstance(facts, SystemFacts)
    assert facts.aes_instructions in (True, False, None)
    assert facts.memory_bytes is None or facts.memory_bytes > 0
    assert facts.cpu_count is None or facts.cpu_count >= 1
    assert facts.solid_state_disk in (True, False, None)
    assert facts.efi_firmware in (True, False, None)


def test_efi_unknown_without_sys_firmware(tmp_path: Path) -> None:
    assert probe_system(tmp_path).efi_firmware is None


# --- Disks a pool could be built on ---------------------------------------------------------


def _sized_disk(root: Path, name: str, sectors: int, *, removable: bool = False) -> None:
    _write(root, f"sys/block/{name}/size", f"{sectors}\n")
    _write(root, f"sys/block/{name}/removable", "1\n" if removable else "0\n")


def _link(root: Path, folder: str, name: str, target: str) -> None:
    path = root / "dev/disk" / folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.symlink_to(f"../../{target}")


def test_disks_are_named_as_advisor_disks_names_them_and_sized(tmp_path: Path) -> None:
    _sized_disk(tmp_path, "sda", 2 * 1024**3)  # 1 TiB in 512-byte sectors
    _sized_disk(tmp_path, "nvme0n1", 1024**3)
    _sized_disk(tmp_path, "sdb", 1024**2, removable=True)  # a USB stick: not for a pool
    _sized_disk(tmp_path, "loop0", 1024**2)
    _sized_disk(tmp_path, "vda", 1024**2)  # no link at all: its kernel name
    _link(tmp_path, "by-id", "ata-DISK_S1", "sda")
    _link(tmp_path, "by-id", "wwn-0x5000c500a1b2c3d4", "sda")
    _link(tmp_path, "by-id", "nvme-Samsung_S2", "nvme0n1")
    _link(tmp_path, "by-path", "pci-0000:00:05.0", "nvme0n1")
    assert probe_system(tmp_path).disk_sizes == {
        "wwn-0x5000c500a1b2c3d4": 1024**4,
        "nvme-Samsung_S2": 512 * 1024**3,
        "vda": 512 * 1024**2,
    }


def test_no_sys_block_means_no_disks_known(tmp_path: Path) -> None:
    assert probe_system(tmp_path).disk_sizes == {}
