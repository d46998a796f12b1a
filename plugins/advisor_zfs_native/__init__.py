"""Built-in backend ``zfs-native``: OpenZFS native encryption (AES-256-GCM) on the datasets.

The pool structure stays readable without the key; data, attributes and directory listings
are encrypted and authenticated per dataset.
"""

from __future__ import annotations

import posixpath
import sys
from collections.abc import Mapping, Sequence
from typing import ClassVar

from advisor.plugin import (
    Answers,
    Backend,
    Capability,
    InstallSpec,
    Layout,
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


class ZfsNativeBackend(Backend):
    name = "zfs-native"
    summary = "OpenZFS native encryption: per-dataset keys, authenticated, raw-send backups"
    api_version = 3
    installable = True
    # The pool's datasets are encrypted by ZFS (pool_encryption): raw sends carry
    # ciphertext, so backups may go to a host that never holds the key.
    native_encryption = True
    partition_type = "BF00"  # Solaris/ZFS: the pool labels say as much anyway
    capabilities: ClassVar[Mapping[str, Capability]] = {
        "metadata": Capability(
            Rating.NONE,
            "Dataset and snapshot names, hierarchy, properties, sizes, creation times, the "
            "pool name and the host name stay readable without the key.",
            "zfs-load-key(8) Encryption; OpenZFS docs Encryption; spa_config.c",
            "zfs-native-metadata-plaintext",
        ),
        "untrusted_backup": Capability(
            Rating.STRONG,
            "`zfs send -w` sends ciphertext: the target stores, scrubs and resilvers it "
            "without ever holding the key.",
            "zfs-send(8) --raw; OpenZFS PR #5769",
            "zfs-native-raw-send",
        ),
        "per_dataset_keys": Capability(
            Rating.STRONG,
            "Any dataset can be its own encryption root with its own key; datasets outside "
            "an encrypted tree can stay unencrypted.",
            "zfs-load-key(8); zfsprops(7) keyformat",
            "zfs-native-encryption-roots",
        ),
        "integrity": Capability(
            Rating.STRONG,
            "AES-GCM gives every block a MAC; readable metadata is authenticated with HMAC-SHA512.",
            "zfs-load-key(8); zio_crypt.c",
            "zfs-native-aead",
        ),
        "deniability": Capability(
            Rating.NONE,
            "Pool labels, names and properties are plaintext: the disk is plainly a ZFS pool.",
            "zfs-load-key(8); spa_config.c",
            "zfs-native-metadata-plaintext",
        ),
        "maturity": Capability(
            Rating.WEAK,
            "Shipped in 2019; snapshot/send corruption with encryption was open from 2021 "
            "to 2025 (#12014, #11688) and raw-send reports continue in 2026.",
            "openzfs/zfs #12014, #11688, PR #17340, #18739",
            "zfs-native-bug-history",
        ),
        "recoverability": Capability(
            Rating.GOOD,
            "The wrapped key lives in the pool, but `change-key` has sharp edges with "
            "raw-received children.",
            "zfs-load-key(8) change-key; Bowman 2025 post-mortem",
            "zfs-native-change-key",
        ),
        "remote_unlock": Capability(
            Rating.STRONG,
            "The NixOS initrd SSH server can run `zfs load-key` before the root is mounted.",
            "nixpkgs zfs.nix requestEncryptionCredentials; initrd-ssh.nix",
            "remote-unlock",
        ),
        "unattended_unlock": Capability(
            Rating.GOOD,
            "`keylocation=file://` or `https://` (OpenZFS 2.2+); no built-in TPM2 binding.",
            "zfsprops(7) keylocation; commit 37086897b0",
            "unattended-unlock",
        ),
        "trim": Capability(
            Rating.STRONG,
            "Block layout and sizes are already plaintext, so TRIM reveals little more.",
            "OpenZFS docs Encryption (indirect blocks are cleartext)",
            "trim-leaks-usage",
        ),
    }

    def gate(self, answers: Answers, system: SystemFacts) -> str | None:
        if answers.get("metadata_exposure") == "severe":
            return (
                "dataset names, sizes and snapshot times stay readable without the key, and "
                "you said their exposure would be severe; the OpenZFS docs say native "
                "encryption is not the right layer then"
            )
        return None

    def warnings(self, answers: Answers, system: SystemFacts) -> Sequence[Note]:
        notes = [
            Note(
                "zfs-native-change-key",
                "`zfs change-key` re-wraps the key but keeps the master key: after a key "
                "compromise, move the data to new datasets. After a change-key, send a new "
                "snapshot of the encryption root before raw incrementals of its children.",
                "zfs-native-change-key",
            ),
            Note(
                "zfs-native-swap",
                "No swap on a zvol and no hibernation: use a separate swap partition encrypted "
                "with a random key at each boot.",
                "zfs-native-swap",
            ),
        ]
        if answers.get("metadata_exposure") == "some":
            notes.append(
                Note(
                    "zfs-native-metadata",
                    "Anyone holding the disk can list datasets, their sizes and snapshot times.",
                    "zfs-native-metadata-plaintext",
                )
            )
        if answers.get("offsite_backups") in ("trusted", "untrusted"):
            notes.append(
                Note(
                    "zfs-native-raw-only",
                    "Send with `zfs send -w` only, starting with a full raw send: mixing in a "
                    "non-raw send breaks raw incrementals, and non-raw sends of encrypted "
                    "datasets are where the corruption reports cluster. Run OpenZFS 2.2.8, "
                    "2.3.3 or later.",
                    "zfs-native-bug-history",
                )
            )
        if answers.get("unlock") == "unattended" or answers.get("hardware_token") == "yes":
            notes.append(
                Note(
                    "zfs-native-no-hardware-unlock",
                    "ZFS native encryption has no hardware unlock: advisor cannot give it a "
                    "TPM2 or a FIDO2 token, only the passphrase. It keeps one wrapping key per "
                    "encryption root, with no key slots for a TPM or a token beside the "
                    "passphrase (OpenZFS issues 6824, 14436). A TPM can hold a native key "
                    "only through tzpfms (a NixOS module since nixpkgs PR 517991) or "
                    "systemd-creds, which zfs-mount-generator does not read yet (OpenZFS "
                    "issue 15186); neither could be proven in this project's VM. For a TPM2 "
                    "or a token, choose luks.",
                    "zfs-native-no-hardware-unlock",
                )
            )
        if system.aes_instructions is False:
            notes.append(
                Note(
                    "zfs-native-no-aes",
                    "This CPU has no AES instructions and native encryption only offers AES "
                    "(CCM/GCM): expect slow I/O.",
                    "aes-instructions",
                )
            )
        return notes

    def mitigations(self, answers: Answers, system: SystemFacts) -> Sequence[Note]:
        if answers.get("metadata_exposure") == "none":
            return ()
        return (
            Note(
                "generic-dataset-names",
                "Give datasets generic names (`rpool/safe/vol-a`, not the client or project), "
                "since names are never encrypted.",
                "zfs-native-mitigations",
            ),
            Note(
                "automated-snapshots",
                "Take snapshots on a fixed automatic schedule, so their times say nothing "
                "about when you were active.",
                "zfs-native-mitigations",
            ),
            Note(
                "padding",
                "Pad datasets with dummy data if their sizes could give something away; if "
                "size analysis is a real threat, use LUKS instead.",
                "zfs-native-mitigations",
            ),
        )

    def nix_fragments(self, layout: Layout) -> Sequence[NixFragment]:
        return (
            NixFragment(
                "Encryption",
                {
                    # The pool's root dataset is the encryption root; naming it (rather
                    # than true) keeps a missing key of another dataset from blocking
                    # boot (nixpkgs issue 434524).
                    ("boot", "zfs", "requestEncryptionCredentials"): [layout.settings.pool],
                    # The folder of the paths the pool's labels record (configured_device):
                    # by id for disks with a serial; a virtio disk without one has no
                    # by-id link, and an import from there would hang at boot.
                    ("boot", "zfs", "devNodes"): posixpath.dirname(layout.members[0].data_device),
                },
            ),
        )

    def pool_device(self, spec: InstallSpec, member: Member) -> str:
        # The path the pool's labels record is the one NixOS imports from (devNodes), a
        # single folder: by id when every disk has one, else by partition UUID.
        if all(other.data_device.startswith("/dev/disk/by-id/") for other in spec.members):
            return member.data_device
        return member.data_partuuid_device

    def configured_device(self, spec: InstallSpec, member: Member) -> str:
        # No container: the configuration imports the pool from where it was created.
        return self.pool_device(spec, member)

    def pool_encryption(self, spec: InstallSpec) -> Mapping[str, str]:
        options = {
            "encryption": "aes-256-gcm",
            "keyformat": "passphrase",
            "keylocation": "prompt",
        }
        if spec.fast_kdf:  # tests only: the minimum; real installs keep the default
            options["pbkdf2iters"] = "100000"
        return options

    def rekey_steps(self, spec: RekeySpec) -> Sequence[Step]:
        """``zfs change-key`` on the encryption root (the pool's root dataset, which every
        dataset of the layout inherits its key from): the master key stays, wrapped anew
        with the new passphrase (zfs-change-key(8); docs/rekey.md says what that means
        for old raw backups). The change is one transaction: the old passphrase works
        until it commits, the new one after. The key must be loaded (it is, on the
        running system and after the install); ``zfs load-key -n`` checks a passphrase
        without loading anything, even while the key is loaded (zfs-load-key(8))."""
        if spec.recovery_key:
            raise PluginRefusal(
                "--recovery-key: a natively encrypted pool has one wrapping key per "
                "encryption root, with no second key slot for a recovery key; keep a copy "
                "of the passphrase in a safe place instead"
            )
        pool = spec.layout.settings.pool
        check = ("zfs", "load-key", "-n", pool)
        options = ["-o", "keyformat=passphrase", "-o", "keylocation=prompt"]
        if spec.fast_kdf:  # tests only: the minimum; a real change keeps the default
            options += ["-o", "pbkdf2iters=100000"]
        return (
            Step(
                "test-old",
                f"Check that the current passphrase opens {pool}",
                check,
                secret="passphrase",
                secret_newline=True,
            ),
            Step(
                "change-key",
                f"Wrap the master key of {pool} with the new passphrase (zfs change-key)",
                ("zfs", "change-key", *options, pool),
                secret="new-passphrase",
                secret_newline=True,
                # Done when the new passphrase opens it: a resume does not change it twice.
                probe=check,
                probe_secret="new-passphrase",
            ),
            Step(
                "test-new",
                f"Check that the new passphrase opens {pool}",
                check,
                secret="new-passphrase",
                secret_newline=True,
            ),
            Step(
                "check-old-gone",
                f"Check that the old passphrase no longer opens {pool}",
                # libzfs says "Incorrect key provided for '<dataset>'." for a wrong key.
                (*VERIFY, "refused", "--message", "Incorrect key", "--", *check),
                secret="passphrase",
                secret_newline=True,
            ),
        )


#: advisor's own checks, run as steps (the interpreter that runs advisor).
VERIFY = (sys.executable, "-m", "advisor.install.verify")


@hookimpl
def advisor_backends() -> Sequence[Backend]:
    return (ZfsNativeBackend(),)
