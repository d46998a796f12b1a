"""Probing the machine for facts that matter to the choice (never asked, only shown).

Reads ``/proc`` and ``/sys`` below ``root`` so tests can point it at a fake tree. A fact
that cannot be read is ``None`` (unknown), never a guess.
"""

from __future__ import annotations

import os
from pathlib import Path

from advisor.blockdevices import SKIPPED_PREFIXES, choose_disk_id, is_candidate
from advisor.models import SystemFacts


def probe_system(root: Path = Path("/")) -> SystemFacts:
    """Read CPU, memory, disk and firmware facts from the machine under ``root``."""
    return SystemFacts(
        aes_instructions=_aes_instructions(root / "proc/cpuinfo"),
        memory_bytes=_memory_bytes(root / "proc/meminfo"),
        cpu_count=os.cpu_count() if root == Path("/") else None,
        solid_state_disk=_solid_state_disk(root / "sys/block"),
        efi_firmware=_efi_firmware(root / "sys/firmware"),
        tpm2=_tpm2(root / "sys/class/tpm"),
        disk_sizes=_disk_sizes(root / "sys/block", root / "dev/disk"),
    )


def _aes_instructions(cpuinfo: Path) -> bool | None:
    """True if the CPU advertises AES instructions (x86 ``aes``, ARM ``aes`` feature)."""
    try:
        text = cpuinfo.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    found_flags = False
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            found_flags = True
            if "aes" in value.split():
                return True
    return False if found_flags else None


def _memory_bytes(meminfo: Path) -> int | None:
    try:
        text = meminfo.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("MemTotal:"):
            fields = line.split()
            if len(fields) >= 2 and fields[1].isdigit():
                return int(fields[1]) * 1024
    return None


def _solid_state_disk(sys_block: Path) -> bool | None:
    """True if any real disk is non-rotational, False if all rotate, None if none found."""
    try:
        devices = sorted(sys_block.iterdir())
    except OSError:
        return None
    rotational = []
    for device in devices:
        if device.name.startswith(SKIPPED_PREFIXES):
            continue
        try:
            rotational.append((device / "queue/rotational").read_text().strip() == "1")
        except OSError:
            continue
    if not rotational:
        return None
    return not all(rotational)


def _efi_firmware(sys_firmware: Path) -> bool | None:
    """EFI firmware exposes /sys/firmware/efi; without /sys/firmware we cannot tell."""
    if not sys_firmware.is_dir():
        return None
    return (sys_firmware / "efi").is_dir()


def _tpm2(sys_class_tpm: Path) -> bool | None:
    """True when the kernel sees a TPM 2.0 chip (``tpm0/tpm_version_major`` is 2, since
    Linux 5.6), False when /sys/class/tpm lists none; None when /sys/class is not there
    to ask (a fake tree, a container)."""
    if not sys_class_tpm.parent.is_dir():
        return None
    try:
        major = (sys_class_tpm / "tpm0" / "tpm_version_major").read_text().strip()
    except OSError:
        # No chip, or a kernel too old to say its version: a chip without the file
        # is most likely a TPM 1.2, which systemd-cryptenroll cannot use.
        return False
    return major == "2"


def _disk_sizes(sys_block: Path, dev_disk: Path) -> dict[str, int]:
    """The whole disks a pool could be built on, by the id ``advisor disks`` gives them,
    with their sizes: from /sys (no udev, so cheap), the ids from the links udev made in
    /dev/disk. Removable disks (USB sticks, card readers) are left out."""
    links: dict[str, tuple[list[str], list[str]]] = {}
    for index, folder in enumerate(("by-id", "by-path")):
        try:
            entries = list((dev_disk / folder).iterdir())
        except OSError:
            continue
        for link in entries:
            name = Path(os.path.realpath(link)).name
            links.setdefault(name, ([], []))[index].append(link.name)
    sizes = {}
    try:
        devices = sorted(sys_block.iterdir())
    except OSError:
        return {}
    for device in devices:
        try:
            size = int((device / "size").read_text()) * 512  # in 512-byte sectors, always
            removable = (device / "removable").read_text().strip() == "1"
        except (OSError, ValueError):
            continue
        if removable or not is_candidate(device.name, size):
            continue
        by_id, by_path = links.get(device.name, ([], []))
        sizes[choose_disk_id(device.name, by_id, by_path)] = size
    return sizes
