"""Built-in unlock methods: a passphrase typed at boot, a TPM2 (with or without a PIN), a
FIDO2 token.

The hardware methods are enrolled by ``systemd-cryptenroll`` into a LUKS2 header, so they
ask for a backend that carries ``"luks2-token"``, and they are unlocked at boot by the
systemd initrd's ``systemd-cryptsetup`` from the crypttab options they give
(``tpm2-device=auto``, ``fido2-device=auto``; crypttab(5)). Each one comes with a recovery
key, made by the install and shown once, added as a key slot of its own before the
hardware is enrolled: a firmware update that changes a PCR, a lost token, or a move of
the disk to another machine leaves that key as the way in. The passphrase is kept unless
the person asks otherwise (``--no-keep-passphrase``), and then removed at the end of the
install, once everything else is done.

The facts behind the ratings and warnings are in docs/threat-model.md ("Unlocking with
hardware").
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from typing import ClassVar

from advisor.plugin import (
    Answers,
    Capability,
    InstallSpec,
    Layout,
    Member,
    NixFragment,
    Note,
    PluginRefusal,
    Rating,
    Settings,
    Step,
    SystemFacts,
    UnlockMethod,
    hookimpl,
)

#: The carrier the hardware methods need: a LUKS2 header systemd-cryptenroll writes to.
LUKS2_TOKEN = "luks2-token"  # noqa: S105 - a carrier's name, not a secret

#: advisor's own checks, run as steps (the interpreter that runs advisor).
VERIFY = (sys.executable, "-m", "advisor.install.verify")
#: Runs a command with the secret on stdin readable as the file /dev/fd/3: what
#: ``systemd-cryptenroll --unlock-key-file`` takes (systemd before 256 cannot read a pipe).
KEYFILE = (sys.executable, "-m", "advisor.install.keyfile", "--")


class PassphraseUnlock(UnlockMethod):
    """A passphrase typed at the console (or over SSH into the initrd): what every backend
    does, and what the install always sets up first."""

    name = "passphrase"
    summary = "a passphrase typed at boot, at the console or over SSH into the initrd"
    api_version = 3
    capabilities: ClassVar[Mapping[str, Capability]] = {
        "unattended_unlock": Capability(
            Rating.NONE,
            "Someone types it at every boot, at the console or over SSH into the initrd.",
            "cryptsetup(8); zfs-load-key(8)",
            "unlock-passphrase",
        ),
        "whole_machine_theft": Capability(
            Rating.STRONG,
            "Nothing in the machine opens the disk: a thief who takes all of it still "
            "needs the passphrase, as hard to guess as it is long (Argon2id slows each try).",
            "cryptsetup FAQ 5.1; cryptsetup(8) --pbkdf",
            "unlock-passphrase",
        ),
        "key_apart": Capability(
            Rating.WEAK,
            "It is not stored in the machine, but it travels with you: it cannot be left at "
            "home or carried by someone else, and it can be demanded of you.",
            "cryptsetup FAQ 5.1",
            "unlock-passphrase",
        ),
        "remote_unlock": Capability(
            Rating.STRONG,
            "It can be typed over SSH into the initrd.",
            "nixpkgs initrd-ssh.nix",
            "remote-unlock",
        ),
        "maturity": Capability(
            Rating.STRONG,
            "A LUKS key slot or a ZFS passphrase: the oldest path of both.",
            "cryptsetup(8); zfs-load-key(8)",
            "luks-maturity",
        ),
    }


class EnrolledUnlock(UnlockMethod):
    """What the methods systemd-cryptenroll enrolls share: the recovery key, the
    enrollment step, the crypttab option, the systemd initrd, and removing the passphrase.
    A subclass sets the token type and the enrollment options."""

    api_version = 3
    carrier = LUKS2_TOKEN
    recovery_key = True
    #: The LUKS2 token type systemd-cryptenroll writes (``systemd-tpm2``).
    token_type: ClassVar[str]
    #: The crypttab option that makes systemd-cryptsetup use the token (crypttab(5)).
    crypttab_option: ClassVar[str]
    #: Enrollment needs the person (a PIN to set, a token to touch): the step runs at the
    #: terminal, where systemd-cryptenroll asks for the current passphrase itself.
    needs_person: ClassVar[bool] = False

    def enroll_options(self, settings: Settings) -> tuple[str, ...]:
        """systemd-cryptenroll's options for this method (what to enroll, and how)."""
        return ()

    def check_settings(self, settings: Settings) -> None:
        if settings.initrd != "systemd":
            raise PluginRefusal(
                f"--unlock {self.name}: the scripted initrd cannot unlock with a TPM2 or a "
                "FIDO2 token (only systemd-cryptsetup reads their tokens, and NixOS's "
                "luksroot.nix writes crypttab options for the systemd initrd only); use "
                "--initrd systemd (the default)"
            )

    def crypttab_options(self, settings: Settings) -> Sequence[str]:
        return (self.crypttab_option,)

    def enroll_steps(self, spec: InstallSpec, member: Member, header: str) -> Sequence[Step]:
        """Add the recovery key and check it, then enroll the hardware; then take the
        header's backup anew, if one is kept (the key slots and tokens changed)."""
        kdf: tuple[str, ...] = ()
        if spec.fast_kdf:  # tests only, as for the install's luksFormat
            kdf = ("--pbkdf", "pbkdf2", "--pbkdf-force-iterations", "1000")
        test = ("cryptsetup", "open", "--test-passphrase", header)
        enroll = ("systemd-cryptenroll", *self.enroll_options(spec.settings), header)
        found = (*VERIFY, "token", self.token_type, header)
        if self.needs_person:
            enroll_step = Step(
                "enroll",
                f"Enroll {self.summary} into {header} (asks the disk passphrase, then you)",
                enroll,
                probe=found,
                interactive=True,
            )
        else:
            enroll_step = Step(
                "enroll",
                f"Enroll {self.summary} into {header}",
                # The passphrase on stdin, turned into a key file: never in argv.
                (*KEYFILE, "systemd-cryptenroll", "--unlock-key-file=/dev/fd/3", *enroll[1:]),
                secret="passphrase",
                probe=found,
            )
        return (
            Step(
                "add-recovery-key",
                f"Add the recovery key to a free key slot of {header}",
                # cryptsetup reads the passphrase that opens it, then the new one, a line
                # each, when it has no key file and no terminal (cryptsetup(8)).
                ("cryptsetup", "luksAddKey", *kdf, header),
                secret="passphrase-and-recovery-key",
                secret_newline=True,
                probe=test,
                probe_secret="recovery-key",
            ),
            Step(
                "test-recovery-key",
                f"Check that the recovery key opens {header}",
                test,
                secret="recovery-key",
                secret_newline=True,
            ),
            enroll_step,
            *self.backup_steps(member, "refresh-header-backup"),
        )

    def backup_steps(self, member: Member, step_id: str) -> tuple[Step, ...]:
        """Take ``member``'s header backup anew, if it has one (a detached header's),
        and check that it opens the data with the recovery key (which stays when the
        passphrase goes): the backup taken at format time lacks the key slots and
        tokens added since."""
        if member.header_backup is None or member.header is None:
            return ()
        check = (member.header, member.header_backup, member.data_partuuid_device)
        return (
            Step(
                step_id,
                f"Take the header backup {member.header_backup} anew, with the new key slots",
                (*VERIFY, "refresh-header-backup", *check),
                secret="recovery-key",
                probe=(*VERIFY, "header-backup", *check),
                probe_secret="recovery-key",
            ),
        )

    def retire_passphrase_steps(
        self, spec: InstallSpec, member: Member, header: str
    ) -> Sequence[Step]:
        """Remove the passphrase's key slot; probed done when it no longer opens."""
        test = ("cryptsetup", "open", "--test-passphrase", header)
        # cryptsetup exits 2 for "No key available with this passphrase" (cryptsetup(8)
        # RETURN CODES); any other failure is no proof that it is gone.
        refused = (*VERIFY, "refused", "--exit", "2", "--", *test)
        return (
            Step(
                "remove-passphrase",
                f"Remove the passphrase's key slot from {header} (the recovery key stays)",
                ("cryptsetup", "luksRemoveKey", header),
                secret="passphrase",
                secret_newline=True,
                probe=refused,
                probe_secret="passphrase",
            ),
            *self.backup_steps(member, "refresh-header-backup-again"),
        )

    def nix_fragments(self, layout: Layout) -> Sequence[NixFragment]:
        return ()


def _tpm2_nix() -> tuple[NixFragment, ...]:
    """The systemd initrd's TPM2 support: its units, tpm2-tss, and the tpm-tis and
    tpm-crb modules (nixpkgs nixos/modules/system/boot/systemd/tpm2.nix; on by default
    when systemd is built with TPM2 support, set here so the configuration says it)."""
    return (
        NixFragment(
            "Unlocking",
            {("boot", "initrd", "systemd", "tpm2", "enable"): True},
        ),
    )


#: Every enrolled method's recovery path, as a mitigation.
_RECOVERY_KEY_NOTE = Note(
    "unlock-keep-recovery-key",
    "Write the recovery key down (the install shows it once) and keep it away from the "
    "machine: when a firmware update changes a PCR, the TPM is cleared, the token is lost "
    "or the disk moves to another machine, it opens the disk, and systemd-cryptenroll can "
    "enroll the hardware again.",
    "unlock-recovery",
)


def _pcr7_note(then: str) -> Note:
    """What binding to PCR 7 (the default ``--tpm2-pcrs``) means, and ``then`` what to do."""
    return Note(
        "tpm2-pcr7-secure-boot",
        "Bound to PCR 7 (the default), the key follows the Secure Boot state: with Secure "
        "Boot off (NixOS's default, and how the installer boots), any system booted on this "
        "machine reads the same PCR 7. Turning Secure Boot on later changes PCR 7: the TPM "
        f"then refuses until you enroll again with the recovery key. {then}",
        "unlock-tpm2-pcrs",
    )


#: What the TPM2 methods share in their ratings.
_TPM2_MATURITY = Capability(
    Rating.GOOD,
    "systemd-cryptenroll's TPM2 tokens since systemd 248 (2021), read by the NixOS systemd initrd.",
    "systemd-cryptenroll(1); systemd NEWS 248",
    "unlock-tpm2",
)


class Tpm2Unlock(EnrolledUnlock):
    """The TPM2 releases the key at boot when the PCRs it is bound to match: no one types
    anything."""

    name = "tpm2"
    summary = "a TPM2 chip that releases the key to an unchanged boot chain"
    token_type = "systemd-tpm2"  # noqa: S105 - a LUKS2 token type
    crypttab_option = "tpm2-device=auto"
    capabilities: ClassVar[Mapping[str, Capability]] = {
        "unattended_unlock": Capability(
            Rating.STRONG,
            "The TPM2 unseals the key at boot when the bound PCRs match: nobody types.",
            "systemd-cryptenroll(1) --tpm2-device",
            "unlock-tpm2",
        ),
        "whole_machine_theft": Capability(
            Rating.WEAK,
            "It protects a disk taken out of the machine; a thief with the whole machine "
            "boots it to the login prompt, and can probe the bus the key crosses.",
            "systemd-cryptenroll(1) --tpm2-pcrs; systemd issue 25620 (TPM bus snooping)",
            "unlock-tpm2-theft",
        ),
        "key_apart": Capability(
            Rating.NONE,
            "The key is in the machine: there is nothing to keep apart or leave at home.",
            "systemd-cryptenroll(1)",
            "unlock-tpm2-theft",
        ),
        "remote_unlock": Capability(
            Rating.GOOD,
            "Nothing to type at boot, so nothing to type remotely; when the TPM refuses, the "
            "recovery key can be typed over SSH into the initrd.",
            "systemd-cryptenroll(1); crypttab(5) tpm2-device=",
            "unlock-tpm2",
        ),
        "maturity": _TPM2_MATURITY,
    }

    def enroll_options(self, settings: Settings) -> tuple[str, ...]:
        return ("--tpm2-device=auto", f"--tpm2-pcrs={settings.tpm2_pcrs}")

    def nix_fragments(self, layout: Layout) -> Sequence[NixFragment]:
        return _tpm2_nix()

    def gate(self, answers: Answers, system: SystemFacts) -> str | None:
        # The threat model's reason first: it holds on any machine.
        if answers.get("adversary") in ("border", "targeted"):
            return (
                "a machine that unlocks itself opens for whoever holds it, and you said a "
                "border inspection or a targeted adversary may hold it (tpm2+pin or fido2 "
                "ask for something the machine does not have)"
            )
        if system.tpm2 is False:
            return "this machine has no TPM2 chip"
        return None

    def warnings(self, answers: Answers, system: SystemFacts) -> Sequence[Note]:
        return [
            Note(
                "tpm2-whole-machine",
                "Without a PIN, the TPM2 opens the disk for anyone who powers the machine on: "
                "it protects a disk taken out of it, not a machine stolen whole, which is "
                "then only as safe as its login and the TPM's bus (tpm2+pin closes this).",
                "unlock-tpm2-theft",
            ),
            _pcr7_note(
                "Sign the boot chain (lanzaboote) and enroll again to make the binding mean "
                "something."
            ),
        ]

    def mitigations(self, answers: Answers, system: SystemFacts) -> Sequence[Note]:
        return (
            Note(
                "tpm2-strong-login",
                "The machine boots to its login on its own: give every account a strong "
                "password, no automatic login, and no unauthenticated services on the network.",
                "unlock-tpm2-theft",
            ),
            _RECOVERY_KEY_NOTE,
        )


class Tpm2PinUnlock(Tpm2Unlock):
    """The TPM2 releases the key only with the PIN typed at boot; it counts wrong PINs
    and locks itself out (dictionary-attack protection)."""

    name = "tpm2+pin"
    summary = "a TPM2 chip and a PIN typed at boot"
    needs_person = True
    capabilities: ClassVar[Mapping[str, Capability]] = {
        "unattended_unlock": Capability(
            Rating.NONE,
            "Someone types the PIN at every boot.",
            "systemd-cryptenroll(1) --tpm2-with-pin",
            "unlock-tpm2-pin",
        ),
        "whole_machine_theft": Capability(
            Rating.STRONG,
            "The TPM2 releases nothing without the PIN and locks out after a few wrong "
            "ones, so a short PIN holds where a passphrase would need to be long.",
            "systemd-cryptenroll(1); TPM 2.0 Library Part 1, dictionary attack protection",
            "unlock-tpm2-pin",
        ),
        "key_apart": Capability(
            Rating.WEAK,
            "The PIN is in your head but the TPM2 half stays in the machine.",
            "systemd-cryptenroll(1)",
            "unlock-tpm2-pin",
        ),
        "remote_unlock": Capability(
            Rating.WEAK,
            "systemd-cryptsetup asks for the PIN through systemd's password agents, which a "
            "session in the systemd initrd can answer; not tested here.",
            "systemd-cryptsetup(8); systemd-tty-ask-password-agent(1)",
            "unlock-tpm2-pin",
        ),
        "maturity": _TPM2_MATURITY,
    }

    def enroll_options(self, settings: Settings) -> tuple[str, ...]:
        return (*super().enroll_options(settings), "--tpm2-with-pin=yes")

    def gate(self, answers: Answers, system: SystemFacts) -> str | None:
        if system.tpm2 is False:
            return "this machine has no TPM2 chip"
        return None

    def warnings(self, answers: Answers, system: SystemFacts) -> Sequence[Note]:
        return (
            Note(
                "tpm2-pin-at-terminal",
                "The install asks for the PIN at the terminal (systemd-cryptenroll asks the "
                "disk passphrase first, then the new PIN twice); run it at a keyboard.",
                "unlock-tpm2-pin",
            ),
            Note(
                "tpm2-pin-lockout",
                "Wrong PINs count against the TPM's dictionary-attack lockout, which guards "
                "the whole chip: a few wrong tries lock it for a while, and the recovery key "
                "is then the way in.",
                "unlock-tpm2-pin",
            ),
            _pcr7_note("The PIN is then what protects the key."),
        )

    def mitigations(self, answers: Answers, system: SystemFacts) -> Sequence[Note]:
        return (_RECOVERY_KEY_NOTE,)


class Fido2Unlock(EnrolledUnlock):
    """A FIDO2 security key's hmac-secret derives the key: the token must be plugged in
    (and touched) at boot."""

    name = "fido2"
    summary = "a FIDO2 security key plugged in and touched at boot"
    token_type = "systemd-fido2"  # noqa: S105 - a LUKS2 token type
    crypttab_option = "fido2-device=auto"
    needs_person = True
    capabilities: ClassVar[Mapping[str, Capability]] = {
        "unattended_unlock": Capability(
            Rating.NONE,
            "The token must be plugged in and touched at every boot.",
            "systemd-cryptenroll(1) --fido2-with-user-presence",
            "unlock-fido2",
        ),
        "whole_machine_theft": Capability(
            Rating.STRONG,
            "Without the token (kept apart from the machine) nothing in the machine opens "
            "the disk; the token asks for its own PIN too (--fido2-with-client-pin=yes by "
            "default).",
            "systemd-cryptenroll(1) --fido2-device, --fido2-with-client-pin",
            "unlock-fido2",
        ),
        "key_apart": Capability(
            Rating.STRONG,
            "The token can travel apart from the machine, be left at home or handed over.",
            "systemd-cryptenroll(1)",
            "unlock-fido2",
        ),
        "remote_unlock": Capability(
            Rating.NONE,
            "The token must be touched at the machine; the recovery key is the remote way.",
            "systemd-cryptenroll(1)",
            "unlock-fido2",
        ),
        "maturity": Capability(
            Rating.GOOD,
            "systemd-cryptenroll's FIDO2 tokens since systemd 248 (2021); disko enrolls "
            "them too (enrollFido2).",
            "systemd-cryptenroll(1); disko lib/types/luks.nix",
            "unlock-fido2",
        ),
    }

    def enroll_options(self, settings: Settings) -> tuple[str, ...]:
        return ("--fido2-device=auto",)

    def nix_fragments(self, layout: Layout) -> Sequence[NixFragment]:
        # The initrd's FIDO2 support: the fido_id udev rule, systemd's FIDO2 token
        # plugin and libfido2 (nixpkgs nixos/modules/system/boot/systemd/fido2.nix; on
        # by default when systemd is built with FIDO2, set so the configuration says it).
        return (NixFragment("Unlocking", {("boot", "initrd", "systemd", "fido2", "enable"): True}),)

    def gate(self, answers: Answers, system: SystemFacts) -> str | None:
        if answers.get("hardware_token") != "yes":
            return "needs a FIDO2 security key (answer hardware_token: yes)"
        return None

    def warnings(self, answers: Answers, system: SystemFacts) -> Sequence[Note]:
        return (
            Note(
                "fido2-keep-apart",
                "Keep the token apart from the machine (not in the laptop bag): with both "
                "taken together, its PIN is all that stands between a thief and the disk. "
                "The install asks for the disk passphrase, the token's PIN and a touch at "
                "the terminal.",
                "unlock-fido2",
            ),
        )

    def mitigations(self, answers: Answers, system: SystemFacts) -> Sequence[Note]:
        return (_RECOVERY_KEY_NOTE,)


@hookimpl
def advisor_unlock_methods() -> Sequence[UnlockMethod]:
    return (PassphraseUnlock(), Tpm2Unlock(), Tpm2PinUnlock(), Fido2Unlock())
