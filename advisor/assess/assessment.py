"""Scoring: answers weight the axes, backends' capabilities against the weights rank them.

Pure functions over models; nothing here prompts, probes or prints. ``assess`` is the one
entry point the CLI uses.

The score of a backend is ``100 * sum(weight * rating) / (3 * sum(weight))`` over all axes:
the share of the best possible fit. Gates (hard constraints) exclude a backend whatever its
score; tensions between answers are listed rather than averaged into the numbers.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from advisor import __version__
from advisor.assess.conflicts import Tension, tensions_for
from advisor.blockdevices import largest_same_size_group
from advisor.errors import PluginError
from advisor.models import Answers, Axis, Backend, Note, Question, Rating, SystemFacts
from advisor.plugincall import backend_owner, blame, call_backend, sequence_of

#: Bumped when the JSON shape of an assessment changes incompatibly.
ASSESSMENT_SCHEMA = 1

_MEMORY_FOR_ARGON2 = 2 * 1024**3
#: Below this, the assessment advises swap: ZFS's cache gives memory back under pressure,
#: but with no swap at all the kernel's only way out of a memory shortage is to kill.
_MEMORY_FOR_NO_SWAP = 8 * 1024**3

#: The words in :meth:`Assessment.next_command` the user replaces, and with what.
PLACEHOLDERS = {
    "DISK-ID": "the id of the disk to erase (see 'advisor disks')",
    "HEADER": "where the LUKS header goes: a device or file that is not on that disk",
    "BACKUP-FILE": "a new file, on yet another medium, for the header's backup",
}


@dataclass(frozen=True)
class Reason:
    """Why a backend scored as it did on one axis the answers care about."""

    axis: str
    weight: float
    rating: Rating
    why: str
    source: str
    fact: str
    url: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "axis": self.axis,
            "weight": self.weight,
            "rating": int(self.rating),
            "rating_name": self.rating.name.lower(),
            "why": self.why,
            "source": self.source,
            "fact": self.fact,
            "url": self.url,
        }


@dataclass(frozen=True)
class Ranked:
    """A backend's place in the ranking: its score, and its gate if it is excluded."""

    backend: str
    summary: str
    score: float
    gate: str | None
    reasons: tuple[Reason, ...]
    #: False for a backend advisor can recommend but not install (``Backend.installable``).
    installable: bool = True
    #: Its install takes ``--header`` and ``--header-backup`` (:attr:`Backend.detached_header`).
    detached_header: bool = False

    @property
    def eligible(self) -> bool:
        return self.gate is None

    def to_json(self) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "score": self.score,
            "eligible": self.eligible,
            "gate": self.gate,
            "installable": self.installable,
            "summary": self.summary,
            "reasons": [reason.to_json() for reason in self.reasons],
        }


@dataclass(frozen=True)
class Assessment:
    """The outcome of a questionnaire: ranking, weights, reasons, warnings and tensions."""

    answers: Mapping[str, str]
    system: SystemFacts
    axes: Sequence[Axis]
    weights: Mapping[str, float]
    ranking: tuple[Ranked, ...]
    warnings: tuple[Note, ...]
    mitigations: tuple[Note, ...]
    conflicts: tuple[Tension, ...]
    answer_sources: Mapping[str, str] = field(default_factory=dict)

    @property
    def recommended(self) -> Ranked | None:
        """The best eligible backend, or ``None`` when every backend is gated."""
        for ranked in self.ranking:
            if ranked.eligible:
                return ranked
        return None

    def next_command(self, saved_to: str | None = None) -> str | None:
        """The commands that install the recommendation, one a line, or ``None`` when
        nothing is recommended or advisor cannot install what is.

        They plan the install for review, then run exactly that plan (docs/install.md).
        ``saved_to`` is where the assessment was saved, which the plan then reads; without
        it the backend is named. When the machine has two or more disks of one size, the
        plan names every one of them (:meth:`pool_disks`: a mirror of two, a raidz of
        more); else it names ``DISK-ID``. The words :meth:`placeholders` lists must be
        replaced first: as printed, they name no disk and no header, so nothing runs.
        """
        best = self.recommended
        if best is None or not best.installable:
            return None
        source = (
            f"--from-assessment {shlex.quote(saved_to)}"
            if saved_to
            else f"--backend {best.backend}"
        )
        disks = self.pool_disks() or ["DISK-ID"]
        plan = f"advisor plan {source}"
        plan += "".join(f" --disk {shlex.quote(disk)}" for disk in disks)
        if len(disks) > 2:
            plan += f" --topology {raidz_for(len(disks))}"
        if best.detached_header:
            for header, backup in self._header_words(len(disks)):
                plan += f" --header {header} --header-backup {backup}"
        return "\n".join(
            (
                f"{plan} --save plan.json > plan.sh",
                "less plan.sh",
                "sudo advisor install --plan plan.json",
            )
        )

    def pool_disks(self) -> list[str]:
        """The disks the next commands build the pool on: the most disks of this machine
        that are one size, if there are two or more (a pool over them survives a dead
        disk); else none, and the commands name ``DISK-ID`` for the user to choose."""
        disks = largest_same_size_group(dict(self.system.disk_sizes))
        return disks if len(disks) > 1 else []

    @staticmethod
    def _header_words(count: int) -> list[tuple[str, str]]:
        """The header and backup placeholders, one pair per disk (numbered if several)."""
        if count == 1:
            return [("HEADER", "BACKUP-FILE")]
        return [(f"HEADER-{n}", f"BACKUP-FILE-{n}") for n in range(1, count + 1)]

    def placeholders(self) -> dict[str, str]:
        """The placeholder words in :meth:`next_command`, each with what replaces it."""
        best = self.recommended
        if best is None or not best.installable:
            return {}
        disks = self.pool_disks()
        words = {} if disks else {"DISK-ID": PLACEHOLDERS["DISK-ID"]}
        if best.detached_header:
            for n, (header, backup) in enumerate(self._header_words(len(disks) or 1), 1):
                which = f" for disk {n} ({disks[n - 1]})" if disks else ""
                words[header] = PLACEHOLDERS["HEADER"] + which
                words[backup] = PLACEHOLDERS["BACKUP-FILE"] + which
        return words

    def to_json(self, saved_to: str | None = None) -> dict[str, Any]:
        best = self.recommended
        return {
            "schema": ASSESSMENT_SCHEMA,
            "advisor_version": __version__,
            "recommendation": best.backend if best else None,
            "ranking": [ranked.to_json() for ranked in self.ranking],
            "axes": dict(self.weights),
            "axis_titles": {axis.id: axis.title for axis in self.axes},
            "reasons": [reason.to_json() for reason in best.reasons] if best else [],
            "gated": [
                {"backend": ranked.backend, "reason": ranked.gate}
                for ranked in self.ranking
                if not ranked.eligible
            ],
            "warnings": [_note_json(note) for note in self.warnings],
            "mitigations": [_note_json(note) for note in self.mitigations],
            "conflicts": [_tension_json(tension) for tension in self.conflicts],
            "answers": dict(self.answers),
            "answer_sources": dict(self.answer_sources),
            "system": asdict(self.system),
            "next_command": self.next_command(saved_to),
            "placeholders": self.placeholders(),
        }


def raidz_for(disks: int) -> str:
    """The raidz the next commands suggest for more than two disks of one size: one
    disk's worth of parity up to five disks, two from six (a second failure during the
    longer resilver of a wide raidz is the one to guard against)."""
    return "raidz1" if disks <= 5 else "raidz2"


def axis_weights(
    axes: Iterable[Axis], questions: Iterable[Question], answers: Answers
) -> dict[str, float]:
    """Sum the baseline of every axis and the weights of every chosen answer.

    ``answers`` must already be validated: every value is one of its question's choices.
    """
    weights = {axis.id: axis.baseline for axis in axes}
    for question in questions:
        value = answers.get(question.id)
        choice = question.choice(value) if value is not None else None
        if choice is None:
            continue
        for axis_id, weight in choice.weights.items():
            weights[axis_id] = weights.get(axis_id, 0.0) + weight
    return weights


def score_backend(backend: Backend, weights: Mapping[str, float]) -> tuple[float, list[Reason]]:
    """Score ``backend`` against ``weights`` (0-100) and explain each weighted axis.

    Reasons are ordered by how much the axis mattered (weight, then rating) so the first
    ones are the deciding ones.
    """
    total_weight = sum(weights.values())
    if total_weight <= 0:
        return 0.0, []
    earned = 0.0
    reasons = []
    for axis_id, weight in weights.items():
        if weight <= 0:
            continue
        capability = backend.capabilities.get(axis_id)
        rating = capability.rating if capability else Rating.NONE
        earned += weight * rating
        reasons.append(
            Reason(
                axis=axis_id,
                weight=weight,
                rating=rating,
                why=capability.why if capability else "No claim made for this axis.",
                source=capability.source if capability else "",
                fact=capability.fact if capability else "",
                url=capability.url if capability else "",
            )
        )
    reasons.sort(key=lambda reason: (-reason.weight, -reason.rating, reason.axis))
    score = round(100 * earned / (int(Rating.STRONG) * total_weight), 1)
    return score, reasons


def system_warnings(system: SystemFacts) -> list[Note]:
    """Warnings that follow from the machine rather than from any one backend."""
    notes = []
    if system.aes_instructions is False:
        notes.append(
            Note(
                "no-aes-instructions",
                "This CPU has no AES instructions: AES-based encryption will be slow. LUKS can "
                "use Adiantum (`xchacha12,aes-adiantum-plain64`) instead; ZFS native "
                "encryption cannot.",
                "aes-instructions",
            )
        )
    if system.memory_bytes is not None and system.memory_bytes < _MEMORY_FOR_NO_SWAP:
        notes.append(
            Note(
                "little-memory-swap",
                "Less than 8 GiB of memory: give the install swap (`--swap 8G`), a partition "
                "on each disk encrypted with a new random key at every boot. Never swap to a "
                "ZFS volume: it can deadlock.",
                "swap-outside-zfs",
            )
        )
    if system.memory_bytes is not None and system.memory_bytes < _MEMORY_FOR_ARGON2:
        notes.append(
            Note(
                "low-memory-argon2",
                "Less than 2 GiB of memory: cryptsetup lowers Argon2id's memory cost to fit, "
                "which makes the passphrase cheaper to attack. Use a longer passphrase.",
                "argon2-memory",
            )
        )
    return notes


def assess(
    *,
    axes: Sequence[Axis],
    questions: Sequence[Question],
    backends: Sequence[Backend],
    answers: Answers,
    system: SystemFacts,
    answer_sources: Mapping[str, str] | None = None,
) -> Assessment:
    """Rank ``backends`` for validated ``answers`` on a machine described by ``system``.

    Eligible backends come first, best score first; gated ones follow with their reason.
    Ties break by backend name so the ranking is deterministic. Warnings and mitigations
    are those of the recommended backend plus the machine's own.
    """
    weights = axis_weights(axes, questions, answers)
    ranked = []
    for backend in backends:
        score, reasons = score_backend(backend, weights)
        ranked.append(
            Ranked(
                backend=backend.name,
                summary=backend.summary,
                score=score,
                gate=_gate(backend, answers, system),
                reasons=tuple(reasons),
                installable=backend.installable,
                detached_header=backend.detached_header,
            )
        )
    ranked.sort(key=lambda r: (not r.eligible, -r.score, r.backend))

    warnings: list[Note] = []
    mitigations: list[Note] = []
    best = next((r for r in ranked if r.eligible), None)
    if best is not None:
        chosen = next(b for b in backends if b.name == best.backend)
        warnings.extend(_notes(chosen, "warnings", answers, system))
        mitigations.extend(_notes(chosen, "mitigations", answers, system))
    warnings.extend(system_warnings(system))

    return Assessment(
        answers=dict(answers),
        system=system,
        axes=tuple(axes),
        weights=weights,
        ranking=tuple(ranked),
        warnings=tuple(_unique(warnings)),
        mitigations=tuple(_unique(mitigations)),
        conflicts=tuple(tensions_for(answers)),
        answer_sources=dict(answer_sources or {}),
    )


def _gate(backend: Backend, answers: Answers, system: SystemFacts) -> str | None:
    """``backend.gate``, a failure or a result that is no reason named as the backend's."""
    gate = call_backend(backend, "gate", answers, system)
    if gate is not None and not isinstance(gate, str):
        detail = f"gate must return a reason or None, not {gate!r}"
        raise PluginError(blame(backend_owner(backend), detail))
    return gate


def _notes(backend: Backend, method: str, answers: Answers, system: SystemFacts) -> list[Note]:
    """``backend.warnings`` or ``.mitigations`` (``method``), checked to be notes."""
    notes = call_backend(backend, method, answers, system)
    return sequence_of(backend_owner(backend), method, notes, Note)


def _unique(notes: Iterable[Note]) -> list[Note]:
    seen: set[str] = set()
    unique = []
    for note in notes:
        if note.id not in seen:
            seen.add(note.id)
            unique.append(note)
    return unique


def _note_json(note: Note) -> dict[str, str]:
    return {"id": note.id, "text": note.text, "fact": note.fact, "url": note.url}


def _tension_json(tension: Tension) -> dict[str, Any]:
    return {
        "id": tension.id,
        "title": tension.title,
        "tradeoffs": list(tension.tradeoffs),
        "layering": tension.layering,
        "facts": list(tension.facts),
    }
