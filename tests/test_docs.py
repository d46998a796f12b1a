"""The docs are part of the product: facts cited by the code exist, hooks are documented,
generated tables are current, and CI runs the README's test command."""

from __future__ import annotations

import importlib.util
import itertools
import re
from pathlib import Path

import pytest

from advisor import hookspecs
from advisor.assessment import system_warnings
from advisor.conflicts import TENSIONS
from advisor.models import SystemFacts
from advisor.questionnaire import QUESTIONS
from advisor_luks import LuksBackend
from advisor_luks_detached import LuksDetachedBackend
from advisor_zfs_native import ZfsNativeBackend

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
BACKENDS = (LuksBackend(), ZfsNativeBackend(), LuksDetachedBackend())


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
    facts = {c.fact for b in BACKENDS for c in b.capabilities.values()}
    systems = [
        SystemFacts(aes_instructions=a, memory_bytes=m)
        for a, m in itertools.product((True, False), (1024**3, 64 * 1024**3))
    ]
    for backend, answers, system in itertools.product(BACKENDS, answer_samples(), systems):
        notes = [*backend.warnings(answers, system), *backend.mitigations(answers, system)]
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
