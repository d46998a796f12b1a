"""Reading ``zfs diff -H -F`` output, one line at a time.

Each line is tab-separated (``-H``): the change (``M`` modified, ``+`` created, ``-``
removed, ``R`` renamed), the file type (``-F``: ``F`` file, ``/`` directory, ``@``
symbolic link, ``|`` pipe, ``=`` socket, ``B``/``C`` devices, ``>`` door, ``P`` event
port), the path, then either the new path (``R``) or a link count change such as
``(+1)`` (``M``). Paths are the dataset's mount point followed by the path in it, and
libzfs escapes every byte that is a space or control character, a backslash or not ASCII
as a backslash and four octal digits (``\\0040`` for a space: ``stream_bytes`` in
``lib/libzfs/libzfs_diff.c``); the dataset mounted at ``/`` gets no prefix. See
zfs-diff(8).

Pure: no I/O. :func:`parse_line` is called once per line, so it does no more work than
it must (the benchmark, ``benchmarks/diff.py``, measures it).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

#: zfs-diff(8)'s change types.
CHANGES = frozenset("M+-R")
#: zfs-diff(8)'s file types (``-F``).
FILE_TYPES = frozenset("BC/>|@P=F")
DIRECTORY = "/"
SYMLINK = "@"
_ESCAPE = re.compile(rb"\\([0-7]{4})")


class DiffFormatError(ValueError):
    """A line that is not ``zfs diff -H -F`` output."""


@dataclass(frozen=True, slots=True)
class Change:
    """One line: ``change`` and ``file_type`` as zfs-diff(8) spells them, ``path`` as
    printed (unescaped, the mount point still in front), ``new_path`` for a rename."""

    change: str
    file_type: str
    path: str
    new_path: str | None = None


def unescape(field: str) -> str:
    """``field`` with libzfs's ``\\ooo`` escapes turned back into bytes, decoded as UTF-8;
    a byte that is not UTF-8 is written ``\\xNN`` (text that JSON, Nix and a terminal
    take, where a surrogate escape would fail to print)."""
    if "\\" not in field:
        return field
    raw = _ESCAPE.sub(lambda match: bytes([int(match[1], 8) & 0xFF]), field.encode())
    return raw.decode("utf-8", "backslashreplace")


def parse_line(line: str) -> Change:
    """The :class:`Change` of one line of ``zfs diff -H -F`` output (its newline may be
    there); :class:`DiffFormatError` for anything else."""
    fields = line.rstrip("\n").split("\t")
    if len(fields) < 3 or fields[0] not in CHANGES or fields[1] not in FILE_TYPES:
        raise DiffFormatError(f"not a line of 'zfs diff -H -F': {line.rstrip()!r}")
    change, file_type, path = fields[0], fields[1], unescape(fields[2])
    if change == "R":
        if len(fields) != 4:
            raise DiffFormatError(f"a rename without its new path: {line.rstrip()!r}")
        return Change(change, file_type, path, unescape(fields[3]))
    return Change(change, file_type, path)


def relocate(printed: str, mounted_at: Sequence[str], mountpoint: str) -> str:
    """The path ``printed`` by ``zfs diff`` (behind the dataset's mount point now, one of
    ``mounted_at``, such as ``/mnt``) as it is on the booted system, where the dataset is
    at ``mountpoint`` (``/``). Without a trailing slash, except ``/`` itself. A path
    behind none of ``mounted_at`` is a :class:`DiffFormatError`."""
    for where in sorted(mounted_at, key=len, reverse=True):
        prefix = "" if where == "/" else where.rstrip("/")
        if printed == prefix or printed.startswith(prefix + "/"):
            inner = printed[len(prefix) :].rstrip("/")
            base = "" if mountpoint == "/" else mountpoint
            return (base + inner) or "/"
    raise DiffFormatError(f"{printed!r} is not below the dataset's mount point {mounted_at}")
