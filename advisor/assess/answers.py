"""Reading and checking answers: answers files, built-in example profiles, validation.

An answers file is a TOML or JSON table of question id -> value. Every problem is reported
as a :class:`~advisor.errors.UsageError` that names the file, the id and the allowed values.
"""

from __future__ import annotations

import difflib
import json
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from advisor.errors import UsageError
from advisor.models import Question

# Shipped inside the package; a plain path, as the wheel installs files (no zip import).
_PROFILES_DIR = Path(__file__).resolve().parent / "profiles"


@dataclass(frozen=True)
class Profile:
    """A built-in example: a described set of answers."""

    name: str
    description: str
    answers: Mapping[str, str]


def read_answers_file(path: Path) -> dict[str, Any]:
    """Parse ``path`` as TOML (``.toml``) or JSON (``.json``; other names: JSON, then TOML)."""
    try:
        # utf-8-sig: some editors start files with a byte-order mark.
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise UsageError(f"answers file {str(path)!r} does not exist") from None
    except (OSError, UnicodeDecodeError) as error:
        raise UsageError(f"cannot read answers file {str(path)!r}: {error}") from None
    suffix = path.suffix.lower()
    parsers = (
        [_parse_toml]
        if suffix == ".toml"
        else [_parse_json]
        if suffix == ".json"
        else [_parse_json, _parse_toml]
    )
    problems = []
    for parse in parsers:
        try:
            data = parse(text)
        except ValueError as error:
            problems.append(str(error))
            continue
        if not isinstance(data, dict):
            raise UsageError(
                f"answers file {str(path)!r} must hold a table of question id = value, "
                f"not {type(data).__name__}"
            )
        return data
    raise UsageError(f"answers file {str(path)!r} is malformed: {'; '.join(problems)}")


def _parse_toml(text: str) -> Any:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ValueError(f"invalid TOML ({error})") from None


def _parse_json(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"invalid JSON ({error})") from None


def validate_answers(
    data: Mapping[str, Any], questions: Sequence[Question], origin: str
) -> dict[str, str]:
    """Check every entry of ``data`` against ``questions``; return them as strings.

    Collects all problems before raising, so one run shows everything to fix. Missing
    answers are not an error here (see :func:`missing_questions`).
    """
    by_id = {question.id: question for question in questions}
    problems = []
    answers: dict[str, str] = {}
    for key, value in data.items():
        question = by_id.get(key)
        if question is None:
            close = difflib.get_close_matches(str(key), list(by_id), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            problems.append(f"unknown question id {key!r}{hint}")
            continue
        if not isinstance(value, str) or question.choice(value) is None:
            # Show the value as the file spells it (true, 1, "x"), not as Python does.
            shown = json.dumps(value, ensure_ascii=False, default=str)
            problems.append(
                f"{key} = {shown} is not allowed (choose one of: {', '.join(question.values)})"
            )
            continue
        answers[key] = value
    if problems:
        if len(problems) == 1:
            raise UsageError(f"{origin}: {problems[0]}")
        raise UsageError(f"{origin}:\n" + "\n".join(f"  - {problem}" for problem in problems))
    return answers


def missing_questions(
    questions: Sequence[Question], answers: Mapping[str, str], *, include_optional: bool = False
) -> list[Question]:
    """The questions ``answers`` leaves open, in questionnaire order.

    Optional questions count only with ``include_optional`` (for the interactive prompt).
    """
    return [
        question
        for question in questions
        if question.id not in answers and (include_optional or not question.optional)
    ]


def describe_missing(missing: Sequence[Question]) -> str:
    """One line per missing question: ``id: value1 | value2``."""
    return "\n".join(f"  {q.id}: {' | '.join(q.values)}" for q in missing)


def list_profiles() -> list[Profile]:
    """Every built-in example profile, by name."""
    return [load_profile(name) for name in _profile_names()]


def _profile_names() -> list[str]:
    return sorted(path.stem for path in _PROFILES_DIR.glob("*.toml"))


def load_profile(name: str) -> Profile:
    """The built-in example ``name``; a :class:`UsageError` lists the others."""
    # Compare against the names that exist rather than building a path from user input.
    names = _profile_names()
    if name not in names:
        raise UsageError(f"unknown profile {name!r} (built-in: {', '.join(names)})")
    data = tomllib.loads((_PROFILES_DIR / f"{name}.toml").read_text(encoding="utf-8"))
    return Profile(name=name, description=data["description"], answers=data["answers"])
