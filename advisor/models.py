"""The vocabulary shared by the core and plugins: axes, questions, capabilities, backends.

Everything here is plain data (frozen dataclasses) except :class:`Backend`, which plugins
subclass. Nothing in this module touches the machine.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from typing import ClassVar

from advisor.datasets import mounted_at
from advisor.errors import PluginRefusal

#: The version of the plugin contract this advisor implements. A backend declares the
#: version it was written for in ``Backend.api_version`` (a literal); the core refuses a
#: backend whose version it does not support. Version 2 moved the layout's settings into
#: ``Layout.settings`` and ``InstallSpec.settings`` and made a backend say it installs
#: (``Backend.installable``) instead of the core guessing it from the methods it overrides.
#: Version 3 made a pool span several disks: ``provision_steps``, ``pool_device`` and
#: ``configured_device`` take the :class:`Member` they prepare, ``Layout.members`` replaced
#: ``Layout.data_device`` and ``esp_device``, and ``Settings.header`` became one header
#: per disk.
PLUGIN_API_VERSION = 3
SUPPORTED_PLUGIN_API_VERSIONS = frozenset({3})

#: A completed (or partial) questionnaire: question id to chosen value.
Answers = Mapping[str, str]


class Rating(IntEnum):
    """How well a backend serves a threat axis."""

    NONE = 0  # does not serve it at all
    WEAK = 1  # only with extra layers, or partially
    GOOD = 2  # serves it, with caveats
    STRONG = 3  # serves it by design


@dataclass(frozen=True)
class Axis:
    """A dimension of the threat model that answers weight and backends are rated on.

    ``id`` is a stable snake_case identifier; ``title`` is a short label for tables.
    ``baseline`` is the weight the axis carries before any answer (what every user wants,
    such as not losing data).
    """

    id: str
    title: str
    description: str
    baseline: float = 0.0


@dataclass(frozen=True)
class Capability:
    """How a backend serves one axis, and why.

    ``why`` is one line; ``source`` names where the fact comes from (a man page, a spec,
    an issue); ``fact`` is the anchor of the fact in ``docs/threat-model.md`` (the
    built-in backends' facts); ``url`` is a link to where the fact is explained, for a
    plugin's own sources. The report shows the link, or else the anchor.
    """

    rating: Rating
    why: str
    source: str
    fact: str = ""
    url: str = ""

    def __post_init__(self) -> None:
        # The docs number the ratings 0 to 3: a plugin may write the number.
        rating: object = self.rating
        if isinstance(rating, Rating):
            return
        if isinstance(rating, bool) or not isinstance(rating, int) or not 0 <= rating <= 3:
            raise ValueError(
                f"Capability rating must be Rating.NONE (0) to Rating.STRONG (3), not {rating!r}"
            )
        object.__setattr__(self, "rating", Rating(rating))


@dataclass(frozen=True)
class Choice:
    """One allowed answer to a question and the axis weights it adds."""

    value: str
    label: str
    weights: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Question:
    """A question of the threat-model questionnaire.

    ``id`` is the stable key used in answers files. ``default`` is only a suggestion for
    the interactive prompt: a non-interactive run never fills an answer in by itself.
    An ``optional`` question is still asked at a terminal, but an answers file may leave
    it out, and then it adds no weight. Plugins should make their questions optional, so
    that installing a plugin does not invalidate existing answers files.
    """

    id: str
    text: str
    help: str
    choices: tuple[Choice, ...]
    default: str | None = None
    optional: bool = False

    @property
    def values(self) -> tuple[str, ...]:
        """The allowed answer values, in the order they are offered."""
        return tuple(choice.value for choice in self.choices)

    def choice(self, value: str) -> Choice | None:
        """The choice with this value, or ``None`` if the value is not allowed."""
        for choice in self.choices:
            if choice.value == value:
                return choice
        return None


@dataclass(frozen=True)
class SystemFacts:
    """Facts about the machine that are probed rather than asked. ``None`` means unknown."""

    aes_instructions: bool | None = None
    memory_bytes: int | None = None
    cpu_count: int | None = None
    solid_state_disk: bool | None = None
    efi_firmware: bool | None = None
    #: The machine has a TPM 2.0 chip (``/sys/class/tpm/tpm0``, major version 2).
    tpm2: bool | None = None
    #: The machine's whole disks that a pool could be built on (not removable, not
    #: virtual), each by the id ``advisor disks`` gives it, with its size in bytes; empty
    #: when none are known.
    disk_sizes: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Note:
    """A warning or a mitigation attached to an assessment.

    ``id`` is stable so scripts can match on it; ``fact`` anchors it in the threat-model
    document where one applies; ``url`` links a plugin's own source for it.
    """

    id: str
    text: str
    fact: str = ""
    url: str = ""


class Backend:
    """An encryption design the advisor can recommend, configure and install.

    Subclass it in a plugin and return instances from the ``advisor_backends`` hook.
    Class attributes every backend must set:

    ``name``
        kebab-case identifier, used on the command line (``--backend NAME``).
    ``summary``
        one line saying what the design is.
    ``api_version``
        the version of the plugin contract the backend was written for, as a literal
        (``api_version = 3``, not :data:`PLUGIN_API_VERSION`, which follows the installed
        core). It has no default on purpose: a backend written for an older contract must
        not pass as a newer one.
    ``capabilities``
        for every axis the backend has an opinion on, a :class:`Capability`. Axes it
        leaves out count as :attr:`Rating.NONE`.

    Attributes with a default, which a backend sets to say what it needs:

    ``installable``
        ``True`` when the backend encrypts an install: its ``provision_steps`` add steps
        before the pool (a container), or its ``pool_encryption`` encrypts the pool.
        ``False`` (the default): it takes part in assessments only, and ``plan``,
        ``install`` and ``config`` refuse it.
    ``partition_type``
        the GPT type code of the data partition (sgdisk); ``8300`` says only "Linux data".
    ``detached_header``
        ``True`` when the design keeps its LUKS header off the disk: ``install`` and
        ``plan`` then require ``--header`` and ``--header-backup``, ``config`` requires
        ``--header`` (``settings.header``), and every other backend refuses them.
    ``native_encryption``
        ``True`` when ZFS itself encrypts the pool's datasets (its ``pool_encryption``
        sets ``encryption``): ``zfs send -w`` then sends ciphertext, so a backup may go
        to a host that must never read it (:mod:`advisor.backups`). ``False`` (the
        default): ZFS sees plaintext (a LUKS container below it), a send is plaintext,
        and a backup to an untrusted target is refused. ``plugins --check`` checks that
        it agrees with ``pool_encryption``.
    ``unlock_carriers``
        what the design can carry besides a passphrase, for the unlock methods
        (:class:`UnlockMethod`) whose ``carrier`` names one: ``"luks2-token"`` for a LUKS2
        header with free key slots and token room, which ``systemd-cryptenroll`` enrolls
        into (its :meth:`token_device` says where that header is, and its configuration
        adds ``Layout.unlock_options`` to each container's crypttab options). Empty (the
        default): a passphrase only.
    ``disko_unsupported``
        why the design cannot be handed to disko (``advisor export disko``), or ``None``
        (the default): the export refuses a backend that says why, before anything else.

    Every method gets validated input and may refuse what it cannot serve by raising
    :class:`advisor.plugin.PluginRefusal` (a message for the user, exit status 2); any
    other exception is reported as the plugin's bug.
    """

    name: ClassVar[str]
    summary: ClassVar[str]
    api_version: ClassVar[int]
    capabilities: ClassVar[Mapping[str, Capability]]
    installable: ClassVar[bool] = False
    partition_type: ClassVar[str] = "8300"
    detached_header: ClassVar[bool] = False
    native_encryption: ClassVar[bool] = False
    unlock_carriers: ClassVar[frozenset[str]] = frozenset()
    disko_unsupported: ClassVar[str | None] = None

    def gate(self, answers: Answers, system: SystemFacts) -> str | None:
        """Return why this backend must not be used with these answers, or ``None``.

        A gate is a hard constraint, not a low score: a gated backend is never recommended.
        """
        return None

    def warnings(self, answers: Answers, system: SystemFacts) -> Sequence[Note]:
        """Warnings that apply if this backend is chosen with these answers."""
        return ()

    def mitigations(self, answers: Answers, system: SystemFacts) -> Sequence[Note]:
        """Steps that reduce what this backend leaves exposed for these answers."""
        return ()

    def nix_fragments(self, layout: Layout) -> Sequence[NixFragment]:
        """NixOS settings this backend needs for ``layout`` (unlocking, pool import).

        The core adds what every layout shares (boot loader, datasets, rollback, users).
        """
        return ()

    def check_settings(self, settings: Settings) -> None:
        """Refuse settings this backend cannot serve (an initrd, TRIM, a header) by
        raising :class:`advisor.plugin.PluginRefusal` with what to change.

        Called by ``config``, ``plan`` and ``install`` once the settings are checked
        themselves, before anything is generated or done; the default accepts all.
        """

    def provision_steps(self, spec: InstallSpec, member: Member) -> Sequence[Step]:
        """Steps between partitioning and pool creation for one disk of the pool
        (format and open its container).

        The core partitions every disk before them and creates the pool, datasets,
        mounts and configuration after them. It calls this once per member, in the
        order of ``spec.members``; when the pool has several, it prefixes each step's id
        with the member's :attr:`Member.tag` (``disk2-luks-format``), so a backend
        writes the same ids whatever the number of disks.
        """
        return ()

    def pool_device(self, spec: InstallSpec, member: Member) -> str:
        """The device ``member`` brings to the pool: by default its data partition."""
        return member.data_device

    def configured_device(self, spec: InstallSpec, member: Member) -> str:
        """The data device the generated configuration names for ``member``
        (:attr:`LayoutMember.data_device`): what the initrd unlocks or imports. By
        default the data partition by its partition UUID, which a container (LUKS) is
        opened from whatever the disk's links; a pool on the partition itself is imported
        from the path its labels record, which is :meth:`pool_device`'s."""
        return member.data_partuuid_device

    def token_device(self, spec: InstallSpec, member: Member) -> str:
        """Where ``member``'s LUKS2 header is (its key slots and tokens), for the unlock
        methods ``unlock_carriers`` lets in: by default its data partition. Only called
        when ``unlock_carriers`` is not empty."""
        return member.data_partuuid_device

    def pool_encryption(self, spec: InstallSpec) -> Mapping[str, str]:
        """``zpool create -O`` options that encrypt the pool's root dataset, if any.

        When not empty, the passphrase is fed to ``zpool create`` on stdin.
        """
        return {}

    def disko_content(
        self, spec: InstallSpec, member: Member, content: Mapping[str, object], key_file: str
    ) -> Mapping[str, object]:
        """The disko content of ``member``'s data partition (``advisor export disko``):
        ``content`` (the pool's member, ``{"type": "zfs", ...}``) as the backend's
        ``provision_steps`` would prepare it, such as wrapped in a LUKS container
        (``{"type": "luks", ..., "content": content}``) whose passphrase disko reads from
        ``key_file`` (nixos-anywhere's ``--disk-encryption-keys`` puts it there).

        The default suits a backend that prepares no container: the pool is on the
        partition (its ``pool_encryption``, if any, is written by the core). A backend
        whose ``provision_steps`` do something for ``member`` must say how disko does the
        same, or the export is refused: a container left out would be an unencrypted pool.
        """
        steps = self.provision_steps(spec, member)
        if steps:
            ids = ", ".join(step.id for step in steps)
            raise PluginRefusal(
                f"its install prepares each disk with steps of its own ({ids}) that it "
                "does not say how to write for disko (Backend.disko_content)"
            )
        return content

    def rekey_steps(self, spec: RekeySpec) -> Sequence[Step]:
        """The steps that change the disk passphrase of an installed layout
        (``advisor rekey``), for every disk of ``spec.layout`` at once, in the order they
        run; empty (the default): this backend cannot rekey, and ``advisor rekey`` says so.

        The steps must never leave a moment where no passphrase opens the pool: add the
        new passphrase everywhere and test it before the old one is removed anywhere.
        Each step's ``secret`` (and ``probe_secret``) is one of :data:`REKEY_SECRETS`;
        give a step that changes keys a ``probe`` that says when its effect is already
        there, so a resume after a crash does not do it twice. Ids are kebab-case and
        unique among the steps (the backend names the disks in them: ``disk2-add-new``).
        ``spec.recovery_key`` asks for a recovery key too: refuse it
        (:class:`advisor.plugin.PluginRefusal`) if the design has no second key.
        """
        return ()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {getattr(self, 'name', '?')!r}>"


class UnlockMethod:
    """How the disks are unlocked at boot: a passphrase typed at the console, a TPM2, a
    FIDO2 token. A method composes with every backend that can carry it, is rated on the
    threat axes like a backend, and is recommended next to it by ``advisor assess``.

    Subclass it in a plugin and return instances from the ``advisor_unlock_methods``
    hook. Class attributes every method must set:

    ``name``
        an identifier of lower-case words joined by ``-`` or ``+`` (``tpm2+pin``), used
        on the command line (``--unlock NAME``).
    ``summary``
        one line saying what the method is.
    ``api_version``
        the plugin contract it was written for, as a literal (``api_version = 3``).
    ``capabilities``
        for every axis the method has an opinion on, a :class:`Capability`; the axes it
        leaves out count as :attr:`Rating.NONE`.

    Attributes with a default:

    ``carrier``
        what a backend must carry for it (a name in :attr:`Backend.unlock_carriers`):
        ``"luks2-token"`` for a method that ``systemd-cryptenroll`` enrolls into a LUKS2
        header; ``None`` (the default) for one every installable backend serves (the
        passphrase). The core refuses ``--unlock`` with a backend that cannot carry it.
    ``recovery_key``
        ``True`` when the install makes a recovery key for it (shown once, added as a
        key slot by the method's steps, which name the secret ``recovery-key``): the way
        in when the TPM or the token cannot unlock. ``False`` (the default): the
        passphrase is the way in, and must be kept.

    Every method gets validated input and may refuse what it cannot serve by raising
    :class:`advisor.plugin.PluginRefusal`; any other exception is reported as the
    plugin's bug.
    """

    name: ClassVar[str]
    summary: ClassVar[str]
    api_version: ClassVar[int]
    capabilities: ClassVar[Mapping[str, Capability]]
    carrier: ClassVar[str | None] = None
    recovery_key: ClassVar[bool] = False

    def gate(self, answers: Answers, system: SystemFacts) -> str | None:
        """Why this method must not be used with these answers, or ``None``."""
        return None

    def warnings(self, answers: Answers, system: SystemFacts) -> Sequence[Note]:
        """Warnings that apply if this method is chosen with these answers."""
        return ()

    def mitigations(self, answers: Answers, system: SystemFacts) -> Sequence[Note]:
        """Steps that reduce what this method leaves exposed for these answers."""
        return ()

    def check_settings(self, settings: Settings) -> None:
        """Refuse settings this method cannot serve (the scripted initrd, which has no
        TPM2 or FIDO2 unlock) by raising :class:`advisor.plugin.PluginRefusal`."""

    def crypttab_options(self, settings: Settings) -> Sequence[str]:
        """The crypttab options (crypttab(5)) every container gets for this method, such
        as ``tpm2-device=auto``: they reach the configuration as
        :attr:`Layout.unlock_options`, which the backend adds to each container."""
        return ()

    def nix_fragments(self, layout: Layout) -> Sequence[NixFragment]:
        """NixOS settings the method needs besides the crypttab options (the initrd's
        TPM2 support)."""
        return ()

    def enroll_steps(self, spec: InstallSpec, member: Member, header: str) -> Sequence[Step]:
        """Steps that enroll the method for one disk of the pool, run right after the
        backend's ``provision_steps`` for it: ``header`` is where the disk's LUKS2 key
        slots and tokens are (:meth:`Backend.token_device`). Ids are prefixed with the
        disk's tag when the pool has several, as provisioning steps are. A step that
        needs the person (a PIN, a touch) is ``interactive`` and takes no secret."""
        return ()

    def retire_passphrase_steps(
        self, spec: InstallSpec, member: Member, header: str
    ) -> Sequence[Step]:
        """Steps that remove the disk passphrase from one disk when the person chose not
        to keep it (``settings.keep_passphrase`` false), run at the end of the install,
        once everything else is done; refuse (:class:`advisor.plugin.PluginRefusal`) if
        the method leaves no way in without it."""
        return ()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {getattr(self, 'name', '?')!r}>"


def carries(backend: Backend, method: UnlockMethod) -> bool:
    """Whether ``backend`` can carry ``method``: the method needs no carrier, or one of
    the backend's ``unlock_carriers``."""
    return method.carrier is None or method.carrier in backend.unlock_carriers


@dataclass(frozen=True)
class RemoteUnlock:
    """SSH in the initrd, to type the passphrase from another machine.

    ``host_key`` is the path on the installed system of the initrd's own ed25519 host key
    (never the system's regular host key: it is copied, unencrypted, to the ESP).
    """

    authorized_keys: tuple[str, ...]
    host_key: str = "/persist/etc/secrets/initrd/ssh_host_ed25519_key"
    port: int = 2222


#: Where ``--sops`` puts the age key sops-nix decrypts with, on the installed system.
SOPS_AGE_KEY = "/persist/var/lib/sops-nix/key.txt"


@dataclass(frozen=True)
class Settings:
    """The choices a layout is made of: one record, shared by the install (``InstallSpec``)
    and the configuration (``Layout``), already validated when a backend sees it.

    Each field has one command-line flag (``--host-id`` for ``host_id``) and one check,
    declared in :mod:`advisor.settings`; the install hands them to ``advisor config``
    through that one conversion.
    """

    #: Eight hex digits: the live system's host id when the pool is created, and
    #: ``networking.hostId``, so the pool imports without force.
    host_id: str
    #: The host name, and the flake's configuration name.
    hostname: str = "nixos"
    #: The user account to create.
    user: str = "nixos"
    #: The pool's name; the datasets are below it.
    pool: str = "rpool"
    #: The stage 1 the configuration is written for: ``"systemd"`` (the NixOS 26.05
    #: default) or ``"scripted"``.
    initrd: str = "systemd"
    #: TRIM through the encryption layer (a LUKS backend's ``allowDiscards``).
    trim: bool = False
    #: The disk is an SSD or NVMe (a LUKS backend's ``bypassWorkqueues``).
    ssd: bool = False
    #: Detached headers, devices or files, one per disk in the order of the disks, for a
    #: backend with ``detached_header``; empty for the others.
    header: tuple[str, ...] = ()
    #: An absolute path to the authorized_keys for SSH unlock in the initrd, or ``None``.
    remote_unlock_keys: str | None = None
    #: Create an age key for sops-nix on /persist (:data:`SOPS_AGE_KEY`).
    sops: bool = False
    #: The release the flake follows and ``system.stateVersion``, such as ``"26.05"``.
    nixos_release: str = "26.05"
    #: The name a LUKS backend opens its container as: ``/dev/mapper/<luks_name>``.
    luks_name: str = "cryptroot"
    #: An absolute path to a TOML layout file: datasets of the user's own, created and
    #: mounted beside the core's (:mod:`advisor.layoutfile`), or ``None``.
    layout: str | None = None
    #: Where ``services.syncoid`` replicates the kept datasets (``<pool>/safe``), as
    #: ``[user@]host:pool/path`` over SSH or ``pool/path`` on a local pool, with
    #: ``services.sanoid`` taking their snapshots (:mod:`advisor.backups`); ``None``: no
    #: backup is configured.
    backup_target: str | None = None
    #: Whether ``backup_target`` may read what it stores: ``"untrusted"`` takes raw sends
    #: of natively encrypted datasets only, ``"trusted"`` also plaintext ones; ``None``
    #: (not said) is untrusted, the safe default.
    backup_trust: str | None = None
    #: How the disks are unlocked at boot: the name of an unlock method
    #: (:class:`UnlockMethod`): ``"passphrase"`` (typed), ``"tpm2"``, ``"tpm2+pin"``,
    #: ``"fido2"``, or a plugin's.
    unlock: str = "passphrase"
    #: The PCRs a TPM2 unlock is bound to, ``+``-separated (``systemd-cryptenroll
    #: --tpm2-pcrs``): 7, the Secure Boot state, by default (docs/threat-model.md).
    tpm2_pcrs: str = "7"
    #: Keep the disk passphrase once another unlock method is enrolled; ``False``: the
    #: install removes it at its end, and the recovery key stays the way back in.
    keep_passphrase: bool = True


@dataclass(frozen=True)
class LayoutMember:
    """One disk of the pool, as the configuration names it."""

    #: Its place among the disks, from 1, in the order they were given.
    number: int
    #: The partition the configuration unlocks or imports, a stable ``/dev/disk/by-*``
    #: link: the one the backend names (:meth:`Backend.configured_device`).
    data_device: str
    #: Its EFI system partition, a stable ``/dev/disk/by-*`` link.
    esp_device: str
    #: Its swap partition, a stable link, or ``None`` (no swap).
    swap_device: str | None = None
    #: The name a LUKS container on it is opened as (``/dev/mapper/<luks_name>``):
    #: ``settings.luks_name``, numbered when the pool has several disks (:func:`luks_names`).
    luks_name: str = "cryptroot"
    #: Its detached header (``settings.header``), for a backend with ``detached_header``.
    header: str | None = None
    #: Where its LUKS header is backed up (``--header-backup``), if it is: what
    #: ``advisor check`` verifies and ``advisor rekey`` refreshes.
    header_backup: str | None = None


#: Where the first disk's ESP is mounted; disk n's is at ``/boot-n``.
ESP_MOUNTPOINT = "/boot"


def esp_mountpoint(number: int) -> str:
    """Where disk ``number``'s ESP is mounted on the installed system (and under the
    install's root): the first at ``/boot``, disk n's at ``/boot-n``."""
    return ESP_MOUNTPOINT if number == 1 else f"{ESP_MOUNTPOINT}-{number}"


def luks_names(base: str, count: int) -> tuple[str, ...]:
    """The names ``count`` containers are opened as: ``base`` for one disk, else
    ``base1``, ``base2``, ... (``cryptroot1``), in the order of the disks."""
    if count == 1:
        return (base,)
    return tuple(f"{base}{number}" for number in range(1, count + 1))


@dataclass(frozen=True)
class Layout:
    """Everything the NixOS configuration is generated from, already validated."""

    #: The backend's name.
    backend: str
    #: The choices shared with the install.
    settings: Settings
    #: The pool's disks, at least one; the first one's ESP is mounted at ``/boot``.
    members: tuple[LayoutMember, ...]
    #: The user's password as a crypt(3) hash, never the password.
    hashed_password: str
    #: SSH in the initrd, with the keys read from ``settings.remote_unlock_keys``.
    remote_unlock: RemoteUnlock | None = None
    #: The crypttab options the unlock method (``settings.unlock``) gives every container
    #: (``tpm2-device=auto``), from :meth:`UnlockMethod.crypttab_options`: a backend
    #: that carries the method adds them to each container's options.
    unlock_options: tuple[str, ...] = ()

    @property
    def sops_age_key_file(self) -> str | None:
        """The age key's path on the installed system, if ``settings.sops``."""
        return SOPS_AGE_KEY if self.settings.sops else None

    # The datasets' names in this pool, from the dataset table (advisor.datasets), for
    # backends and plugins that name them in their fragments.

    @property
    def root_dataset(self) -> str:
        return mounted_at("/").full_name(self.settings.pool)

    @property
    def blank_snapshot(self) -> str:
        return mounted_at("/").blank_snapshot(self.settings.pool)

    @property
    def nix_dataset(self) -> str:
        return mounted_at("/nix").full_name(self.settings.pool)

    @property
    def home_dataset(self) -> str:
        return mounted_at("/home").full_name(self.settings.pool)

    @property
    def persist_dataset(self) -> str:
        return mounted_at("/persist").full_name(self.settings.pool)


#: An attribute path in the NixOS configuration, a tuple of strings such as
#: ``("boot", "zfs", "devNodes")``.
AttrPath = tuple[str, ...]


@dataclass(frozen=True)
class NixFragment:
    """Settings a contributor adds to ``configuration.nix``, under a section heading.

    The core merges fragments: lists at the same path are concatenated, mappings merged
    key by key, and two different values for one setting are a conflict naming both
    contributors.
    """

    #: The heading of the block the settings are written under ("Encryption"); the
    #: core's sections come first, in their order, then new ones as they appear.
    section: str
    #: Attribute paths (``("boot", "zfs", "devNodes")``) to values :mod:`advisor.nix` can
    #: render: strings, booleans, integers, lists, mappings, ``Raw`` and ``Apply``.
    settings: Mapping[AttrPath, object]


@dataclass(frozen=True)
class Step:
    """One action of an install, as a command: reviewable, loggable, resumable.

    A step's commands run with their output captured into the install log, stdin empty
    (or the secret), no terminal, and the install's environment with ``LC_ALL=C``;
    ``env`` and ``interactive`` change that.
    """

    #: A kebab-case id, unique in the plan: the journal, ``--stop-after`` and the log
    #: name the step by it.
    id: str
    #: One line saying what the step does, for the progress and the script.
    title: str
    #: The command, run directly, never through a shell.
    argv: tuple[str, ...]
    #: The name of the secret fed on stdin (``"passphrase"`` for the disk, ``"password"``
    #: for the user), never its value.
    secret: str | None = None
    #: End the secret with a newline (ZFS reads a line; ``cryptsetup --key-file=-`` takes
    #: the bytes as they are).
    secret_newline: bool = False
    #: A command that exits 0 when the step's effect is already there: on ``--resume`` it
    #: decides whether an interrupted step must run again.
    probe: tuple[str, ...] | None = None
    #: The name of the secret fed on the probe's stdin (ended with a newline when
    #: ``secret_newline``), for a probe that needs one: "the new passphrase opens the
    #: disk". ``None``: the probe's stdin is empty.
    probe_secret: str | None = None
    #: The step destroys data on the target disk: the disk is checked again just before
    #: the first such step, and the script marks it.
    destructive: bool = False
    #: For an effect a reboot undoes (an open LUKS mapping, the host id, an imported pool,
    #: a mount): the commands that bring it back (often ``argv`` again), each fed the
    #: step's secret. On ``--resume`` a finished step with ``restore`` is probed again (with
    #: no probe, it is always restored) and restored when its effect is gone.
    restore: tuple[tuple[str, ...], ...] = ()
    #: Environment variables for the step's commands (argv, probe, restore), on top of
    #: the install's. Not secret: the script shows them (``env NAME=value argv``) and the
    #: log records them. Names are ``[A-Z_][A-Z0-9_]*``, values one line of printable
    #: text; ``LC_ALL`` and names starting with ``ADVISOR_`` are refused.
    env: Mapping[str, str] = field(default_factory=dict)
    #: The step needs the person at the terminal (a FIDO2 PIN, a touch of a security key):
    #: its argv and restore commands run with the terminal as stdin, stdout and stderr,
    #: not captured, in the terminal's foreground (a program that opens ``/dev/tty`` finds
    #: it). It cannot take a ``secret``; ``advisor install`` refuses a plan with one when
    #: it has no terminal. Its probe still runs captured.
    interactive: bool = False


#: The secrets ``advisor rekey`` feeds its steps, by name (a step's ``secret`` and
#: ``probe_secret``): the old passphrase, the new one, both on two lines (old first, as
#: ``cryptsetup luksAddKey`` asks for them), the recovery key, and the new passphrase then
#: the recovery key (to add the recovery key with the new passphrase).
REKEY_SECRETS = (
    "passphrase",
    "new-passphrase",
    "old-and-new-passphrase",
    "recovery-key",
    "new-passphrase-and-recovery-key",
)


@dataclass(frozen=True)
class RekeySpec:
    """What ``advisor rekey`` changes: the installed layout (its record, ``advisor.json``)
    and the options of the change, fixed before the first step and saved for
    ``--resume``."""

    #: The installed system's layout, as its record says (no password hash).
    layout: Layout
    #: Also add a generated recovery key to every disk (``--recovery-key``).
    recovery_key: bool = False
    #: Tests only: cheap key derivation for the new key slots, never for a real disk.
    fast_kdf: bool = False


#: The pool layouts a several-disk install can have (``--topology``): the ``zpool
#: create`` vdev type, and the fewest disks each takes here. A raidz takes one disk more
#: than its parity needs at the least: with fewer, a mirror gives the same safety.
TOPOLOGIES: Mapping[str, int] = {"mirror": 2, "raidz1": 3, "raidz2": 4, "raidz3": 5}


@dataclass(frozen=True)
class Member:
    """One disk of the pool, as the install prepares it: which disk, and the GUIDs of
    the partitions it gets (the same GPT on each: ESP, data, and swap if asked for)."""

    #: Its place among the disks, from 1, in the order ``--disk`` gave them.
    number: int
    #: The whole disk as a stable link: ``/dev/disk/by-id/...`` (or ``by-path``).
    disk: str
    #: The disk's id, as ``advisor disks`` shows it and ``--yes-wipe`` names it.
    disk_id: str
    #: The disk's serial, to recognise it again (``None``: it has none).
    disk_serial: str | None
    #: The disk's size in bytes, to recognise it again.
    disk_size: int
    #: The GPT partition GUID of the ESP (partition 1).
    esp_partuuid: str
    #: The GPT partition GUID of the data partition (partition 2).
    data_partuuid: str
    #: The GPT partition GUID of the swap partition (partition 3), with ``--swap``.
    swap_partuuid: str | None = None
    #: The name its LUKS container is opened as (:func:`luks_names`), for LUKS backends.
    luks_name: str = "cryptroot"
    #: Its detached header (``settings.header``, in the order of the disks).
    header: str | None = None
    #: Where its detached header is backed up (``--header-backup``, in the same order).
    header_backup: str | None = None

    @property
    def tag(self) -> str:
        """``disk2``: what its steps' ids start with in a pool of several disks."""
        return f"disk{self.number}"

    @property
    def esp_device(self) -> str:
        return f"/dev/disk/by-partuuid/{self.esp_partuuid}"

    @property
    def data_device(self) -> str:
        """The data partition: by id when the disk has a serial (so ZFS imports it by id),
        by partition UUID otherwise (a disk without a serial has no by-id link)."""
        if self.disk_serial and self.disk.startswith("/dev/disk/by-id/"):
            return f"{self.disk}-part2"
        return f"/dev/disk/by-partuuid/{self.data_partuuid}"

    @property
    def data_partuuid_device(self) -> str:
        """The data partition by its partition UUID, whatever the disk's links."""
        return f"/dev/disk/by-partuuid/{self.data_partuuid}"

    @property
    def swap_device(self) -> str | None:
        """The swap partition by its partition UUID (its content is new at every boot,
        so it has no file system UUID to name it by), or ``None``."""
        if self.swap_partuuid is None:
            return None
        return f"/dev/disk/by-partuuid/{self.swap_partuuid}"


@dataclass(frozen=True)
class InstallSpec:
    """Everything an install will do, fixed before the first step and saved for --resume.

    The partition GUIDs and the host id are chosen up front, so the plan, the pool's
    labels and the generated configuration all name the same devices.
    """

    #: The backend's name.
    backend: str
    #: The choices shared with the configuration.
    settings: Settings
    #: The pool's disks, at least one, in the order ``--disk`` gave them.
    members: tuple[Member, ...]
    #: How the pool spans its disks: ``None`` for one disk, else a key of
    #: :data:`TOPOLOGIES` (``mirror``, ``raidz1``...).
    topology: str | None = None
    #: Where the new system is mounted.
    root: str = "/mnt"
    #: ``zpool create -o`` properties added to or replacing the reference ones.
    pool_options: Mapping[str, str] = field(default_factory=dict)
    #: ``zpool create -O`` properties added to or replacing the reference ones.
    dataset_options: Mapping[str, str] = field(default_factory=dict)
    #: Tests only: cheap key derivation, never for a real disk.
    fast_kdf: bool = False
    #: The ESP's size, as sgdisk reads it.
    esp_size: str = "1G"
    #: The swap partition's size on each disk, as sgdisk reads it (``16G``), or ``None``.
    swap_size: str | None = None

    @property
    def first(self) -> Member:
        """The first disk: its ESP is mounted at ``/boot``."""
        return self.members[0]
