"""``advisor plugins --check``: run every plugin's code the way the commands will.

Loading a plugin calls only its discovery hooks. A backend's ``nix_fragments``,
``provision_steps``, ``pool_device`` and ``pool_encryption`` and the
``advisor_nix_fragments`` hook run only in ``config``, ``plan`` and ``install``,
``disko_content`` only in ``export disko``, and
``gate``, ``warnings`` and ``mitigations`` (a backend's and an unlock method's) in
``assess``, and ``rekey_steps`` in ``rekey``: a plugin broken there would pass
a plain listing. The check runs all of them against sample layouts and install specs,
one per initrd flavour, through the same code the commands use, and marks a plugin that
fails broken with the reason. A :class:`~advisor.errors.PluginRefusal` is no failure: a
backend may refuse a sample (the scripted initrd, say) as it would refuse a user.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import replace

from advisor.assess.assessment import assess, method_gate, method_notes
from advisor.deploy.disko import disko_devices
from advisor.errors import AdvisorError, PluginError, PluginRefusal, UsageError
from advisor.install.plan import build_plan
from advisor.install.rekey import rekey_steps_of
from advisor.layoutfile import layout_datasets
from advisor.models import (
    Backend,
    InstallSpec,
    Layout,
    LayoutMember,
    Member,
    RekeySpec,
    Settings,
    SystemFacts,
    UnlockMethod,
    carries,
    luks_names,
)
from advisor.nixos.generate import Contribution, generate
from advisor.plugincall import call_backend
from advisor.pluginmanager import LoadedPlugins, PluginRecord, Status
from advisor.settings import check_settings, unlock_options

INITRDS = ("systemd", "scripted")
#: The samples' disks: a pool on the first, and a mirror over both.
_DISKS = (
    ("check1", "0b5e1f2c-3d4e-4f5a-8b6c-7d8e9f0a1b2c", "6a3d2c1b-5e4f-4a8b-9c0d-1e2f3a4b5c6d"),
    ("check2", "1c6f2a3d-4e5f-4a6b-9c7d-8e9f0a1b2c3d", "7b4e3d2c-6f5a-4b9c-8d1e-2f3a4b5c6d7e"),
)
_HEADER = "/dev/disk/by-partuuid/9e8d7c6b-5a4f-4e3d-8c2b-1a0f9e8d7c6{}"


def samples(backend: Backend) -> list[tuple[Layout, InstallSpec]]:
    """A layout and an install spec for ``backend``, for each initrd flavour on one disk
    and on a mirror of two, each with the settings the backend accepted
    (:func:`advisor.settings.check_settings`).

    The one place the samples are built: keep it in step with :class:`Layout` and
    :class:`InstallSpec`.
    """
    pairs = []
    for initrd in INITRDS:
        for count in (1, 2):
            disks = _DISKS[:count]
            headers = tuple(_HEADER.format(n) for n in range(count))
            settings = Settings(
                host_id="8f2a91c4",
                hostname="check",
                user="alice",
                initrd=initrd,
                header=headers if backend.detached_header else (),
                # The mirror samples are backed up to a trusted target, so the backup
                # fragments run for every backend (an untrusted one would refuse a
                # backend that does not encrypt natively before anything else runs).
                backup_target="backup@vault.example:tank/check" if count == 2 else None,
                backup_trust="trusted",
            )
            names = luks_names(settings.luks_name, count)
            members = tuple(
                Member(
                    number=number,
                    disk=f"/dev/disk/by-id/virtio-{serial}",
                    disk_id=f"virtio-{serial}",
                    disk_serial=serial,
                    disk_size=64 * 1024**3,
                    esp_partuuid=esp,
                    data_partuuid=data,
                    luks_name=names[number - 1],
                    header=settings.header[number - 1] if settings.header else None,
                    header_backup=(
                        f"/root/header-backup-{number}.img" if settings.header else None
                    ),
                )
                for number, (serial, esp, data) in enumerate(disks, start=1)
            )
            layout = Layout(
                backend=backend.name,
                settings=settings,
                members=tuple(
                    LayoutMember(
                        number=member.number,
                        data_device=member.data_partuuid_device,
                        esp_device=member.esp_device,
                        luks_name=member.luks_name,
                        header=member.header,
                        header_backup=member.header_backup,
                    )
                    for member in members
                ),
                hashed_password="$y$j9T$sample$sample",
            )
            spec = InstallSpec(
                backend=backend.name,
                settings=settings,
                members=members,
                topology="mirror" if count > 1 else None,
            )
            pairs.append((layout, spec))
    return pairs


def check_plugins(plugins: LoadedPlugins) -> None:
    """Mark broken, with the reason, every active plugin whose backends, unlock methods
    or ``advisor_nix_fragments`` fail against the samples (:func:`samples`)."""
    owner = {name: record for record in plugins.records for name in record.backends}
    for backend in plugins.backends:
        record = owner[backend.name]
        if record.status is Status.ACTIVE:
            with _blame(record):
                _run_backend(plugins, backend)
    method_owner = {name: r for r in plugins.records for name in r.unlock_methods}
    for method in plugins.unlock_methods:
        record = method_owner[method.name]
        if record.status is Status.ACTIVE:
            with _blame(record):
                _run_unlock_method(plugins, method)
    # Each hook is run with the backends that passed, so a failure is its own.
    backends = [b for b in plugins.backends if owner[b.name].status is Status.ACTIVE]
    for record in plugins.records:
        if record.status is Status.ACTIVE and "advisor_nix_fragments" in record.hooks:
            with _blame(record):
                _run_hook(plugins, record, backends)


@contextmanager
def _blame(record: PluginRecord) -> Iterator[None]:
    """Mark ``record`` broken, with the reason, if the block fails."""
    try:
        yield
    except AdvisorError as error:
        record.status, record.reason = Status.BROKEN, f"--check: {error}"
    except Exception as error:  # the core tripped over what the plugin gave it
        record.status, record.reason = Status.BROKEN, f"--check: {type(error).__name__}: {error}"


def _refusal_allowed() -> suppress:
    """A refusal of a sample is an answer, as it would be to a user: no failure."""
    return suppress(PluginRefusal)


def _run_backend(plugins: LoadedPlugins, backend: Backend) -> None:
    """What ``assess`` asks of ``backend``, and ``config`` and ``plan`` if it installs."""
    answers = {q.id: q.default or q.values[0] for q in plugins.questions}
    with _refusal_allowed():
        assess(
            axes=plugins.axes,
            questions=plugins.questions,
            backends=[backend],
            answers=answers,
            system=SystemFacts(),
        )
    if not isinstance(backend.native_encryption, bool):
        raise PluginError(f"backend {backend.name}: native_encryption must be True or False")
    unsupported: object = backend.disko_unsupported  # typed, but a plugin's may be anything
    if unsupported is not None and (not isinstance(unsupported, str) or not unsupported):
        raise PluginError(f"backend {backend.name}: disko_unsupported must be None or a reason")
    if not backend.installable:
        return  # config and plan refuse it before calling it
    for layout, spec in samples(backend):
        try:
            check_settings(layout.settings, backend)
        except PluginRefusal:
            continue  # as config, plan and install stop there, before asking for more
        with _refusal_allowed():
            generate(layout, backend, datasets=layout_datasets(layout.settings))
        with _refusal_allowed():
            datasets = layout_datasets(spec.settings)
            build_plan(spec, backend, generate_hardware_config=True, datasets=datasets)
        with _refusal_allowed():
            _check_native_encryption(backend, spec)
        if backend.disko_unsupported is None:
            # What 'export disko' asks of it (disko_content); a refusal is an answer.
            with _refusal_allowed():
                disko_devices(spec, backend, layout_datasets(spec.settings))
        for recovery_key in (False, True):
            # What 'rekey' asks of it; none (it cannot rekey) and a refusal are answers.
            with _refusal_allowed():
                rekey_steps_of(RekeySpec(layout, recovery_key=recovery_key), backend)


def _run_unlock_method(plugins: LoadedPlugins, method: UnlockMethod) -> None:
    """What ``assess`` asks of an unlock method: its gate, and its warnings and
    mitigations (asked of the recommended one only), with every question's default
    answer, on a machine whose TPM2 is unknown and on one that has one; then what
    ``config`` and ``plan`` ask of it with every installable backend that carries it
    (:func:`_run_unlock_install`)."""
    answers = {q.id: q.default or q.values[0] for q in plugins.questions}
    for system in (SystemFacts(), SystemFacts(tpm2=True)):
        with _refusal_allowed():
            method_gate(method, answers, system)
        for name in ("warnings", "mitigations"):
            with _refusal_allowed():
                method_notes(method, name, answers, system)
    for backend in plugins.backends:
        if backend.installable and carries(backend, method):
            _run_unlock_install(plugins, backend, method)


def _run_unlock_install(plugins: LoadedPlugins, backend: Backend, method: UnlockMethod) -> None:
    """The configuration (its crypttab options and fragments) and the plan (its
    enrollment steps, and their removal of the passphrase) of ``backend``'s samples
    unlocked with ``method``, through the code ``config`` and ``plan`` run."""
    for layout, spec in samples(backend):
        for keep in (True, False):
            settings = replace(layout.settings, unlock=method.name, keep_passphrase=keep)
            try:
                check_settings(settings, backend, plugins.backends, (method,))
            except (PluginRefusal, UsageError):
                continue  # refused as config, plan and install refuse it, before more
            options = unlock_options(method, settings)
            unlocked = replace(layout, settings=settings, unlock_options=options)
            with _refusal_allowed():
                datasets = layout_datasets(settings)
                generate(unlocked, backend, datasets=datasets, method=method)
            with _refusal_allowed():
                build_plan(
                    replace(spec, settings=settings),
                    backend,
                    generate_hardware_config=True,
                    datasets=layout_datasets(settings),
                    method=method,
                )


def _check_native_encryption(backend: Backend, spec: InstallSpec) -> None:
    """Raise :class:`PluginError` when ``backend`` says ZFS encrypts its pool
    (``native_encryption``) but its ``pool_encryption`` does not set the pool's
    encryption: the backups' policy would let plaintext go to an untrusted target. The
    other way round is safe (such backups are refused) and not checked, so a backend
    written before the attribute existed still passes."""
    if not backend.native_encryption:
        return
    encryption = call_backend(backend, "pool_encryption", spec)
    if not isinstance(encryption, Mapping) or encryption.get("encryption", "off") == "off":
        raise PluginError(
            f"backend {backend.name}: native_encryption is True but its pool_encryption "
            "does not set the pool's encryption: backups to an untrusted target would be "
            "plaintext"
        )


def _run_hook(plugins: LoadedPlugins, record: PluginRecord, backends: list[Backend]) -> None:
    """What ``config`` asks of ``record``'s ``advisor_nix_fragments``, for every backend."""
    for backend in backends:
        if not backend.installable:
            continue
        for layout, _ in samples(backend):
            with _refusal_allowed():
                fragments = plugins.nix_fragments(layout, backend, plugin=record.name)
                extra = [Contribution(f"plugin {name}", f) for name, f in fragments]
                generate(layout, backend, extra, layout_datasets(layout.settings))
