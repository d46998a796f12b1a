"""A saved assessment (``advisor assess --save FILE``) read back, for the commands that
take ``--from-assessment FILE``: ``config``, ``plan`` and ``install`` (the backend and the
TRIM and SSD defaults), ``check`` (TRIM as the assessment answered) and ``backup`` (the
trust of an offsite target)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from advisor.errors import UsageError


def read_assessment(path: Path) -> Mapping[str, Any]:
    """A file written by ``advisor assess --save``; a :class:`UsageError` if it is not one."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"--from-assessment {str(path)!r} does not exist") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise UsageError(f"--from-assessment {str(path)!r} cannot be read: {error}") from None
    if (
        not isinstance(data, dict)
        or data.get("schema") != 1
        or not isinstance(data.get("answers"), dict)
        or not isinstance(data.get("system"), dict)
    ):
        raise UsageError(
            f"--from-assessment {str(path)!r} is not an assessment saved by "
            "'advisor assess --save' (schema 1)"
        )
    return data
