"""Probing the machine for facts that matter to the choice (never asked, only shown).

Reads ``/proc`` and ``/sys`` below ``root`` so tests can point it at a fake tree. A fact
that cannot be read is ``None`` (unknown), never a guess.
"""

from __future__ import annotations

import os
from pathlib import Path

from advisor.models import SystemFacts

# Block devices that are not disks a system is installed on.
_VIRTUAL_BLOCK_PREFIXES = ("loop", "ram", "zram", "dm-", "md", "sr", "nbd", "zd")


def probe_system(root: Path = Path("/")) -> SystemFacts:
    """Read CPU, memory, disk and firmware facts from the machine under ``root``."""
    return SystemFacts(
        aes_instructions=_aes_instructions(root / "proc/cpuinfo"),
        memory_bytes=_memory_bytes(root / "proc/meminfo"),
        cpu_count=os.cpu_count() if root == Path("/") else None,
        solid_state_disk=_solid_state_disk(root / "sys/block"),
        efi_firmware=_efi_firmware(root / "sys/firmware"),
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
        if device.name.startswith(_VIRTUAL_BLOCK_PREFIXES):
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
