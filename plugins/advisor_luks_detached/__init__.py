"""Built-in backend ``luks-detached``: ZFS on LUKS2 with the header kept off the disk.

The data partition carries no signature at all; the header, on a separate medium, is the
only way in besides the passphrase. It shares dm-crypt and the ZFS layout with ``luks``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import ClassVar

from advisor.plugin import (
    Answers,
    Backend,
    Capability,
    InstallSpec,
    Layout,
    LayoutMember,
    Member,
    NixFragment,
    Note,
    PluginRefusal,
    Rating,
    Step,
    SystemFacts,
    hookimpl,
)
from advisor_luks import VERIFY, LuksBackend


class LuksDetachedBackend(LuksBackend):
    name = "luks-detached"
    summary = "ZFS on LUKS2 with a detached header: the disk itself shows no sign of encryption"
    api_version = 3
    partition_type = "8300"  # generic: a LUKS type code would give the game away
    detached_header = True
    # disko has no detached headers (its issue 962, open). Passed through extraFormatArgs,
    # --header formats once, but a second run of disko's create script formats the data
    # again: its guard asks `cryptsetup isLuks` of the data partition, without the header
    # (measured in a VM: tests/vendor/README.md).
    disko_unsupported = (
        "disko has no detached LUKS headers (disko issue 962), and with --header passed "
        "through extraFormatArgs a second run of its create script formats the data "
        "partition again (its guard runs 'cryptsetup isLuks' without the header: measured, "
        "see docs/disko.md); install luks-detached with 'advisor install' instead"
    )
    # systemd-cryptenroll enrolls into the header given as its device, and
    # systemd-cryptsetup reads the token from crypttab's header= (measured on systemd
    # 252: docs/unlock.md, "luks-detached"); the header's backup is taken anew after.
    unlock_carriers = frozenset({"luks2-token"})
    capabilities: ClassVar[Mapping[str, Capability]] = {
        **LuksBackend.capabilities,
        "deniability": Capability(
            Rating.GOOD,
            "No header on the disk: if it was filled with random data first and TRIM stays "
            "off, it looks like noise. Only 'simple' deniability, useless under coercion.",
            "cryptsetup(8) --header; LUKS2 spec; cryptsetup FAQ 5.3, 5.18",
            "detached-header-deniability",
        ),
        "maturity": Capability(
            Rating.GOOD,
            "The same dm-crypt code as LUKS, but a less-travelled boot path: the initrd has "
            "to find the header on another device.",
            "nixpkgs luksroot.nix header; udisks #944",
            "detached-header-operations",
        ),
        "recoverability": Capability(
            Rating.NONE,
            "Lose the header medium and every backup of it and the data is gone for good.",
            "cryptsetup(8) WARNINGS; cryptsetup FAQ 1.2",
            "detached-header-loss",
        ),
        "remote_unlock": Capability(
            Rating.GOOD,
            "Works over initrd SSH, but only while the header medium is attached.",
            "nixpkgs luksroot.nix header; crypttab(5) header=",
            "detached-header-operations",
        ),
        "unattended_unlock": Capability(
            Rating.WEAK,
            "The header must be present at boot; leaving it in the machine undoes the design.",
            "nixpkgs luksroot.nix header",
            "detached-header-operations",
        ),
        "trim": Capability(
            Rating.NONE,
            "Discards leave unmapped regions that show where data lives: the disk no longer "
            "looks random.",
            "cryptsetup(8) --allow-discards; cryptsetup FAQ 5.3",
            "trim-leaks-usage",
        ),
    }

    def gate(self, answers: Answers, system: SystemFacts) -> str | None:
        if answers.get("header_custody") == "no":
            return (
                "a detached header must live on a separate medium with a verified backup, "
                "and you said you cannot keep one"
            )
        return None

    def warnings(self, answers: Answers, system: SystemFacts) -> Sequence[Note]:
        notes = [
            Note(
                "detached-header-loss",
                "The header is the key to the data: without it (and without a backup of it) "
                "the passphrase opens nothing. A header backup plus any passphrase valid when "
                "it was taken opens the disk even after that passphrase is removed.",
                "detached-header-loss",
            ),
            # The header is off the disk: of luks's warnings, only dm-crypt's own apply.
            *self.dm_crypt_warnings(answers),
        ]
        if answers.get("ssd_trim") == "yes":
            notes.append(
                Note(
                    "detached-discards",
                    "TRIM undoes the point of a detached header: discarded blocks show where "
                    "data lives. Keep it off.",
                    "trim-leaks-usage",
                )
            )
        if answers.get("deniability") == "yes" and answers.get("adversary") in (
            "border",
            "targeted",
        ):
            notes.append(
                Note(
                    "deniability-coercion",
                    "Random-looking data invites the question of what it is; someone who can "
                    "compel you does not need proof. Deniability hides, it does not protect.",
                    "deniability-under-coercion",
                )
            )
        return notes

    def mitigations(self, answers: Answers, system: SystemFacts) -> Sequence[Note]:
        return (
            Note(
                "header-backups",
                "Keep the header on a removable medium with /boot, and a verified backup on a "
                "second medium stored elsewhere (checksum it, and check that it unlocks the data: "
                "`cryptsetup open --test-passphrase --header BACKUP DATA`).",
                "detached-header-loss",
            ),
            Note(
                "random-fill",
                "Fill the data partition with random data before use, so written and unwritten "
                "areas look alike.",
                "detached-header-deniability",
            ),
        )

    def luks_device(self, layout: Layout, member: LayoutMember) -> dict[str, object]:
        device = super().luks_device(layout, member)
        if member.header is None:
            raise ValueError("the luks-detached backend needs a header for every disk")
        device["header"] = header_in_initrd(layout, member)
        return device

    def nix_fragments(self, layout: Layout) -> Sequence[NixFragment]:
        fragments = list(super().nix_fragments(layout))
        # A header file is copied into the initrd on the ESP at each rebuild: keep
        # /boot on the removable medium, or the disk carries its own header again.
        secrets: dict[tuple[str, ...], object] = {
            ("boot", "initrd", "secrets", header_in_initrd(layout, member)): member.header
            for member in layout.members
            if member.header is not None and not member.header.startswith("/dev/")
        }
        if secrets:
            fragments.append(NixFragment("Encryption", secrets))
        return fragments

    # Provisioning: each disk's header goes to its own device or file, is backed up and
    # the backup verified before anything is written to that disk's data partition.

    def token_device(self, spec: InstallSpec, member: Member) -> str:
        # The key slots and tokens are in the header, wherever it is.
        if member.header is None:
            raise ValueError("luks-detached needs a header path for every disk")
        return member.header

    def header_options(self, spec: InstallSpec, member: Member) -> tuple[str, ...]:
        if member.header is None:
            raise ValueError("luks-detached needs a header path for every disk")
        return ("--header", member.header)

    def provision_steps(self, spec: InstallSpec, member: Member) -> Sequence[Step]:
        if member.header is None or member.header_backup is None:
            raise ValueError("luks-detached needs a header and a header backup for every disk")
        data, header, backup = member.data_partuuid_device, member.header, member.header_backup
        return (
            self.format_step(spec, member),
            Step(
                "header-backup",
                f"Back up the header to {backup}",
                ("cryptsetup", "luksHeaderBackup", header, "--header-backup-file", backup),
                probe=("cryptsetup", "isLuks", backup),
            ),
            # The passphrase goes on to cryptsetup as luksFormat took it: no newline.
            Step(
                "header-verify",
                "Verify the backup: same bytes as the header, and it unlocks the data",
                (*VERIFY, "header-backup", header, backup, data),
                secret="passphrase",
            ),
            self.open_step(spec, member),
        )

    def rekey_header_options(self, member: LayoutMember) -> tuple[str, ...]:
        # advisor rekey changes the key slots in the detached header, and refreshes its
        # backup (member.header_backup) from it.
        if member.header is None:
            raise PluginRefusal(
                f"the layout record names no header for {member.data_device}: luks-detached "
                "cannot open it without one"
            )
        return ("--header", member.header)


#: Where a header file is placed inside the initrd: ``header.img`` for one disk,
#: ``header-<n>.img`` for disk n of several.
INITRD_HEADER = "/etc/luks/header.img"


def header_in_initrd(layout: Layout, member: LayoutMember) -> str:
    """``member``'s header as the initrd sees it: a device as is, a file at
    :data:`INITRD_HEADER` (numbered when the pool has several disks)."""
    header = member.header or ""
    if header.startswith("/dev/"):
        return header
    if len(layout.members) > 1:
        return INITRD_HEADER.replace("header.img", f"header-{member.number}.img")
    return INITRD_HEADER


@hookimpl
def advisor_backends() -> Sequence[Backend]:
    return (LuksDetachedBackend(),)
