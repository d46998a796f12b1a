"""Built-in backend ``luks``: a ZFS pool on a LUKS2 container.

Everything ZFS writes, including its labels and metadata, is inside the ciphertext.

:class:`LuksBackend` is also a base for variants (``luks-detached`` is one, and
docs/plugins.md shows how to write another): each part of the design is a method of its
own, so a subclass replaces or extends one part and keeps the rest.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
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
    RekeySpec,
    Step,
    SystemFacts,
    hookimpl,
)


class LuksBackend(Backend):
    """ZFS on LUKS2. The methods a variant overrides or calls:

    - ``luks_device(layout, member)``: the ``boot.initrd.luks.devices.<name>`` entry of
      one disk (add crypttab options, a header, a key file to the dict it returns);
    - ``format_options``, ``open_options``, ``header_options``: the cryptsetup options
      of the steps; ``format_step``, ``open_step``: the steps themselves, which
      ``provision_steps`` returns in order for each disk (put a step of yours between them);
    - ``dm_crypt_warnings``, ``on_disk_header_warnings``: the two halves of
      ``warnings`` (keep the first, replace the second when the header is elsewhere);
    - ``rekey_header_options(member)``: where ``advisor rekey`` finds a disk's header
      (``--header PATH`` when it is detached), and ``rekey_kdf_options``.
    """

    name = "luks"
    summary = "ZFS on LUKS2: the whole pool, metadata included, inside one dm-crypt container"
    api_version = 3
    installable = True
    partition_type = "8309"  # Linux LUKS: the header says as much anyway
    # systemd-cryptenroll enrolls TPM2 and FIDO2 tokens into the LUKS2 header.
    unlock_carriers = frozenset({"luks2-token"})
    capabilities: ClassVar[Mapping[str, Capability]] = {
        "metadata": Capability(
            Rating.STRONG,
            "Pool and dataset names, sizes, snapshot times and the host name in the vdev "
            "labels are all inside the ciphertext.",
            "OpenZFS docs, Debian Root on ZFS (Encryption); Ars Technica 2021",
            "luks-hides-zfs-metadata",
        ),
        "untrusted_backup": Capability(
            Rating.WEAK,
            "Encryption sits below ZFS, so `zfs send` streams are plaintext; an untrusted "
            "target needs another layer (age-encrypted streams, restic, borg).",
            "zfs-send(8); cryptsetup FAQ 6.7",
            "luks-backups-plaintext",
        ),
        "per_dataset_keys": Capability(
            Rating.NONE,
            "One volume key per LUKS device: every dataset shares it.",
            "cryptsetup(8)",
            "luks-one-key-per-device",
        ),
        "integrity": Capability(
            Rating.WEAK,
            "AES-XTS is not authenticated; ZFS checksums catch corruption but are no MAC, "
            "and dm-integrity is still experimental and slow.",
            "cryptsetup(8) Authenticated disk encryption; Broz et al. 2018",
            "luks-no-authentication",
        ),
        "deniability": Capability(
            Rating.NONE,
            "The LUKS2 header (magic, UUID, cipher, PBKDF) is plain to see; its spec says "
            "not to use LUKS2 for deniability.",
            "LUKS2 on-disk format specification, section 1.2",
            "luks-header-visible",
        ),
        "maturity": Capability(
            Rating.STRONG,
            "dm-crypt and cryptsetup have two decades of production use; ZFS above it runs "
            "only its core code paths.",
            "cryptsetup history; LUKS2 default since cryptsetup 2.1.0 (2019)",
            "luks-maturity",
        ),
        "recoverability": Capability(
            Rating.GOOD,
            "A damaged header loses everything, but a `luksHeaderBackup` kept elsewhere covers it.",
            "cryptsetup(8) WARNINGS; cryptsetup-luksHeaderBackup(8)",
            "luks-header-backup",
        ),
        "remote_unlock": Capability(
            Rating.STRONG,
            "The NixOS initrd SSH server unlocks LUKS before the pool is imported.",
            "nixpkgs initrd-ssh.nix, luksroot.nix",
            "remote-unlock",
        ),
        "unattended_unlock": Capability(
            Rating.STRONG,
            "TPM2, FIDO2 and PKCS#11 via systemd-cryptenroll, or Clevis/Tang network-bound unlock.",
            "systemd-cryptenroll(1); Clevis",
            "unattended-unlock",
        ),
        "trim": Capability(
            Rating.WEAK,
            "`allowDiscards` shows which blocks are in use (and so the filesystem's shape).",
            "dm-crypt.rst (allow_discards); nixpkgs luksroot.nix",
            "trim-leaks-usage",
        ),
    }

    def warnings(self, answers: Answers, system: SystemFacts) -> Sequence[Note]:
        return [*self.dm_crypt_warnings(answers), *self.on_disk_header_warnings(answers)]

    def dm_crypt_warnings(self, answers: Answers) -> list[Note]:
        """What every ZFS-on-dm-crypt design shares: plaintext sends, no authentication.

        A variant that keeps these and replaces the rest calls it from its ``warnings``.
        """
        notes = []
        if answers.get("offsite_backups") == "untrusted":
            notes.append(
                Note(
                    "luks-plaintext-send",
                    "`zfs send` from a pool on LUKS is plaintext: encrypt the stream (age) or "
                    "use an encrypting backup tool before it reaches the untrusted host.",
                    "luks-backups-plaintext",
                )
            )
        if answers.get("integrity") == "yes":
            notes.append(
                Note(
                    "luks-unauthenticated",
                    "LUKS with AES-XTS does not authenticate data: a careful attacker can "
                    "alter or replay sectors; ZFS checksums only catch random damage.",
                    "luks-no-authentication",
                )
            )
        return notes

    def on_disk_header_warnings(self, answers: Answers) -> list[Note]:
        """What a header at the start of the partition adds: it is plain to see, and
        discards show which blocks are in use."""
        notes = []
        if answers.get("ssd_trim") == "yes":
            notes.append(
                Note(
                    "luks-discards",
                    "With TRIM, `allowDiscards` lets someone holding the disk see which blocks "
                    "are used. Leave it off if that matters more than SSD speed.",
                    "trim-leaks-usage",
                )
            )
        if answers.get("deniability") == "yes":
            notes.append(
                Note(
                    "luks-header-visible",
                    "The LUKS header at the start of the partition shows that the disk is "
                    "encrypted.",
                    "luks-header-visible",
                )
            )
        return notes

    def mitigations(self, answers: Answers, system: SystemFacts) -> Sequence[Note]:
        return (
            Note(
                "luks-header-backup",
                "Back up the LUKS header (`cryptsetup luksHeaderBackup`) to a medium off this "
                "disk, and take a new backup after changing keyslots.",
                "luks-header-backup",
            ),
        )

    def luks_device(self, layout: Layout, member: LayoutMember) -> dict[str, object]:
        """The ``boot.initrd.luks.devices.<name>`` entry that opens ``member``'s container."""
        device: dict[str, object] = {"device": member.data_device}
        if layout.settings.trim:
            # Only when TRIM was accepted: discards show which blocks are in use.
            device["allowDiscards"] = True
        if layout.settings.ssd:
            device["bypassWorkqueues"] = True
        options = list(layout.unlock_options)  # the unlock method's: tpm2-device=auto
        if len(layout.members) > 1:
            # A dead disk must not stop the boot (the pool imports degraded): nofail
            # makes each container wanted, not required, by cryptsetup.target
            # (crypttab(5); nixpkgs issue 74281), and no longer ordered before it, so
            # the import waits for each unlock by name (nix_fragments).
            options.append("nofail")
        if options:
            # Read by the systemd initrd only (luksroot.nix, crypttabExtraOpts).
            device["crypttabExtraOpts"] = options
        return device

    def nix_fragments(self, layout: Layout) -> Sequence[NixFragment]:
        """Each disk's container (:meth:`luks_device`), the pool imported from
        /dev/mapper, and under the systemd initrd the pool's import ordered after the
        unlock. One passphrase opens them all: the initrd asks once and tries it on the
        next containers (docs/configuration.md, "One passphrase for every disk")."""
        check_initrd(layout.settings.initrd, len(layout.members))
        devices = ("boot", "initrd", "luks", "devices")
        settings: dict[tuple[str, ...], object] = {
            (*devices, member.luks_name): self.luks_device(layout, member)
            for member in layout.members
        }
        # The pool's vdevs are the opened containers, whatever the disks' by-id links.
        settings[("boot", "zfs", "devNodes")] = "/dev/mapper"
        if layout.settings.initrd == "systemd":
            # The import polls for only a short while; it must wait for the unlock
            # (nixpkgs issues 250003, 527478).
            import_unit = (
                "boot",
                "initrd",
                "systemd",
                "services",
                f"zfs-import-{layout.settings.pool}",
            )
            after = ["cryptsetup.target"]
            if len(layout.members) > 1:
                # Each container is nofail (luks_device): wait for each unlock by name.
                after += [cryptsetup_unit(member.luks_name) for member in layout.members]
            settings[(*import_unit, "after")] = after
            settings[(*import_unit, "wants")] = ["cryptsetup.target"]
        return (NixFragment("Encryption", settings),)

    # Provisioning: each disk's data partition becomes a container of its own, formatted
    # and opened with the one passphrase.

    def format_options(self, spec: InstallSpec) -> tuple[str, ...]:
        """luksFormat options: LUKS2, Argon2id defaults, 4096-byte sectors (ashift=12)."""
        options: tuple[str, ...] = ("--type", "luks2", "--batch-mode", "--sector-size", "4096")
        if spec.fast_kdf:  # tests only: a real install keeps cryptsetup's Argon2id defaults
            options += ("--pbkdf", "pbkdf2", "--pbkdf-force-iterations", "1000")
        return options

    def open_options(self, spec: InstallSpec) -> tuple[str, ...]:
        """cryptsetup open options: discards only when TRIM was chosen."""
        return ("--allow-discards",) if spec.settings.trim else ()

    def header_options(self, spec: InstallSpec, member: Member) -> tuple[str, ...]:
        """``--header PATH`` when the header lives off the data partition; here it does not."""
        return ()

    def format_step(self, spec: InstallSpec, member: Member) -> Step:
        """``luks-format``: the passphrase on stdin, destructive, probed with isLuks."""
        header, data = self.header_options(spec, member), member.data_partuuid_device
        where = f" (header on {member.header})" if header else ""
        return Step(
            "luks-format",
            f"Format the data partition of {member.disk_id} as LUKS2{where}",
            ("cryptsetup", "luksFormat", *self.format_options(spec), *header, "--key-file=-", data),
            secret="passphrase",
            probe=("cryptsetup", "isLuks", *header, data),
            destructive=True,
        )

    def open_step(self, spec: InstallSpec, member: Member) -> Step:
        """``luks-open``: the container as /dev/mapper/<luks_name>, restored on resume."""
        header, data = self.header_options(spec, member), member.data_partuuid_device
        argv = (
            "cryptsetup",
            "open",
            *self.open_options(spec),
            *header,
            "--key-file=-",
            data,
            member.luks_name,
        )
        return Step(
            "luks-open",
            f"Open the LUKS container as /dev/mapper/{member.luks_name}",
            argv,
            secret="passphrase",
            probe=("cryptsetup", "status", member.luks_name),
            restore=(argv,),  # a reboot closes it
        )

    def provision_steps(self, spec: InstallSpec, member: Member) -> Sequence[Step]:
        check_initrd(spec.settings.initrd, len(spec.members))
        return (self.format_step(spec, member), self.open_step(spec, member))

    def pool_device(self, spec: InstallSpec, member: Member) -> str:
        return f"/dev/mapper/{member.luks_name}"

    # The same container for disko (advisor export disko, docs/disko.md): disko's luks
    # type runs `cryptsetup -q luksFormat DEVICE <extraFormatArgs> --key-file <passwordFile>`
    # and `cryptsetup open DEVICE NAME [--allow-discards] <extraOpenArgs> ... --persistent`
    # (disko lib/types/luks.nix), on the partition by its partition UUID as here.

    def disko_content(
        self, spec: InstallSpec, member: Member, content: Mapping[str, object], key_file: str
    ) -> Mapping[str, object]:
        """``member``'s container as disko's ``luks`` type, around ``content``: the same
        name and luksFormat options as :meth:`format_step`, the open options of
        :meth:`open_step` (``--allow-discards`` as disko's ``settings.allowDiscards``),
        the passphrase from ``key_file``. Refused for a variant whose install does more
        than format and open each disk, or keeps the header elsewhere: disko would leave
        that out."""
        ids = tuple(step.id for step in self.provision_steps(spec, member))
        if ids != ("luks-format", "luks-open"):
            raise PluginRefusal(
                f"its install prepares each disk with {', '.join(ids)}, and disko's luks "
                "type only formats and opens the container (luks-format, luks-open)"
            )
        if self.header_options(spec, member):
            raise PluginRefusal(
                "its header is not on the data partition, and disko has no detached headers "
                "(disko issue 962)"
            )
        open_options = self.open_options(spec)
        settings: dict[str, object] = {}
        if "--allow-discards" in open_options:
            settings["allowDiscards"] = True
        return {
            "type": "luks",
            "name": member.luks_name,
            "passwordFile": key_file,
            "settings": settings,
            "extraFormatArgs": list(self.format_options(spec)),
            "extraOpenArgs": [option for option in open_options if option != "--allow-discards"],
            "content": dict(content),
        }

    # Changing the passphrase (advisor rekey). cryptsetup reads each passphrase as one
    # line of stdin when it has no --key-file and no terminal (cryptsetup(8), "NOTES ON
    # PASSPHRASE PROCESSING"): "old\nnew\n" answers luksAddKey's two questions, and the
    # passphrase is the same bytes luksFormat --key-file=- took without a newline.

    def rekey_header_options(self, member: LayoutMember) -> tuple[str, ...]:
        """``--header PATH`` when ``member``'s header is off its data partition; here it
        is not."""
        return ()

    def rekey_kdf_options(self, spec: RekeySpec) -> tuple[str, ...]:
        """luksAddKey's key derivation: cryptsetup's Argon2id defaults; cheap for tests."""
        if spec.fast_kdf:  # tests only, as for the install's luksFormat
            return ("--pbkdf", "pbkdf2", "--pbkdf-force-iterations", "1000")
        return ()

    def rekey_steps(self, spec: RekeySpec) -> Sequence[Step]:
        """Every disk: check the old passphrase, add the new one and test it (and the
        recovery key), and only once every disk has it remove the old one from each;
        then take each header backup anew and check that the old passphrase is gone.

        The order keeps one passphrase opening every disk at every moment: a crash
        before the removals leaves both working on all of them, and one during them
        leaves the new one working on all of them (docs/rekey.md)."""
        layout = spec.layout
        members = layout.members

        def each(make: Callable[[LayoutMember], list[Step]]) -> list[Step]:
            """``make``'s steps for every disk, disk by disk."""
            steps: list[Step] = []
            for member in members:
                made = make(member)
                if len(members) > 1:  # the disk's tag, as the install names its steps
                    made = [replace(step, id=f"disk{member.number}-{step.id}") for step in made]
                steps += made
            return steps

        steps = each(
            lambda m: [self._test_key(m, "passphrase", "test-old", "the current passphrase")]
        )
        steps += each(
            lambda m: [
                self._add_key(
                    spec,
                    m,
                    "old-and-new-passphrase",
                    "new-passphrase",
                    "add-new",
                    "the new passphrase",
                ),
                self._test_key(m, "new-passphrase", "test-new", "the new passphrase"),
            ]
        )
        if spec.recovery_key:
            steps += each(
                lambda m: [
                    self._add_key(
                        spec,
                        m,
                        "new-passphrase-and-recovery-key",
                        "recovery-key",
                        "add-recovery",
                        "the recovery key",
                    ),
                    self._test_key(m, "recovery-key", "test-recovery", "the recovery key"),
                ]
            )
        steps += each(lambda m: [self._remove_old(m)])
        steps += each(lambda m: [self._refresh_backup(m)] if m.header_backup else [])
        steps += each(lambda m: [self._old_gone(m)])
        return steps

    def _opens(self, member: LayoutMember) -> tuple[str, ...]:
        """The command that tests the passphrase on stdin (a line) against ``member``."""
        header = self.rekey_header_options(member)
        return ("cryptsetup", "open", "--test-passphrase", *header, member.data_device)

    def _test_key(self, member: LayoutMember, secret: str, step_id: str, what: str) -> Step:
        return Step(
            step_id,
            f"Check that {what} opens {member.data_device}",
            self._opens(member),
            secret=secret,
            secret_newline=True,
        )

    def _add_key(
        self,
        spec: RekeySpec,
        member: LayoutMember,
        secret: str,
        added: str,
        step_id: str,
        what: str,
    ) -> Step:
        header = self.rekey_header_options(member)
        return Step(
            step_id,
            f"Add {what} to a free key slot of {member.data_device}",
            (
                "cryptsetup",
                "luksAddKey",
                *self.rekey_kdf_options(spec),
                *header,
                member.data_device,
            ),
            secret=secret,
            secret_newline=True,
            # Done when it opens: a resume after a crash does not add it twice.
            probe=self._opens(member),
            probe_secret=added,
        )

    def _remove_old(self, member: LayoutMember) -> Step:
        header = self.rekey_header_options(member)
        return Step(
            "remove-old",
            f"Remove the old passphrase's key slot from {member.data_device}",
            ("cryptsetup", "luksRemoveKey", *header, member.data_device),
            secret="passphrase",
            secret_newline=True,
            probe=self._refused(member),
            probe_secret="passphrase",
        )

    def _refused(self, member: LayoutMember) -> tuple[str, ...]:
        """Exits 0 when the passphrase on stdin no longer opens ``member``: cryptsetup
        exits 2 for "No key available with this passphrase" (cryptsetup(8) RETURN
        CODES), and any other failure (a missing device) is no proof."""
        return (*VERIFY, "refused", "--exit", "2", "--", *self._opens(member))

    def _old_gone(self, member: LayoutMember) -> Step:
        return Step(
            "check-old-gone",
            f"Check that the old passphrase no longer opens {member.data_device}",
            self._refused(member),
            secret="passphrase",
            secret_newline=True,
        )

    def _refresh_backup(self, member: LayoutMember) -> Step:
        """Take the header backup anew (the old one still opens with the old
        passphrase), check that it opens the data with the new one, and put it in the
        old one's place."""
        header = member.header or member.data_device
        backup = member.header_backup or ""
        check = (header, backup, member.data_device)
        return Step(
            "refresh-header-backup",
            f"Take the header backup {backup} anew and check it opens with the new passphrase",
            (*VERIFY, "refresh-header-backup", *check),
            secret="new-passphrase",
            probe=(*VERIFY, "header-backup", *check),
            probe_secret="new-passphrase",
        )


#: advisor's own checks, run as steps (the interpreter that runs advisor).
VERIFY = (sys.executable, "-m", "advisor.install.verify")


def check_initrd(initrd: str, disks: int) -> None:
    """Refuse the scripted initrd for a pool of several containers: it stops the boot
    when one container's disk is missing (luksroot.nix waits 10 s for the device, then
    fails stage 1), so a dead disk of a mirror would keep the machine from booting.
    The systemd initrd goes on without it (``nofail``)."""
    if initrd == "scripted" and disks > 1:
        raise PluginRefusal(
            "--initrd scripted: the scripted initrd stops the boot when the disk of one "
            "LUKS container is missing, so a pool of several disks would not boot with one "
            "dead; use --initrd systemd (the default)"
        )


def cryptsetup_unit(name: str) -> str:
    """The systemd unit that opens the container ``name`` (a checked mapper name:
    letters, digits and ``_.-``, starting with a letter or digit), its instance escaped
    as systemd-escape(1) does: only ``-`` needs it."""
    escaped = name.replace("-", "\\x2d")
    return f"systemd-cryptsetup@{escaped}.service"


@hookimpl
def advisor_backends() -> Sequence[Backend]:
    return (LuksBackend(),)
