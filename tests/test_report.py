"""The human-readable reports say what the JSON says."""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import ClassVar

from helpers import MakePluginDist, RunCli, usable_disk
from rich.console import Console

from advisor.assess.answers import load_profile, validate_answers
from advisor.assess.assessment import assess
from advisor.assess.report import render_assessment
from advisor.install.disks import firmware_warning
from advisor.install.report import render_disks
from advisor.models import Axis, Backend, Capability, Note, Rating, SystemFacts
from advisor.questionnaire import AXES, QUESTIONS
from advisor_luks import LuksBackend
from advisor_luks_detached import LuksDetachedBackend
from advisor_unlock import Fido2Unlock, PassphraseUnlock, Tpm2PinUnlock, Tpm2Unlock


def _console() -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, width=400, color_system=None), out


def test_disks_report_gives_the_bios_warning_the_json_gives() -> None:
    console, out = _console()
    render_disks(console, [usable_disk()], "bios")
    text = out.getvalue()
    warning = firmware_warning("bios")
    assert warning is not None
    assert "Firmware: bios" in text
    assert f"warning: {warning}" in text


def test_disks_report_under_efi_has_no_firmware_warning() -> None:
    console, out = _console()
    render_disks(console, [usable_disk()], "efi")
    text = out.getvalue()
    assert "Firmware: efi" in text
    assert "warning" not in text
    assert "virtio-disk01" in text


def test_disks_report_and_json_name_the_usable_disks_of_one_size() -> None:
    from advisor.install.disks import disks_to_json

    first = usable_disk()
    second = usable_disk(name="vdc", path="/dev/vdc", by_id=("/dev/disk/by-id/virtio-disk02",))
    bigger = usable_disk(name="vdd", path="/dev/vdd", by_id=("/dev/disk/by-id/virtio-disk03",),
                         size_bytes=first.size_bytes * 2)  # fmt: skip
    busy = usable_disk(name="vde", path="/dev/vde", by_id=("/dev/disk/by-id/virtio-disk04",),
                       problems=("mounted at /home",))  # fmt: skip
    disks = [first, second, bigger, busy]
    listing = {d["disk_id"]: d["same_size_as"] for d in disks_to_json(disks, "efi")["disks"]}
    assert listing == {
        "virtio-disk01": ["virtio-disk02"],
        "virtio-disk02": ["virtio-disk01"],
        "virtio-disk03": [],
        "virtio-disk04": [],  # not usable: no pool is made with it
    }
    console, out = _console()
    render_disks(console, disks, "efi")
    rows = {line.split()[0]: line for line in out.getvalue().splitlines() if "virtio-" in line}
    assert rows["virtio-disk01"].rstrip().endswith("virtio-disk02")
    assert rows["virtio-disk03"].rstrip().endswith("-")


DETACHED_ANSWERS = {
    "metadata_exposure": "severe",
    "adversary": "thief",
    "offsite_backups": "none",
    "granularity": "no",
    "integrity": "no",
    "deniability": "yes",
    "header_custody": "yes",
    "stability": "balanced",
    "unlock": "console",
    "ssd_trim": "no",
}


def test_assessment_report_prints_each_next_command_whole_and_its_placeholders() -> None:
    assessment = assess(
        axes=AXES,
        questions=QUESTIONS,
        backends=(LuksDetachedBackend(),),
        answers=DETACHED_ANSWERS,
        system=SystemFacts(),
    )
    command = assessment.next_command("assessment.json")
    assert command is not None
    console, out = _console()
    console.width = 60  # narrower than the plan command: it must still be one line
    render_assessment(console, assessment, "assessment.json")
    lines = out.getvalue().splitlines()
    for line in command.splitlines():
        assert f"  {line}" in lines
    text = out.getvalue()
    for word in ("DISK-ID", "HEADER", "BACKUP-FILE"):
        assert f"Replace {word}:" in text
    assert "Assessment saved to assessment.json" in text


class AssessOnly(Backend):
    name = "assess-only"
    summary = "no install steps"
    api_version = 3
    capabilities: ClassVar[Mapping[str, Capability]] = {
        "a": Capability(Rating.STRONG, "why", "src"),
    }


def test_assessment_report_does_not_suggest_installing_what_advisor_cannot_install() -> None:
    assessment = assess(
        axes=[Axis("a", "A", "", baseline=1.0)],
        questions=[],
        backends=(AssessOnly(),),
        answers={},
        system=SystemFacts(),
    )
    console, out = _console()
    render_assessment(console, assessment, None)
    text = out.getvalue()
    assert "advisor can recommend assess-only but not install it" in text
    assert "advisor install" not in text


class _Cited(Backend):
    """A plugin's backend that cites its own sources, as links."""

    name = "cited"
    summary = "cites its sources"
    api_version = 3
    capabilities: ClassVar[Mapping[str, Capability]] = {
        "a": Capability(Rating.STRONG, "Serves it.", "RFC 1", url="https://example.org/fact-a")
    }

    def warnings(self, answers: Mapping[str, str], system: SystemFacts) -> list[Note]:
        return [Note("cited-warning", "Mind it.", url="https://example.org/warning")]


def test_a_plugins_reasons_and_notes_link_its_own_sources() -> None:
    assessment = assess(
        axes=[Axis("a", "A", "", baseline=1.0)],
        questions=[],
        backends=[_Cited()],
        answers={},
        system=SystemFacts(),
    )
    console, out = _console()
    render_assessment(console, assessment, None)
    text = out.getvalue()
    assert "A: Serves it. [https://example.org/fact-a]" in text
    assert "Mind it. [https://example.org/warning]" in text
    assert "threat-model.md" not in text
    data = assessment.to_json()
    assert data["ranking"][0]["reasons"][0]["url"] == "https://example.org/fact-a"
    assert data["warnings"][0]["url"] == "https://example.org/warning"


def test_plugin_reasons_are_wrapped_whole_without_a_terminal(
    run_cli: RunCli, make_plugin_dist: MakePluginDist
) -> None:
    # Without a terminal rich assumes 80 columns: the reason must wrap there, not be cut.
    words = " ".join(f"word{n}" for n in range(40))
    broken = make_plugin_dist(f"raise RuntimeError('{words} end')\n", name="broken")
    result = run_cli("plugins", "--check", extra_path=[broken.path])
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert all(len(line.rstrip()) <= 80 for line in lines)
    assert "…" not in result.stdout
    text = " ".join(line.strip() for line in lines)
    assert f"broken is broken: import failed: RuntimeError: {words} end" in text


def test_assessment_report_shows_the_unlock_method_its_ranking_and_its_warnings_once() -> None:
    answers = validate_answers(load_profile("conservative-server").answers, QUESTIONS, "s")
    assessment = assess(
        axes=AXES,
        questions=QUESTIONS,
        backends=(LuksBackend(),),
        answers=answers,
        system=SystemFacts(tpm2=True),
        unlock_methods=(PassphraseUnlock(), Tpm2Unlock(), Tpm2PinUnlock(), Fido2Unlock()),
    )
    console, out = _console()
    render_assessment(console, assessment)
    text = out.getvalue()
    assert "Unlock: tpm2  a TPM2 chip" in text
    assert "fido2 is ruled out: needs a FIDO2 security key" in text
    assert "Why tpm2:" in text and "Unattended unlock:" in text
    assert "[threat-model.md#unlock-tpm2]" in text
    # The method's warnings are shown with it, not a second time under Warnings.
    assert text.count("not a machine stolen whole") == 1
    assert text.index("not a machine stolen whole") < text.index("This machine (probed)")
    assert "TPM2: yes" in text
    assert "--unlock tpm2" in text
