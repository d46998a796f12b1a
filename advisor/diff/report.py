"""``advisor diff``'s output: a table at a terminal, JSON, or a NixOS module to paste."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from advisor import nix
from advisor.diff.classify import DIRECTORY_ENTRY, ERASED, NOISE_STATUS, PERSISTED, STATUSES
from advisor.diff.tally import Group, Tally

if TYPE_CHECKING:
    from rich.console import Console

#: The persistent storage the configuration's environment.persistence entries are under.
PERSIST = "/persist"
#: Entries a table shows per status: more is not read at a terminal (and rich takes a
#: millisecond a row); --json and --nix give them all.
TABLE_ROWS = 100
#: The file the module is meant to be saved as, beside configuration.nix.
MODULE_FILE = "persistence-extra.nix"


@dataclass(frozen=True)
class Diffed:
    """One dataset that was compared: its name, the snapshot, where the booted system
    has it (``mountpoint``) and where it is mounted now (``mounted_at``)."""

    dataset: str
    snapshot: str
    mountpoint: str
    mounted_at: str


@dataclass(frozen=True)
class DiffResult:
    """What ``advisor diff`` found: the layout record it read, the datasets compared, the
    tally of their changed paths."""

    record: str
    datasets: tuple[Diffed, ...]
    tally: Tally


def to_json(result: DiffResult, *, show_noise: bool) -> dict[str, object]:
    """The result as JSON data: ``counts`` of paths by status, and the ``groups`` of the
    erased and persisted paths (and, with ``show_noise``, of the noise), in that order."""
    statuses = STATUSES if show_noise else (ERASED, PERSISTED)
    return {
        "record": result.record,
        "datasets": [
            {
                "dataset": d.dataset,
                "snapshot": d.snapshot,
                "mountpoint": d.mountpoint,
                "mounted_at": d.mounted_at,
            }
            for d in result.datasets
        ],
        "counts": dict(result.tally.counts),
        "not_grouped": result.tally.not_grouped,
        "groups": [g.to_json() for s in statuses for g in result.tally.result(s)],
        "nix": nix_fragment(result.tally.result(ERASED)),
    }


def nix_fragment(groups: Sequence[Group]) -> str:
    """A NixOS module adding the entries of ``groups`` (erased paths' suggestions) to
    ``environment.persistence."/persist"``. A module of its own: configuration.nix sets
    that attribute already, and the module system concatenates the lists of two modules
    (impermanence declares ``directories`` and ``files`` as lists), where one file
    cannot set an attribute twice."""
    directories = [g.entry for g in groups if g.kind == DIRECTORY_ENTRY]
    files = [g.entry for g in groups if g.kind != DIRECTORY_ENTRY]
    body = {
        "environment": {
            "persistence": {PERSIST: {"directories": directories, "files": files}},
        },
    }
    header = nix.comment(
        "What 'advisor diff' found the next boot would erase. Review each entry, save as\n"
        f"/etc/nixos/{MODULE_FILE} and add ./{MODULE_FILE} to imports in configuration.nix.\n"
        "Copy what is there now into /persist first: the bind mount hides it otherwise."
    )
    return header + nix.value(nix.Function((), body)) + "\n"


_STYLE = {ERASED: "bold red", PERSISTED: "green", NOISE_STATUS: "dim"}


def render(console: Console, result: DiffResult, *, show_noise: bool) -> None:
    """A table per status: each entry (the first :data:`TABLE_ROWS`) with its kind, its
    paths' count and examples (or, kept and noise, why); then what to do."""
    from rich.table import Table
    from rich.text import Text

    from advisor.report import heading

    tally = result.tally
    compared = ", ".join(f"{d.dataset} at {d.mounted_at}" for d in result.datasets)
    console.print(Text(f"Compared with @blank: {compared} (layout record {result.record})"))
    titles = {
        ERASED: "Erased at the next boot, with the entry that would keep it",
        PERSISTED: "Kept already",
        NOISE_STATUS: "Noise: written again at every boot",
    }
    for status in STATUSES if show_noise else (ERASED, PERSISTED):
        groups = tally.result(status)
        heading(console, f"{titles[status]} ({tally.counts[status]} paths)")
        if not groups:
            console.print(Text("  none"))
            continue
        table = Table(show_edge=False, pad_edge=False)
        table.add_column("Entry", overflow="fold", style=_STYLE[status])
        table.add_column("Kind", no_wrap=True)
        table.add_column("Paths", justify="right", no_wrap=True)
        table.add_column("Examples" if status == ERASED else "Why", overflow="fold")
        for group in groups[:TABLE_ROWS]:
            shown = group.examples[:3]
            detail = "\n".join(p for p in shown if p != group.entry)
            if group.count > len(shown):
                detail += f"\n… and {group.count - len(shown)} more"
            if status != ERASED:
                detail = group.reason
            table.add_row(
                Text(group.entry),
                Text(group.kind),
                Text(str(group.count)),
                Text(detail.strip() or "-"),
            )
        console.print(table)
        if len(groups) > TABLE_ROWS:
            console.print(
                Text(f"… and {len(groups) - TABLE_ROWS} more entries: --json lists them all")
            )
    if tally.not_grouped:
        console.print(
            Text(
                f"{tally.not_grouped} more paths in entries not listed (too many entries)",
                style="yellow",
            )
        )
    hidden = tally.counts[NOISE_STATUS]
    console.print()
    if not show_noise and hidden:
        console.print(Text(f"{hidden} paths of noise not shown: --all shows them."))
    if tally.counts[ERASED]:
        console.print(Text("Print the entries as a NixOS module to paste: advisor diff --nix"))
