"""What ``advisor check`` looks at, as plain data: the facts the probe gathers and the
result of each check. Nothing here touches the machine."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from advisor.models import Layout


class Status(StrEnum):
    """How a check came out. Only ``fail`` makes ``advisor check`` exit 1."""

    PASS = "pass"  # noqa: S105 (a status, not a password)
    WARN = "warn"
    FAIL = "fail"
    SKIP = "skip"


class Stage(StrEnum):
    """Where the system is in its life, which decides what an imported pool means."""

    #: From the installer, the target mounted under ``--root`` (right after the install).
    INSTALLED = "installed"
    #: From the installer, just before the reboot (``--before-reboot``): the pool exported.
    BEFORE_REBOOT = "before-reboot"
    #: The installed system itself, running (``--root /``).
    RUNNING = "running"


@dataclass(frozen=True)
class CheckResult:
    """One check: what it is, how it came out, what it looked at, how to fix a failure."""

    #: A stable kebab-case id (``hostid``, ``file-sops-age-key``), for scripts and docs.
    id: str
    #: What the check asks, in a few words.
    title: str
    status: Status
    #: What was found: one or two sentences.
    detail: str
    #: What it looked at: files, devices, commands, options.
    looked_at: tuple[str, ...] = ()
    #: How to fix a failure or a warning (empty when it passed or was skipped).
    fix: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "status": str(self.status),
            "detail": self.detail,
            "looked_at": list(self.looked_at),
            "fix": self.fix,
        }


@dataclass(frozen=True)
class Label:
    """What ``zdb -l`` shows of one of the pool's devices (its first label)."""

    #: The device read (``/dev/mapper/cryptroot``, ``/dev/disk/by-id/...-part2``).
    device: str
    #: Why it could not be read ("" when it was).
    problem: str = ""
    pool: str | None = None
    #: 0 active (imported, or not exported), 1 exported, as the label records it.
    state: int | None = None
    #: The host id the pool was last imported under, eight hex digits; ``None`` if unset.
    hostid: str | None = None
    hostname: str | None = None
    #: The device paths of the pool's vdevs the label records.
    paths: tuple[str, ...] = ()


@dataclass(frozen=True)
class FileFact:
    """A file on the installed system as ``stat`` sees it (``None``: it does not exist)."""

    #: Its path on the installed system (``/persist/etc/ssh/ssh_host_ed25519_key``).
    path: str
    #: Where it was looked for (under ``--root``).
    looked: str
    mode: int | None = None
    uid: int | None = None
    regular: bool = True


@dataclass(frozen=True)
class HeaderFact:
    """A LUKS header and its backup, compared without any passphrase."""

    member: int
    header: str
    backup: str
    backup_exists: bool
    header_exists: bool
    #: The backup's bytes equal the header's first bytes (``None``: not compared).
    same_bytes: bool | None = None
    #: ``cryptsetup luksDump`` of each ("" when it could not be dumped).
    header_dump: str = ""
    backup_dump: str = ""
    problem: str = ""


@dataclass(frozen=True)
class TokenFact:
    """The tokens one container's header must hold for the unlock its crypttab options
    ask for (``tpm2-device=auto``: a ``systemd-tpm2`` token), and those it holds."""

    member: int
    #: The container's name in the configuration, and its header (detached, or at the
    #: start of its partition).
    name: str
    header: str
    wanted: tuple[str, ...]
    #: The token types in the header (``None``: it could not be read, see ``problem``).
    found: tuple[str, ...] | None = None
    problem: str = ""


@dataclass(frozen=True)
class Facts:
    """Everything the checks read, gathered once by the probe."""

    #: The installed system's root (``/mnt`` from the installer, ``/`` running).
    root: str
    stage: Stage
    layout: Layout
    #: The layout record it came from, and the configuration beside it.
    record: str
    configuration: str
    #: The configuration evaluated by Nix (``None``: it could not be, see ``config_problem``).
    config: Mapping[str, Any] | None
    config_problem: str = ""
    #: The configuration does not parse as Nix at all (it would not build).
    config_unparsable: bool = False
    #: Each device path named (by the record or the configuration): whether it exists.
    devices: Mapping[str, bool] = field(default_factory=dict)
    #: Each member's pool device (its container, or its partition) with its real path.
    pool_devices: Mapping[str, str | None] = field(default_factory=dict)
    #: The real paths of what ``boot.zfs.devNodes`` holds (``None``: no such folder).
    devnodes_targets: tuple[str, ...] | None = None
    labels: tuple[Label, ...] = ()
    #: The pool is imported here, and its health (``ONLINE``, ``DEGRADED``...).
    imported: bool = False
    health: str | None = None
    #: ``zpool status`` says the pool's host id and this system's differ.
    hostid_mismatch_status: bool = False
    #: The snapshots of the pool (``None``: not imported, not listed).
    snapshots: frozenset[str] | None = None
    #: What is mounted at the installed system's ``/`` and ``/persist`` (source dataset).
    mounts: Mapping[str, str | None] = field(default_factory=dict)
    #: The files the configuration expects on /persist, by path on the installed system.
    files: Mapping[str, FileFact] = field(default_factory=dict)
    #: The running system's host id (``/etc/hostid``), eight hex digits; ``None`` when
    #: not running it or unreadable.
    system_hostid: str | None = None
    headers: tuple[HeaderFact, ...] = ()
    #: For each container whose crypttab options unlock with a token, its tokens.
    tokens: tuple[TokenFact, ...] = ()
    #: The saved assessment's answer to ``ssd_trim`` (``None``: no assessment given),
    #: and the file.
    assessment_trim: bool | None = None
    assessment: str | None = None
