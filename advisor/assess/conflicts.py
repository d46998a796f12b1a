"""Tensions between answers: goals no single backend serves at once.

A tension is named with what each choice gives up and, where one exists, a layering that
serves both. Scoring does not average these away; the assessment reports every tension
whose condition matches the answers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from advisor.models import Answers


@dataclass(frozen=True)
class Tension:
    """A pair (or more) of answers that pull toward different backends.

    ``when`` maps question ids to the values that trigger the tension; all entries must
    match. ``tradeoffs`` says what each choice gives up; ``layering`` how to get both,
    if anything does. ``facts`` are anchors in ``docs/threat-model.md``.
    """

    id: str
    when: Mapping[str, frozenset[str]]
    title: str
    tradeoffs: tuple[str, ...]
    layering: str
    facts: tuple[str, ...]

    def applies(self, answers: Answers) -> bool:
        return all(answers.get(qid) in values for qid, values in self.when.items())


def _when(**conditions: str | tuple[str, ...]) -> dict[str, frozenset[str]]:
    return {
        qid: frozenset((values,) if isinstance(values, str) else values)
        for qid, values in conditions.items()
    }


TENSIONS: tuple[Tension, ...] = (
    Tension(
        "blind-backups-vs-metadata",
        _when(offsite_backups="untrusted", metadata_exposure=("some", "severe")),
        "Blind offsite backups versus hidden metadata",
        (
            "ZFS native encryption: `zfs send -w` keeps the backup host blind to your data, "
            "but it and anyone holding your disk see dataset names, sizes and snapshot times.",
            "LUKS: hides all of that on the disk, but `zfs send` streams leave it as plaintext "
            "and need their own encryption before they reach the untrusted host.",
        ),
        "Layer them: ZFS native encryption on the datasets you back up, inside a LUKS "
        "container. The disk at rest shows nothing; raw sends stay blind on the backup host "
        "(which still sees their names and sizes). The cost is encrypting twice.",
        ("zfs-native-raw-send", "zfs-native-metadata-plaintext", "layering"),
    ),
    Tension(
        "integrity-vs-metadata",
        _when(integrity="yes", metadata_exposure=("some", "severe")),
        "Cryptographic integrity versus hidden metadata",
        (
            "ZFS native encryption authenticates every block, but leaves names, sizes and "
            "times readable.",
            "LUKS hides them, but AES-XTS is unauthenticated and dm-integrity is "
            "experimental, slow and rules out TRIM.",
        ),
        "Layer them: ZFS native encryption inside LUKS gives both, at the cost of "
        "encrypting twice.",
        ("zfs-native-aead", "luks-no-authentication", "layering"),
    ),
    Tension(
        "per-dataset-keys-vs-metadata",
        _when(granularity="yes", metadata_exposure="severe"),
        "Per-dataset keys versus hidden metadata",
        (
            "ZFS native encryption gives each dataset its own key, but every dataset name and "
            "size is visible.",
            "LUKS hides them, but one key opens everything.",
        ),
        "Layer them: per-dataset native keys inside a LUKS container.",
        ("zfs-native-encryption-roots", "luks-one-key-per-device", "layering"),
    ),
    Tension(
        "deniability-vs-custody",
        _when(deniability="yes", header_custody="no"),
        "Deniability without a place for the header",
        (
            "Only a detached LUKS header makes the disk look like noise, and it needs a "
            "separate medium plus a backup.",
            "Without one, every design leaves a visible signature (a LUKS header or ZFS labels).",
        ),
        "None without a separate medium: get one (a USB key kept apart, and a backup) or "
        "accept that the disk shows it is encrypted.",
        ("detached-header-deniability", "detached-header-loss"),
    ),
    Tension(
        "deniability-vs-trim",
        _when(deniability="yes", ssd_trim="yes"),
        "Deniability versus TRIM",
        (
            "With TRIM, discarded blocks show where data lives, so the disk no longer looks "
            "random.",
            "Without TRIM, an SSD slows down over time and wears faster.",
        ),
        "None: deniability needs TRIM off.",
        ("trim-leaks-usage", "detached-header-deniability"),
    ),
    Tension(
        "unattended-vs-targeted",
        _when(unlock="unattended", adversary=("border", "targeted")),
        "Unattended unlock versus a capable adversary",
        (
            "A machine that unlocks itself hands the key to whoever powers it on.",
            "Unlocking at the console or over SSH needs a person at boot.",
        ),
        "Bind the key to a PIN as well as the TPM, or use network-bound unlock (Tang) that "
        "only works inside your network.",
        ("unattended-unlock",),
    ),
    Tension(
        "unattended-vs-machine-theft",
        _when(unlock="unattended", machine_theft="yes"),
        "Unattended unlock versus a machine stolen whole",
        (
            "A TPM2 without a PIN unlocks the disk for whoever powers the machine on: it "
            "protects a disk taken out of the machine, not the machine taken whole.",
            "A PIN, a FIDO2 token or a passphrase keeps a stolen machine locked, but needs a "
            "person at every boot.",
        ),
        "Bind the TPM2 to the Secure Boot state (PCR 7) with a boot chain you sign "
        "(lanzaboote), so that only your own system gets the key, and keep its login "
        "strong; or take tpm2+pin, whose short PIN the TPM's lockout protects.",
        ("unlock-tpm2-theft", "unlock-tpm2-pcrs", "unlock-tpm2-pin"),
    ),
    Tension(
        "unattended-vs-custody",
        _when(unlock="unattended", deniability="yes"),
        "Unattended unlock versus a header kept off the machine",
        (
            "Unattended unlock needs the header present at every boot.",
            "Deniability needs it kept away from the machine.",
        ),
        "None: choose which matters more.",
        ("detached-header-operations", "unattended-unlock"),
    ),
)


def tensions_for(answers: Answers) -> list[Tension]:
    """The tensions whose conditions all match ``answers``, in declaration order."""
    return [tension for tension in TENSIONS if tension.applies(answers)]
