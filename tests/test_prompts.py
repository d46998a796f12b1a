"""The interactive questionnaire, driven through prompt_toolkit pipe input."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence

import pytest
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput
from rich.console import Console

from advisor.assess.prompts import ask_missing
from advisor.models import Choice, Question
from advisor.questionnaire import QUESTIONS

DOWN = "\x1b[B"
ENTER = "\r"
CTRL_C = "\x03"

QUESTIONS_BY_ID = {question.id: question for question in QUESTIONS}


def _console() -> Console:
    return Console(file=io.StringIO(), width=100)


def _output(console: Console) -> str:
    """What was printed, with rich's line wrapping folded back into single spaces."""
    file = console.file
    assert isinstance(file, io.StringIO)
    return " ".join(file.getvalue().split())


def _ask(
    keys: str,
    questions: Sequence[Question],
    answers: Mapping[str, str] | None = None,
    console: Console | None = None,
) -> dict[str, str]:
    with create_pipe_input() as inp:
        inp.send_text(keys)
        return ask_missing(
            questions,
            answers or {},
            console or _console(),
            input=inp,
            output=DummyOutput(),
        )


def _next_value(question: Question) -> str:
    """The value one step down from the default (the select list wraps around)."""
    values = question.values
    start = values.index(question.default) if question.default is not None else 0
    return values[(start + 1) % len(values)]


def test_enter_only_gives_every_default() -> None:
    answers = _ask(ENTER * len(QUESTIONS), QUESTIONS)
    assert answers == {q.id: q.default for q in QUESTIONS}
    assert list(answers) == [q.id for q in QUESTIONS]


def test_enter_only_exact_defaults() -> None:
    # The defaults spelled out, so a changed default is a visible decision.
    assert _ask(ENTER * len(QUESTIONS), QUESTIONS) == {
        "metadata_exposure": "some",
        "adversary": "thief",
        "offsite_backups": "trusted",
        "granularity": "no",
        "integrity": "no",
        "deniability": "no",
        "header_custody": "no",
        "stability": "balanced",
        "unlock": "console",
        "machine_theft": "yes",
        "hardware_token": "no",
        "ssd_trim": "yes",
    }


def test_down_once_picks_next_choice_for_every_question() -> None:
    answers = _ask((DOWN + ENTER) * len(QUESTIONS), QUESTIONS)
    assert answers == {q.id: _next_value(q) for q in QUESTIONS}
    assert answers == {
        "metadata_exposure": "severe",
        "adversary": "border",
        "offsite_backups": "untrusted",
        "granularity": "yes",
        "integrity": "yes",
        "deniability": "yes",
        "header_custody": "yes",
        "stability": "early_adopter",
        "unlock": "ssh",
        "machine_theft": "no",  # default "yes" is last: the list wraps to the first choice
        "hardware_token": "yes",
        "ssd_trim": "no",  # the same
    }


@pytest.mark.parametrize(
    ("question_id", "downs", "expected"),
    [
        ("metadata_exposure", 0, "some"),
        ("metadata_exposure", 1, "severe"),
        ("metadata_exposure", 2, "none"),
        ("adversary", 2, "targeted"),
        ("stability", 1, "early_adopter"),
        ("unlock", 2, "unattended"),
    ],
)
def test_one_question_at_a_time(question_id: str, downs: int, expected: str) -> None:
    question = QUESTIONS_BY_ID[question_id]
    assert _ask(DOWN * downs + ENTER, [question]) == {question_id: expected}


def test_mixed_keys_in_one_call() -> None:
    questions = [
        QUESTIONS_BY_ID["adversary"],
        QUESTIONS_BY_ID["granularity"],
        QUESTIONS_BY_ID["unlock"],
    ]
    keys = DOWN * 2 + ENTER + ENTER + DOWN + ENTER
    assert _ask(keys, questions) == {
        "adversary": "targeted",
        "granularity": "no",
        "unlock": "ssh",
    }


def test_question_without_default_starts_on_first_choice() -> None:
    question = Question(
        "colour",
        "Which colour?",
        "Any will do.",
        (Choice("red", "Red"), Choice("green", "Green"), Choice("blue", "Blue")),
    )
    assert _ask(ENTER, [question]) == {"colour": "red"}
    assert _ask(DOWN + ENTER, [question]) == {"colour": "green"}


def test_answered_questions_are_not_asked() -> None:
    given = {q.id: q.values[0] for q in QUESTIONS if q.id not in ("integrity", "unlock")}
    console = _console()
    # Only two prompts run: the first Down+Enter answers "integrity", the second "unlock".
    answers = _ask(DOWN + ENTER + DOWN + DOWN + ENTER, QUESTIONS, given, console)
    assert answers == {"integrity": "yes", "unlock": "unattended"}
    output = _output(console)
    assert "Question 1 of 2" in output
    assert "Question 2 of 2" in output
    assert "of 10" not in output
    assert QUESTIONS_BY_ID["integrity"].help in output
    assert QUESTIONS_BY_ID["metadata_exposure"].help not in output


def test_nothing_missing_asks_nothing() -> None:
    given = {q.id: q.default or q.values[0] for q in QUESTIONS}
    console = _console()
    assert _ask("", QUESTIONS, given, console) == {}
    assert _output(console) == ""


def test_help_text_and_numbering_are_printed() -> None:
    console = _console()
    _ask(ENTER * len(QUESTIONS), QUESTIONS, console=console)
    output = _output(console)
    total = len(QUESTIONS)
    for number, question in enumerate(QUESTIONS, start=1):
        assert f"Question {number} of {total}" in output
        assert " ".join(question.help.split()) in output
    # Numbering and help come in questionnaire order.
    positions = [output.index(" ".join(q.help.split())) for q in QUESTIONS]
    assert positions == sorted(positions)


def test_ctrl_c_on_first_question_raises() -> None:
    with pytest.raises(KeyboardInterrupt):
        _ask(CTRL_C, QUESTIONS)


def test_ctrl_c_after_moving_is_not_taken_as_answer() -> None:
    with pytest.raises(KeyboardInterrupt):
        _ask(DOWN + CTRL_C + ENTER, [QUESTIONS_BY_ID["granularity"]])


def test_ctrl_c_midway_raises_and_stops_asking() -> None:
    console = _console()
    with pytest.raises(KeyboardInterrupt):
        _ask(ENTER + CTRL_C + ENTER * len(QUESTIONS), QUESTIONS, console=console)
    output = _output(console)
    assert f"Question 2 of {len(QUESTIONS)}" in output
    assert f"Question 3 of {len(QUESTIONS)}" not in output
