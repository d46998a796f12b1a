"""Scoring, gates, tensions and the recommendations for the built-in profiles."""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import ClassVar

import pytest

from advisor.assess.answers import list_profiles, load_profile, validate_answers
from advisor.assess.assessment import (
    Assessment,
    assess,
    axis_weights,
    raidz_for,
    rated_weights,
    score,
)
from advisor.assess.conflicts import TENSIONS
from advisor.cli import build_parser
from advisor.errors import PluginError
from advisor.models import (
    Axis,
    Backend,
    Capability,
    Choice,
    InstallSpec,
    Question,
    Rating,
    SystemFacts,
    UnlockMethod,
)
from advisor.questionnaire import AXES, QUESTIONS
from advisor_luks import LuksBackend
from advisor_luks_detached import LuksDetachedBackend
from advisor_unlock import Fido2Unlock, PassphraseUnlock, Tpm2PinUnlock, Tpm2Unlock
from advisor_zfs_native import ZfsNativeBackend

BACKENDS: tuple[Backend, ...] = (LuksBackend(), ZfsNativeBackend(), LuksDetachedBackend())
METHODS: tuple[UnlockMethod, ...] = (
    PassphraseUnlock(),
    Tpm2Unlock(),
    Tpm2PinUnlock(),
    Fido2Unlock(),
)
#: The axes the unlock methods are rated on, and the backends not: whether a stolen
#: machine opens, and whether what opens it can be kept apart.
UNLOCK_AXES = {"whole_machine_theft", "key_apart"}
NEUTRAL = {
    "metadata_exposure": "none",
    "adversary": "thief",
    "offsite_backups": "none",
    "granularity": "no",
    "integrity": "no",
    "deniability": "no",
    "header_custody": "yes",
    "stability": "balanced",
    "unlock": "console",
    "ssd_trim": "no",
}
SYSTEM = SystemFacts(aes_instructions=True, memory_bytes=16 * 1024**3)


def run(answers: Mapping[str, str], system: SystemFacts = SYSTEM) -> Assessment:
    return assess(
        axes=AXES,
        questions=QUESTIONS,
        backends=BACKENDS,
        answers=answers,
        system=system,
        unlock_methods=METHODS,
    )


def with_answers(**changes: str) -> dict[str, str]:
    return {**NEUTRAL, **changes}


def scores(assessment: Assessment) -> dict[str, float]:
    return {ranked.backend: ranked.score for ranked in assessment.ranking}


class Flat(Backend):
    name = "flat"
    summary = "rates one axis"
    api_version = 3
    capabilities: ClassVar[Mapping[str, Capability]] = {
        "a": Capability(Rating.STRONG, "why a", "src", "fact-a"),
        "b": Capability(Rating.WEAK, "why b", "src"),
    }


def test_axis_weights_are_baseline_plus_chosen_answers() -> None:
    axes = [Axis("a", "A", "", baseline=1.0), Axis("b", "B", "")]
    question = Question("q", "?", "", (Choice("x", "X", {"a": 2, "b": 3}), Choice("y", "Y")))
    assert axis_weights(axes, [question], {"q": "x"}) == {"a": 3.0, "b": 3.0}
    assert axis_weights(axes, [question], {"q": "y"}) == {"a": 1.0, "b": 0.0}
    assert axis_weights(axes, [question], {}) == {"a": 1.0, "b": 0.0}


def test_score_is_the_weighted_share_of_the_best_possible_fit() -> None:
    points, reasons = score(Flat(), {"a": 2.0, "b": 1.0, "c": 1.0})
    # (2*3 + 1*1 + 1*0) / (3 * 4) = 7/12
    assert points == pytest.approx(58.3)
    assert [r.axis for r in reasons] == ["a", "b", "c"]
    assert reasons[0].fact == "fact-a"
    assert reasons[2].rating is Rating.NONE  # an axis the backend makes no claim on
    assert score(Flat(), {"a": 0.0}) == (0.0, [])


def test_more_weight_on_an_axis_favours_the_backend_strong_on_it() -> None:
    base = scores(run(NEUTRAL))
    backups = scores(run(with_answers(offsite_backups="untrusted")))
    assert backups["zfs-native"] - backups["luks"] > base["zfs-native"] - base["luks"]


def test_ranking_puts_eligible_first_best_first_and_is_deterministic() -> None:
    assessment = run(with_answers(header_custody="no", metadata_exposure="severe"))
    order = [(r.eligible, r.score) for r in assessment.ranking]
    eligible = [score for ok, score in order if ok]
    assert eligible == sorted(eligible, reverse=True)
    assert [ok for ok, _ in order] == sorted((ok for ok, _ in order), reverse=True)
    assert run(NEUTRAL).to_json() == run(NEUTRAL).to_json()


def test_no_header_custody_gates_the_detached_header() -> None:
    assessment = run(with_answers(header_custody="no", deniability="yes"))
    detached = next(r for r in assessment.ranking if r.backend == "luks-detached")
    assert not detached.eligible
    assert "separate medium" in (detached.gate or "")
    assert assessment.recommended is not None
    assert assessment.recommended.backend != "luks-detached"
    # ...and asking for deniability anyway is named as a tension, not silently dropped.
    assert "deniability-vs-custody" in [t.id for t in assessment.conflicts]


def test_severe_metadata_exposure_gates_native_encryption() -> None:
    assessment = run(with_answers(metadata_exposure="severe", granularity="yes"))
    native = next(r for r in assessment.ranking if r.backend == "zfs-native")
    assert not native.eligible
    assert "not the right layer" in (native.gate or "")
    assert "per-dataset-keys-vs-metadata" in [t.id for t in assessment.conflicts]


def test_every_backend_gated_means_no_recommendation() -> None:
    only_detached = assess(
        axes=AXES,
        questions=QUESTIONS,
        backends=(LuksDetachedBackend(),),
        answers=with_answers(header_custody="no"),
        system=SYSTEM,
    )
    assert only_detached.recommended is None
    assert only_detached.next_command() is None
    assert only_detached.to_json()["recommendation"] is None


def test_blind_backups_with_severe_metadata_is_a_named_tension_with_a_layering() -> None:
    data = run(with_answers(offsite_backups="untrusted", metadata_exposure="severe")).to_json()
    tension = next(c for c in data["conflicts"] if c["id"] == "blind-backups-vs-metadata")
    assert len(tension["tradeoffs"]) == 2
    assert "zfs send -w" in tension["tradeoffs"][0]
    assert "inside a LUKS container" in tension["layering"]
    # the tension does not average away the gate: native stays ruled out
    assert data["recommendation"] == "luks"


def test_tension_conditions_must_all_match() -> None:
    tension = next(t for t in TENSIONS if t.id == "deniability-vs-trim")
    assert tension.applies(with_answers(deniability="yes", ssd_trim="yes"))
    assert not tension.applies(with_answers(deniability="yes", ssd_trim="no"))
    assert not tension.applies(with_answers(deniability="no", ssd_trim="yes"))


def test_tension_conditions_name_real_questions_and_values() -> None:
    by_id = {q.id: q for q in QUESTIONS}
    for tension in TENSIONS:
        for qid, values in tension.when.items():
            assert qid in by_id, tension.id
            assert values <= set(by_id[qid].values), tension.id


def test_warnings_and_mitigations_come_from_the_recommended_backend() -> None:
    data = run(with_answers(offsite_backups="untrusted", metadata_exposure="some")).to_json()
    assert data["recommendation"] == "zfs-native"
    mitigation_ids = {m["id"] for m in data["mitigations"]}
    assert {"generic-dataset-names", "automated-snapshots", "padding"} <= mitigation_ids
    assert "zfs-native-raw-only" in {w["id"] for w in data["warnings"]}
    assert "luks-header-backup" not in mitigation_ids


def test_machine_facts_add_warnings() -> None:
    slow = SystemFacts(aes_instructions=False, memory_bytes=1024**3)
    ids = {note.id for note in run(NEUTRAL, slow).warnings}
    assert {"no-aes-instructions", "low-memory-argon2", "little-memory-swap"} <= ids
    assert not {"no-aes-instructions", "low-memory-argon2", "little-memory-swap"} & {
        note.id for note in run(NEUTRAL).warnings
    }
    # Swap is advised below 8 GiB, the Argon2 warning only below 2 GiB.
    ids = {note.id for note in run(NEUTRAL, SystemFacts(memory_bytes=4 * 1024**3)).warnings}
    assert "little-memory-swap" in ids and "low-memory-argon2" not in ids
    assert run(NEUTRAL, SystemFacts()).warnings == run(NEUTRAL).warnings  # unknown: no guess


def test_json_has_the_documented_fields() -> None:
    data = run(NEUTRAL).to_json(saved_to="out dir/a.json")
    for key in ("recommendation", "ranking", "axes", "reasons", "warnings", "conflicts", "unlock"):
        assert key in data
    assert data["unlock"]["method"] == "passphrase"  # no hardware wanted, nothing to enroll
    assert set(data["unlock"]) >= {"score", "reasons", "gated", "ranking", "warnings"}
    assert data["next_command"].splitlines()[0] == (
        "advisor plan --from-assessment 'out dir/a.json' --disk DISK-ID --save plan.json > plan.sh"
    )
    assert set(data["placeholders"]) == {"DISK-ID"}
    assert set(data["ranking"][0]) >= {"backend", "score"}
    assert data["axes"]["maturity"] == 1.0 + 1.0  # baseline + balanced


def test_every_reason_cites_a_fact_and_a_source() -> None:
    for backend in BACKENDS:
        for axis in AXES:
            if axis.id in UNLOCK_AXES:
                assert axis.id not in backend.capabilities, (backend.name, axis.id)
                continue
            capability = backend.capabilities.get(axis.id)
            assert capability is not None, f"{backend.name} makes no claim on {axis.id}"
            assert capability.fact and capability.source and capability.why
    method_axes = {axis for method in METHODS for axis in method.capabilities}
    assert method_axes >= UNLOCK_AXES
    for method in METHODS:
        for axis_id in method_axes:
            capability = method.capabilities.get(axis_id)
            assert capability is not None, f"{method.name} makes no claim on {axis_id}"
            assert capability.fact and capability.source and capability.why
    # Every axis is rated by one kind or the other.
    assert {a.id for a in AXES} == {a for b in BACKENDS for a in b.capabilities} | method_axes


def test_each_kind_is_scored_on_the_axes_it_rates() -> None:
    weights = {"metadata": 2.0, "whole_machine_theft": 3.0, "maturity": 1.0}
    assert rated_weights(weights, BACKENDS) == {"metadata": 2.0, "maturity": 1.0}
    assert rated_weights(weights, METHODS) == {"whole_machine_theft": 3.0, "maturity": 1.0}
    # A stolen machine weighs on the unlock method, never on the backend's score or reasons.
    plain = run(with_answers(machine_theft="no"))
    theft = run(with_answers(machine_theft="yes"))
    assert scores(plain) == scores(theft)
    assert theft.recommended is not None
    assert "whole_machine_theft" not in {r.axis for r in theft.recommended.reasons}
    assert theft.unlock_method is not None
    assert "whole_machine_theft" in {r.axis for r in theft.unlock_method.reasons}


# The five built-in profiles, with the backend a security reviewer expects and why.
EXPECTED = {
    "journalist": ("luks", "metadata"),
    "homelab": ("zfs-native", "untrusted_backup"),
    "consultant": ("zfs-native", "per_dataset_keys"),
    "activist": ("luks-detached", "deniability"),
    "conservative-server": ("luks", "maturity"),
}


def test_all_five_profiles_are_covered() -> None:
    assert {profile.name for profile in list_profiles()} == set(EXPECTED)


# The unlock method each profile gets, a reason it cites (its axis) and a warning (its id):
# the three cases are the unattended server (tpm2, with the whole-machine caveat),
# the journalist crossing borders with a token (fido2; tpm2 ruled out), and the
# consultant's token that zfs-native cannot use.
EXPECTED_UNLOCK = {
    "conservative-server": ("tpm2", "unattended_unlock", "tpm2-whole-machine"),
    "journalist": ("fido2", "key_apart", "fido2-keep-apart"),
    "consultant": ("passphrase", "whole_machine_theft", "zfs-native-no-hardware-unlock"),
    "homelab": ("passphrase", "remote_unlock", None),
    "activist": ("passphrase", "whole_machine_theft", None),
}


@pytest.mark.parametrize("name", sorted(EXPECTED_UNLOCK))
def test_profile_unlock_method(name: str) -> None:
    profile = load_profile(name)
    assessment = run(validate_answers(profile.answers, QUESTIONS, name))
    method, axis, warning = EXPECTED_UNLOCK[name]
    best = assessment.unlock_method
    assert best is not None and best.method == method
    assert axis in [reason.axis for reason in best.reasons[:3]]
    assert next(r for r in best.reasons if r.axis == axis).rating >= Rating.GOOD
    if warning is not None:
        assert warning in {note.id for note in assessment.warnings}
    data = assessment.to_json()
    assert data["unlock"]["method"] == method
    assert data["unlock"]["reasons"][0]["fact"]
    words = shlex.split(data["next_command"].splitlines()[0].split(" > ")[0])
    if method == "passphrase":
        assert "--unlock" not in words
    else:
        assert words[words.index("--unlock") + 1] == method
        assert build_parser().parse_args(words[1:]).unlock == method


def test_unattended_server_gets_tpm2_with_the_caveats_spelled_out() -> None:
    answers = validate_answers(load_profile("conservative-server").answers, QUESTIONS, "s")
    assessment = run(answers)
    unlock = assessment.unlock
    assert unlock is not None and unlock.backend == "luks"
    assert unlock.ranking[0].method == "tpm2"
    warnings = {note.id: note.text for note in unlock.warnings}
    assert "not a machine stolen whole" in warnings["tpm2-whole-machine"]
    assert "Secure Boot" in warnings["tpm2-pcr7-secure-boot"]
    assert {"tpm2-strong-login", "unlock-keep-recovery-key"} <= {
        note.id for note in assessment.mitigations
    }
    # The same server where the machine itself can be taken: a named tension, not a
    # silent average.
    stolen = run({**answers, "machine_theft": "yes"})
    assert "unattended-vs-machine-theft" in {t.id for t in stolen.conflicts}


def test_journalist_at_a_border_rules_out_tpm2_with_the_reason() -> None:
    answers = validate_answers(load_profile("journalist").answers, QUESTIONS, "j")
    data = run(answers).to_json()
    gated = {g["method"]: g["reason"] for g in data["unlock"]["gated"]}
    assert "border inspection" in gated["tpm2"]
    # ...on any machine: the threat model's reason comes before the machine's.
    no_tpm = run(answers, SystemFacts(tpm2=False)).to_json()["unlock"]
    gated = {g["method"]: g["reason"] for g in no_tpm["gated"]}
    assert "border inspection" in gated["tpm2"]
    assert gated["tpm2+pin"] == "this machine has no TPM2 chip"
    assert no_tpm["method"] == "fido2"
    # Without a token, the passphrase: fido2 is ruled out, and tpm2 still is.
    without = run({**answers, "hardware_token": "no"}).to_json()["unlock"]
    assert without["method"] == "passphrase"
    assert "hardware_token" in {g["method"]: g["reason"] for g in without["gated"]}["fido2"]


def test_zfs_native_says_plainly_it_has_no_hardware_unlock() -> None:
    for answers in (
        with_answers(offsite_backups="untrusted", granularity="yes", unlock="unattended"),
        with_answers(offsite_backups="untrusted", granularity="yes", hardware_token="yes"),
    ):
        assessment = run(answers)
        assert assessment.recommended is not None
        assert assessment.recommended.backend == "zfs-native"
        notes = {note.id: note for note in assessment.warnings}
        note = notes["zfs-native-no-hardware-unlock"]
        assert "no hardware unlock" in note.text
        for cited in ("6824", "14436", "15186", "517991", "tzpfms", "systemd-creds"):
            assert cited in note.text
        unlock = assessment.to_json()["unlock"]
        assert unlock["method"] == "passphrase"
        carried = {g["method"]: g["reason"] for g in unlock["gated"]}
        assert "cannot carry it" in carried["tpm2+pin"]
    # Nothing said when nothing hardware was asked for.
    plain = run(with_answers(offsite_backups="untrusted", granularity="yes"))
    assert "zfs-native-no-hardware-unlock" not in {note.id for note in plain.warnings}


def test_a_tie_goes_to_the_passphrase_then_by_name() -> None:
    class Twin(PassphraseUnlock):
        name = "aardvark"  # sorts before "passphrase", rated the same

    assessment = assess(
        axes=AXES,
        questions=QUESTIONS,
        backends=BACKENDS,
        answers=NEUTRAL,
        system=SYSTEM,
        unlock_methods=(Twin(), PassphraseUnlock()),
    )
    assert [r.method for r in assessment.unlock.ranking] == ["passphrase", "aardvark"]  # type: ignore[union-attr]


def test_a_method_that_raises_or_returns_no_reason_is_named_as_the_method() -> None:
    class Broken(PassphraseUnlock):
        name = "broken"

        def gate(self, answers: Mapping[str, str], system: SystemFacts) -> str | None:
            return 42  # type: ignore[return-value]

    with pytest.raises(PluginError, match="unlock method 'broken': gate must return"):
        assess(
            axes=AXES,
            questions=QUESTIONS,
            backends=BACKENDS,
            answers=NEUTRAL,
            system=SYSTEM,
            unlock_methods=(Broken(),),
        )


def test_no_backend_means_no_unlock_advice() -> None:
    none = assess(
        axes=AXES,
        questions=QUESTIONS,
        backends=(LuksDetachedBackend(),),
        answers=with_answers(header_custody="no"),
        system=SYSTEM,
        unlock_methods=METHODS,
    )
    assert none.unlock is None and none.unlock_method is None
    assert none.to_json()["unlock"] is None


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_profile_recommendation(name: str) -> None:
    profile = load_profile(name)
    answers = validate_answers(profile.answers, QUESTIONS, name)
    assert set(answers) == {q.id for q in QUESTIONS}
    assessment = run(answers)
    backend, deciding_axis = EXPECTED[name]
    assert assessment.recommended is not None
    assert assessment.recommended.backend == backend
    # the deciding axis is among the first reasons given, and is served well
    top = assessment.recommended.reasons[:3]
    assert deciding_axis in [reason.axis for reason in top]
    assert next(r for r in top if r.axis == deciding_axis).rating >= Rating.GOOD


def test_journalist_rules_out_native_encryption_and_homelab_names_the_tension() -> None:
    journalist = run(validate_answers(load_profile("journalist").answers, QUESTIONS, "j"))
    assert "zfs-native" in {r.backend for r in journalist.ranking if not r.eligible}
    homelab = run(validate_answers(load_profile("homelab").answers, QUESTIONS, "h"))
    assert "unattended-vs-machine-theft" not in {t.id for t in homelab.conflicts}
    assert "blind-backups-vs-metadata" in {t.id for t in homelab.conflicts}
    activist = run(validate_answers(load_profile("activist").answers, QUESTIONS, "a"))
    assert {"detached-header-loss", "deniability-coercion"} <= {w.id for w in activist.warnings}
    assert "random-fill" in {m.id for m in activist.mitigations}


def _advisor_arguments(command: str, filled: Mapping[str, str]) -> list[list[str]]:
    """The arguments of each ``advisor`` line of ``command``, placeholders replaced by
    ``filled``, without ``sudo`` and the output redirection."""
    runs = []
    for line in command.splitlines():
        words = [filled.get(word, word) for word in shlex.split(line.split(" > ")[0])]
        if words[0] == "sudo":
            words = words[1:]
        if words[0] == "advisor":
            runs.append(words[1:])
    return runs


@pytest.mark.parametrize("saved_to", [None, "out dir/a.json"])
@pytest.mark.parametrize(
    ("answers", "backend"),
    [
        (with_answers(), "luks"),
        (with_answers(offsite_backups="untrusted", metadata_exposure="some"), "zfs-native"),
        (with_answers(deniability="yes", metadata_exposure="severe"), "luks-detached"),
    ],
)
def test_next_command_plans_then_installs_that_plan_once_placeholders_are_filled(
    answers: dict[str, str], backend: str, saved_to: str | None
) -> None:
    assessment = run(answers)
    assert assessment.recommended is not None
    assert assessment.recommended.backend == backend
    command = assessment.next_command(saved_to)
    assert command is not None
    placeholders = assessment.placeholders()
    expected = {"DISK-ID", "HEADER", "BACKUP-FILE"} if backend == "luks-detached" else {"DISK-ID"}
    assert set(placeholders) == expected
    filled = {
        "DISK-ID": "wwn-0x5000c500a1b2c3d4",
        "HEADER": "/media/usb/header.img",
        "BACKUP-FILE": "/media/other/header.backup",
    }
    plan, install = _advisor_arguments(command, filled)
    parser = build_parser()
    planned = parser.parse_args(plan)
    assert planned.command == "plan"
    assert planned.disk == [filled["DISK-ID"]]
    assert planned.save == Path("plan.json")
    if saved_to:
        assert planned.from_assessment == Path(saved_to) and planned.backend is None
    else:
        assert planned.backend == backend and planned.from_assessment is None
    if backend == "luks-detached":
        assert (planned.header, planned.header_backup) == (
            [filled["HEADER"]],
            [filled["BACKUP-FILE"]],
        )
    else:
        assert planned.header is None
    installed = parser.parse_args(install)
    assert installed.command == "install" and installed.plan == Path("plan.json")
    assert installed.disk == [] and installed.backend is None  # the plan fixes them


class AssessOnly(Flat):
    """Recommended (no gate), but with no install steps and no pool encryption."""

    name = "assess-only"


def test_a_backend_without_install_steps_is_recommended_but_no_install_is_suggested() -> None:
    assert not AssessOnly().installable
    assert all(backend.installable for backend in BACKENDS)
    answers = {"q": "x"}
    axes = [Axis("a", "A", "", baseline=1.0)]
    assessment = assess(
        axes=axes, questions=[], backends=(AssessOnly(),), answers=answers, system=SYSTEM
    )
    assert assessment.recommended is not None
    assert not assessment.recommended.installable
    assert assessment.next_command("a.json") is None
    assert assessment.placeholders() == {}
    assert assessment.to_json()["ranking"][0]["installable"] is False


class FlatDetached(Flat):
    """A third party's backend whose LUKS header lives off the disk."""

    name = "flat-detached"
    detached_header = True
    installable = True

    def pool_encryption(self, spec: InstallSpec) -> Mapping[str, str]:
        return {"encryption": "on"}


def test_a_third_party_detached_header_backend_gets_the_header_placeholders() -> None:
    axes = [Axis("a", "A", "", baseline=1.0)]
    assessment = assess(
        axes=axes, questions=[], backends=(FlatDetached(),), answers={}, system=SYSTEM
    )
    assert assessment.recommended is not None and assessment.recommended.detached_header
    command = assessment.next_command()
    assert command is not None
    assert "--backend flat-detached --disk DISK-ID --header HEADER --header-backup" in command
    assert set(assessment.placeholders()) == {"DISK-ID", "HEADER", "BACKUP-FILE"}


def _plan_words(assessment: Assessment) -> list[str]:
    command = assessment.next_command()
    assert command is not None
    return shlex.split(command.splitlines()[0].split(" > ")[0])


def test_next_command_builds_the_pool_on_every_disk_of_one_size() -> None:
    gib = 1024**3
    two = SystemFacts(disk_sizes={"wwn-b": 1000 * gib, "wwn-a": 1001 * gib, "usb-x": 8 * gib})
    words = _plan_words(run(with_answers(), two))
    assert words[words.index("--disk") :] == ["--disk", "wwn-a", "--disk", "wwn-b", "--save",
                                             "plan.json"]  # fmt: skip
    assert run(with_answers(), two).placeholders() == {}  # nothing left to fill in
    four = SystemFacts(disk_sizes={f"nvme-{n}": 2000 * gib for n in "abcd"} | {"ata-x": gib})
    words = _plan_words(run(with_answers(), four))
    assert words.count("--disk") == 4 and "ata-x" not in words
    assert words[words.index("--topology") + 1] == "raidz1"
    # One disk, or none of one size: the user names the disk.
    for system in (SystemFacts(disk_sizes={"wwn-a": gib}),
                   SystemFacts(disk_sizes={"wwn-a": 100 * gib, "wwn-b": 200 * gib})):  # fmt: skip
        assert "DISK-ID" in _plan_words(run(with_answers(), system))


def test_next_command_asks_for_a_header_per_disk() -> None:
    gib = 1024**3
    system = SystemFacts(disk_sizes={"wwn-a": 500 * gib, "wwn-b": 500 * gib})
    assessment = run(with_answers(deniability="yes", metadata_exposure="severe"), system)
    assert assessment.recommended is not None
    assert assessment.recommended.backend == "luks-detached"
    words = _plan_words(assessment)
    assert [words[i + 1] for i, w in enumerate(words) if w == "--header"] == ["HEADER-1",
                                                                            "HEADER-2"]  # fmt: skip
    placeholders = assessment.placeholders()
    assert set(placeholders) == {"HEADER-1", "BACKUP-FILE-1", "HEADER-2", "BACKUP-FILE-2"}
    assert placeholders["HEADER-2"].endswith("for disk 2 (wwn-b)")


@pytest.mark.parametrize(
    ("disks", "suggested"), [(3, "raidz1"), (5, "raidz1"), (6, "raidz2"), (12, "raidz2")]
)
def test_the_suggested_raidz_keeps_wide_pools_at_two_parity_disks(
    disks: int, suggested: str
) -> None:
    assert raidz_for(disks) == suggested
