"""``advisor finish``: the steps between ``advisor install`` and the first boot.

They are few, but each one forgotten costs a boot: the system must be installed
(``nixos-install``), what the installation wrote to the root dataset that must outlive
the first rollback must be on /persist, the result must pass ``advisor check``, and the
pool must be exported so that the first boot imports it cleanly (nixos-anywhere issue
156). The procedure is a list of steps the install's executor runs, journaled in a
state directory of its own, so an interrupted finish continues with ``--resume``.

What ``nixos-install`` writes to the target, read from its source
(nixpkgs ``pkgs/by-name/ni/nixos-install/nixos-install.sh`` and ``nixos-enter.sh``),
and what becomes of it (:data:`WRITTEN_BY_NIXOS_INSTALL`): the root dataset is rolled back
to its blank snapshot at every boot, so whatever is only there is gone at the first one.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from advisor.install.executor import Outcome
from advisor.install.plan import steps_fingerprint
from advisor.layoutrecord import RECORD_FILE
from advisor.models import Layout, Step

#: Run the checks that need no passphrase: ``python -m advisor.install.verify``.
VERIFY = (sys.executable, "-m", "advisor.install.verify")


@dataclass(frozen=True)
class Written:
    """Something ``nixos-install`` writes under the target's root, and its fate."""

    #: The path on the installed system.
    path: str
    #: What writes it.
    writer: str
    #: Whether ``advisor finish`` copies it to /persist.
    kept: bool
    #: Why it is kept, or why it need not be.
    reason: str


WRITTEN_BY_NIXOS_INSTALL: tuple[Written, ...] = (
    Written(
        "/etc/nixos/flake.lock",
        "nix flake metadata, which nixos-install runs to resolve --flake",
        True,
        "it pins nixpkgs: without it the next rebuild takes whatever nixpkgs is newest",
    ),
    Written(
        "/var/lib/nixos",
        "the activation script nixos-enter runs (users and groups)",
        True,
        "the uid and gid maps: the first boot must give users the ids their files have",
    ),
    Written(
        "/etc (NIXOS, mtab, static links, passwd, group, shadow)",
        "nixos-install and the activation script",
        False,
        "made again by the activation at every boot (users.mutableUsers = false)",
    ),
    Written(
        "/root/.nix-defexpr/channels",
        "nixos-install's channel copy",
        False,
        "not written: finish passes --no-channel-copy, the flake pins nixpkgs",
    ),
    Written(
        "directories of systemd-tmpfiles (/tmp, /var/...)",
        "nixos-enter",
        False,
        "made again by systemd-tmpfiles at every boot",
    ),
)


@dataclass(frozen=True)
class Finish:
    """The steps of one finish, in order, for the executor."""

    root: str
    pool: str
    steps: tuple[Step, ...]

    @property
    def fingerprint(self) -> str:
        return steps_fingerprint(self.steps)


def build_finish(
    layout: Layout,
    root: str,
    config_copy: str,
    *,
    nixos_install: bool,
    advisor_command: Sequence[str] = (sys.executable, "-m", "advisor"),
) -> Finish:
    """The finish of the system whose layout is ``layout``, mounted at ``root``.

    ``config_copy`` is a directory where the configuration and its layout record are
    kept while the pool is exported (in the finish's state directory), for the last
    check, which reads the record and the ``configuration.nix`` beside it.
    ``nixos_install`` adds the ``nixos-install`` step (it is left out where the command
    is missing, for a person who ran it already). ``advisor_command`` runs ``advisor check``.
    """
    host, pool = layout.settings.hostname, layout.settings.pool
    steps: list[Step] = []
    if nixos_install:
        steps.append(
            Step(
                "nixos-install",
                f"Install NixOS from {root}/etc/nixos#{host}",
                (
                    "nixos-install",
                    "--root",
                    root,
                    "--flake",
                    f"{root}/etc/nixos#{host}",
                    "--no-root-passwd",
                    "--no-channel-copy",
                ),
            )
        )
    steps += [
        Step(
            "installed",
            "Make sure the system is installed (its profile exists)",
            # -L: the profile links to /nix/store/..., which is under the root, not here.
            ("test", "-L", f"{root}/nix/var/nix/profiles/system"),
        ),
        Step(
            "keep-config",
            "Keep the configuration with its flake.lock in /persist/etc/nixos",
            ("cp", "-a", f"{root}/etc/nixos/.", f"{root}/persist/etc/nixos/"),
        ),
        Step(
            "persist-nixos-state",
            "Make /persist/var/lib/nixos",
            ("mkdir", "-p", f"{root}/persist/var/lib/nixos"),
        ),
        Step(
            "keep-nixos-state",
            "Keep the user and group id maps in /persist/var/lib/nixos",
            ("cp", "-a", f"{root}/var/lib/nixos/.", f"{root}/persist/var/lib/nixos/"),
        ),
        Step(
            "copy-config-out",
            "Make a place outside the pool for the configuration, for the last check",
            ("mkdir", "-p", config_copy),
        ),
        Step(
            "keep-record",
            "Copy the configuration and its layout record there (the pool goes away next)",
            ("cp", "-a", f"{root}/persist/etc/nixos/.", f"{config_copy}/"),
        ),
        Step(
            "check",
            "Check that the system will boot (advisor check)",
            (*advisor_command, "check", "--root", root),
        ),
        Step(
            "unmount",
            f"Unmount everything under {root}",
            ("umount", "-R", root),
            probe=(*VERIFY, "unmounted", root),
        ),
        Step(
            "export",
            f"Export the pool {pool}, so the first boot imports it cleanly",
            ("zpool", "export", pool),
            probe=(*VERIFY, "exported", pool),
        ),
        Step(
            "check-exported",
            "Check again, the pool exported, as the first boot will find it",
            (
                *advisor_command,
                "check",
                "--root",
                root,
                "--record",
                f"{config_copy}/{RECORD_FILE}",
                "--before-reboot",
            ),
        ),
    ]
    return Finish(root, pool, tuple(steps))


def mounted_source(root: str) -> str | None:
    """What is mounted at ``root`` (``rpool/local/root``), or ``None``; the last of
    several mounts there is the one in sight."""
    from advisor.mounts import current_mounts

    sources = [entry.source for entry in current_mounts() if entry.mountpoint == root]
    return sources[-1] if sources else None


def check_target(layout: Layout, root: str, *, unmounted: bool) -> None:
    """Refuse to finish a system that is not the one at ``root``: the layout record's
    root dataset must be mounted there, unless the finish being resumed has unmounted
    it already (``unmounted``). A :class:`UsageError` otherwise."""
    from advisor.errors import UsageError

    if unmounted:
        return
    source = mounted_source(root)
    if source != layout.root_dataset:
        found = f"{source} is mounted there" if source else "nothing is mounted there"
        raise UsageError(
            f"--root {root}: the record names the root dataset {layout.root_dataset}, but "
            f"{found}. Give the --root the install mounted (it is the install's --root)"
        )


def outcome_json(procedure: Finish, outcome: Outcome, state_dir: Path) -> dict[str, Any]:
    """What ``advisor finish --json`` prints: how far it got, and what was kept."""
    return {
        "completed": outcome.completed,
        "stopped_after": outcome.stopped_after,
        "interrupted": outcome.interrupted,
        "seconds": round(outcome.seconds, 3),
        "log": str(outcome.log),
        "state_dir": str(state_dir),
        "root": procedure.root,
        "pool": procedure.pool,
        "steps": [step.id for step in procedure.steps],
        "written_by_nixos_install": [
            {"path": w.path, "writer": w.writer, "kept": w.kept, "reason": w.reason}
            for w in WRITTEN_BY_NIXOS_INSTALL
        ],
        "next": "reboot" if outcome.completed else None,
    }
