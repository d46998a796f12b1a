"""The vocabulary shared by the core and plugins: axes, questions, capabilities, backends.

Everything here is plain data (frozen dataclasses) except :class:`Backend`, which plugins
subclass. Nothing in this module touches the machine.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from typing import ClassVar

#: Version of the plugin contract. A backend declares the version it was written for in
#: ``Backend.api_version``; the core refuses a backend whose version it does not support.
PLUGIN_API_VERSION = 1
SUPPORTED_PLUGIN_API_VERSIONS = frozenset({1})

#: A completed (or partial) questionnaire: question id -> chosen value.
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
    an issue); ``fact`` is the anchor of the fact in ``docs/threat-model.md`` for the
    built-in backends (third-party backends may leave it empty and cite ``source`` only).
    """

    rating: Rating
    why: str
    source: str
    fact: str = ""

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


@dataclass(frozen=True)
class Note:
    """A warning or a mitigation attached to an assessment.

    ``id`` is stable so scripts can match on it; ``fact`` anchors it in the threat-model
    document where one applies.
    """

    id: str
    text: str
    fact: str = ""


class Backend:
    """An encryption design the advisor can recommend, configure and install.

    It is installed only if it adds encryption: steps of its own before the pool
    (``provision_steps``) or the pool's encryption properties (``pool_encryption``); a
    backend that overrides neither takes part in assessments only.

    Subclass it in a plugin and return instances from the ``advisor_backends`` hook.
    Class attributes every backend must set:

    ``name``
        kebab-case identifier, used on the command line (``--backend NAME``).
    ``summary``
        one line saying what the design is.
    ``api_version``
        the version of the plugin contract the backend was written for, as a literal
        (``api_version = 1``, not :data:`PLUGIN_API_VERSION`, which follows the installed
        core). It has no default on purpose: a backend written for an older contract must
        not pass as a newer one.
    ``capabilities``
        for every axis the backend has an opinion on, a :class:`Capability`. Axes it
        leaves out count as :attr:`Rating.NONE`.
    """

    name: ClassVar[str]
    summary: ClassVar[str]
    api_version: ClassVar[int]
    capabilities: ClassVar[Mapping[str, Capability]]
    #: GPT type code of the data partition (sgdisk). 8300 says only "Linux data".
    partition_type: ClassVar[str] = "8300"
    #: True when the design keeps its LUKS header off the disk: ``install`` and ``plan``
    #: then require ``--header`` and ``--header-backup``, ``config`` requires ``--header``
    #: (``spec.header``, ``layout.header``), and every other backend refuses them.
    detached_header: ClassVar[bool] = False

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

    def provision_steps(self, spec: InstallSpec) -> Sequence[Step]:
        """Steps between partitioning and pool creation (format and open a container).

        The core partitions the disk before them and creates the pool, datasets, mounts
        and configuration after them.
        """
        return ()

    def pool_device(self, spec: InstallSpec) -> str:
        """The device the pool is created on: by default the data partition itself."""
        return spec.data_device

    def pool_encryption(self, spec: InstallSpec) -> Mapping[str, str]:
        """``zpool create -O`` options that encrypt the pool's root dataset, if any.

        When not empty, the passphrase is fed to ``zpool create`` on stdin.
        """
        return {}

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {getattr(self, 'name', '?')!r}>"


@dataclass(frozen=True)
class RemoteUnlock:
    """SSH in the initrd, to type the passphrase from another machine.

    ``host_key`` is the path on the installed system of the initrd's own ed25519 host key
    (never the system's regular host key: it is copied, unencrypted, to the ESP).
    """

    authorized_keys: tuple[str, ...]
    host_key: str = "/persist/etc/secrets/initrd/ssh_host_ed25519_key"
    port: int = 2222


@dataclass(frozen=True)
class Layout:
    """Everything the NixOS configuration is generated from, already validated.

    Device paths are stable ``/dev/disk/by-*`` links. ``data_device`` is the partition
    that holds the LUKS container (``luks``, ``luks-detached``) or the pool itself
    (``zfs-native``). ``hashed_password`` is a crypt(3) hash, never a password.
    """

    backend: str
    hostname: str
    host_id: str
    user: str
    hashed_password: str
    data_device: str
    esp_device: str
    pool: str = "rpool"
    header: str | None = None
    initrd: str = "systemd"  # "systemd" (NixOS 26.05 default) or "scripted"
    trim: bool = False
    ssd: bool = False
    remote_unlock: RemoteUnlock | None = None
    sops_age_key_file: str | None = None
    luks_name: str = "cryptroot"
    nixos_release: str = "26.05"

    @property
    def root_dataset(self) -> str:
        return f"{self.pool}/local/root"

    @property
    def blank_snapshot(self) -> str:
        return f"{self.root_dataset}@blank"

    @property
    def nix_dataset(self) -> str:
        return f"{self.pool}/local/nix"

    @property
    def home_dataset(self) -> str:
        return f"{self.pool}/safe/home"

    @property
    def persist_dataset(self) -> str:
        return f"{self.pool}/safe/persist"


#: An attribute path in the NixOS configuration, such as ("boot", "zfs", "devNodes").
AttrPath = tuple[str, ...]


@dataclass(frozen=True)
class NixFragment:
    """Settings a contributor adds to ``configuration.nix``, under a section heading.

    ``settings`` maps attribute paths to values that :mod:`advisor.nix` can render
    (strings, booleans, integers, lists, mappings, ``Raw`` and ``Apply``). The core
    merges fragments: lists at the same path are concatenated, mappings merged key by
    key, and two different values for one setting are a conflict naming both
    contributors.
    """

    section: str
    settings: Mapping[AttrPath, object]


@dataclass(frozen=True)
class Step:
    """One action of an install, as a command: reviewable, loggable, resumable.

    ``argv`` is run directly, never through a shell. ``secret`` names the secret fed on
    stdin (``"passphrase"`` for the disk, ``"password"`` for the user), never its value;
    ``secret_newline`` ends it with a newline (ZFS reads a line; ``cryptsetup
    --key-file=-`` takes the bytes as they are). ``probe`` is a command that exits 0 when
    the step's effect is already there; on ``--resume`` it decides whether an interrupted
    step must run again. ``destructive`` steps destroy data on the target disk.

    ``restore`` is for a step whose effect a reboot, or closing what the install opened,
    undoes: an open LUKS mapping, the live system's host id, an imported pool, a mount.
    It holds the commands that bring the effect back (often just ``argv`` again), each
    fed the step's secret. On ``--resume`` a finished step with ``restore`` is probed
    again (with no probe, it is always restored) and restored when its effect is gone,
    so the install goes on from where it was, not from a live system that forgot it.
    """

    id: str
    title: str
    argv: tuple[str, ...]
    secret: str | None = None
    secret_newline: bool = False
    probe: tuple[str, ...] | None = None
    destructive: bool = False
    restore: tuple[tuple[str, ...], ...] = ()


@dataclass(frozen=True)
class InstallSpec:
    """Everything an install will do, fixed before the first step and saved for --resume.

    The partition GUIDs and the host id are chosen up front, so the plan, the pool's
    labels and the generated configuration all name the same devices.
    """

    backend: str
    disk: str  # stable path of the whole disk: /dev/disk/by-id/... (or by-path)
    disk_id: str
    disk_serial: str | None
    disk_size: int
    esp_partuuid: str
    data_partuuid: str
    host_id: str
    hostname: str
    user: str
    pool: str = "rpool"
    initrd: str = "systemd"
    trim: bool = False
    ssd: bool = False
    root: str = "/mnt"
    luks_name: str = "cryptroot"
    header: str | None = None
    header_backup: str | None = None
    pool_options: Mapping[str, str] = field(default_factory=dict)
    dataset_options: Mapping[str, str] = field(default_factory=dict)
    fast_kdf: bool = False  # tests only: cheap key derivation
    esp_size: str = "1G"
    remote_unlock_keys: str | None = None  # authorized_keys file for SSH unlock in the initrd
    sops: bool = False  # create a sops-nix age key on /persist

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
        return f"/dev/disk/by-partuuid/{self.data_partuuid}"
