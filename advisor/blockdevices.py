"""What ``advisor disks`` and the assessment's probe agree on about whole disks: which
kernel names are never install targets, which name a user confirms a disk by, and when
two disks are one size for a pool.

Pure and light (no udev): :mod:`advisor.install.disks` builds its full picture on it, and
:mod:`advisor.assess.system` reads only ``/sys`` and ``/dev/disk/by-id`` with it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

#: Kernel names of whole "disks" that are never install targets: loop devices, RAM disks,
#: compressed swap, optical drives, device-mapper and md arrays (they sit on top of real
#: disks, which are listed themselves), network block devices and ZFS volumes.
SKIPPED_PREFIXES = ("loop", "ram", "zram", "sr", "dm-", "md", "nbd", "zd")

# by-id link prefixes in the order a user should be shown them: world-wide names first
# (they never change), then the vendor/model/serial names. Links of stacked devices
# (dm-, md-, lvm-) can point at a whole disk too, but they name what is *on* the disk and
# change when it is wiped, so they come last.
_BY_ID_PREFERENCE = ("wwn-", "nvme-eui.", "ata-", "nvme-", "scsi-", "virtio-", "usb-")
_BY_ID_LAST = ("dm-", "md-", "lvm-")

#: How much two disks of a pool may differ in size and still count as one size: a mirror
#: or raidz uses only as much of each disk as the smallest has, and disks sold as one
#: size differ by far less than this. ``install`` refuses more unless told otherwise.
SIZE_TOLERANCE = 0.03


def is_candidate(name: str, size_bytes: int) -> bool:
    """Whether a whole block device could be an install target at all (see
    :data:`SKIPPED_PREFIXES`); an empty device (no media, unused nbd) never is."""
    return not name.startswith(SKIPPED_PREFIXES) and size_bytes > 0


def _by_id_rank(link: str) -> tuple[int, str]:
    """Sort key of a by-id link: preferred prefixes first, stacked-device names last."""
    name = Path(link).name
    for rank, prefix in enumerate(_BY_ID_PREFERENCE):
        if name.startswith(prefix):
            return rank, name
    if name.startswith(_BY_ID_LAST):
        return len(_BY_ID_PREFERENCE) + 1, name
    return len(_BY_ID_PREFERENCE), name


def sort_by_id(links: Iterable[str]) -> tuple[str, ...]:
    """By-id links in the order :func:`choose_disk_id` prefers them."""
    return tuple(sorted(links, key=_by_id_rank))


def choose_disk_id(name: str, by_id: Sequence[str], by_path: Sequence[str]) -> str:
    """The name a user confirms a disk by: the preferred by-id link name, else the first
    by-path link name, else the kernel name. Links may be names or full paths."""
    if by_id:
        return Path(sort_by_id(by_id)[0]).name
    if by_path:
        return Path(sorted(by_path)[0]).name
    return name


def same_size(a: int, b: int) -> bool:
    """Whether two disks of ``a`` and ``b`` bytes are one size for a pool
    (:data:`SIZE_TOLERANCE`)."""
    return abs(a - b) <= SIZE_TOLERANCE * max(a, b)


def largest_same_size_group(sizes: dict[str, int]) -> list[str]:
    """Of the disks ``sizes`` names (disk id to bytes), the most that are all one size
    (:func:`same_size` of the smallest and the largest), the bigger disks first on a tie;
    in the order of their ids."""
    ordered = sorted(sizes.items(), key=lambda item: (-item[1], item[0]))
    best: list[str] = []
    for start, (_, largest) in enumerate(ordered):
        group = [disk_id for disk_id, size in ordered[start:] if same_size(size, largest)]
        if len(group) > len(best):
            best = group
    return sorted(best)
