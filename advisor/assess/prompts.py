"""The interactive questionnaire (questionary), for a person at a terminal.

Only called when stdin and stderr are terminals; scripts use answers files. Prompts are
drawn on stderr so stdout stays free for the report or ``--json``. Ctrl-C raises
``KeyboardInterrupt``: a cancelled prompt is never taken as an answer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TextIO, cast

import questionary
from rich.console import Console
from rich.padding import Padding
from rich.text import Text

from advisor.models import Question


def ask_missing(
    questions: Sequence[Question],
    answers: Mapping[str, str],
    console: Console,
    *,
    input: Any = None,
    output: Any = None,
) -> dict[str, str]:
    """Ask every question ``answers`` leaves open; return only the new answers.

    ``input`` and ``output`` are prompt_toolkit objects; by default the terminal, with the
    prompt on stderr. Tests pass a pipe input and a dummy output.
    """
    if output is None:
        from prompt_toolkit.output import create_output

        output = create_output(stdout=cast(TextIO, console.file))
    missing = [question for question in questions if question.id not in answers]
    new_answers: dict[str, str] = {}
    for number, question in enumerate(missing, start=1):
        console.print()
        console.print(Text(f"Question {number} of {len(missing)}", style="dim"))
        console.print(Padding(Text(question.help, style="italic"), (0, 0, 0, 2)))
        choices = [questionary.Choice(title=c.label, value=c.value) for c in question.choices]
        value = questionary.select(
            question.text,
            choices=choices,
            default=next((c for c in choices if c.value == question.default), None),
            input=input,
            output=output,
        ).unsafe_ask()
        if question.choice(value) is None:  # questionary only returns offered values
            raise RuntimeError(f"prompt returned {value!r} for {question.id}")
        new_answers[question.id] = value
    return new_answers
