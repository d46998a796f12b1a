"""Writing a NixOS configuration for an existing layout: ``advisor config``.

The steps: validate the request into a :class:`~advisor.models.Layout`, hash the password,
create (or reuse) the initrd SSH host key and the sops age key under the persist root,
generate the files and write them atomically. ``advisor install`` calls
:func:`write_configuration` with the disks it has just prepared.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from advisor import secrets, validate
from advisor.backups import trust_from_answers
from advisor.errors import UsageError
from advisor.files import write_atomically
from advisor.layoutfile import layout_datasets
from advisor.models import (
    SOPS_AGE_KEY,
    Layout,
    LayoutMember,
    RemoteUnlock,
    Settings,
    luks_names,
)
from advisor.nixos.generate import Contribution, generate
from advisor.nixos.keys import (
    age_key_file,
    generate_age_key,
    generate_ssh_host_key,
    load_age_key,
    load_ssh_host_key,
)
from advisor.pluginmanager import LoadedPlugins
from advisor.settings import (
    check_settings,
    read_authorized_keys,
    unlock_method,
    unlock_options,
)

#: A file's name below an output folder: a plain name, or a path for a tree of files.
_Name = TypeVar("_Name", str, Path)

#: Paths on the installed system; the files are written below the persist root given.
INITRD_HOST_KEY = "/persist/etc/secrets/initrd/ssh_host_ed25519_key"


@dataclass(frozen=True)
class ConfigRequest:
    """What the user asked for: the backend, the devices, the settings (not yet checked)
    and where to write. ``password`` is never printed."""

    backend: str
    settings: Settings
    out_dir: Path
    #: One per disk of the pool, in the order of the disks.
    data_devices: tuple[str, ...]
    #: One per disk, in the same order: the first is mounted at /boot.
    esp_devices: tuple[str, ...]
    password: str = field(repr=False)
    #: None, or one per disk, in the same order.
    swap_devices: tuple[str, ...] = ()
    #: None, or one per disk, in the same order: where each LUKS header is backed up
    #: (recorded for ``advisor check`` and ``advisor rekey``; not in the Nix files).
    header_backups: tuple[str, ...] = ()
    persist_root: Path | None = None
    force: bool = False


@dataclass(frozen=True)
class ConfigResult:
    """What was written, for the summary and ``--json``. Holds no secret."""

    layout: Layout
    written: tuple[Path, ...]
    unchanged: tuple[Path, ...]
    secrets_written: tuple[Path, ...]
    initrd_host_key_fingerprint: str | None
    age_public_key: str | None
    hardware_configuration_missing: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "backend": self.layout.backend,
            "hostname": self.layout.settings.hostname,
            "host_id": self.layout.settings.host_id,
            "pool": self.layout.settings.pool,
            "initrd": self.layout.settings.initrd,
            "written": [str(p) for p in self.written],
            "unchanged": [str(p) for p in self.unchanged],
            "secrets_written": [str(p) for p in self.secrets_written],
            "initrd_host_key_fingerprint": self.initrd_host_key_fingerprint,
            "age_public_key": self.age_public_key,
            "hardware_configuration_missing": self.hardware_configuration_missing,
        }


def assessment_defaults(assessment: Mapping[str, Any]) -> dict[str, Any]:
    """What an assessment decides: the backend and its unlock method, the TRIM and SSD
    settings, and how far a backup target is trusted (its ``offsite_backups`` answer)."""
    defaults: dict[str, Any] = {
        "backup_trust": trust_from_answers(assessment["answers"]),
        "trim": assessment["answers"].get("ssd_trim") == "yes",
        "ssd": assessment["system"].get("solid_state_disk") is True,
    }
    if isinstance(assessment.get("recommendation"), str):
        defaults["backend"] = assessment["recommendation"]
        # The method is recommended for that backend: another may not carry it.
        unlock = assessment.get("unlock")
        if isinstance(unlock, dict) and isinstance(unlock.get("method"), str):
            defaults["unlock"] = unlock["method"]
    return defaults


def unlock_default(defaults: Mapping[str, Any], backend: str) -> str | None:
    """The unlock method an assessment recommends (:func:`assessment_defaults`), if
    ``backend`` is the backend it recommends it for; otherwise none (the passphrase,
    unless ``--unlock`` says more)."""
    return defaults.get("unlock") if defaults.get("backend") == backend else None


def build_layout(request: ConfigRequest, plugins: LoadedPlugins, hashed_password: str) -> Layout:
    """Validate every name and path of ``request`` into a :class:`Layout`."""
    backend = plugins.backend(request.backend)
    settings = check_settings(request.settings, backend, plugins.backends, plugins.unlock_methods)
    options = unlock_options(unlock_method(settings, plugins.unlock_methods), settings)
    count = len(request.data_devices)
    if count == 0:
        raise UsageError("give --data-device and --esp-device for each disk of the pool")
    if len(request.esp_devices) != count:
        raise UsageError(
            f"--data-device is given {count} times and --esp-device "
            f"{len(request.esp_devices)}: give one of each per disk, in the same order"
        )
    if request.swap_devices and len(request.swap_devices) != count:
        raise UsageError(
            f"--swap-device is given {len(request.swap_devices)} times for {count} disks: "
            "give one per disk, or none"
        )
    if request.header_backups and len(request.header_backups) != count:
        raise UsageError(
            f"--header-backup is given {len(request.header_backups)} times for {count} "
            "disks: give one per disk, or none"
        )
    if backend.detached_header and len(settings.header) != count:
        raise UsageError(
            f"the {backend.name} backend needs --header PATH (device or file) for each disk: "
            f"{count} of them, in the order of the disks"
        )
    wants_secrets = settings.remote_unlock_keys is not None or settings.sops
    if wants_secrets and request.persist_root is None:
        raise UsageError(
            "--remote-unlock-keys and --sops create keys on the target's /persist: "
            "give --persist-root (for an install, /mnt/persist)"
        )
    remote = None
    if settings.remote_unlock_keys is not None:
        remote = RemoteUnlock(read_authorized_keys(settings.remote_unlock_keys), INITRD_HOST_KEY)
    if request.persist_root is not None and not request.persist_root.is_dir():
        # Not created here: a mistyped path would put secret keys on the live system.
        raise UsageError(
            f"--persist-root {str(request.persist_root)!r} is not a directory: give the "
            "target's /persist as mounted now (for an install, /mnt/persist)"
        )
    names = luks_names(settings.luks_name, count)
    members = tuple(
        LayoutMember(
            number=number,
            data_device=validate.device_path(data, "--data-device"),
            esp_device=validate.device_path(esp, "--esp-device"),
            swap_device=(
                validate.device_path(request.swap_devices[number - 1], "--swap-device")
                if request.swap_devices
                else None
            ),
            luks_name=names[number - 1],
            header=settings.header[number - 1] if settings.header else None,
            header_backup=(
                validate.header_path(request.header_backups[number - 1], "--header-backup")
                if request.header_backups
                else None
            ),
        )
        for number, (data, esp) in enumerate(
            zip(request.data_devices, request.esp_devices, strict=True), start=1
        )
    )
    for option, paths in (
        ("--data-device", [m.data_device for m in members]),
        ("--esp-device", [m.esp_device for m in members]),
        ("--swap-device", [m.swap_device for m in members if m.swap_device is not None]),
    ):
        if len(set(paths)) < len(paths):
            raise UsageError(f"{option}: each disk needs its own, and one is given twice")
    return Layout(
        backend=backend.name,
        settings=settings,
        members=members,
        hashed_password=hashed_password,
        remote_unlock=remote,
        unlock_options=options,
    )


def _below(root: Path, target_path: str) -> Path:
    """Where a path of the installed system's /persist lies under ``root``."""
    return root / Path(target_path).relative_to("/persist")


def _ensure_initrd_host_key(persist_root: Path) -> tuple[str, bool]:
    """The fingerprint of the initrd host key, creating the key if there is none."""
    path = _below(persist_root, INITRD_HOST_KEY)
    if path.exists():
        return load_ssh_host_key(path.read_bytes()).fingerprint, False
    key = generate_ssh_host_key()
    secrets.write_secret_file(path, key.private_openssh)
    return key.fingerprint, True


def _ensure_age_key(persist_root: Path) -> tuple[str, bool]:
    path = _below(persist_root, SOPS_AGE_KEY)
    if path.exists():
        return load_age_key(path.read_text(encoding="utf-8")).public, False
    key = generate_age_key()
    text = age_key_file(key, datetime.now(UTC).replace(microsecond=0))
    secrets.write_secret_file(path, text.encode())
    return key.public, True


def write_configuration(request: ConfigRequest, plugins: LoadedPlugins) -> ConfigResult:
    """Validate, generate and write. Nothing is written unless everything validates,
    the configuration generates without conflict, and no file would be overwritten
    without ``force``."""
    # Validate everything first, so a typo does not cost a password hash.
    layout = build_layout(request, plugins, hashed_password="")
    out = request.out_dir
    check_out_dir(out)
    layout = replace(layout, hashed_password=secrets.hash_password(request.password))
    backend = plugins.backend(layout.backend)
    method = unlock_method(layout.settings, plugins.unlock_methods)
    extra = [
        Contribution(f"plugin {name}", fragment)
        for name, fragment in plugins.nix_fragments(layout, backend)
    ]
    files = generate(layout, backend, extra, layout_datasets(layout.settings), method).files

    changed = changed_files(out, files, force=request.force)

    # The output directory first: if it cannot be made, no key has been written either.
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UsageError(f"--out {str(out)!r} cannot be created: {error.strerror}") from None
    secrets_written: list[Path] = []
    fingerprint = age_public = None
    persist = request.persist_root
    try:
        if persist is not None and layout.remote_unlock is not None:
            fingerprint, created = _ensure_initrd_host_key(persist)
            if created:
                secrets_written.append(_below(persist, INITRD_HOST_KEY))
        if persist is not None and layout.sops_age_key_file is not None:
            age_public, created = _ensure_age_key(persist)
            if created:
                secrets_written.append(_below(persist, SOPS_AGE_KEY))
    except OSError as error:
        raise UsageError(
            f"--persist-root {str(persist)!r}: a key cannot be read or written there "
            f"({error.filename or persist}: {error.strerror})"
        ) from None
    write_files(out, changed)
    return ConfigResult(
        layout=layout,
        written=tuple(out / name for name in changed),
        unchanged=tuple(out / name for name in files if name not in changed),
        secrets_written=tuple(secrets_written),
        initrd_host_key_fingerprint=fingerprint,
        age_public_key=age_public,
        hardware_configuration_missing=not (out / "hardware-configuration.nix").exists(),
    )


def check_out_dir(out: Path) -> None:
    """Refuse an ``--out`` that is not a directory and cannot become one: it, or the
    nearest of its parents that exists, is something else (a file)."""
    existing = next(
        (folder for folder in (out, *out.absolute().parents) if folder.exists()), Path("/")
    )
    if not existing.is_dir():
        where = "" if existing == out else f": {str(existing)!r} is not a directory"
        raise UsageError(f"--out {str(out)!r} is not a directory{where}")


def changed_files(out: Path, files: Mapping[_Name, str], *, force: bool) -> dict[_Name, str]:
    """The ``files`` (text by name below ``out``) that ``out`` does not hold as they are:
    the ones to write. Unless ``force``, a :class:`UsageError` naming those that exist with
    other content (nothing is written then)."""
    changed = {name: text for name, text in files.items() if differs(out / name, text)}
    clashing = [out / name for name in changed if (out / name).exists()]
    if clashing and not force:
        shown = ", ".join(map(str, clashing[:5])) + (" ..." if len(clashing) > 5 else "")
        raise UsageError(f"{shown} already exist(s) with other content; use --force to replace")
    return changed


def write_files(out: Path, files: Mapping[str, str]) -> None:
    """Write each of ``files`` (text by name) into the folder ``out`` atomically; a
    :class:`UsageError` for one that cannot be written."""
    for name, text in files.items():
        try:
            write_atomically(out / name, text.encode())
        except OSError as error:
            raise UsageError(f"{out / name} cannot be written: {error.strerror}") from None


def differs(path: Path, text: str) -> bool:
    try:
        return path.read_text(encoding="utf-8") != text
    except FileNotFoundError:
        return True
    except (OSError, UnicodeDecodeError) as error:
        reason = error.strerror if isinstance(error, OSError) else "not UTF-8 text"
        raise UsageError(f"{path} is there but cannot be read: {reason}") from None
