"""``advisor backup``: a snapshot of ``<pool>/safe`` and its sends to the target, now.

What syncoid does on a schedule (the configuration's ``services.syncoid``), done once:
``zfs snapshot -r <pool>/safe@advisor-<UTC time>``, then for each dataset, parents
first, ``zfs send [-w] [-I @common] ... | zfs receive -u ...`` to a pool of this machine
or through ``ssh`` to another host. The pool itself says which datasets ZFS encrypts
(``zfs list -o encryption``), not the backend's name: an encrypted one goes raw, and a
plaintext one only to a trusted target (:func:`advisor.backups.plan_transfers`, which
refuses before anything is done). Every command goes through :mod:`advisor.runner`.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from advisor import backups, runner
from advisor.assessmentfile import read_assessment
from advisor.backups import SourceDataset, Target, Transfer
from advisor.errors import UsageError


@dataclass(frozen=True)
class BackupResult:
    """What ``advisor backup`` did (or, ``dry_run``, would do)."""

    pool: str
    target: Target
    trusted: bool
    snapshot: str
    transfers: tuple[Transfer, ...]
    dry_run: bool
    #: Every command, as shell lines a person could run (``send | receive`` in one).
    commands: tuple[str, ...] = field(default=())

    def to_json(self) -> dict[str, object]:
        return {
            "pool": self.pool,
            "target": self.target.spec(),
            "trusted": self.trusted,
            "snapshot": self.snapshot,
            "dry_run": self.dry_run,
            "transfers": [transfer.to_json() for transfer in self.transfers],
            "commands": list(self.commands),
        }


def read_trust(assessment: Path) -> str:
    """The trust a saved assessment (``advisor assess --save``) gives a backup target,
    from its ``offsite_backups`` answer; a :class:`UsageError` for a file that is none."""
    return backups.trust_from_answers(read_assessment(assessment)["answers"])


def source_datasets(pool: str) -> list[SourceDataset]:
    """``<pool>/safe`` and every file system and volume below it, parents first, with
    whether ZFS encrypts each and its snapshots, oldest first."""
    top = f"{pool}/{backups.BACKED_UP_BRANCH}"
    listing = runner.run(
        ("zfs", "list", "-H", "-p", "-o", "name,encryption", "-t", "filesystem,volume", "-r", top)
    ).stdout
    snapshots = runner.run(
        ("zfs", "list", "-H", "-o", "name", "-t", "snapshot", "-s", "createtxg", "-r", top)
    ).stdout
    return parse_sources(listing, snapshots)


def parse_sources(listing: str, snapshots: str) -> list[SourceDataset]:
    """:func:`source_datasets` from the text of its two ``zfs list`` commands."""
    held: dict[str, list[str]] = {}
    for line in snapshots.splitlines():
        dataset, _, snapshot = line.strip().partition("@")
        held.setdefault(dataset, []).append(snapshot)
    sources = []
    for line in listing.splitlines():
        name, _, encryption = line.strip().partition("\t")
        if name:
            sources.append(
                SourceDataset(name, encryption not in ("off", "-", ""), tuple(held.get(name, ())))
            )
    return sources


def target_held(target: Target) -> dict[str, tuple[str, ...]]:
    """What the target holds below its dataset (nothing when that does not exist); a
    :class:`~advisor.runner.CommandError` when it cannot be asked (ssh fails)."""
    result = runner.run(backups.target_listing_argv(target), check=False)
    if result.returncode != 0:
        if "does not exist" in result.stderr:
            return {}
        tail = "\n".join(result.stderr.strip().splitlines()[-5:])
        raise runner.CommandError(
            result.argv, f"could not list {target.spec()}: {tail or 'exit status'}", tail
        )
    return backups.target_state(result.stdout, target)


def shell_line(transfer: Transfer, target: Target) -> str:
    """One transfer as the shell line it amounts to: ``zfs send ... | zfs receive ...``."""
    send = shlex.join(transfer.send_argv())
    return f"{send} | {shlex.join(backups.receive_argv(target, transfer.target))}"


def back_up(
    pool: str,
    target: Target,
    *,
    trusted: bool,
    dry_run: bool,
    now: datetime | None = None,
    sources: Sequence[SourceDataset] | None = None,
    held: Mapping[str, Sequence[str]] | None = None,
) -> BackupResult:
    """Snapshot ``<pool>/safe`` and send it to ``target`` (``dry_run``: only say how).
    Everything is checked, and refused with a :class:`UsageError`, before the snapshot
    is taken; a failed send is a :class:`~advisor.runner.CommandError` (exit 1), and the
    next run goes on from what the target holds. ``sources`` and ``held`` are what the
    pool and the target hold, asked when not given."""
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%d-%H%M%S")
    snapshot = backups.snapshot_name(stamp)
    if sources is None:
        sources = source_datasets(pool)
    if not sources:
        raise UsageError(f"{pool}/{backups.BACKED_UP_BRANCH} does not exist: nothing to back up")
    if held is None:
        held = target_held(target)
    transfers = backups.plan_transfers(pool, sources, target, held, snapshot, trusted=trusted)
    take = ("zfs", "snapshot", "-r", f"{pool}/{backups.BACKED_UP_BRANCH}@{snapshot}")
    commands = (shlex.join(take), *(shell_line(t, target) for t in transfers))
    result = BackupResult(pool, target, trusted, snapshot, tuple(transfers), dry_run, commands)
    if dry_run:
        return result
    runner.run(take)
    for transfer in transfers:
        runner.run_pipeline(
            transfer.send_argv(), backups.receive_argv(target, transfer.target), timeout=None
        )
    return result
