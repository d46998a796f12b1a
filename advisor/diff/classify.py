"""What becomes of a path on a rolled-back dataset at the next boot: pure rules.

Each changed path is one of:

- ``noise``: something every NixOS system writes again at every boot or activation
  (:data:`NOISE`, links into ``/etc/static``, the files ``/etc/.clean`` lists, mount
  points, and the directories that only hold other things);
- ``persisted``: covered already, by an ``environment.persistence`` entry of the
  configuration (:data:`~advisor.datasets.PERSISTED_DIRECTORIES` and ``FILES``, or one
  given with ``--persisted``) or by a dataset that is not rolled back;
- ``erased``: lost at the next boot, with the ``environment.persistence`` entry that
  would keep it (:data:`SUGGESTIONS`).

The rules are data, documented in docs/diff.md; :class:`Classifier` applies them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from advisor.diff.parse import DIRECTORY, SYMLINK

NOISE_STATUS = "noise"
PERSISTED = "persisted"
ERASED = "erased"
#: The statuses, in the order a report shows them.
STATUSES = (ERASED, PERSISTED, NOISE_STATUS)
DIRECTORY_ENTRY = "directory"
KEPT = "an environment.persistence entry keeps it"
FILE_ENTRY = "file"


@dataclass(frozen=True)
class Noise:
    """What NixOS writes at a path at every boot or activation: the path alone, or with
    ``tree`` everything below it too; ``why`` says what writes it."""

    why: str
    tree: bool = False


_USERS = Noise(
    "written from the configuration at every activation (users.mutableUsers = false; "
    "update-users-groups.pl, with the ids kept in /var/lib/nixos)"
)
_STAMP = Noise("systemd-update-done's stamp, written at boot")
_TEMPORARY = Noise("temporary files", tree=True)

#: Paths every NixOS system writes again at every boot or activation, and what writes
#: them. Sources: nixpkgs nixos/modules/system/etc/setup-etc.pl (/etc/static,
#: /etc/.clean, /etc/NIXOS), update-users-groups.pl (the user database),
#: config/shells-environment.nix (/bin/sh), system/activation/activation-script.nix
#: (/usr/bin/env, /var/empty), config/nix-channel.nix (/root/.nix-channels); systemd's
#: tmpfiles.d etc.conf (/etc/mtab: "mtab needs to be refreshed on every boot"), var.conf
#: (/var/run) and legacy.conf (/var/lock); systemd-update-done.service (.updated). The
#: same paths are in the ignore lists impermanence users keep (docs/diff.md).
NOISE: Mapping[str, Noise] = {
    "/etc/static": Noise("the link to this generation's /etc, made at every activation"),
    "/etc/.clean": Noise("setup-etc.pl's list of the /etc files it copied"),
    "/etc/NIXOS": Noise("marks a NixOS root; made at every activation"),
    "/etc/mtab": Noise("a link to /proc/self/mounts, made at every boot (systemd-tmpfiles)"),
    "/etc/.updated": _STAMP,
    "/var/.updated": _STAMP,
    "/etc/.pwd.lock": Noise("the lock file of the user database's writers"),
    **dict.fromkeys(
        ("/etc/passwd", "/etc/group", "/etc/shadow", "/etc/subuid", "/etc/subgid"), _USERS
    ),
    "/etc/resolv.conf": Noise("written by resolvconf (or linked by resolved) at every boot"),
    "/etc/zfs/zpool.cache": Noise("rewritten when the pool is imported"),
    "/bin/sh": Noise("made by the activation (environment.binsh)"),
    "/usr/bin/env": Noise("made by the activation (environment.usrbinenv)"),
    "/var/run": Noise("a link to /run, made at every boot (systemd-tmpfiles)"),
    "/var/lock": Noise("a link to /run/lock, made at every boot (systemd-tmpfiles)"),
    "/var/empty": Noise("sshd's empty directory, made by the activation", tree=True),
    "/tmp": _TEMPORARY,  # noqa: S108 (a name, not a file made here)
    "/var/tmp": _TEMPORARY,  # noqa: S108
    "/var/lib/systemd/random-seed": Noise(
        "systemd-random-seed writes a new seed at every boot; the kernel's generator "
        "does not depend on it"
    ),
    "/var/lib/systemd/catalog": Noise("journalctl --update-catalog rebuilds it at boot", tree=True),
    "/root/.nix-channels": Noise("written by the activation when missing (nix.channel)"),
    "/root/.cache": Noise("a cache: rebuilt when needed", tree=True),
}
#: File systems that are not on the root and whose mount points the boot makes.
SYSTEM_MOUNTS = ("/boot", "/proc", "/sys", "/dev", "/run")
#: An ESP of a second disk of the pool (``/boot-2``): a mount point the boot makes.
_OTHER_ESP = re.compile(r"/boot-[0-9]+")

#: Where a path's ``environment.persistence`` entry is, by the longest prefix that holds
#: it: ``None``, the prefix itself (a directory known to be kept whole); ``0``, the path
#: itself (in /etc, whose directories NixOS fills with links, every file on its own);
#: ``n``, the directory ``n`` levels below the prefix (``/var/lib/NAME``: a program's
#: state), or the path itself when it is that deep. The entries of the impermanence
#: README's example and of its presets (impermanence PR 108) follow these.
SUGGESTIONS: Mapping[str, int | None] = {
    "/": 1,
    "/etc": 0,
    "/etc/NetworkManager/system-connections": None,
    "/var": 1,
    "/var/lib": 1,
    "/var/lib/private": 1,
    "/var/lib/systemd": 1,
    "/var/cache": 1,
    "/var/db": 1,
    "/var/spool": 1,
    "/root": 1,
    "/srv": 1,
    "/opt": 1,
    "/usr/local": 1,
}


@dataclass(frozen=True, slots=True)
class Verdict:
    """What becomes of a path: its ``status`` (:data:`STATUSES`), the entry it is grouped
    under (the suggested or covering ``environment.persistence`` entry, or the noise
    rule's path), the entry's ``kind`` (:data:`DIRECTORY_ENTRY` or :data:`FILE_ENTRY`),
    and ``reason``, a sentence for noise and for what persists it."""

    status: str
    entry: str
    kind: str
    reason: str


def ancestors(path: str) -> list[str]:
    """``path`` and every directory above it, the path first: ``/a/b`` gives
    ``["/a/b", "/a", "/"]``."""
    found = [path]
    while path != "/":
        path = path.rsplit("/", 1)[0] or "/"
        found.append(path)
    return found


def below(path: str, directory: str) -> bool:
    """Whether ``path`` is ``directory`` or inside it."""
    return path == directory or path.startswith(directory.rstrip("/") + "/")


@dataclass(frozen=True)
class Persisted:
    """What is kept already: ``directories`` and ``files`` (environment.persistence
    entries), and ``datasets``: mount point -> name of each dataset that is not rolled
    back (everything below it is on that dataset)."""

    directories: tuple[str, ...]
    files: tuple[str, ...]
    datasets: Mapping[str, str]


class Classifier:
    """Gives each path its :class:`Verdict` (:meth:`classify`).

    ``persisted`` is what is kept; ``rolled_back`` the mount points of the datasets rolled
    back (their own mount points are made at boot); ``copied_etc`` the files NixOS copied
    into /etc (``/etc/.clean``'s lines, as absolute paths); ``link_target`` reads a
    symbolic link on the system being looked at (``None`` when it cannot), so that the
    links NixOS makes into ``/etc/static`` are noise.
    """

    def __init__(
        self,
        persisted: Persisted,
        rolled_back: Iterable[str] = ("/",),
        copied_etc: Iterable[str] = (),
        link_target: Callable[[str], str | None] = lambda path: None,
    ) -> None:
        self._persisted_dirs = frozenset(persisted.directories)
        self._persisted_files = set(persisted.files)
        self._datasets = dict(persisted.datasets)
        self._copied = frozenset(copied_etc)
        self._link_target = link_target
        mount_points = {*self._datasets, *rolled_back, *SYSTEM_MOUNTS}
        self._mount_points = mount_points
        # Directories that hold something the boot makes or keeps, or that a suggestion
        # is made below: their own change is the boot's, not state.
        holders: set[str] = set()
        for kept in (*persisted.directories, *persisted.files, *mount_points, *SUGGESTIONS, *NOISE):
            holders.update(ancestors(kept)[1:])
        holders.update(prefix for prefix, depth in SUGGESTIONS.items() if depth is not None)
        self._holders = frozenset(holders)

    def classify(self, path: str, file_type: str) -> Verdict:
        """The :class:`Verdict` of ``path`` (absolute, as on the booted system, no
        trailing slash) of ``file_type`` (zfs-diff(8)'s ``-F`` letter)."""
        directory = file_type == DIRECTORY
        chain = ancestors(path)
        for place in chain:
            dataset = self._datasets.get(place)
            if dataset is not None:
                if place == path:
                    return Verdict(
                        NOISE_STATUS, path, DIRECTORY_ENTRY, f"the mount point of {dataset}"
                    )
                return Verdict(
                    PERSISTED, place, DIRECTORY_ENTRY, f"on {dataset}, which is not rolled back"
                )
        noise = self._noise(path, chain, file_type)
        if noise is not None:
            return noise
        if path in self._persisted_files:
            return Verdict(PERSISTED, path, FILE_ENTRY, KEPT)
        for place in chain:
            if place in self._persisted_dirs:
                return Verdict(PERSISTED, place, DIRECTORY_ENTRY, KEPT)
        if directory and path in self._holders:
            return Verdict(
                NOISE_STATUS, path, DIRECTORY_ENTRY, "a directory the boot makes to hold others"
            )
        if directory and below(path, "/etc"):
            return Verdict(
                NOISE_STATUS, path, DIRECTORY_ENTRY,
                "a directory in /etc: NixOS makes them for its links (the files in it are "
                "listed on their own)",
            )  # fmt: skip
        return self._suggest(path, chain, directory)

    def _noise(self, path: str, chain: list[str], file_type: str) -> Verdict | None:
        for place in chain:
            rule = NOISE.get(place)
            if rule is not None and (place == path or rule.tree):
                kind = DIRECTORY_ENTRY if rule.tree else FILE_ENTRY
                return Verdict(NOISE_STATUS, place, kind, rule.why)
        if path in self._mount_points or _OTHER_ESP.fullmatch(path):
            return Verdict(NOISE_STATUS, path, DIRECTORY_ENTRY, "a mount point the boot makes")
        if path in self._copied:
            return Verdict(
                NOISE_STATUS, path, FILE_ENTRY, "copied into /etc by NixOS at every activation"
            )
        if file_type == SYMLINK and below(path, "/etc"):
            target = self._link_target(path)
            if target is not None and target.startswith("/etc/static/"):
                return Verdict(
                    NOISE_STATUS, path, FILE_ENTRY, "a link into /etc/static, made by NixOS"
                )
        return None

    def _suggest(self, path: str, chain: list[str], directory: bool) -> Verdict:
        # chain[0] is the path itself: a rule is about what is below its prefix.
        for depth_index, prefix in enumerate(chain[1:], start=1):
            if prefix not in SUGGESTIONS:
                continue
            depth = SUGGESTIONS[prefix]
            if depth is None:
                return Verdict(ERASED, prefix, DIRECTORY_ENTRY, "")
            if depth == 0:
                return Verdict(ERASED, path, DIRECTORY_ENTRY if directory else FILE_ENTRY, "")
            # chain[depth_index - depth] is ``depth`` levels below the prefix.
            entry = chain[max(depth_index - depth, 0)]
            kind = DIRECTORY_ENTRY if entry != path or directory else FILE_ENTRY
            return Verdict(ERASED, entry, kind, "")
        # Only / itself has no prefix above it (zfs diff never lists it as created).
        return Verdict(ERASED, path, DIRECTORY_ENTRY if directory else FILE_ENTRY, "")
