"""Counting classified paths as they stream by, in memory that does not grow with them.

Paths are grouped by their :class:`~advisor.diff.classify.Verdict`'s entry: one group per
suggested (or covering) ``environment.persistence`` entry or noise rule, with its count
and its first :data:`EXAMPLES` paths. Memory grows with the number of groups, not of
paths, and the number of groups is capped (:data:`MAX_GROUPS`): paths beyond it are still
counted, as ``not_grouped``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from advisor.diff.classify import DIRECTORY_ENTRY, ERASED, FILE_ENTRY, STATUSES, Verdict, below

#: Paths kept per group, to show; the rest are counted.
EXAMPLES = 20
#: Groups kept in all; more only count (a root with more entries to suggest than this
#: is not one to paste into a configuration anyway).
MAX_GROUPS = 10_000


@dataclass
class Group:
    """The paths of one entry: ``status``, ``entry``, ``kind``, ``reason`` of their
    verdict, how many (``count``) and the first of them (``examples``)."""

    status: str
    entry: str
    kind: str
    reason: str
    count: int = 0
    examples: list[str] = field(default_factory=list)

    @property
    def more(self) -> int:
        """How many paths are counted but not among the examples."""
        return self.count - len(self.examples)

    def to_json(self) -> dict[str, object]:
        return {
            "status": self.status,
            "entry": self.entry,
            "kind": self.kind,
            "reason": self.reason,
            "paths": self.count,
            "examples": self.examples,
            "more": self.more,
        }


@dataclass
class Tally:
    """The groups so far, by (status, entry); counts by status; paths counted beyond
    :data:`MAX_GROUPS`; ``unchanged``: lines that change nothing the next boot erases
    (removals, which the rollback restores, and changes of a directory's own entries)."""

    groups: dict[tuple[str, str], Group] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STATUSES, 0))
    not_grouped: int = 0
    unchanged: int = 0

    def add(self, path: str, verdict: Verdict) -> None:
        """Count ``path`` under ``verdict``."""
        self.counts[verdict.status] += 1
        key = (verdict.status, verdict.entry)
        group = self.groups.get(key)
        if group is None:
            if len(self.groups) >= MAX_GROUPS:
                self.not_grouped += 1
                return
            group = Group(verdict.status, verdict.entry, verdict.kind, verdict.reason)
            self.groups[key] = group
        elif verdict.kind == DIRECTORY_ENTRY:
            # A directory's own line may come after its files'.
            group.kind = DIRECTORY_ENTRY
        group.count += 1
        if len(group.examples) < EXAMPLES:
            group.examples.append(path)

    def result(self, status: str) -> list[Group]:
        """The groups of ``status`` in path order; of the erased, an entry inside a
        suggested directory is merged into it (its examples after the directory's own);
        the tally itself is left as it is."""
        groups = sorted((g for g in self.groups.values() if g.status == status), key=_order)
        merged: list[Group] = []
        for group in groups:
            holder = merged[-1] if merged else None
            if (
                status == ERASED
                and holder is not None
                and holder.kind == DIRECTORY_ENTRY
                and below(group.entry, holder.entry)
            ):
                holder.count += group.count
                room = EXAMPLES - len(holder.examples)
                holder.examples.extend(group.examples[:room])
                continue
            merged.append(replace(group, examples=list(group.examples)))
        return merged


def _order(group: Group) -> tuple[str, ...]:
    # By path components, so /a/b comes right after /a (and before /a-b).
    return tuple(group.entry.split("/"))


__all__ = ["DIRECTORY_ENTRY", "EXAMPLES", "FILE_ENTRY", "MAX_GROUPS", "Group", "Tally"]
