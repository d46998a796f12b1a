"""Example third-party backend: ZFS on LUKS2, unlocked at boot by a TPM2 plus a PIN.

It adds an axis (``measured_boot``), an optional question (``tpm2``) and a backend
(``luks-tpm2``), using only the public plugin API. The backend takes part in assessments
only: it defines no ``provision_steps`` or ``pool_encryption``, so ``advisor plan``,
``install`` and ``config`` refuse it rather than lay out an unencrypted pool.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import ClassVar

from advisor.plugin import (
    Answers,
    Axis,
    Backend,
    Capability,
    Choice,
    Question,
    Rating,
    SystemFacts,
    hookimpl,
)


class LuksTpm2Backend(Backend):
    name = "luks-tpm2"
    summary = "ZFS on LUKS2 unlocked by a TPM2 and a PIN (systemd-cryptenroll)"
    # A literal, never PLUGIN_API_VERSION: that follows the installed core, so a new
    # contract would pass this backend unchecked.
    api_version = 3
    capabilities: ClassVar[Mapping[str, Capability]] = {
        "metadata": Capability(Rating.STRONG, "Everything is inside LUKS.", "cryptsetup(8)"),
        "maturity": Capability(Rating.GOOD, "systemd-cryptenroll since v248.", "systemd NEWS"),
        "recoverability": Capability(
            Rating.GOOD, "A recovery key stays enrolled beside the TPM2.", "systemd-cryptenroll(1)"
        ),
        "unattended_unlock": Capability(
            Rating.STRONG, "The TPM2 releases the key at boot.", "systemd-cryptenroll(1)"
        ),
        "measured_boot": Capability(
            Rating.STRONG,
            "The key is sealed to PCR values: a changed boot chain cannot unseal it.",
            "systemd-cryptenroll(1) --tpm2-pcrs",
        ),
    }

    def gate(self, answers: Answers, system: SystemFacts) -> str | None:
        if answers.get("tpm2") != "yes":
            return "needs a TPM2 chip you want the unlock bound to"
        return None


@hookimpl
def advisor_axes() -> Sequence[Axis]:
    return (
        Axis(
            "measured_boot",
            "Measured boot",
            "The key is only released when the firmware and boot chain are unchanged.",
        ),
    )


@hookimpl
def advisor_questions() -> Sequence[Question]:
    return (
        Question(
            "tpm2",
            "Should unlocking be bound to this machine's TPM2 chip and boot chain?",
            "A TPM2 can hold the disk key and release it only to an unmodified boot chain "
            "(and a PIN), so the machine unlocks without typing a passphrase.",
            (
                Choice("no", "No"),
                Choice("yes", "Yes", {"measured_boot": 4, "unattended_unlock": 1}),
            ),
            default="no",
            optional=True,
        ),
    )


@hookimpl
def advisor_backends() -> Sequence[Backend]:
    return (LuksTpm2Backend(),)
