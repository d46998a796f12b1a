"""Scoring: answers weight the axes; backends, then unlock methods, are ranked against them.

Pure functions over models; nothing here prompts, probes or prints. ``assess`` is the one
entry point the CLI uses.

The score of a backend or an unlock method is ``100 * sum(weight * rating) / (3 *
sum(weight))`` over the axes its kind rates (:func:`rated_weights`): the share of the best
possible fit. Gates (hard constraints) exclude a candidate whatever its score; tensions
between answers are listed rather than averaged into the numbers. The unlock methods are
ranked for the recommended backend only: a method it cannot carry is ruled out.
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
from advisor.models import (
    Answers,
    Axis,
    Backend,
    Note,
    Question,
    Rating,
    SystemFacts,
    UnlockMethod,
    carries,
)
from advisor.plugincall import (
    backend_owner,
    blame,
    call_backend,
    call_method,
    method_owner,
    sequence_of,
)

#: Bumped when the JSON shape of an assessment changes incompatibly (adding a field is
#: compatible: schema 1 gained ``unlock``).
ASSESSMENT_SCHEMA = 1

#: The method a tie goes to: it needs no hardware and is what every backend carries.
DEFAULT_UNLOCK = "passphrase"

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
    """Why a backend or an unlock method scored as it did on one axis the answers care
    about."""

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
class RankedMethod:
    """An unlock method's place in the ranking: its score, and its gate if it is ruled out
    (by its own :meth:`UnlockMethod.gate`, or because the backend cannot carry it)."""

    method: str
    summary: str
    score: float
    gate: str | None
    reasons: tuple[Reason, ...]
    #: The install makes a recovery key for it (:attr:`UnlockMethod.recovery_key`).
    recovery_key: bool = False

    @property
    def eligible(self) -> bool:
        return self.gate is None

    def to_json(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "score": self.score,
            "eligible": self.eligible,
            "gate": self.gate,
            "recovery_key": self.recovery_key,
            "summary": self.summary,
            "reasons": [reason.to_json() for reason in self.reasons],
        }


@dataclass(frozen=True)
class UnlockAdvice:
    """How the recommended backend's disks should be unlocked: every unlock method ranked,
    with the best one's warnings and mitigations (also in the assessment's own)."""

    #: The backend the methods were ranked for: the recommended one.
    backend: str
    ranking: tuple[RankedMethod, ...]
    warnings: tuple[Note, ...] = ()
    mitigations: tuple[Note, ...] = ()

    @property
    def recommended(self) -> RankedMethod | None:
        """The best eligible method, or ``None`` when every method is ruled out."""
        return next((ranked for ranked in self.ranking if ranked.eligible), None)

    def to_json(self) -> dict[str, Any]:
        best = self.recommended
        return {
            "method": best.method if best else None,
            "summary": best.summary if best else None,
            "score": best.score if best else None,
            "recovery_key": best.recovery_key if best else None,
            "backend": self.backend,
            "reasons": [reason.to_json() for reason in best.reasons] if best else [],
            "warnings": [_note_json(note) for note in self.warnings],
            "mitigations": [_note_json(note) for note in self.mitigations],
            "gated": [
                {"method": ranked.method, "reason": ranked.gate}
                for ranked in self.ranking
                if not ranked.eligible
            ],
            "ranking": [ranked.to_json() for ranked in self.ranking],
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
    #: The unlock methods ranked for the recommended backend; ``None`` when no backend
    #: is recommended.
    unlock: UnlockAdvice | None = None

    @property
    def recommended(self) -> Ranked | None:
        """The best eligible backend, or ``None`` when every backend is gated."""
        for ranked in self.ranking:
            if ranked.eligible:
                return ranked
        return None

    @property
    def unlock_method(self) -> RankedMethod | None:
        """The recommended unlock method, or ``None`` (no backend, or every method ruled
        out)."""
        return self.unlock.recommended if self.unlock is not None else None

    def next_command(self, saved_to: str | None = None) -> str | None:
        """The commands that install the recommendation, one a line, or ``None`` when
        nothing is recommended or advisor cannot install what is.

        They plan the install for review, then run exactly that plan (docs/install.md).
        ``saved_to`` is where the assessment was saved, which the plan then reads; without
        it the backend is named. When the machine has two or more disks of one size, the
        plan names every one of them (:meth:`pool_disks`: a mirror of two, a raidz of
        more); else it names ``DISK-ID``. The words :meth:`placeholders` lists must be
        replaced first: as printed, they name no disk and no header, so nothing runs. An
        unlock method other than the passphrase is named (``--unlock tpm2``): the plan
        enrolls it, and the install shows its recovery key once.
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
        method = self.unlock_method
        if method is not None and method.method != DEFAULT_UNLOCK:
            plan += f" --unlock {shlex.quote(method.method)}"
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
            "unlock": self.unlock.to_json() if self.unlock is not None else None,
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


def rated_weights(
    weights: Mapping[str, float], candidates: Iterable[Backend | UnlockMethod]
) -> dict[str, float]:
    """``weights`` on the axes at least one of ``candidates`` rates.

    Backends and unlock methods are rated on different axes (a backend says nothing on
    whether a stolen machine opens, a method nothing on dataset names): an axis none of
    them rates would score every one of them 0 on it, lower every score alike and fill
    every explanation with "no claim", so it is left out of their ranking. Which one is
    first does not change; what each score says does.
    """
    rated = {axis for candidate in candidates for axis in candidate.capabilities}
    return {axis: weight for axis, weight in weights.items() if axis in rated}


def score(
    candidate: Backend | UnlockMethod, weights: Mapping[str, float]
) -> tuple[float, list[Reason]]:
    """Score a backend or an unlock method (``candidate``: all it needs is its
    ``capabilities``) against ``weights`` (0-100), and explain each weighted axis.

    Reasons are ordered by how much the axis mattered (weight, then rating) so the first
    ones are the deciding ones. An axis the candidate does not rate counts as
    :attr:`Rating.NONE`.
    """
    total_weight = sum(weights.values())
    if total_weight <= 0:
        return 0.0, []
    earned = 0.0
    reasons = []
    for axis_id, weight in weights.items():
        if weight <= 0:
            continue
        capability = candidate.capabilities.get(axis_id)
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
    return round(100 * earned / (int(Rating.STRONG) * total_weight), 1), reasons


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
    unlock_methods: Sequence[UnlockMethod] = (),
    answer_sources: Mapping[str, str] | None = None,
) -> Assessment:
    """Rank ``backends`` for validated ``answers`` on a machine described by ``system``,
    then ``unlock_methods`` for the recommended backend (:func:`advise_unlock`).

    Eligible backends come first, best score first; gated ones follow with their reason.
    Ties break by backend name so the ranking is deterministic. Warnings and mitigations
    are those of the recommended backend and unlock method plus the machine's own.
    """
    weights = axis_weights(axes, questions, answers)
    backend_weights = rated_weights(weights, backends)
    ranked = []
    for backend in backends:
        points, reasons = score(backend, backend_weights)
        ranked.append(
            Ranked(
                backend=backend.name,
                summary=backend.summary,
                score=points,
                gate=_gate(backend, answers, system),
                reasons=tuple(reasons),
                installable=backend.installable,
                detached_header=backend.detached_header,
            )
        )
    ranked.sort(key=lambda r: (not r.eligible, -r.score, r.backend))

    warnings: list[Note] = []
    mitigations: list[Note] = []
    unlock = None
    best = next((r for r in ranked if r.eligible), None)
    if best is not None:
        chosen = next(b for b in backends if b.name == best.backend)
        warnings.extend(_notes(chosen, "warnings", answers, system))
        mitigations.extend(_notes(chosen, "mitigations", answers, system))
        unlock = advise_unlock(chosen, unlock_methods, weights, answers, system)
        warnings.extend(unlock.warnings)
        mitigations.extend(unlock.mitigations)
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
        unlock=unlock,
    )


def advise_unlock(
    backend: Backend,
    methods: Sequence[UnlockMethod],
    weights: Mapping[str, float],
    answers: Answers,
    system: SystemFacts,
) -> UnlockAdvice:
    """Rank ``methods`` for ``backend`` (the recommended one) against the answers'
    ``weights``, scored on the axes the methods rate (:func:`rated_weights`).

    A method is ruled out by its own gate, or when ``backend`` cannot carry it
    (:func:`advisor.models.carries`). Eligible methods come first, best score first; a tie
    goes to :data:`DEFAULT_UNLOCK`, then by name. The best one's warnings and mitigations
    come with the advice.
    """
    method_weights = rated_weights(weights, methods)
    ranked = []
    for method in methods:
        points, reasons = score(method, method_weights)
        gate = method_gate(method, answers, system)
        if gate is None and not carries(backend, method):
            gate = (
                f"the {backend.name} backend cannot carry it (it needs a "
                f"{method.carrier} carrier, and {backend.name} offers "
                f"{', '.join(sorted(backend.unlock_carriers)) or 'none'})"
            )
        ranked.append(
            RankedMethod(
                method=method.name,
                summary=method.summary,
                score=points,
                gate=gate,
                reasons=tuple(reasons),
                recovery_key=method.recovery_key,
            )
        )
    ranked.sort(key=lambda r: (not r.eligible, -r.score, r.method != DEFAULT_UNLOCK, r.method))
    best = next((r for r in ranked if r.eligible), None)
    if best is None:
        return UnlockAdvice(backend=backend.name, ranking=tuple(ranked))
    chosen = next(m for m in methods if m.name == best.method)
    return UnlockAdvice(
        backend=backend.name,
        ranking=tuple(ranked),
        warnings=tuple(method_notes(chosen, "warnings", answers, system)),
        mitigations=tuple(method_notes(chosen, "mitigations", answers, system)),
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


def method_gate(method: UnlockMethod, answers: Answers, system: SystemFacts) -> str | None:
    """``method.gate``, a failure or a result that is no reason named as the method's."""
    gate = call_method(method, "gate", answers, system)
    if gate is not None and not isinstance(gate, str):
        detail = f"gate must return a reason or None, not {gate!r}"
        raise PluginError(blame(method_owner(method), detail))
    return gate


def method_notes(
    method: UnlockMethod, name: str, answers: Answers, system: SystemFacts
) -> list[Note]:
    """``method.warnings`` or ``.mitigations`` (``name``), checked to be notes."""
    notes = call_method(method, name, answers, system)
    return sequence_of(method_owner(method), name, notes, Note)


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
