"""What is mounted where: ``/proc/self/mountinfo`` read and parsed, one parser for
``advisor disks`` (a disk in use), ``advisor diff`` (where a dataset is mounted) and
``advisor finish`` (what is mounted under the root). It reads a file; no command runs."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

#: A block device number, (major, minor), as /proc/self/mountinfo and sysfs write it.
DevNum = tuple[int, int]

MOUNTINFO = Path("/proc/self/mountinfo")


@dataclass(frozen=True)
class MountEntry:
    """One line of ``/proc/self/mountinfo``."""

    devnum: DevNum
    root: str
    mountpoint: str
    fstype: str
    source: str


def unescape_octal(text: str) -> str:
    r"""Undo the kernel's octal escapes in /proc paths (``\040`` is a space)."""
    return re.sub(r"\\([0-7]{3})", lambda match: chr(int(match.group(1), 8)), text)


def parse_mountinfo(text: str) -> list[MountEntry]:
    """Parse ``/proc/self/mountinfo``; lines that do not parse are skipped.

    The format is ``id parent major:minor root mountpoint options [optional...] -
    fstype source superoptions``; the number of optional fields varies, so the fields
    after the mount point are found from the ``-`` separator.
    """
    entries = []
    for line in text.splitlines():
        fields = line.split()
        if "-" not in fields[6:]:
            continue
        separator = fields.index("-", 6)
        if len(fields) < separator + 3:
            continue
        major, _, minor = fields[2].partition(":")
        if not (major.isdigit() and minor.isdigit()):
            continue
        entries.append(
            MountEntry(
                devnum=(int(major), int(minor)),
                root=unescape_octal(fields[3]),
                mountpoint=unescape_octal(fields[4]),
                fstype=fields[separator + 1],
                source=unescape_octal(fields[separator + 2]),
            )
        )
    return entries


def current_mounts(mountinfo: Path = MOUNTINFO) -> list[MountEntry]:
    """What is mounted on this machine now (in this process's mount namespace)."""
    return parse_mountinfo(mountinfo.read_text(encoding="utf-8"))
