"""The human-readable reports say what the JSON says."""

from __future__ import annotations

import io

from rich.console import Console

from advisor.disks import Disk, firmware_warning
from advisor.report import render_disks


def _console() -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, width=400, color_system=None), out


def _disk() -> Disk:
    return Disk(
        name="vdb",
        path="/dev/vdb",
        by_id=("/dev/disk/by-id/virtio-disk01",),
        by_path=(),
        serial="disk01",
        model=None,
        size_bytes=16 * 1024**3,
        rotational=False,
        transport="virtio",
        removable=False,
        partitions=(),
        mountpoints=(),
        swap=False,
        holders=(),
        zfs_pool=None,
        fstype=None,
        running_system=False,
        problems=(),
        warnings=(),
    )


def test_disks_report_gives_the_bios_warning_the_json_gives() -> None:
    console, out = _console()
    render_disks(console, [_disk()], "bios")
    text = out.getvalue()
    warning = firmware_warning("bios")
    assert warning is not None
    assert "Firmware: bios" in text
    assert f"warning: {warning}" in text


def test_disks_report_under_efi_has_no_firmware_warning() -> None:
    console, out = _console()
    render_disks(console, [_disk()], "efi")
    text = out.getvalue()
    assert "Firmware: efi" in text
    assert "warning" not in text
    assert "virtio-disk01" in text
