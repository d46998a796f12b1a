"""The pool's datasets: the one table the install plan, the NixOS configuration and the
docs are derived from.

The layout is grahamc's "Erase your darlings": nothing under ``<pool>/local`` is backed
up, everything under ``<pool>/safe`` is. Every dataset is a legacy mount (NixOS's
``fileSystems`` mounts it, not ZFS), so no mount needs the ``zfsutil`` option.

Plain data, no I/O: :mod:`advisor.install.plan` creates, snapshots and mounts these
datasets, :mod:`advisor.nixos.generate` writes their ``fileSystems`` and the rollback,
and ``docs/generate.py`` draws the table in ``docs/configuration.md``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

#: The snapshot of a rolled-back dataset, taken once while it is empty.
BLANK = "blank"
#: Properties the layout depends on, with why: ``--pool-option``/``--fs-option`` may not
#: set them, nor may a layout file's dataset (:mod:`advisor.layoutfile`). The datasets are
#: mounted by NixOS (legacy mounts) under a pool that mounts nothing itself; encryption is
#: the backend's to set (zfs-native) or to leave off.
FIXED_PROPERTIES: Mapping[str, str] = {
    "canmount": "the layout needs canmount=off on the pool's root file system and "
    "datasets that NixOS mounts (legacy mounts) below it",
    "mountpoint": "the layout needs mountpoint=none on the pool and legacy mounts below it",
    **dict.fromkeys(
        ("encryption", "keyformat", "keylocation", "keysource"),
        "encryption properties are the backend's to set (zfs-native sets them)",
    ),
}


@dataclass(frozen=True)
class Dataset:
    """One dataset of the layout.

    ``name`` is below the pool (``"local/root"``). ``properties`` are every ``zfs create
    -o`` property, in the order given, ``mountpoint=legacy`` included. ``needed_for_boot``
    mounts it in the initrd (NixOS ``neededForBoot``). A ``rolled_back`` dataset gets the
    :data:`BLANK` snapshot right after it is created, and every boot rolls it back to it.
    ``purpose`` is one line for the docs' table. ``step_name`` ends the ids of the plan's
    steps for it (:meth:`step_id`); ``None``, as for the core's, is its last part.
    """

    name: str
    mountpoint: str
    properties: Mapping[str, str]
    needed_for_boot: bool
    rolled_back: bool
    purpose: str
    step_name: str | None = None

    @property
    def short_name(self) -> str:
        """The last part of the name (``"root"``, ``"nix"``)."""
        return self.name.rsplit("/", 1)[-1]

    def step_id(self, action: str) -> str:
        """The id of the plan's ``action`` step for it: ``dataset-root``, ``mount-root``,
        ``mount-safe-postgres`` (a layout file's dataset, whose ``step_name`` is set)."""
        return f"{action}-{self.step_name or self.short_name}"

    def full_name(self, pool: str) -> str:
        """The dataset's name in ``pool``: ``rpool/local/root``."""
        return f"{pool}/{self.name}"

    def blank_snapshot(self, pool: str) -> str:
        """The empty snapshot a rolled-back dataset returns to: ``rpool/local/root@blank``."""
        return f"{self.full_name(pool)}@{BLANK}"


#: The layout's datasets. The one mounted at ``/`` comes first (the others' mount points
#: are directories in it); the others are mounted in this order.
DATASETS: tuple[Dataset, ...] = (
    Dataset(
        name="local/root",
        mountpoint="/",
        properties={"canmount": "noauto", "mountpoint": "legacy"},
        needed_for_boot=False,  # NixOS mounts / in the initrd anyway
        rolled_back=True,
        purpose="the ephemeral root: every boot wipes it by rolling it back to `@blank`",
    ),
    Dataset(
        name="local/nix",
        mountpoint="/nix",
        properties={"mountpoint": "legacy", "atime": "off"},
        needed_for_boot=False,  # NixOS mounts /nix in the initrd anyway
        rolled_back=False,
        purpose="the Nix store: rebuilt from the configuration, so not backed up",
    ),
    Dataset(
        name="safe/home",
        mountpoint="/home",
        properties={"mountpoint": "legacy"},
        needed_for_boot=False,
        rolled_back=False,
        purpose="the users' files: kept, and backed up",
    ),
    Dataset(
        name="safe/persist",
        mountpoint="/persist",
        properties={"mountpoint": "legacy"},
        # Mounted in the initrd, before anything reads persisted state (impermanence
        # requires it).
        needed_for_boot=True,
        rolled_back=False,
        purpose="the system state kept across boots: impermanence's directories and "
        "files, host keys, `/etc/nixos`",
    ),
)


def mounted_at(mountpoint: str, datasets: Sequence[Dataset] = DATASETS) -> Dataset:
    """The dataset of ``datasets`` mounted at ``mountpoint``; ``KeyError`` if none is."""
    for dataset in datasets:
        if dataset.mountpoint == mountpoint:
            return dataset
    raise KeyError(mountpoint)


def rolled_back_datasets(datasets: Sequence[Dataset] = DATASETS) -> tuple[Dataset, ...]:
    """The datasets of ``datasets`` that every boot rolls back: the root first (it must be
    one, a ``ValueError`` otherwise), then the others in the table's order."""
    root = mounted_at("/", datasets)
    if not root.rolled_back:
        raise ValueError(f"the root dataset {root.name} is not rolled back")
    return (root, *(d for d in datasets if d.rolled_back and d is not root))


#: Kept across reboots on ``/persist`` even though / is wiped (impermanence's bind mounts
#: and links, written by :mod:`advisor.nixos.generate`); /etc/nixos holds the
#: configuration. A layout file's dataset must not hide them (:mod:`advisor.layoutfile`).
PERSISTED_DIRECTORIES = ("/etc/nixos", "/var/log", "/var/lib/nixos", "/var/lib/systemd/coredump")
PERSISTED_FILES = ("/etc/machine-id",)
