"""The core threat axes and questions, contributed through the same hooks plugins use.

The question ids and values here are a contract: answers files and the built-in example
profiles use them. Add values or questions; never rename or remove one.
"""

from __future__ import annotations

from collections.abc import Sequence

from advisor.models import Axis, Choice, Question
from advisor.plugin import hookimpl

AXES: tuple[Axis, ...] = (
    Axis(
        "metadata",
        "Hidden metadata",
        "Dataset and snapshot names, sizes, snapshot times and the host name cannot be "
        "read from the powered-off disk.",
    ),
    Axis(
        "untrusted_backup",
        "Blind backups",
        "Backups can live on a host that stores and scrubs them but never sees the key.",
    ),
    Axis(
        "per_dataset_keys",
        "Per-dataset keys",
        "Separate keys per dataset, VM or client; parts can stay unencrypted.",
    ),
    Axis(
        "integrity",
        "Tamper detection",
        "Modified ciphertext is detected cryptographically, not only by checksums.",
    ),
    Axis(
        "deniability",
        "Looks like noise",
        "The disk carries no header or signature that shows encryption is in use.",
    ),
    Axis(
        "maturity",
        "Maturity",
        "Years in production and a clean record of data-loss bugs.",
        baseline=1.0,
    ),
    Axis(
        "recoverability",
        "Hard to lose",
        "No single point of failure beyond the passphrase (such as a header kept elsewhere).",
        baseline=1.0,
    ),
    Axis(
        "remote_unlock",
        "Remote unlock",
        "The disk can be unlocked over SSH from the initrd.",
    ),
    Axis(
        "unattended_unlock",
        "Unattended unlock",
        "The machine can unlock itself at boot (TPM2, network-bound or key file).",
    ),
    Axis(
        "whole_machine_theft",
        "Whole machine stolen",
        "A thief who takes the whole machine, TPM and all, still cannot read the disk.",
    ),
    Axis(
        "key_apart",
        "Key kept apart",
        "What opens the disk can travel apart from the machine, be left at home or carried "
        "by someone else.",
    ),
    Axis(
        "trim",
        "Cheap TRIM",
        "TRIM on an SSD reveals little beyond what the design already exposes.",
    ),
)

QUESTIONS: tuple[Question, ...] = (
    Question(
        "metadata_exposure",
        "How much harm if someone holding the disk learns dataset names, sizes and snapshot times?",
        "Without a key, ZFS native encryption still shows the names, sizes and creation "
        "times of datasets and snapshots: enough to build a pattern of life (when you were "
        "active, what grew when). LUKS under ZFS hides all of it.",
        (
            Choice("none", "None: it tells nothing that matters"),
            Choice("some", "Some: I would rather it stayed private", {"metadata": 2}),
            Choice(
                "severe", "Severe: timing or names could incriminate or endanger", {"metadata": 5}
            ),
        ),
        default="some",
    ),
    Question(
        "adversary",
        "Who may get hold of the powered-off disk?",
        "A thief wants the hardware. A border or police check may image the disk and hand "
        "it back (it was out of your sight, so it may have been altered). A targeted "
        "adversary studies you and may come back.",
        (
            Choice("thief", "An opportunistic thief"),
            Choice(
                "border",
                "Border or police inspection",
                {"metadata": 1, "integrity": 1, "key_apart": 1},
            ),
            Choice(
                "targeted",
                "A targeted, well-resourced adversary",
                {"metadata": 2, "integrity": 2, "maturity": 1},
            ),
        ),
        default="thief",
    ),
    Question(
        "offsite_backups",
        "Where do your backups go?",
        "'untrusted' means a host that may store and scrub your backups but must never be "
        "able to read them: a friend's server, a cloud VM.",
        (
            Choice("none", "No offsite backups"),
            Choice("trusted", "A host I trust with the data"),
            Choice("untrusted", "A host that must never read them", {"untrusted_backup": 6}),
        ),
        default="trusted",
    ),
    Question(
        "granularity",
        "Do you need separate keys per dataset, VM or client, or an unencrypted OS for "
        "fast repair?",
        "ZFS native encryption gives each dataset its own key; LUKS has one key for the "
        "whole device.",
        (
            Choice("no", "No, one key for everything is fine"),
            Choice("yes", "Yes", {"per_dataset_keys": 4}),
        ),
        default="no",
    ),
    Question(
        "integrity",
        "Must tampering with the disk be detected cryptographically?",
        "ZFS native encryption authenticates every block (AES-GCM). LUKS with AES-XTS does "
        "not; ZFS checksums under it catch corruption but are not a MAC.",
        (
            Choice("no", "No, checksums are enough"),
            Choice("yes", "Yes", {"integrity": 4}),
        ),
        default="no",
    ),
    Question(
        "deniability",
        "Must the disk look like random noise, with no sign that it is encrypted?",
        "Only a LUKS header kept off the disk removes the signature; it is 'simple' "
        "deniability and does not help against someone who can compel you.",
        (
            Choice("no", "No"),
            Choice("yes", "Yes", {"deniability": 5}),
        ),
        default="no",
    ),
    Question(
        "header_custody",
        "Can you keep a separate medium (a USB key) with the LUKS header, and a backup of it?",
        "A detached header is the only key to the data besides your passphrase: lose it and "
        "every backup of it, and the data is gone.",
        (
            Choice("no", "No", {"recoverability": 1}),
            Choice("yes", "Yes, and I will back it up"),
        ),
        default="no",
    ),
    Question(
        "stability",
        "How much appetite do you have for newer, less battle-tested code?",
        "ZFS native encryption shipped in 2019 and had send/snapshot corruption bugs open "
        "from 2021 to 2025; dm-crypt has been in the kernel for two decades.",
        (
            Choice("conservative", "Conservative: proven code only", {"maturity": 4}),
            Choice("balanced", "Balanced", {"maturity": 1}),
            Choice("early_adopter", "Early adopter: features first"),
        ),
        default="balanced",
    ),
    Question(
        "unlock",
        "How does the machine get unlocked at boot?",
        "At the console with a passphrase, over SSH into the initrd, or by itself (TPM2, "
        "network key server, key file).",
        (
            Choice("console", "At the console"),
            Choice("ssh", "Over SSH into the initrd", {"remote_unlock": 2}),
            Choice("unattended", "Unattended", {"unattended_unlock": 3}),
        ),
        default="console",
    ),
    Question(
        "machine_theft",
        "Could the whole machine be taken while it is off (a laptop, a server at home or in "
        "a shared rack)?",
        "A TPM2 that unlocks by itself protects a disk pulled out of the machine (swapped, "
        "returned under warranty, resold), not the machine taken whole: whoever holds it "
        "powers it on and the disk opens, leaving only the login between them and the data.",
        (
            Choice("no", "No: only a disk could leave (a locked rack, a disk swapped out)"),
            Choice("yes", "Yes", {"whole_machine_theft": 3}),
        ),
        default="yes",
        optional=True,
    ),
    Question(
        "hardware_token",
        "Do you have a FIDO2 security key (YubiKey, Nitrokey, SoloKey) you can keep apart "
        "from the machine?",
        "A FIDO2 token with the hmac-secret extension can unlock a LUKS2 disk at boot with "
        "its PIN and a touch; kept apart from the machine (not in the laptop bag), a thief "
        "with the machine alone gets nothing. ZFS native encryption cannot use one.",
        (
            Choice("no", "No"),
            Choice("yes", "Yes", {"key_apart": 3}),
        ),
        default="no",
        optional=True,
    ),
    Question(
        "ssd_trim",
        "Do you want TRIM on an SSD?",
        "TRIM keeps an SSD fast, but through an encryption layer it reveals which blocks "
        "are in use.",
        (
            Choice("no", "No"),
            Choice("yes", "Yes", {"trim": 2}),
        ),
        default="yes",
    ),
)


@hookimpl
def advisor_axes() -> Sequence[Axis]:
    return AXES


@hookimpl
def advisor_questions() -> Sequence[Question]:
    return QUESTIONS
