"""The docs are part of the product: facts cited by the code exist, hooks are documented,
generated tables are current, and CI runs the README's test command."""

from __future__ import annotations

import argparse
import importlib.util
import itertools
import re
from pathlib import Path

import pytest

from advisor import hookspecs
from advisor.assess.assessment import system_warnings
from advisor.assess.conflicts import TENSIONS
from advisor.cli import build_parser
from advisor.models import Backend, SystemFacts, UnlockMethod
from advisor.questionnaire import QUESTIONS
from advisor_luks import LuksBackend
from advisor_luks_detached import LuksDetachedBackend
from advisor_unlock import Fido2Unlock, PassphraseUnlock, Tpm2PinUnlock, Tpm2Unlock
from advisor_zfs_native import ZfsNativeBackend

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
BACKENDS = (LuksBackend(), ZfsNativeBackend(), LuksDetachedBackend())
METHODS = (PassphraseUnlock(), Tpm2Unlock(), Tpm2PinUnlock(), Fido2Unlock())


def anchors(path: Path) -> set[str]:
    return set(re.findall(r'<a id="([a-z0-9-]+)"></a>', path.read_text(encoding="utf-8")))


def answer_samples() -> list[dict[str, str]]:
    """Every value of every question at least once, against two different baselines."""
    samples = []
    for base_index in (0, -1):
        base = {q.id: q.values[base_index] for q in QUESTIONS}
        for question in QUESTIONS:
            for value in question.values:
                samples.append({**base, question.id: value})
    return samples


def cited_facts() -> set[str]:
    rated: tuple[Backend | UnlockMethod, ...] = (*BACKENDS, *METHODS)
    facts = {c.fact for r in rated for c in r.capabilities.values()}
    systems = [
        SystemFacts(aes_instructions=a, memory_bytes=m, tpm2=t)
        for a, m, t in itertools.product((True, False), (1024**3, 64 * 1024**3), (True, None))
    ]
    for candidate, answers, system in itertools.product(rated, answer_samples(), systems):
        notes = [*candidate.warnings(answers, system), *candidate.mitigations(answers, system)]
        facts |= {note.fact for note in notes}
    facts |= {note.fact for system in systems for note in system_warnings(system)}
    facts |= {fact for tension in TENSIONS for fact in tension.facts}
    return facts


def test_every_cited_fact_is_in_the_threat_model() -> None:
    facts = cited_facts()
    assert len(facts) > 20
    missing = facts - anchors(DOCS / "threat-model.md")
    assert not missing, f"facts cited in code but absent from docs/threat-model.md: {missing}"


def test_every_fact_has_sources() -> None:
    text = (DOCS / "threat-model.md").read_text(encoding="utf-8")
    entries = re.split(r'(?=<a id="[a-z0-9-]+"></a>)', text)[1:]
    assert entries
    for entry in entries:
        fact = re.match(r'<a id="([a-z0-9-]+)"></a>', entry)
        assert fact is not None
        assert "Sources:" in entry or "Source:" in entry, f"{fact.group(1)} cites no source"


def test_generated_tables_are_current() -> None:
    spec = importlib.util.spec_from_file_location("docs_generate", DOCS / "generate.py")
    assert spec is not None and spec.loader is not None
    generate = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generate)
    assert generate.stale_files() == [], "run: python docs/generate.py"


@pytest.mark.parametrize(
    "hook", sorted(n for n in dir(hookspecs) if n.startswith(hookspecs.HOOK_PREFIX))
)
def test_every_hook_is_documented_for_plugin_authors(hook: str) -> None:
    text = (DOCS / "plugins.md").read_text(encoding="utf-8")
    assert f"### `{hook}()`" in text


def test_ci_runs_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    commands = re.findall(r"```sh\n(.*?)```", readme, re.DOTALL)
    test_command = next(c.strip() for c in commands if "tox" in c)
    assert test_command.splitlines()[-1] in ci


def test_architecture_doc_names_every_core_module() -> None:
    text = (DOCS / "architecture.md").read_text(encoding="utf-8")
    modules = sorted(p.name for p in (ROOT / "advisor").glob("*.py") if p.name != "__init__.py")
    missing = [m for m in modules if f"advisor/{m}" not in text]
    assert not missing, f"docs/architecture.md does not mention {missing}"


def _command_parser(name: str) -> argparse.ArgumentParser:
    commands = next(
        action
        for action in build_parser()._actions
        if isinstance(action, argparse._SubParsersAction)
    )
    parser: argparse.ArgumentParser = commands.choices[name]
    return parser


def _long_options(parser: argparse.ArgumentParser) -> set[str]:
    return {
        option
        for action in parser._actions
        for option in action.option_strings
        if option.startswith("--") and option != "--help"
    }


def test_plan_has_its_own_help_and_says_which_install_options_it_ignores() -> None:
    install, plan = _command_parser("install"), _command_parser("plan")
    assert plan.description and "Erase" not in plan.description
    assert install.description and "Erase" in install.description
    for parser in (install, plan):
        unexplained = [a.option_strings for a in parser._actions if not a.help]
        assert not unexplained, f"{parser.prog}: options without help: {unexplained}"
    install_help = {action.dest: action.help or "" for action in install._actions}
    plan_help = {action.dest: action.help or "" for action in plan._actions}
    for dest in ("yes_wipe", "passphrase_file", "password_file", "stop_after", "allow_bios"):
        assert "'plan'" in plan_help[dest], dest
        assert "'plan'" not in install_help[dest], dest


def test_install_doc_flag_table_matches_the_cli() -> None:
    text = (DOCS / "install.md").read_text(encoding="utf-8")
    section = text.split("## Flags", 1)[1].split("\n## ", 1)[0]
    first_cells = re.findall(r"^\| ([^|]+) \|", section, re.MULTILINE)
    documented = {flag for cell in first_cells for flag in re.findall(r"--[a-z0-9-]+", cell)}
    assert documented == _long_options(_command_parser("install"))
    assert _long_options(_command_parser("plan")) == _long_options(_command_parser("install"))


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _anchors_of(path: Path) -> set[str]:
    text = path.read_text(encoding="utf-8")
    text = re.sub(r"```.*?```", "", text, flags=re.DOTALL)
    headings = re.findall(r"^#{1,6} (.+)$", text, re.MULTILINE)
    return {_slug(heading) for heading in headings} | anchors(path)


@pytest.mark.parametrize(
    "page", ["README.md", *sorted(f"docs/{p.name}" for p in DOCS.glob("*.md"))]
)
def test_links_between_pages_name_anchors_that_exist(page: str) -> None:
    path = ROOT / page
    text = re.sub(r"```.*?```", "", path.read_text(encoding="utf-8"), flags=re.DOTALL)
    broken = []
    for target, anchor in re.findall(r"\]\(([\w./-]*\.md|)#([^)\s]+)\)", text):
        linked = path if not target else (path.parent / target)
        if not linked.exists() or anchor not in _anchors_of(linked):
            broken.append(f"{target}#{anchor}")
    assert not broken, f"{page} links to anchors that do not exist: {broken}"
