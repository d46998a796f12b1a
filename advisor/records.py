"""Plain records (the frozen dataclasses of :mod:`advisor.models`) read back from the
JSON advisor wrote: each field checked against the type the record declares, so a file
edited by hand or written by another version gives a clear error, not a wrong record."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, get_args, get_origin, get_type_hints


def tuples_of(fields: Mapping[str, Any]) -> dict[str, Any]:
    """``fields`` with each list (JSON's only sequence) made the tuple the record holds."""
    return {name: tuple(v) if isinstance(v, list) else v for name, v in fields.items()}


def check_fields(record: type, fields: Mapping[str, Any]) -> None:
    """Each of ``fields`` must be a field of the dataclass ``record`` with the type it
    declares (a mapping: of strings to strings; a tuple: of strings)."""
    hints = get_type_hints(record)
    for name, value in fields.items():
        if name not in hints:
            raise KeyError(f"unknown field {name!r}")
        allowed = get_args(hints[name]) or (hints[name],)
        origin = get_origin(hints[name])
        if origin is tuple:
            if isinstance(value, tuple) and all(isinstance(v, str) for v in value):
                continue
            raise TypeError(f"field {name!r} has the wrong type")
        if any(t is type(value) for t in allowed if isinstance(t, type)):
            continue
        if value is None and type(None) in allowed:
            continue
        is_mapping = origin is Mapping and isinstance(value, dict)
        if is_mapping and all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
            continue
        raise TypeError(f"field {name!r} has the wrong type")
