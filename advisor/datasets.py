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


@dataclass(frozen=True)
class Dataset:
    """One dataset of the layout.

    ``name`` is below the pool (``"local/root"``); its last part names the plan's steps
    (``dataset-root``, ``mount-root``). ``properties`` are every ``zfs create -o``
    property, in the order given, ``mountpoint=legacy`` included. ``needed_for_boot``
    mounts it in the initrd (NixOS ``neededForBoot``). A ``rolled_back`` dataset gets the
    :data:`BLANK` snapshot right after it is created, and every boot rolls it back to it.
    ``purpose`` is one line for the docs' table.
    """

    name: str
    mountpoint: str
    properties: Mapping[str, str]
    needed_for_boot: bool
    rolled_back: bool
    purpose: str

    @property
    def short_name(self) -> str:
        """The last part of the name (``"root"``, ``"nix"``): the plan's step ids end with it."""
        return self.name.rsplit("/", 1)[-1]

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


def rolled_back_dataset(datasets: Sequence[Dataset] = DATASETS) -> Dataset:
    """The one dataset of ``datasets`` that every boot rolls back (the root).

    One only: the plan's ``snapshot-blank`` step and the initrd's rollback are single.
    """
    found = [dataset for dataset in datasets if dataset.rolled_back]
    if len(found) != 1:
        raise ValueError(f"expected one rolled-back dataset, found {len(found)}")
    return found[0]
