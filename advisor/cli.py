"""The ``advisor`` command line.

Each command is a small function that wires the pure core (answers, assessment) to its
effects (plugins, prompts, probes, output). Modules other than argparse are imported
inside the commands that need them, so ``advisor --help`` stays fast.

Exit status: 0 success; 1 a failure (``plugins --check`` found a broken plugin, strict
plugin loading failed); 2 bad input (arguments, answers files, missing answers without a
terminal); 130 interrupted.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from advisor import __version__
from advisor.errors import AdvisorError, UsageError

if TYPE_CHECKING:
    from advisor.pluginmanager import LoadedPlugins


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="advisor",
        description=(
            "Choose the encryption design for NixOS on ZFS from your threat model, and install it."
        ),
        epilog="Run 'advisor COMMAND --help' for a command's options.",
    )
    parser.add_argument("--version", action="version", version=f"advisor {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    assess = commands.add_parser(
        "assess",
        help="answer the threat-model questionnaire and get a recommendation",
        description=(
            "Rank the installed backends for your threat model. Asks the questions on a "
            "terminal; otherwise takes answers from --answers and/or --profile "
            "(a file's answers override the profile's)."
        ),
    )
    assess.add_argument(
        "--answers", metavar="FILE", type=Path, help="TOML or JSON table of question id = value"
    )
    assess.add_argument("--profile", metavar="NAME", help="start from a built-in example profile")
    assess.add_argument("--json", action="store_true", help="print the assessment as JSON")
    assess.add_argument(
        "--save", metavar="FILE", type=Path, help="write the assessment for 'advisor install'"
    )
    assess.set_defaults(run=cmd_assess)

    questions = commands.add_parser(
        "questions", help="list every question, plugins' included, with allowed values"
    )
    questions.add_argument("--json", action="store_true", help="print JSON")
    questions.set_defaults(run=cmd_questions)

    profiles = commands.add_parser("profiles", help="list the built-in example profiles")
    profiles.add_argument("--json", action="store_true", help="print JSON")
    profiles.set_defaults(run=cmd_profiles)

    plugins = commands.add_parser(
        "plugins",
        help="list plugins with their status, hooks and backends",
        description=(
            "List every plugin. ADVISOR_DISABLE_PLUGINS=a,b skips plugins by name; "
            "ADVISOR_STRICT_PLUGINS=1 makes a broken plugin an error."
        ),
    )
    plugins.add_argument("--json", action="store_true", help="print JSON")
    plugins.add_argument(
        "--check", action="store_true", help="exit 1 if any plugin is broken or incompatible"
    )
    plugins.set_defaults(run=cmd_plugins)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        status: int = args.run(args)
    except AdvisorError as error:
        from advisor.console import error as print_error

        print_error(str(error))
        return error.exit_status
    except KeyboardInterrupt:
        sys.stderr.write("\nadvisor: interrupted\n")
        return 130
    except BrokenPipeError:
        # The reader went away (``| head``): not our error. Silence the flush at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    return status


def _load_plugins(*, report_failures: bool = True) -> LoadedPlugins:
    from advisor.console import warn
    from advisor.pluginmanager import load_plugins

    plugins = load_plugins()
    if report_failures:
        for record in plugins.failures:
            warn(
                f"plugin {record.name!r} is {record.status} and was skipped: {record.reason} "
                "(see 'advisor plugins')"
            )
    return plugins


def _interactive() -> bool:
    return sys.stdin.isatty() and sys.stderr.isatty()


def cmd_assess(args: argparse.Namespace) -> int:
    from advisor import answers as answers_mod
    from advisor.assessment import assess
    from advisor.console import print_json, stderr_console, stdout_console
    from advisor.system import probe_system

    if args.save is not None:
        _check_writable(args.save)
    plugins = _load_plugins()
    questions = plugins.questions

    answers: dict[str, str] = {}
    sources: dict[str, str] = {}
    if args.profile:
        profile = answers_mod.load_profile(args.profile)
        given = answers_mod.validate_answers(
            profile.answers, questions, f"profile {args.profile!r}"
        )
        answers.update(given)
        sources.update(dict.fromkeys(given, f"profile:{args.profile}"))
    if args.answers is not None:
        data = answers_mod.read_answers_file(args.answers)
        given = answers_mod.validate_answers(data, questions, f"answers file {str(args.answers)!r}")
        answers.update(given)
        sources.update(dict.fromkeys(given, f"file:{args.answers}"))

    system = probe_system()
    interactive = _interactive()
    missing = answers_mod.missing_questions(questions, answers, include_optional=interactive)
    if missing and not interactive:
        raise UsageError(
            f"{len(missing)} question(s) unanswered and no terminal to ask them on; "
            "give them in --answers FILE or pick a --profile:\n"
            + answers_mod.describe_missing(missing)
        )
    if missing:
        from advisor.prompts import ask_missing
        from advisor.report import system_summary

        console = stderr_console()
        console.print(system_summary(system))
        asked = ask_missing(questions, answers, console)
        answers.update(asked)
        sources.update(dict.fromkeys(asked, "prompt"))

    assessment = assess(
        axes=plugins.axes,
        questions=questions,
        backends=plugins.backends,
        answers=answers,
        system=system,
        answer_sources=sources,
    )
    saved_to = str(args.save) if args.save is not None else None
    if args.save is not None:
        _write_atomically(args.save, assessment.to_json(saved_to))
    if args.json:
        print_json(assessment.to_json(saved_to))
    else:
        from advisor.report import render_assessment

        render_assessment(stdout_console(), assessment, saved_to)
    return 0


def cmd_questions(args: argparse.Namespace) -> int:
    from advisor.console import print_json, stdout_console

    plugins = _load_plugins()
    owners = {qid: record.name for record in plugins.records for qid in record.questions}
    if args.json:
        print_json(
            [
                {
                    "id": q.id,
                    "text": q.text,
                    "help": q.help,
                    "default": q.default,
                    "plugin": owners.get(q.id),
                    "choices": [
                        {"value": c.value, "label": c.label, "weights": dict(c.weights)}
                        for c in q.choices
                    ],
                }
                for q in plugins.questions
            ]
        )
    else:
        from advisor.report import render_questions

        render_questions(stdout_console(), plugins.questions, owners)
    return 0


def cmd_profiles(args: argparse.Namespace) -> int:
    from advisor.answers import list_profiles
    from advisor.console import print_json, stdout_console

    profiles = list_profiles()
    if args.json:
        print_json(
            [{"name": p.name, "description": p.description, "answers": p.answers} for p in profiles]
        )
        return 0
    from rich.text import Text

    console = stdout_console()
    for profile in profiles:
        console.print(Text(profile.name, style="bold"))
        console.print(Text(f"  {profile.description}"))
    return 0


def cmd_plugins(args: argparse.Namespace) -> int:
    from advisor.console import print_json, stdout_console

    plugins = _load_plugins(report_failures=False)
    if args.json:
        print_json([record.to_json() for record in plugins.records])
    else:
        from advisor.report import render_plugins

        render_plugins(stdout_console(), plugins.records)
    return 1 if args.check and plugins.failures else 0


def _check_writable(path: Path) -> None:
    """Fail before any question is asked if ``--save`` could not be written."""
    if path.is_dir():
        raise UsageError(f"--save {str(path)!r} is a directory")
    parent = path.parent if str(path.parent) else Path()
    if not parent.is_dir():
        raise UsageError(f"--save {str(path)!r}: directory {str(parent)!r} does not exist")
    if not os.access(parent, os.W_OK):
        raise UsageError(f"--save {str(path)!r}: directory {str(parent)!r} is not writable")


def _write_atomically(path: Path, data: object) -> None:
    """Write JSON next to ``path`` and rename it into place: never a half-written file."""
    import json
    import tempfile

    text = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent or Path())
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        Path(tmp_name).replace(path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
