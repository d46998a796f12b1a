"""Datasets of the user's own, from a TOML layout file (``--layout FILE``).

A layout file adds datasets beside the core's four (:data:`~advisor.datasets.DATASETS`),
below ``<pool>/safe`` (kept and backed up) or ``<pool>/local`` (not backed up), each with
its mount point and ``zfs create`` properties; a ``local`` one may be rolled back at
every boot, as the root is::

    [datasets."safe/postgres"]
    mountpoint = "/var/lib/postgresql"
    properties = { recordsize = "16K", "com.sun:auto-snapshot" = "true" }

    [datasets."local/cache"]
    mountpoint = "/var/cache"
    rollback = true

:func:`read_layout` checks the whole file and refuses, with a :class:`UsageError`
naming the file, the dataset and the rule, whatever would break the layout or the boot;
:func:`layout_datasets` is the one table the plan, the configuration's ``fileSystems``
and rollback are made from. Pure apart from reading the file.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path

from advisor import validate
from advisor.datasets import DATASETS, FIXED_PROPERTIES, PERSISTED_DIRECTORIES, Dataset
from advisor.errors import UsageError
from advisor.models import Settings

#: The branches a dataset of the user's own goes below, with what each is for.
BRANCHES: Mapping[str, str] = {"safe": "kept and backed up", "local": "not backed up"}
#: The keys a dataset's table may have.
KEYS = ("mountpoint", "properties", "rollback")
#: Properties a layout file's dataset may not set, with why: the layout's own
#: (:data:`~advisor.datasets.FIXED_PROPERTIES`), and the one a dataset takes only as an
#: encryption root of its own.
REFUSED_PROPERTIES: Mapping[str, str] = {
    **FIXED_PROPERTIES,
    "pbkdf2iters": "encryption properties are the backend's to set (zfs-native sets them)",
}
#: Trees no dataset may be mounted in, or at, with why.
REFUSED_TREES: Mapping[str, str] = {
    "/boot": "the ESP is mounted there (vfat, read by the firmware and the boot loader)",
    "/nix": "the Nix store is mounted there in the initrd, before any dataset of yours",
    "/etc": "NixOS's activation writes it before a dataset of yours is mounted over it",
    **dict.fromkeys(
        ("/proc", "/sys", "/dev", "/run"), "the kernel's and systemd's own file systems are there"
    ),
}
#: The mount points of the other disks' ESPs (``/boot-2``), and below them.
_OTHER_ESP = re.compile(r"/boot-[0-9]+(?:/|$)")
#: Paths that are there before a dataset of the user's own is mounted (in stage 2), with
#: what puts them there: a dataset mounted at one, or above it, would hide it.
HIDDEN_PATHS: Mapping[str, str] = {
    "/bin/sh": "NixOS's activation creates it",
    "/usr/bin/env": "NixOS's activation creates it",
    # The directories the configuration keeps on /persist (those in /etc, and the
    # persisted files, are in a tree no dataset may be mounted in).
    **dict.fromkeys(
        (d for d in PERSISTED_DIRECTORIES if not d.startswith("/etc/")),
        "impermanence bind-mounts it from /persist",
    ),
}
#: A name below the pool: a branch, then parts of the characters ZFS allows (no
#: ``@``, ``#`` or ``%``), each starting with a letter or digit.
_NAME = re.compile(r"[a-z]+(?:/[A-Za-z0-9][A-Za-z0-9_.:-]*)+")
#: At most this long, so that ``<pool>/<name>`` (a pool name of 64 characters at most)
#: stays below ZFS's 256.
MAX_NAME = 190
#: A mount point: an absolute path of these characters (one plain word in Nix, a
#: systemd unit name and on the command line).
_MOUNTPOINT = re.compile(r"/[A-Za-z0-9._/+@,=-]*")


def layout_datasets(settings: Settings) -> tuple[Dataset, ...]:
    """The layout's datasets: the core's (:data:`~advisor.datasets.DATASETS`), then those
    of ``settings.layout`` if there is one (:func:`read_layout`), in mount order."""
    if settings.layout is None:
        return DATASETS
    return (*DATASETS, *read_layout(settings.layout))


def read_layout(path: str) -> tuple[Dataset, ...]:
    """The datasets of the layout file ``path`` (absolute), checked: a parent mount
    point before the ones below it, otherwise in the file's order. A
    :class:`UsageError` naming the file, the dataset and the rule otherwise."""
    origin = f"--layout {path!r}"
    if not Path(path).is_absolute():
        raise UsageError(f"{origin}: the path must be absolute")
    try:
        with Path(path).open("rb") as file:
            data = tomllib.load(file)
    except OSError as error:
        raise UsageError(f"{origin} cannot be read: {error.strerror or error}") from None
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise UsageError(f"{origin} is not a TOML file: {error}") from None
    unknown = [key for key in data if key != "datasets"]
    if unknown:
        raise UsageError(f"{origin}: unknown key {unknown[0]!r}: a layout file has only datasets")
    tables = data.get("datasets")
    if not isinstance(tables, dict) or not tables:
        raise UsageError(
            f"{origin} holds no dataset: give each one a table such as "
            '[datasets."safe/NAME"] with its mountpoint'
        )
    found = [_dataset(f"{origin}: dataset {name!r}", name, table) for name, table in tables.items()]
    _check_together(origin, found)
    return _mount_order(found)


def _dataset(where: str, name: str, table: object) -> Dataset:
    """One dataset of the file, its own rules checked (``where`` begins each message)."""
    branch = _name(where, name)
    if not isinstance(table, dict):
        raise UsageError(f'{where}: give it a table, [datasets."{name}"], with its mountpoint')
    unknown = [key for key in table if key not in KEYS]
    if unknown:
        raise UsageError(f"{where}: unknown key {unknown[0]!r} (a dataset has {', '.join(KEYS)})")
    if "mountpoint" not in table:
        raise UsageError(f"{where}: give its mountpoint")
    mountpoint = _mountpoint(where, table["mountpoint"])
    properties = _properties(where, table.get("properties", {}))
    rollback = table.get("rollback", False)
    if not isinstance(rollback, bool):
        raise UsageError(f"{where}: rollback is true or false, not {rollback!r}")
    if rollback and branch != "local":
        raise UsageError(
            f"{where}: rollback = true wipes it at every boot: only a dataset below local/ "
            "(not backed up) may be rolled back, never one below safe/"
        )
    purpose = "yours: " + BRANCHES[branch] + (", rolled back at every boot" if rollback else "")
    return Dataset(
        name=name,
        mountpoint=mountpoint,
        # Legacy mounts, as the core's: NixOS's fileSystems mounts it, not ZFS.
        properties={"mountpoint": "legacy", **properties},
        needed_for_boot=False,
        rolled_back=rollback,
        purpose=purpose,
        step_name=re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-"),
    )


def _name(where: str, name: str) -> str:
    """The branch of the dataset ``name``, once it is checked."""
    if name in {dataset.name for dataset in DATASETS}:
        raise UsageError(f"{where} is one of the core's datasets: choose another name")
    branch = name.split("/", 1)[0]
    if branch not in BRANCHES or "/" not in name:
        raise UsageError(
            f"{where}: the name must be below safe/ (kept and backed up) or local/ (not "
            'backed up), and quoted in the table\'s name: [datasets."safe/NAME"]'
        )
    if not _NAME.fullmatch(name) or len(name) > MAX_NAME:
        raise UsageError(
            f"{where}: each part of the name is letters, digits and _.:- starting with a "
            f"letter or digit, the whole at most {MAX_NAME} characters"
        )
    return branch


def _mountpoint(where: str, value: object) -> str:
    """The mount point ``value``, checked against the layout's own and the system's."""
    if not isinstance(value, str) or not _MOUNTPOINT.fullmatch(value):
        raise UsageError(
            f"{where}: mountpoint {value!r}: give an absolute path of letters, digits and ._/+@,=-"
        )
    if os.path.normpath(value) != value or value.startswith("//"):
        raise UsageError(
            f"{where}: mountpoint {value!r}: give it without '.', '..', '//' or a final '/' "
            f"({os.path.normpath(value)!r}?)"
        )
    for dataset in DATASETS:
        if value == dataset.mountpoint:
            raise UsageError(
                f"{where}: mountpoint {value!r} is the core dataset {dataset.name}'s; "
                "mount yours below it instead"
            )
    for tree, why in REFUSED_TREES.items():
        if value == tree or value.startswith(tree + "/"):
            raise UsageError(f"{where}: mountpoint {value!r} is in {tree}: {why}")
    if _OTHER_ESP.match(value):
        raise UsageError(
            f"{where}: mountpoint {value!r} is in /boot-N: a pool of several disks mounts "
            "their other ESPs there"
        )
    for hidden, why in HIDDEN_PATHS.items():
        if hidden == value or hidden.startswith(value + "/"):
            raise UsageError(
                f"{where}: mountpoint {value!r} would hide {hidden}: {why} before the "
                "dataset is mounted"
            )
    return value


def _properties(where: str, value: object) -> dict[str, str]:
    """The ``zfs create`` properties ``value``, in the file's order, checked."""
    if not isinstance(value, dict):
        raise UsageError(
            f'{where}: properties is a table of names and values: {{ recordsize = "16K" }}'
        )
    properties: dict[str, str] = {}
    for key, item in value.items():
        why = REFUSED_PROPERTIES.get(key.lower())
        if why is not None:
            raise UsageError(f"{where}: property {key} cannot be set: {why}")
        if isinstance(item, bool) or not isinstance(item, str | int):
            raise UsageError(
                f"{where}: property {key} = {item!r}: give its value as a string, as zfs "
                'takes it: "on", "off", "16K"'
            )
        properties[key] = str(item)
    return validate.zfs_properties(properties, f"{where}: property")


def _mount_order(datasets: list[Dataset]) -> tuple[Dataset, ...]:
    """``datasets`` in their order, except that a dataset mounted above another one
    (``/srv`` above ``/srv/vm``) is brought forward to just before it."""
    ordered: list[Dataset] = []
    for dataset in datasets:
        if dataset in ordered:
            continue
        above = [
            other
            for other in datasets
            if dataset.mountpoint.startswith(other.mountpoint + "/") and other not in ordered
        ]
        ordered += sorted(above, key=lambda other: other.mountpoint.count("/"))
        ordered.append(dataset)
    return tuple(ordered)


def _check_together(origin: str, found: list[Dataset]) -> None:
    """The rules across the datasets: mount points and the plan's step ids unique."""
    mounts: dict[str, str] = {}
    steps: dict[str, str] = {dataset.step_id("dataset"): dataset.name for dataset in DATASETS}
    for dataset in found:
        other = mounts.setdefault(dataset.mountpoint, dataset.name)
        if other != dataset.name:
            raise UsageError(
                f"{origin}: datasets {other!r} and {dataset.name!r} have the same mountpoint "
                f"{dataset.mountpoint!r}"
            )
        other = steps.setdefault(dataset.step_id("dataset"), dataset.name)
        if other != dataset.name:
            raise UsageError(
                f"{origin}: datasets {other!r} and {dataset.name!r} would give the install "
                f"plan the same step ids ({dataset.step_id('dataset')}, "
                f"{dataset.step_id('mount')}): rename one"
            )
