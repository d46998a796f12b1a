"""Answers files, validation, missing questions and the built-in example profiles."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from advisor.assess.answers import (
    Profile,
    describe_missing,
    list_profiles,
    load_profile,
    missing_questions,
    read_answers_file,
    validate_answers,
)
from advisor.errors import UsageError
from advisor.models import Choice, Question
from advisor.questionnaire import QUESTIONS

QUESTIONS_BY_ID = {question.id: question for question in QUESTIONS}


def _write(tmp_path: Path, name: str, content: str | bytes) -> Path:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


# --- read_answers_file -----------------------------------------------------------------


def test_toml_suffix_is_parsed_as_toml(tmp_path: Path) -> None:
    path = _write(tmp_path, "answers.toml", 'granularity = "yes"\nunlock = "ssh"\n')
    assert read_answers_file(path) == {"granularity": "yes", "unlock": "ssh"}


def test_toml_suffix_is_case_insensitive(tmp_path: Path) -> None:
    path = _write(tmp_path, "ANSWERS.TOML", 'granularity = "yes"\n')
    assert read_answers_file(path) == {"granularity": "yes"}


def test_json_suffix_is_parsed_as_json(tmp_path: Path) -> None:
    path = _write(tmp_path, "answers.json", json.dumps({"granularity": "no", "unlock": "console"}))
    assert read_answers_file(path) == {"granularity": "no", "unlock": "console"}


def test_toml_suffix_does_not_fall_back_to_json(tmp_path: Path) -> None:
    path = _write(tmp_path, "answers.toml", '{"granularity": "no"}')
    with pytest.raises(UsageError) as info:
        read_answers_file(path)
    message = str(info.value)
    assert "invalid TOML" in message
    assert "invalid JSON" not in message


def test_json_suffix_does_not_fall_back_to_toml(tmp_path: Path) -> None:
    path = _write(tmp_path, "answers.json", 'granularity = "no"\n')
    with pytest.raises(UsageError) as info:
        read_answers_file(path)
    message = str(info.value)
    assert "invalid JSON" in message
    assert "invalid TOML" not in message


def test_unknown_suffix_reads_json(tmp_path: Path) -> None:
    path = _write(tmp_path, "answers.txt", '{"granularity": "yes"}')
    assert read_answers_file(path) == {"granularity": "yes"}


def test_unknown_suffix_falls_back_to_toml(tmp_path: Path) -> None:
    path = _write(tmp_path, "answers", 'granularity = "yes"\nintegrity = "no"\n')
    assert read_answers_file(path) == {"granularity": "yes", "integrity": "no"}


def test_unknown_suffix_malformed_reports_both_parsers(tmp_path: Path) -> None:
    path = _write(tmp_path, "answers.conf", "granularity = = yes\n")
    with pytest.raises(UsageError) as info:
        read_answers_file(path)
    message = str(info.value)
    assert str(path) in message
    assert "malformed" in message
    assert "invalid JSON" in message
    assert "invalid TOML" in message


def test_malformed_toml_names_the_file(tmp_path: Path) -> None:
    path = _write(tmp_path, "broken.toml", 'granularity = "yes\n')
    with pytest.raises(UsageError, match="is malformed") as info:
        read_answers_file(path)
    assert repr(str(path)) in str(info.value)
    assert "invalid TOML" in str(info.value)


def test_malformed_json_names_the_file(tmp_path: Path) -> None:
    path = _write(tmp_path, "broken.json", '{"granularity": "yes",}')
    with pytest.raises(UsageError, match="is malformed") as info:
        read_answers_file(path)
    assert repr(str(path)) in str(info.value)
    assert "invalid JSON" in str(info.value)


@pytest.mark.parametrize("name", ["list.json", "list.answers"])
def test_top_level_json_list_must_hold_a_table(tmp_path: Path, name: str) -> None:
    path = _write(tmp_path, name, '["granularity", "yes"]')
    with pytest.raises(UsageError, match="must hold a table") as info:
        read_answers_file(path)
    assert str(path) in str(info.value)
    assert "not list" in str(info.value)


def test_top_level_json_string_must_hold_a_table(tmp_path: Path) -> None:
    path = _write(tmp_path, "scalar.json", '"granularity"')
    with pytest.raises(UsageError, match=r"must hold a table.*not str"):
        read_answers_file(path)


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.toml"
    with pytest.raises(UsageError, match="does not exist") as info:
        read_answers_file(path)
    assert str(path) in str(info.value)


def test_invalid_utf8_is_a_usage_error(tmp_path: Path) -> None:
    path = _write(tmp_path, "latin1.toml", b'granularity = "\xff\xfe"\n')
    with pytest.raises(UsageError, match="cannot read answers file") as info:
        read_answers_file(path)
    assert str(path) in str(info.value)
    assert "utf-8" in str(info.value).lower()


def test_directory_is_a_usage_error(tmp_path: Path) -> None:
    path = tmp_path / "answers.toml"
    path.mkdir()
    with pytest.raises(UsageError, match="cannot read answers file"):
        read_answers_file(path)


def test_empty_toml_file_is_an_empty_table(tmp_path: Path) -> None:
    path = _write(tmp_path, "empty.toml", "")
    assert read_answers_file(path) == {}


# --- validate_answers ------------------------------------------------------------------


def test_valid_answers_pass_through() -> None:
    data = {"granularity": "yes", "metadata_exposure": "severe"}
    assert validate_answers(data, QUESTIONS, "answers.toml") == data


def test_unknown_id_suggests_close_match() -> None:
    with pytest.raises(UsageError) as info:
        validate_answers({"metadata_exposur": "some"}, QUESTIONS, "my.toml")
    message = str(info.value)
    assert message.startswith("my.toml: ")
    assert "unknown question id 'metadata_exposur'" in message
    assert "did you mean 'metadata_exposure'?" in message


def test_unknown_id_without_close_match_has_no_suggestion() -> None:
    with pytest.raises(UsageError) as info:
        validate_answers({"zzzzzzzz": "some"}, QUESTIONS, "my.toml")
    message = str(info.value)
    assert "unknown question id 'zzzzzzzz'" in message
    assert "did you mean" not in message


def test_invalid_value_lists_allowed_values() -> None:
    with pytest.raises(UsageError) as info:
        validate_answers({"metadata_exposure": "lots"}, QUESTIONS, "my.toml")
    message = str(info.value)
    assert 'metadata_exposure = "lots" is not allowed' in message
    assert "choose one of: none, some, severe" in message


@pytest.mark.parametrize(
    ("toml_value", "python_value"),
    [("true", True), ("1", 1), ("0.5", 0.5), ('["yes"]', ["yes"]), ('{ v = "yes" }', {"v": "yes"})],
)  # the message shows each value as JSON spells it: true, 1, 0.5, ["yes"], {"v": "yes"}
def test_non_string_toml_values_are_rejected(
    tmp_path: Path, toml_value: str, python_value: object
) -> None:
    path = _write(tmp_path, "answers.toml", f"granularity = {toml_value}\n")
    data = read_answers_file(path)
    assert data == {"granularity": python_value}
    with pytest.raises(UsageError) as info:
        validate_answers(data, QUESTIONS, str(path))
    message = str(info.value)
    assert message.startswith(f"{path}: ")
    assert f"granularity = {json.dumps(python_value)} is not allowed" in message
    assert "choose one of: no, yes" in message


@pytest.mark.parametrize("value", [None, 1, False, ["no"]])
def test_non_string_json_values_are_rejected(value: object) -> None:
    with pytest.raises(UsageError, match=r"choose one of: no, yes"):
        validate_answers({"integrity": value}, QUESTIONS, "answers.json")


def test_value_matching_is_exact() -> None:
    with pytest.raises(UsageError, match="choose one of: no, yes"):
        validate_answers({"granularity": "Yes"}, QUESTIONS, "answers.toml")
    with pytest.raises(UsageError, match="choose one of: no, yes"):
        validate_answers({"granularity": " yes"}, QUESTIONS, "answers.toml")


def test_all_problems_reported_in_one_error() -> None:
    data = {
        "metadata_exposur": "some",
        "granularity": True,
        "unlock": "telepathy",
        "integrity": "yes",  # valid: must not be reported
    }
    with pytest.raises(UsageError) as info:
        validate_answers(data, QUESTIONS, "all.toml")
    message = str(info.value)
    expected = [
        "unknown question id 'metadata_exposur' (did you mean 'metadata_exposure'?)",
        "granularity = true is not allowed (choose one of: no, yes)",
        'unlock = "telepathy" is not allowed (choose one of: console, ssh, unattended)',
    ]
    assert message == "all.toml:\n" + "\n".join(f"  - {line}" for line in expected)
    assert "integrity" not in message


def test_missing_answers_are_not_a_validation_error() -> None:
    assert validate_answers({}, QUESTIONS, "empty.toml") == {}


# --- missing_questions / describe_missing ----------------------------------------------


def _optional_question() -> Question:
    return Question(
        "tpm_pcrs",
        "Bind the key to which PCRs?",
        "Only matters for TPM2 unlock.",
        (Choice("firmware", "Firmware only"), Choice("secure_boot", "Secure Boot state")),
        default="secure_boot",
        optional=True,
    )


def test_missing_questions_in_questionnaire_order() -> None:
    answers = {"adversary": "thief", "stability": "balanced"}
    missing = missing_questions(QUESTIONS, answers)
    # Optional questions (machine_theft, hardware_token) are only missing at a terminal.
    required = [q.id for q in QUESTIONS if not q.optional]
    assert {"machine_theft", "hardware_token"} <= {q.id for q in QUESTIONS if q.optional}
    assert [q.id for q in missing] == [qid for qid in required if qid not in answers]
    assert len(missing) == len(required) - 2
    everything = missing_questions(QUESTIONS, answers, include_optional=True)
    assert [q.id for q in everything] == [q.id for q in QUESTIONS if q.id not in answers]


def test_nothing_missing_when_all_answered() -> None:
    answers = {q.id: q.values[0] for q in QUESTIONS}
    assert missing_questions(QUESTIONS, answers) == []


def test_optional_questions_are_not_missing_by_default() -> None:
    optional = _optional_question()
    questions = (*QUESTIONS[:2], optional)
    answers = {QUESTIONS[0].id: QUESTIONS[0].values[0]}
    assert [q.id for q in missing_questions(questions, answers)] == [QUESTIONS[1].id]
    assert [q.id for q in missing_questions(questions, answers, include_optional=True)] == [
        QUESTIONS[1].id,
        "tpm_pcrs",
    ]


def test_answered_optional_question_is_never_missing() -> None:
    optional = _optional_question()
    assert missing_questions([optional], {"tpm_pcrs": "firmware"}, include_optional=True) == []


def test_describe_missing_lists_ids_and_values() -> None:
    missing = [QUESTIONS_BY_ID["granularity"], QUESTIONS_BY_ID["stability"]]
    assert describe_missing(missing) == (
        "  granularity: no | yes\n  stability: conservative | balanced | early_adopter"
    )


def test_describe_missing_empty() -> None:
    assert describe_missing([]) == ""


# --- profiles --------------------------------------------------------------------------


def test_list_profiles_returns_sorted_builtin_profiles() -> None:
    profiles = list_profiles()
    names = [p.name for p in profiles]
    assert names == sorted(names)
    assert {"activist", "conservative-server", "consultant", "homelab", "journalist"} <= set(names)
    assert all(isinstance(p, Profile) for p in profiles)


@pytest.mark.parametrize("profile", list_profiles(), ids=lambda p: p.name)
def test_every_profile_answers_every_core_question_validly(profile: Profile) -> None:
    assert profile.description.strip()
    assert validate_answers(profile.answers, QUESTIONS, profile.name) == dict(profile.answers)
    assert missing_questions(QUESTIONS, profile.answers, include_optional=True) == []


def test_load_profile_by_name() -> None:
    profile = load_profile("journalist")
    assert profile.name == "journalist"
    assert profile.answers["metadata_exposure"] == "severe"
    assert "journalist" in profile.description.lower()


def test_unknown_profile_lists_builtin_names() -> None:
    with pytest.raises(UsageError) as info:
        load_profile("astronaut")
    message = str(info.value)
    assert "unknown profile 'astronaut'" in message
    for profile in list_profiles():
        assert profile.name in message


@pytest.mark.parametrize(
    "name",
    [
        "../x",
        "../profiles/activist",
        "/etc/passwd",
        "a/b",
        "activist.toml",
        "",
        "..",
        "__init__",
        "activist\x00",
    ],
)
def test_profile_names_with_path_characters_are_usage_errors(name: str) -> None:
    with pytest.raises(UsageError, match=re.escape(f"unknown profile {name!r}")):
        load_profile(name)


def test_overlong_profile_name_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="unknown profile"):
        load_profile("a" * 300)


@pytest.mark.parametrize("suffix", [".toml", ".json"])
def test_byte_order_mark_is_accepted(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"bom{suffix}"
    body = 'adversary = "thief"\n' if suffix == ".toml" else '{"adversary": "thief"}'
    path.write_bytes(b"\xef\xbb\xbf" + body.encode())
    assert read_answers_file(path) == {"adversary": "thief"}
