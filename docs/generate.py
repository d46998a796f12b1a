"""Regenerate the tables in docs/ that are derived from code, so they cannot drift.

A generated block sits between ``<!-- generated:NAME -->`` and ``<!-- /generated:NAME -->``.
``python docs/generate.py`` rewrites every block; ``--check`` exits 1 if any is stale
(the test suite runs the check).
"""

from __future__ import annotations

import dataclasses
import inspect
import re
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

from advisor import models, plugin
from advisor.assess.assessment import assess, rated_weights
from advisor.datasets import DATASETS
from advisor.models import Backend, SystemFacts, UnlockMethod
from advisor.questionnaire import AXES, QUESTIONS
from advisor.settings import OPTIONS
from advisor_luks import LuksBackend
from advisor_luks_detached import LuksDetachedBackend
from advisor_unlock import Fido2Unlock, PassphraseUnlock, Tpm2PinUnlock, Tpm2Unlock
from advisor_zfs_native import ZfsNativeBackend

DOCS = Path(__file__).resolve().parent
EXAMPLE_LUKS_TRIES = (
    DOCS.parent / "tests/plugins/advisor-luks-tries-example/advisor_luks_tries_example/__init__.py"
)
BACKENDS: tuple[Backend, ...] = (LuksBackend(), ZfsNativeBackend(), LuksDetachedBackend())
METHODS: tuple[UnlockMethod, ...] = (
    PassphraseUnlock(),
    Tpm2Unlock(),
    Tpm2PinUnlock(),
    Fido2Unlock(),
)


def axes_table() -> str:
    rows = ["| Axis id | Title | Meaning | Baseline weight |", "|---|---|---|---|"]
    rows += [f"| `{a.id}` | {a.title} | {a.description} | {a.baseline:g} |" for a in AXES]
    return "\n".join(rows)


def weights_table() -> str:
    rows = ["| Question | Answer: weight added |", "|---|---|"]
    for question in QUESTIONS:
        effects = [
            f"`{choice.value}`: " + ", ".join(f"{axis} {w:g}" for axis, w in choice.weights.items())
            for choice in question.choices
            if choice.weights
        ]
        rows.append(f"| `{question.id}` | {' · '.join(effects) or '(none)'} |")
    return "\n".join(rows)


def rating_matrix(candidates: tuple[Backend, ...] | tuple[UnlockMethod, ...]) -> str:
    """Each axis ``candidates`` rate, with each one's rating linked to its fact."""
    header = "| Axis | " + " | ".join(f"`{c.name}`" for c in candidates) + " |"
    rows = [header, "|---|" + "---|" * len(candidates)]
    rated = {axis for candidate in candidates for axis in candidate.capabilities}
    for axis in (a for a in AXES if a.id in rated):
        cells = []
        for candidate in candidates:
            capability = candidate.capabilities[axis.id]
            cells.append(f"[{int(capability.rating)}](#{capability.fact})")
        rows.append(f"| `{axis.id}` | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def default_example() -> str:
    """A worked example: the interactive defaults, with each backend's score, then each
    unlock method's for the recommended backend."""
    answers = {q.id: q.default for q in QUESTIONS if q.default is not None}
    result = assess(
        axes=AXES,
        questions=QUESTIONS,
        backends=BACKENDS,
        answers=answers,
        system=SystemFacts(),
        unlock_methods=METHODS,
    )
    all_weights = {axis: w for axis, w in result.weights.items() if w > 0}
    lines = [
        "Answers: " + ", ".join(f"`{qid}={value}`" for qid, value in answers.items()) + ".",
        "Weights: " + ", ".join(f"{axis} {w:g}" for axis, w in all_weights.items()) + ".",
        "",
    ]
    weights = rated_weights(all_weights, BACKENDS)
    total = sum(weights.values())
    lines += [
        f"Backends are scored on {', '.join(weights)} (total {total:g}, so the best possible "
        f"sum is {3 * total:g}):",
        "",
    ]
    for ranked in result.ranking:
        by_axis = {reason.axis: reason for reason in ranked.reasons}
        terms = " + ".join(f"{w:g}·{int(by_axis[axis].rating)}" for axis, w in weights.items())
        verdict = "" if ranked.eligible else f" — gated: {ranked.gate}"
        lines.append(
            f"- `{ranked.backend}`: 100 × ({terms}) / {3 * total:g} = {ranked.score}{verdict}"
        )
    if result.unlock is None:  # the defaults recommend a backend; a change would show here
        raise SystemExit("the interactive defaults recommend no backend: fix the example")
    weights = rated_weights(all_weights, METHODS)
    total = sum(weights.values())
    lines += [
        "",
        f"Unlock methods, for `{result.unlock.backend}`, are scored on {', '.join(weights)} "
        f"(total {total:g}, so the best possible sum is {3 * total:g}):",
        "",
    ]
    for method in result.unlock.ranking:
        by_axis = {reason.axis: reason for reason in method.reasons}
        terms = " + ".join(f"{w:g}·{int(by_axis[axis].rating)}" for axis, w in weights.items())
        verdict = "" if method.eligible else f" — ruled out: {method.gate}"
        lines.append(
            f"- `{method.method}`: 100 × ({terms}) / {3 * total:g} = {method.score}{verdict}"
        )
    return "\n".join(lines)


def datasets_table() -> str:
    """The pool's datasets, as the plan creates them and the configuration mounts them."""
    rows = [
        "| dataset | mount point | `zfs create` properties | `neededForBoot` | rolled back "
        "| purpose |",
        "|---|---|---|---|---|---|",
    ]
    for dataset in DATASETS:
        properties = ", ".join(f"`{key}={value}`" for key, value in dataset.properties.items())
        rolled_back = f"to `{dataset.blank_snapshot('<pool>')}`" if dataset.rolled_back else "no"
        rows.append(
            f"| `{dataset.full_name('<pool>')}` | `{dataset.mountpoint}` | {properties} | "
            f"{'yes' if dataset.needed_for_boot else 'no'} | {rolled_back} | {dataset.purpose} |"
        )
    return "\n".join(rows)


def comment_docs(source: type | ModuleType) -> dict[str, str]:
    """The ``#:`` comment block above each name the source of ``source`` (a class or a
    module) declares or assigns (``name: type``, ``name = value``), joined into one line."""
    docs: dict[str, str] = {}
    comment: list[str] = []
    for line in inspect.getsource(source).splitlines():
        stripped = line.strip()
        if stripped.startswith("#:"):
            comment.append(stripped.removeprefix("#:").strip())
            continue
        if comment and (match := re.match(r"(\w+)\s*[:=]", stripped)):
            docs.setdefault(match.group(1), " ".join(comment))
        comment = []
    return docs


def _rst_to_markdown(text: str) -> str:
    """The docstring markup the comments use, as Markdown: ``code`` and :role:`name`."""
    text = re.sub(r":\w+:`~?([\w.]+)`", r"`\1`", text)
    return text.replace("``", "`")


def _default(field: dataclasses.Field[object]) -> str:
    if field.default is not dataclasses.MISSING:
        return f"`{field.default!r}`"
    if field.default_factory is not dataclasses.MISSING:
        return f"`{field.default_factory()!r}`"
    return "required"


def fields_table(record: type, flags: dict[str, str] | None = None) -> str:
    """The fields of the dataclass ``record``: name, type, default and meaning (from
    its ``#:`` comments), and with ``flags`` each one's command-line flag."""
    docs = comment_docs(record)
    head = "| field | type | default |" + (" flag |" if flags is not None else "") + " meaning |"
    rows = [head, "|---|---|---|" + ("---|" if flags is not None else "") + "---|"]
    for field in dataclasses.fields(record):
        flag = f" `{flags[field.name]}` |" if flags is not None else ""
        meaning = _rst_to_markdown(docs[field.name])
        type_name = str(field.type).replace("|", "\\|")
        rows.append(f"| `{field.name}` | `{type_name}` | {_default(field)} |{flag} {meaning} |")
    return "\n".join(rows)


def public_api_table() -> str:
    """Every name ``advisor.plugin`` exports, with the first paragraph of its docs."""
    rows = ["| name | what it is |", "|---|---|"]
    commented = {**comment_docs(plugin), **comment_docs(models)}
    for name in plugin.__all__:
        value = getattr(plugin, name)
        # A type alias or a marker has no docstring of its own: its #: comment says it.
        doc = commented.get(name) or inspect.getdoc(value) or ""
        first = _rst_to_markdown(doc.split("\n\n")[0].replace("\n", " "))
        rows.append(f"| `{name}` | {first} |")
    return "\n".join(rows)


def example_luks_tries() -> str:
    """The example LUKS variant's source, whole, as docs/plugins.md shows it."""
    source = EXAMPLE_LUKS_TRIES.read_text(encoding="utf-8").rstrip("\n")
    return f"```python\n{source}\n```"


def fleet_fields_table() -> str:
    """Every field of a fleet inventory's host table, from its one declaration."""
    from advisor.deploy.inventory import FIELDS, KINDS

    rows = ["| field | type | in `[defaults]` | what |", "|---|---|---|---|"]
    for field in FIELDS:
        fleet = "yes" if field.fleet else "no (per host)"
        rows.append(f"| `{field.name}` | {KINDS[field.kind]} | {fleet} | {field.help} |")
    return "\n".join(rows)


GENERATORS: dict[str, Callable[[], str]] = {
    "fleet_fields": fleet_fields_table,
    "example_luks_tries": example_luks_tries,
    "plugin_api": public_api_table,
    "settings_fields": lambda: fields_table(models.Settings, {o.field: o.flag for o in OPTIONS}),
    "layout_fields": lambda: fields_table(models.Layout),
    "layoutmember_fields": lambda: fields_table(models.LayoutMember),
    "installspec_fields": lambda: fields_table(models.InstallSpec),
    "member_fields": lambda: fields_table(models.Member),
    "nixfragment_fields": lambda: fields_table(models.NixFragment),
    "step_fields": lambda: fields_table(models.Step),
    "rekeyspec_fields": lambda: fields_table(models.RekeySpec),
    "axes": axes_table,
    "weights": weights_table,
    "ratings": lambda: rating_matrix(BACKENDS),
    "unlock_ratings": lambda: rating_matrix(METHODS),
    "example": default_example,
    "datasets": datasets_table,
}
_BLOCK = re.compile(r"(<!-- generated:(\w+) -->\n)(.*?)(<!-- /generated:\2 -->)", re.DOTALL)


def regenerate(text: str) -> str:
    def replace(match: re.Match[str]) -> str:
        name = match.group(2)
        return f"{match.group(1)}{GENERATORS[name]()}\n{match.group(4)}"

    return _BLOCK.sub(replace, text)


def stale_files() -> list[Path]:
    """Docs whose generated blocks differ from what the code gives now."""
    return [
        path
        for path in sorted(DOCS.glob("*.md"))
        if regenerate(path.read_text(encoding="utf-8")) != path.read_text(encoding="utf-8")
    ]


def main(argv: list[str]) -> int:
    if "--check" in argv:
        stale = stale_files()
        for path in stale:
            print(f"{path.name}: generated blocks are stale; run python docs/generate.py")
        return 1 if stale else 0
    for path in sorted(DOCS.glob("*.md")):
        text = path.read_text(encoding="utf-8")
        new = regenerate(text)
        if new != text:
            path.write_text(new, encoding="utf-8")
            print(f"updated {path.name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
