"""The layout's settings, declared once: each one's flag, its check, and the one
conversion between a :class:`~advisor.models.Settings` record and a command line.

``advisor config``, ``install`` and ``plan`` take the same flags (:func:`add_arguments`)
and read them the same way (:func:`from_arguments`); the install's ``write-config`` step
hands the settings to ``advisor config`` as :func:`to_argv` writes them, and a saved plan
stores them as the record's fields. Adding a setting touches three places: its field in
``Settings`` (with its default and its docstring line), its :class:`Option` here (flag
and help), and its check in :func:`check_settings`.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from dataclasses import MISSING, dataclass, fields, replace
from pathlib import Path
from typing import Any

from advisor import validate
from advisor.backups import TRUST_CHOICES, nix_fragments, parse_target, trust
from advisor.errors import UsageError
from advisor.layoutfile import read_layout
from advisor.models import Backend, Settings, UnlockMethod, carries
from advisor.plugincall import call_backend, call_method, method_owner, sequence_of

#: The stage 1 the configuration can be written for.
INITRD_CHOICES = ("systemd", "scripted")


@dataclass(frozen=True)
class Option:
    """The command-line flag of one :class:`Settings` field.

    A ``bool`` field takes ``--flag``/``--no-flag``; a tuple field takes ``--flag VALUE``
    once per value (one per disk, in their order); any other takes ``--flag VALUE``.
    ``required_by`` names the commands that have no default for it (``config`` must be
    told whose account to create).
    """

    field: str
    flag: str
    help: str
    metavar: str | None = None
    choices: tuple[str, ...] | None = None
    required_by: frozenset[str] = frozenset()


OPTIONS: tuple[Option, ...] = (
    Option("host_id", "--host-id", "8 hex digits (default: generated)", metavar="HEX"),
    Option("hostname", "--hostname", "host name, and the flake's configuration name"),
    Option("user", "--user", "the user account to create", required_by=frozenset({"config"})),
    Option("pool", "--pool", "pool name"),
    Option(
        "initrd",
        "--initrd",
        "the stage 1 (initrd) the configuration is written for",
        choices=INITRD_CHOICES,
    ),
    Option(
        "trim",
        "--trim",
        "TRIM through the encryption layer (default: the assessment's answer, else no)",
    ),
    Option(
        "ssd",
        "--ssd",
        "the disk is an SSD/NVMe (default: for install, whether the kernel says the disk "
        "is non-rotational; for config, the assessment's probe; else no)",
    ),
    Option(
        "header",
        "--header",
        "a detached LUKS header's device or file, off the pool's disks, once per disk in "
        "their order (backends with a detached header only, and required there)",
        metavar="PATH",
    ),
    Option(
        "remote_unlock_keys",
        "--remote-unlock-keys",
        "enable SSH unlock in the initrd for these authorized_keys (default: off)",
        metavar="FILE",
    ),
    Option("sops", "--sops", "create an age key for sops-nix on /persist"),
    Option("nixos_release", "--nixos-release", "the NixOS release to follow", metavar="X.Y"),
    Option(
        "luks_name",
        "--luks-name",
        "the name a LUKS container is opened as, /dev/mapper/NAME",
        metavar="NAME",
    ),
    Option(
        "layout",
        "--layout",
        "a TOML file of datasets of your own, created and mounted beside the core's "
        "(default: none)",
        metavar="FILE",
    ),
    Option(
        "backup_target",
        "--backup-target",
        "back up <pool>/safe there with sanoid and syncoid: user@host:pool/path over SSH "
        "or pool/path on this machine (default: none; see docs/backup.md)",
        metavar="TARGET",
    ),
    Option(
        "backup_trust",
        "--backup-trust",
        "whether the backup target may read what it stores (default: the assessment's "
        "offsite_backups answer, else untrusted)",
        choices=TRUST_CHOICES,
    ),
    Option(
        "unlock",
        "--unlock",
        "how the disks are unlocked at boot: passphrase, tpm2, tpm2+pin, fido2 or a "
        "plugin's method (see docs/unlock.md)",
        metavar="METHOD",
    ),
    Option(
        "tpm2_pcrs",
        "--tpm2-pcrs",
        "the PCRs a TPM2 unlock is bound to, joined by + (systemd-cryptenroll --tpm2-pcrs)",
        metavar="PCRS",
    ),
    Option(
        "keep_passphrase",
        "--keep-passphrase",
        "keep the disk passphrase beside a TPM2 or FIDO2 unlock (the default); "
        "--no-keep-passphrase removes it at the end of the install, leaving the recovery key",
    ),
)

#: The settings that name a file, read later (maybe from another directory): made
#: absolute where they are given (:func:`from_arguments`, a fleet's inventory).
PATH_FIELDS = ("remote_unlock_keys", "layout")

_DEFAULTS: Mapping[str, Any] = {f.name: f.default for f in fields(Settings)}
_BOOLEAN = frozenset(f.name for f in fields(Settings) if f.type in ("bool", bool))
_REPEATED = frozenset(f.name for f in fields(Settings) if str(f.type).startswith("tuple"))


def add_arguments(parser: argparse.ArgumentParser, command: str) -> None:
    """Add every setting's flag to ``command``'s ``parser``. Each defaults to ``None``
    (not given), so :func:`from_arguments` can tell a choice from a default and
    ``--plan``/``--resume`` can refuse a choice they would ignore."""
    for option in OPTIONS:
        default = _DEFAULTS[option.field]
        required = command in option.required_by
        # A flag's default is worth showing when it is a value: not for a switch, a
        # required flag, or one whose absence means "none" or "generated".
        plain = default in (MISSING, None, ()) or option.field in _BOOLEAN
        text = option.help if plain or required else f"{option.help} (default: {default})"
        kind: dict[str, Any] = (
            {"action": argparse.BooleanOptionalAction}  # --flag and --no-flag
            if option.field in _BOOLEAN
            else {"metavar": option.metavar, "choices": option.choices, "required": required}
        )
        if option.field in _REPEATED:
            kind["action"] = "append"
        parser.add_argument(option.flag, dest=option.field, default=None, help=text, **kind)


def given(args: argparse.Namespace) -> list[str]:
    """The flags of the settings given on this command line."""
    return [o.flag for o in OPTIONS if getattr(args, o.field, None) is not None]


def from_arguments(args: argparse.Namespace, **defaults: Any) -> Settings:
    """The settings on ``args`` (a namespace :func:`add_arguments` filled), not yet
    checked. A setting not given takes its value from ``defaults`` (what the caller
    knows: the assessment's TRIM answer, the disk's kind), else the record's default;
    a missing host id is a new one. A file path is made absolute: it is read later,
    maybe from another directory."""
    values: dict[str, Any] = {}
    for option in OPTIONS:
        value = getattr(args, option.field, None)
        if value is None:
            value = defaults.get(option.field)
        if value is not None:
            values[option.field] = tuple(value) if option.field in _REPEATED else value
    if "host_id" not in values:
        values["host_id"] = validate.new_host_id()
    for field in PATH_FIELDS:
        if (path := values.get(field)) is not None:
            values[field] = str(Path(path).resolve())
    return Settings(**values)


def to_argv(settings: Settings) -> list[str]:
    """``settings`` as the flags :func:`add_arguments` declares, every one given, so
    that parsing them back gives the same record."""
    argv: list[str] = []
    for option in OPTIONS:
        value = getattr(settings, option.field)
        if option.field in _BOOLEAN:
            argv.append(option.flag if value else "--no-" + option.flag.removeprefix("--"))
        elif option.field in _REPEATED:
            argv += [word for item in value for word in (option.flag, str(item))]
        elif value is not None:
            argv += [option.flag, str(value)]
    return argv


def check_settings(
    settings: Settings,
    backend: Backend,
    backends: Sequence[Backend] = (),
    methods: Sequence[UnlockMethod] = (),
) -> Settings:
    """``settings`` with every value checked (:mod:`advisor.validate`) and normalised,
    then accepted by ``backend`` (:meth:`Backend.check_settings`) and by the unlock
    method it names among ``methods`` (:func:`check_unlock`); a :class:`UsageError`
    naming the flag otherwise. ``backends`` are the installed ones, named when a flag
    is for others than ``backend``."""
    check_installable(backend)
    if settings.initrd not in INITRD_CHOICES:
        raise UsageError(f"--initrd {settings.initrd!r}: choose {' or '.join(INITRD_CHOICES)}")
    header = tuple(validate.header_path(path) for path in settings.header)
    check_header_given(backend, backends, given=bool(header))
    if settings.remote_unlock_keys is not None:
        read_authorized_keys(settings.remote_unlock_keys)
    if settings.layout is not None:
        read_layout(settings.layout)
    check_backup(settings, backend)
    checked = replace(
        settings,
        host_id=validate.host_id(settings.host_id),
        hostname=validate.hostname(settings.hostname),
        user=validate.username(settings.user),
        pool=validate.pool_name(settings.pool),
        header=header,
        nixos_release=validate.nixos_release(settings.nixos_release),
        luks_name=validate.mapper_name(settings.luks_name),
        tpm2_pcrs=validate.tpm2_pcrs(settings.tpm2_pcrs),
    )
    call_backend(backend, "check_settings", checked)
    check_unlock(checked, backend, methods)
    return checked


def unlock_method(settings: Settings, methods: Sequence[UnlockMethod]) -> UnlockMethod:
    """The method ``settings.unlock`` names among ``methods``; a :class:`UsageError`
    naming the installed ones otherwise."""
    for method in methods:
        if method.name == settings.unlock:
            return method
    known = ", ".join(m.name for m in methods) or "none"
    raise UsageError(f"--unlock {settings.unlock!r}: no such unlock method (installed: {known})")


def unlock_options(method: UnlockMethod, settings: Settings) -> tuple[str, ...]:
    """The crypttab options ``method`` gives every container for ``settings``
    (:attr:`Layout.unlock_options`), checked to be strings; a :class:`PluginError`
    naming the method otherwise."""
    options = call_method(method, "crypttab_options", settings)
    return tuple(sequence_of(method_owner(method), "crypttab_options", options, str))


def check_unlock(settings: Settings, backend: Backend, methods: Sequence[UnlockMethod]) -> None:
    """Refuse an unlock method that is unknown, that ``backend`` cannot carry, that the
    settings do not suit (:meth:`UnlockMethod.check_settings`), or a passphrase removed
    with no other way in. ``methods`` empty: the caller checks no method (a plugin's
    sample layouts)."""
    if not methods:
        return
    method = unlock_method(settings, methods)
    if not carries(backend, method):
        able = [m.name for m in methods if carries(backend, m)]
        raise UsageError(
            f"--unlock {method.name}: the {backend.name} backend cannot carry it (it needs "
            f"a {method.carrier}); with {backend.name}, choose {' or '.join(able)} "
            "(docs/unlock.md says why)"
        )
    call_method(method, "check_settings", settings)
    if not settings.keep_passphrase and not method.recovery_key:
        raise UsageError(
            f"--no-keep-passphrase: with --unlock {method.name} the passphrase is the only "
            "way in; it stays"
        )


def check_backup(settings: Settings, backend: Backend) -> None:
    """Raise :class:`UsageError` for a backup target that is no target, or that the
    backend's pool may not be sent to: plaintext to an untrusted target
    (:func:`advisor.backups.nix_fragments` says why, and the ways out)."""
    trusted = trust(settings.backup_trust)
    if settings.backup_target is None:
        return
    target = parse_target(settings.backup_target)
    nix_fragments(settings.pool, target, trusted=trusted, native=bool(backend.native_encryption))


def check_installable(backend: Backend) -> None:
    """Raise :class:`UsageError` unless ``backend`` says it is ``installable``:
    ``plan``, ``install`` and ``config`` refuse it rather than produce an unencrypted
    layout."""
    if not backend.installable:
        raise UsageError(
            f"{backend.name} can be assessed but not installed: it provides no provisioning "
            "steps and no pool encryption"
        )


def check_header_given(backend: Backend, backends: Sequence[Backend], *, given: bool) -> None:
    """Raise :class:`UsageError` when a header option was ``given`` for a ``backend``
    that keeps its header on the disk; the message names those of ``backends`` that
    take one (from their ``detached_header``). Whether a backend that needs the header
    got it is the caller's check: ``install`` needs a backup path too, ``config`` does
    not."""
    if given and not backend.detached_header:
        takers = " or ".join(b.name for b in backends if b.detached_header) or "no installed"
        raise UsageError(f"--header is only for the {takers} backend, not {backend.name}")


def read_authorized_keys(path: str) -> tuple[str, ...]:
    """The public keys in the authorized_keys file ``path`` (absolute), for SSH unlock
    in the initrd; a :class:`UsageError` if it is not one."""
    origin = f"--remote-unlock-keys {path!r}"
    if not Path(path).is_absolute():
        raise UsageError(f"{origin}: the path must be absolute")
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise UsageError(f"{origin} cannot be read: {error}") from None
    keys = tuple(
        validate.authorized_key(line.strip(), origin)
        for line in text.splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    )
    if not keys:
        raise UsageError(f"{origin} holds no public key")
    return keys
