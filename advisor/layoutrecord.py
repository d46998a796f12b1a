"""The layout record: ``advisor.json`` beside the generated configuration.

``advisor config`` writes it with ``configuration.nix`` (the install copies both to
``/persist/etc/nixos``). It is the :class:`~advisor.models.Layout` the configuration was
generated from, without the password hash: the backend, the settings and each disk's
devices. The commands that look after an installed system (``check``, ``finish``,
``rekey``, ``backup``, ``diff``) read it, from the installer against the mounted target
(``--root /mnt``) or on the running system (``--root /``), so they know the layout
without asking again or evaluating Nix.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from advisor.errors import UsageError
from advisor.models import Layout, LayoutMember, Settings
from advisor.records import check_fields, tuples_of

RECORD_FILE = "advisor.json"
#: Bumped when a field changes meaning; a record of another version is refused.
RECORD_VERSION = 1
#: Where the record is looked for under a root, in order: the configuration as the
#: install wrote it, then its copy on /persist (which is /etc/nixos on the running system).
RECORD_PLACES = ("etc/nixos", "persist/etc/nixos")


def record_text(layout: Layout) -> str:
    """The record of ``layout`` as JSON text (stable: no time, no password hash)."""
    data = {
        "version": RECORD_VERSION,
        "backend": layout.backend,
        "settings": asdict(layout.settings),
        "members": [asdict(member) for member in layout.members],
    }
    return json.dumps(data, indent=2, sort_keys=True) + "\n"


def find_record(root: Path) -> Path:
    """The record under ``root`` (``/mnt`` from the installer, ``/`` when running); a
    :class:`UsageError` saying where it looked when there is none."""
    places = [root / place / RECORD_FILE for place in RECORD_PLACES]
    for path in places:
        if path.is_file():
            return path
    raise UsageError(
        f"no layout record under {str(root)!r}: looked for {' and '.join(map(str, places))}. "
        "Give --root (the installed system's root, /mnt from the installer) or --record FILE"
    )


def read_record(path: Path) -> Layout:
    """The :class:`Layout` saved in ``path`` (its ``hashed_password`` empty); a
    :class:`UsageError` for a file that is missing, not a record, or of another version."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict) or "version" not in data:
            raise ValueError("no 'version' field")
        if data["version"] != RECORD_VERSION:
            raise UsageError(
                f"{path} is version {data['version']!r} of the layout record; this advisor "
                f"reads version {RECORD_VERSION}"
            )
        return _layout(data)
    except FileNotFoundError:
        raise UsageError(f"{path} does not exist") from None
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as error:
        raise UsageError(f"{path} is not a layout record advisor wrote: {error}") from None


def load_record(root: Path, record: Path | None = None) -> tuple[Layout, Path]:
    """The layout of the system under ``root`` and the file it came from: ``record`` when
    given, else the one :func:`find_record` finds."""
    path = record if record is not None else find_record(root)
    return read_record(path), path


def _layout(data: dict[str, Any]) -> Layout:
    backend, settings, members = data["backend"], data["settings"], data["members"]
    if not isinstance(backend, str):
        raise TypeError("'backend' is not a string")
    if not isinstance(settings, dict):
        raise TypeError("'settings' is not a table")
    if not isinstance(members, list) or not members:
        raise TypeError("'members' is not a list of tables")
    settings = tuples_of(settings)
    check_fields(Settings, settings)
    for member in members:
        if not isinstance(member, dict):
            raise TypeError("'members' is not a list of tables")
        check_fields(LayoutMember, member)
    return Layout(
        backend=backend,
        settings=Settings(**settings),
        members=tuple(LayoutMember(**member) for member in members),
        hashed_password="",
    )
