"""The edge of ``advisor diff``: the layout record, the mounts, and ``zfs diff``.

For each dataset the layout rolls back (the root, and a layout file's rolled-back
ones), ``zfs diff -H -F <dataset>@blank <dataset>`` runs and its lines are classified as
they come (:func:`tally_lines`): nothing holds the whole output. ``zfs diff`` prints
paths behind the dataset's mount point, so the dataset must be mounted (libzfs refuses
otherwise); where, is read from ``/proc/self/mountinfo``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from contextlib import closing
from dataclasses import replace
from pathlib import Path

from advisor.datasets import PERSISTED_DIRECTORIES, PERSISTED_FILES, Dataset, rolled_back_datasets
from advisor.diff.classify import Classifier, Persisted
from advisor.diff.parse import DIRECTORY, DiffFormatError, parse_line, relocate
from advisor.diff.report import Diffed, DiffResult
from advisor.diff.tally import Tally
from advisor.errors import AdvisorError, UsageError
from advisor.layoutfile import layout_datasets
from advisor.layoutrecord import load_record
from advisor.mounts import parse_mountinfo
from advisor.runner import stream_lines

#: Where the kernel lists this process's mounts (proc(5)).
MOUNTINFO = Path("/proc/self/mountinfo")


def run_diff(
    root: Path,
    record: Path | None = None,
    persisted: Sequence[str] = (),
    layout_file: Path | None = None,
) -> DiffResult:
    """Compare every rolled-back dataset of the system under ``root`` (``/`` running,
    ``/mnt`` from the installer) with its ``@blank`` snapshot.

    ``record`` names the layout record (default: found under ``root``); ``persisted``
    adds paths kept by entries the record does not know (the user's own
    ``environment.persistence`` entries); ``layout_file`` is a copy of the layout file
    the record names, where that path is gone. A :class:`UsageError` for bad input, an
    :class:`AdvisorError` (exit 1) when a dataset is not mounted or ``zfs diff`` fails.
    """
    for path in persisted:
        if not path.startswith("/"):
            raise UsageError(f"--persisted {path!r}: give an absolute path, as on the system")
    layout, record_path = load_record(root, record)
    settings = layout.settings
    if layout_file is not None:
        settings = replace(settings, layout=str(layout_file))
    try:
        datasets = layout_datasets(settings)
    except UsageError as error:
        if layout_file is not None:
            raise
        raise UsageError(
            f"{error} (the layout record {record_path} names it): give a copy with --layout FILE"
        ) from None
    pool = settings.pool
    rolled = rolled_back_datasets(datasets)
    kept = Persisted(
        directories=(*PERSISTED_DIRECTORIES, *(p.rstrip("/") or "/" for p in persisted)),
        files=PERSISTED_FILES,
        datasets={d.mountpoint: d.full_name(pool) for d in datasets if not d.rolled_back},
    )
    classifier = Classifier(
        kept,
        rolled_back=[d.mountpoint for d in rolled],
        copied_etc=_copied_etc(root),
        link_target=lambda path: _link_target(root, path),
    )
    mounts = mount_points(MOUNTINFO.read_text(encoding="utf-8", errors="surrogateescape"))
    tally = Tally()
    diffed = []
    for dataset in rolled:
        name = dataset.full_name(pool)
        where = mounts.get(name)
        if not where:
            raise AdvisorError(
                f"{name} is not mounted: 'zfs diff' needs it mounted (at "
                f"{_under(root, dataset.mountpoint)})"
            )
        snapshot = dataset.blank_snapshot(pool)
        # closing(): an error or Ctrl-C in the middle stops the child at once.
        try:
            with closing(stream_lines(["zfs", "diff", "-H", "-F", snapshot, name])) as lines:
                tally_lines(lines, classifier, where, dataset, tally)
        except DiffFormatError as error:
            raise AdvisorError(
                f"'zfs diff {snapshot}' printed what it should not: {error}"
            ) from None
        diffed.append(Diffed(name, snapshot, dataset.mountpoint, where[0]))
    return DiffResult(str(record_path), tuple(diffed), tally)


def tally_lines(
    lines: Iterable[str],
    classifier: Classifier,
    mounted_at: Sequence[str],
    dataset: Dataset,
    tally: Tally,
) -> None:
    """Classify and count every line of ``zfs diff -H -F`` output of ``dataset``
    (mounted now at one of ``mounted_at``) into ``tally``, one line at a time.

    A removal is restored by the rollback and a directory's own change is that of its
    entries, listed on their own lines: both count as ``unchanged``. A rename counts as
    its new path."""
    for line in lines:
        change = parse_line(line)
        if change.change == "-" or (change.change == "M" and change.file_type == DIRECTORY):
            tally.unchanged += 1
            continue
        printed = change.new_path if change.new_path is not None else change.path
        path = relocate(printed, mounted_at, dataset.mountpoint)
        tally.add(path, classifier.classify(path, change.file_type))


def mount_points(mountinfo: str) -> dict[str, list[str]]:
    """Each ZFS dataset mounted whole (not a bind mount of a directory in it) in
    ``mountinfo`` (proc(5)'s format), with where: ``{"rpool/local/root": ["/mnt"]}``."""
    found: dict[str, list[str]] = {}
    for entry in parse_mountinfo(mountinfo):
        if entry.fstype == "zfs" and entry.root == "/":
            found.setdefault(entry.source, []).append(entry.mountpoint)
    return found


def _under(root: Path, path: str) -> str:
    return str(root / path.lstrip("/"))


def _copied_etc(root: Path) -> list[str]:
    """The files NixOS copied into /etc (setup-etc.pl lists them, relative to /etc, in
    ``/etc/.clean``), as absolute paths; none when there is no such list."""
    try:
        text = (root / "etc" / ".clean").read_text(encoding="utf-8", errors="surrogateescape")
    except OSError:
        return []
    return [f"/etc/{line}" for line in text.splitlines() if line]


def _link_target(root: Path, path: str) -> str | None:
    try:
        return str((root / path.lstrip("/")).readlink())
    except OSError:
        return None
