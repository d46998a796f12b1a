"""``advisor export disko``: the files nixos-anywhere installs a machine from.

The spec is made without looking at the disks (:func:`export_spec`: they are on another
machine), or read from a plan ``advisor plan --save`` wrote (:func:`saved_spec`), and
checked by the install's own ``validate_spec``. From it come ``disko.nix``
(:mod:`advisor.deploy.disko`), the configuration the install's ``write-config`` step
would write (``configuration.nix`` and ``advisor.json``, by the generator ``advisor
config`` uses) and a ``flake.nix`` with disko's module and the host's
``nixosConfigurations`` entry. Nothing is written unless everything is valid.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath

from advisor import secrets, validate
from advisor.datasets import Dataset
from advisor.deploy.disko import KEY_FILE, check_exportable, render_disko
from advisor.errors import UsageError
from advisor.install.executor import read_plan_file
from advisor.install.plan import build_plan, configured_device_of
from advisor.install.session import InstallRequest, request_spec, validate_spec
from advisor.layoutfile import layout_datasets
from advisor.models import InstallSpec, Layout, Member, RemoteUnlock
from advisor.nixos.generate import Contribution, flake_host, generate, render_flake
from advisor.nixos.write import (
    INITRD_HOST_KEY,
    ConfigRequest,
    build_layout,
    changed_files,
    check_out_dir,
    write_files,
)
from advisor.pluginmanager import LoadedPlugins
from advisor.settings import read_authorized_keys, unlock_method

#: The files an export writes, besides the configuration's.
DISKO_FILE = "disko.nix"
FLAKE_FILE = "flake.nix"


def export_spec(
    request: InstallRequest, disks: Sequence[str], plugins: LoadedPlugins
) -> InstallSpec:
    """The spec of an install on ``disks`` (``/dev/disk/by-id/...`` paths of the target
    machine, in order), made without discovery: new partition GUIDs, no serial and no
    size (the disks are elsewhere), the topology as the install chooses it; checked by
    the install's ``validate_spec``. A :class:`UsageError` for a backend disko cannot
    serve (:func:`~advisor.deploy.disko.check_exportable`, first: its reason is the one
    that matters), a disk path that is not by id, or anything the install refuses."""
    check_exportable(plugins.backend(request.backend))
    if not disks:
        raise UsageError("give --disk /dev/disk/by-id/... for each disk of the target machine")
    members = tuple(
        Member(
            number=number,
            disk=_disk_path(disk),
            disk_id=PurePosixPath(disk).name,
            disk_serial=None,
            disk_size=0,
            esp_partuuid=validate.new_guid(),
            data_partuuid=validate.new_guid(),
            swap_partuuid=validate.new_guid() if request.swap_size is not None else None,
        )
        for number, disk in enumerate(disks, start=1)
    )
    return validate_spec(request_spec(request, members), plugins)


def _disk_path(disk: str) -> str:
    """A target disk as ``--disk`` names it: a whole disk by id, the one name of it that
    stays the same on the other machine and that disko can find."""
    if not disk.startswith("/dev/disk/by-id/") or "-part" in PurePosixPath(disk).name:
        raise UsageError(
            f"--disk {disk!r}: give the target machine's whole disk as /dev/disk/by-id/... "
            "(ls -l /dev/disk/by-id on it, or 'advisor disks' there)"
        )
    return validate.device_path(disk, "--disk")


def saved_spec(path: Path, plugins: LoadedPlugins) -> InstallSpec:
    """The spec of the plan ``advisor plan --save`` wrote to ``path`` (on the target
    machine, say), checked by ``validate_spec``: its disks, GUIDs, host id and settings
    exactly. Its steps are not run here, so its fingerprint is not compared (it names
    that machine's interpreter and tools)."""
    spec, _fingerprint = read_plan_file(path)
    check_exportable(plugins.backend(spec.backend))
    try:
        return validate_spec(spec, plugins)
    except UsageError as error:
        raise UsageError(f"{path} holds a value an install would refuse: {error}") from None


def check_unlock(spec: InstallSpec, plugins: LoadedPlugins) -> None:
    """Refuse an unlock method that adds steps to the install (enrolling a TPM2 or a
    FIDO2 token, removing the passphrase): disko's scripts would leave them out, and
    the configuration would expect what was never enrolled."""
    backend = plugins.backend(spec.backend)
    method = plugins.unlock_method(spec.settings.unlock)
    without = build_plan(spec, backend, generate_hardware_config=False)
    with_method = build_plan(spec, backend, generate_hardware_config=False, method=method)
    if with_method.steps != without.steps:
        raise UsageError(
            f"--unlock {spec.settings.unlock}: its enrollment is a step of 'advisor install' "
            "that disko cannot run; export with the passphrase and enroll it on the "
            "installed system (docs/unlock.md)"
        )


def export_layout(
    spec: InstallSpec, plugins: LoadedPlugins, hashed_password: str, *, persist_keys: bool = False
) -> Layout:
    """The configuration's :class:`Layout` for ``spec``: the devices, settings and
    header backups the install's ``write-config`` step hands to ``advisor config``,
    checked by the same ``build_layout``.

    ``persist_keys``: the caller puts the initrd's SSH host key on the target's /persist
    itself (a fleet's deploy, through nixos-anywhere ``--extra-files``), so SSH unlock
    (``remote_unlock_keys``) is configured without a ``--persist-root`` here; the key's
    path is the one ``advisor config`` uses (``INITRD_HOST_KEY``)."""
    backend = plugins.backend(spec.backend)
    keys = spec.settings.remote_unlock_keys if persist_keys else None
    settings = spec.settings if keys is None else replace(spec.settings, remote_unlock_keys=None)
    request = ConfigRequest(
        backend=spec.backend,
        settings=settings,
        out_dir=Path(),
        data_devices=tuple(configured_device_of(backend, spec, m) for m in spec.members),
        esp_devices=tuple(member.esp_device for member in spec.members),
        password="",
        swap_devices=tuple(m.swap_device for m in spec.members if m.swap_device is not None),
        header_backups=tuple(m.header_backup for m in spec.members if m.header_backup is not None),
    )
    layout = build_layout(request, plugins, hashed_password)
    if keys is None:
        return layout
    remote = RemoteUnlock(read_authorized_keys(keys), INITRD_HOST_KEY)
    return replace(layout, settings=spec.settings, remote_unlock=remote)


def host_files(
    spec: InstallSpec,
    plugins: LoadedPlugins,
    hashed_password: str,
    *,
    extra: Sequence[Contribution] = (),
    persist_keys: bool = False,
) -> tuple[Layout, dict[str, str]]:
    """``spec``'s layout and the files of its host: ``disko.nix`` and the configuration
    (``configuration.nix``, ``advisor.json``) as ``advisor config`` generates them,
    without the configuration's own flake. Pure but for the plugins' code.

    ``extra`` fragments are merged after the plugins' (a fleet's SSH access);
    ``persist_keys`` accepts ``remote_unlock_keys`` for a caller that puts the initrd's
    host key on /persist itself (:func:`export_layout`). A sops key is always refused."""
    check_unlock(spec, plugins)
    if (spec.settings.remote_unlock_keys is not None and not persist_keys) or spec.settings.sops:
        raise UsageError(
            "--remote-unlock-keys and --sops make keys on the target's /persist, which the "
            "export cannot reach: export without them, and add them after the install "
            "with 'advisor config --persist-root' (docs/disko.md)"
        )
    backend = plugins.backend(spec.backend)
    datasets: Sequence[Dataset] = layout_datasets(spec.settings)
    disko = render_disko(spec, backend, datasets)
    layout = export_layout(spec, plugins, hashed_password, persist_keys=persist_keys)
    method = unlock_method(layout.settings, plugins.unlock_methods)
    contributions = [
        Contribution(f"plugin {name}", fragment)
        for name, fragment in plugins.nix_fragments(layout, backend)
    ]
    files = dict(generate(layout, backend, [*contributions, *extra], datasets, method).files)
    del files[FLAKE_FILE]
    return layout, {DISKO_FILE: disko, **files}


#: Stand-ins in the nixos-anywhere command shown: the file holding the passphrase (its
#: first line, no other), and the target's SSH address.
PASSPHRASE_FILE, TARGET = "PASSPHRASE-FILE", "root@HOST"


def anywhere_command(hostname: str) -> list[str]:
    """The nixos-anywhere command that installs ``hostname`` from the exported folder:
    the flake's host, the passphrase copied to :data:`KEY_FILE` on the target
    (``--disk-encryption-keys``), and the target's hardware configuration generated
    there, without file systems (``configuration.nix`` defines them)."""
    return [
        "nixos-anywhere",
        "--flake",
        f".#{hostname}",
        "--disk-encryption-keys",
        KEY_FILE,
        PASSPHRASE_FILE,
        "--generate-hardware-config",
        "nixos-generate-config",
        "./hardware-configuration.nix",
        TARGET,
    ]


def disko_flake(layout: Layout) -> str:
    """``flake.nix`` for one host installed by nixos-anywhere: its configuration,
    disko's module and ``disko.nix``."""
    hostname = layout.settings.hostname
    return render_flake(
        [flake_host(layout, disko=True)],
        release=layout.settings.nixos_release,
        description=f"NixOS on encrypted ZFS for {hostname}, with disko (generated by advisor)",
        usage=(
            "Install with nixos-anywhere (docs/disko.md):\n  "
            + shlex.join(anywhere_command(hostname))
        ),
    )


@dataclass(frozen=True)
class ExportResult:
    """What an export wrote (or found unchanged), for the summary and ``--json``."""

    layout: Layout
    spec: InstallSpec
    written: tuple[Path, ...]
    unchanged: tuple[Path, ...]

    def to_json(self) -> dict[str, object]:
        hostname = self.layout.settings.hostname
        return {
            "backend": self.layout.backend,
            "hostname": hostname,
            "host_id": self.layout.settings.host_id,
            "pool": self.layout.settings.pool,
            "disks": [member.disk for member in self.spec.members],
            "topology": self.spec.topology,
            "written": [str(path) for path in self.written],
            "unchanged": [str(path) for path in self.unchanged],
            "key_file": KEY_FILE,
            "flake": f".#{hostname}",
        }


def write_export(
    spec: InstallSpec, plugins: LoadedPlugins, password: str, out: Path, *, force: bool
) -> ExportResult:
    """Generate ``spec``'s files and write them to ``out``: nothing is written unless
    everything is valid and no file would be replaced without ``force``. The password
    becomes a yescrypt hash (:func:`advisor.secrets.hash_password`); it is never
    written itself."""
    # Everything that can be refused is checked before the password is hashed.
    host_files(spec, plugins, hashed_password="")
    check_out_dir(out)
    layout, files = host_files(spec, plugins, secrets.hash_password(password))
    files[FLAKE_FILE] = disko_flake(layout)
    changed = changed_files(out, files, force=force)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UsageError(f"--out {str(out)!r} cannot be created: {error.strerror}") from None
    write_files(out, changed)
    return ExportResult(
        layout=layout,
        spec=spec,
        written=tuple(out / name for name in changed),
        unchanged=tuple(out / name for name in files if name not in changed),
    )
