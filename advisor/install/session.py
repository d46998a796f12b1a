"""``advisor install``: from a disk the user confirmed to a mounted, configured pool.

This module holds the effects around the pure plan: finding and checking the target
disk, the confirmation, reading secrets, and running the plan with the executor.
Safety rules, in the order they apply:

1. every target must be a whole disk that is not mounted, holds no swap, is not held by
   device-mapper, md or a pool, and does not hold the running system; one that fails
   refuses the whole install, and no disk may be named twice (under two names);
2. the user confirms by typing each disk's id (or ``--yes-wipe DISK-ID`` names each);
3. a real run needs root, and EFI firmware unless ``--allow-bios``;
4. immediately before the first destructive step every disk is looked up again and must
   still have the same id, serial and size, and still be unused;
5. a resumed install that has destroyed nothing yet is a fresh install as far as these
   rules go (1, 2 and 4 apply again); once a destructive step is done, the disks are in
   use by the install itself, and only their identity is checked.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from advisor import runner, validate
from advisor.blockdevices import SIZE_TOLERANCE, same_size
from advisor.errors import AdvisorError, UsageError
from advisor.files import make_private_dirs
from advisor.install import disks as disk_probe
from advisor.install.executor import (
    JOURNAL_FILE,
    SPEC_FILE,
    Executor,
    Outcome,
    Progress,
    Runnable,
    journal_events,
    load_spec,
    read_plan_file,
    save_spec,
)
from advisor.install.plan import Plan, build_plan, pool_device_of
from advisor.layoutfile import layout_datasets
from advisor.models import TOPOLOGIES, InstallSpec, Member, Settings, luks_names
from advisor.mounts import current_mounts
from advisor.pluginmanager import LoadedPlugins
from advisor.settings import check_header_given, check_settings


@dataclass(frozen=True)
class InstallRequest:
    """What the user asked for on the command line, not yet checked: the backend, the
    settings shared with the configuration, and the install's own options."""

    backend: str
    settings: Settings
    #: One detached header's backup per disk, in the order of the disks.
    header_backup: tuple[str, ...] = ()
    root: str = "/mnt"
    pool_options: dict[str, str] = field(default_factory=dict)
    dataset_options: dict[str, str] = field(default_factory=dict)
    fast_kdf: bool = False
    #: ``--topology``: ``None`` lets :func:`choose_topology` decide.
    topology: str | None = None
    #: ``--swap SIZE``: a swap partition of this size on each disk.
    swap_size: str | None = None


def new_spec(
    request: InstallRequest, plugins: LoadedPlugins, disks: Sequence[disk_probe.Disk]
) -> InstallSpec:
    """A fresh spec for ``disks`` (found and checked by :func:`find_targets`), in order:
    names validated, partition GUIDs chosen."""
    backups = request.header_backup
    if backups and len(backups) != len(disks):
        raise UsageError(
            f"--header-backup is given {len(backups)} times for {len(disks)} disks: give one "
            "per disk, in the order of the disks"
        )
    members = tuple(
        Member(
            number=number,
            disk=disk.stable_path,
            disk_id=disk.disk_id,
            disk_serial=disk.serial,
            disk_size=disk.size_bytes,
            esp_partuuid=validate.new_guid(),
            data_partuuid=validate.new_guid(),
            swap_partuuid=validate.new_guid() if request.swap_size is not None else None,
            header_backup=backups[number - 1] if backups else None,
        )
        for number, disk in enumerate(disks, start=1)
    )
    spec = validate_spec(request_spec(request, members), plugins)
    check_fresh_install(spec, disks, plugins)
    return spec


def request_spec(request: InstallRequest, members: Sequence[Member]) -> InstallSpec:
    """The spec ``request`` asks for on ``members`` (its disks, partition GUIDs chosen),
    the topology chosen for their number; not yet checked (:func:`validate_spec`)."""
    return InstallSpec(
        backend=request.backend,
        settings=request.settings,
        members=tuple(members),
        topology=choose_topology(len(members), request.topology),
        root=request.root,
        pool_options=dict(request.pool_options),
        dataset_options=dict(request.dataset_options),
        fast_kdf=request.fast_kdf,
        swap_size=request.swap_size,
    )


def choose_topology(count: int, asked: str | None) -> str | None:
    """The pool's topology for ``count`` disks: none for one disk, a mirror for two
    unless ``asked`` says otherwise; three or more must be ``asked``. A
    :class:`UsageError` for a topology the disks cannot make."""
    if count == 1:
        if asked is not None:
            raise UsageError(f"--topology {asked}: a pool on one disk has no topology")
        return None
    if asked is None:
        if count == 2:
            return "mirror"
        raise UsageError(
            f"{count} disks: choose how the pool spans them with --topology "
            f"({'|'.join(TOPOLOGIES)}): a mirror keeps a copy on each disk, raidzN survives "
            "N dead disks"
        )
    check_topology(asked, count)
    return asked


def check_topology(topology: str, count: int) -> None:
    """Refuse a ``topology`` unknown, or for which ``count`` disks are too few."""
    if topology not in TOPOLOGIES:
        raise UsageError(f"--topology {topology!r}: choose {', '.join(TOPOLOGIES)}")
    if count < TOPOLOGIES[topology]:
        raise UsageError(
            f"--topology {topology} needs at least {TOPOLOGIES[topology]} disks, and "
            f"{count} were given"
        )


def size_mismatch(disks: Sequence[disk_probe.Disk], topology: str | None) -> str | None:
    """What is lost when ``disks`` differ in size by more than
    :data:`~advisor.blockdevices.SIZE_TOLERANCE` (the pool uses only as much of each
    disk as the smallest has), or ``None``."""
    if len(disks) < 2:
        return None
    smallest = min(disk.size_bytes for disk in disks)
    largest = max(disk.size_bytes for disk in disks)
    if same_size(smallest, largest):
        return None
    lost = sum(disk.size_bytes - smallest for disk in disks)
    sizes = ", ".join(f"{disk.disk_id} {disk_probe.format_size(disk.size_bytes)}" for disk in disks)
    return (
        f"the disks differ in size by more than {SIZE_TOLERANCE:.0%} ({sizes}): a "
        f"{topology or 'pool'} uses {disk_probe.format_size(smallest)} of each, and "
        f"{disk_probe.format_size(lost)} in all stays unused"
    )


def validate_spec(spec: InstallSpec, plugins: LoadedPlugins) -> InstallSpec:
    """``spec`` with every name, path and option checked and normalised: its settings as
    ``advisor config`` checks them (:func:`advisor.settings.check_settings`), and the
    install's own options (:mod:`advisor.validate`); a :class:`UsageError` naming the
    option otherwise. The one check of a spec, whether it is new or read back from a
    saved plan or a state directory (files that may have been edited): each value ends
    up on a command line or in Nix. The members' headers and container names are set
    from the settings here, whatever the spec held."""
    backend = plugins.backend(spec.backend)
    settings = check_settings(spec.settings, backend, plugins.backends, plugins.unlock_methods)
    members = spec.members
    if not members:
        raise UsageError("give --disk DISK-ID (see 'advisor disks')")
    if [member.number for member in members] != list(range(1, len(members) + 1)):
        raise UsageError("the disks must be numbered 1, 2, ... in order")
    if spec.topology is None:
        if len(members) > 1:
            raise UsageError(f"{len(members)} disks need a --topology")
    else:
        check_topology(spec.topology, len(members))
    ids = [member.disk_id for member in members]
    twice = {disk_id for disk_id in ids if ids.count(disk_id) > 1}
    if twice or len({member.disk for member in members}) < len(members):
        raise UsageError(f"a disk is given twice ({', '.join(sorted(twice)) or 'by path'})")
    backups = [member.header_backup for member in members if member.header_backup is not None]
    if backups and not backend.detached_header:
        check_header_given(backend, plugins.backends, given=True)
    headers: tuple[str | None, ...] = (None,) * len(members)
    if backend.detached_header:
        if len(settings.header) != len(members) or len(backups) != len(members):
            raise UsageError(
                f"{backend.name} needs --header PATH (a device or file off the pool's disks) "
                "and --header-backup FILE (on yet another medium) for each disk, in the "
                f"order of the disks: {len(members)} of each"
            )
        headers = settings.header
        for backup in backups:
            if validate.header_path(backup).startswith("/dev/"):
                raise UsageError("--header-backup must be a file (on another medium), not a device")
    if spec.swap_size is not None:
        validate.partition_size(spec.swap_size, "--swap")
    names = luks_names(settings.luks_name, len(members))
    checked = tuple(
        replace(
            member,
            esp_partuuid=validate.guid(member.esp_partuuid, "the ESP's partition GUID"),
            data_partuuid=validate.guid(member.data_partuuid, "the data partition's GUID"),
            swap_partuuid=_swap_guid(member, spec.swap_size),
            luks_name=names[member.number - 1],
            header=headers[member.number - 1],
            header_backup=(
                validate.header_path(member.header_backup)
                if member.header_backup is not None
                else None
            ),
        )
        for member in members
    )
    return replace(
        spec,
        backend=backend.name,
        settings=settings,
        members=checked,
        root=validate.root_path(spec.root),
        pool_options=validate.zfs_properties(spec.pool_options, "--pool-option"),
        dataset_options=validate.zfs_properties(spec.dataset_options, "--fs-option"),
    )


def _swap_guid(member: Member, swap_size: str | None) -> str | None:
    """``member``'s swap partition GUID, checked: one exactly when there is swap."""
    if swap_size is None:
        if member.swap_partuuid is not None:
            raise UsageError("a swap partition GUID is given, but no --swap size")
        return None
    if member.swap_partuuid is None:
        raise UsageError(f"--swap {swap_size}: {member.disk_id} has no swap partition GUID")
    return validate.guid(member.swap_partuuid, "the swap partition's GUID")


def check_fresh_install(
    spec: InstallSpec, disks: Sequence[disk_probe.Disk], plugins: LoadedPlugins
) -> None:
    """The checks, beyond the target disks' own, of an install that has destroyed nothing
    yet (fresh, from a saved plan, or resumed before its first destructive step): a
    :class:`UsageError` if a step would overwrite or hide something it must not, or
    would fail on a name that is taken, after the disks are wiped."""
    check_header_targets(spec, disks)
    check_root(spec.root)
    backend = plugins.backend(spec.backend)
    check_names_free(spec, [pool_device_of(backend, spec, member) for member in spec.members])


def check_names_free(spec: InstallSpec, pool_devices: Sequence[str]) -> None:
    """Refuse an install whose pool name is imported on this machine already (``zpool
    create`` would fail; ``zpool export`` afterwards would export the other pool), or
    one of whose containers (``pool_devices`` under /dev/mapper) is open already."""
    if spec.settings.pool in disk_probe.imported_pools():
        raise UsageError(
            f"a pool named {spec.settings.pool} is imported on this machine already: export it "
            f"(zpool export {spec.settings.pool}) if an earlier install left it, or choose "
            "another --pool"
        )
    for pool_device in pool_devices:
        if pool_device.startswith("/dev/mapper/") and os.path.lexists(pool_device):
            name = pool_device.removeprefix("/dev/mapper/")
            raise UsageError(
                f"{pool_device} is open already: close it (cryptsetup close {name}) if an "
                "earlier install left it open"
            )


def check_root(root: str) -> None:
    """Refuse a ``--root`` (already checked by :func:`validate.root_path`) that is there
    but not a directory, leads through a link to the running system's directories, or
    has something mounted on or below it now: the install mounts the new system there.
    (One that is not there yet is made by the plan.)"""
    real = os.path.realpath(root)
    if Path(real).exists() and not Path(real).is_dir():
        raise UsageError(f"--root {root!r} is not a directory")
    try:
        validate.root_path(real)
    except UsageError:
        raise UsageError(
            f"--root {root!r} leads to {real!r}: {root} must be another directory"
        ) from None
    mounted = [m for m in _mount_points() if m == real or m.startswith(real.rstrip("/") + "/")]
    if mounted:
        raise UsageError(
            f"--root {root!r}: {', '.join(mounted)} is mounted now (an earlier install? "
            f"'umount -R {root}' unmounts it); the new system needs an empty mount point"
        )


def _mount_points() -> list[str]:
    """Where something is mounted on this machine now."""
    return [entry.mountpoint for entry in current_mounts()]


def check_header_targets(spec: InstallSpec, disks: Sequence[disk_probe.Disk]) -> None:
    """Refuse detached headers (and their backups) that the header steps would not write
    safely. A header device must be another disk, or a partition of one, that nothing
    uses: luksFormat overwrites it. A header file and its backup must not exist yet
    (luksFormat would overwrite the one, luksHeaderBackup refuses to overwrite the
    other, after the disks are wiped), must be in existing directories, and must be on
    different file systems, or one lost medium loses both. No two disks may share a
    header or a backup."""
    headers = [member.header for member in spec.members if member.header is not None]
    backups = [m.header_backup for m in spec.members if m.header_backup is not None]
    for paths, option in ((headers, "--header"), (backups, "--header-backup")):
        real = [os.path.realpath(path) for path in paths]
        if len(set(real)) < len(real):
            raise UsageError(f"{option}: each disk needs its own, and one is given twice")
    for member in spec.members:
        _check_header_target(member.header, member.header_backup, disks)


def _check_header_target(
    header: str | None, backup: str | None, disks: Sequence[disk_probe.Disk]
) -> None:
    """One disk's header and its backup (:func:`check_header_targets`)."""
    if header is None:
        return
    if header.startswith("/dev/"):
        _check_header_device(header, disks)
    else:
        _check_new_file(header, "--header", "cryptsetup luksFormat would overwrite it")
    if backup is None:
        return
    if os.path.realpath(backup) == os.path.realpath(header):
        raise UsageError(f"--header-backup {backup!r} is the header itself: back it up elsewhere")
    _check_new_file(backup, "--header-backup", "cryptsetup luksHeaderBackup does not replace it")
    same_medium = not header.startswith("/dev/") and (
        Path(header).parent.stat().st_dev == Path(backup).parent.stat().st_dev
    )
    if same_medium:
        raise UsageError(
            f"--header-backup {backup!r} is on the same file system as --header {header!r}: "
            "the backup must be on another medium, or losing one loses both"
        )


def _check_header_device(header: str, targets: Sequence[disk_probe.Disk]) -> None:
    """Refuse a header device that is not another disk (or a partition of one) of this
    machine that nothing uses: the checks :func:`find_target` makes of the targets."""
    disk = disk_probe.disk_of_device(disk_probe.discover_disks(), header)
    if disk is None:
        raise UsageError(
            f"--header {header!r} is not a disk, or a partition of a disk, of this machine"
        )
    if any(disk.name == target.name for target in targets):
        raise UsageError(f"--header {header!r} must not be on a disk being encrypted")
    if os.geteuid() == 0:
        disk = disk_probe.check_exclusive(disk)
    if problems := disk_probe.overwrite_problems(disk):
        # luksFormat overwrites the header device: the same care as for the disk.
        raise UsageError(
            f"refusing to write a header to {header} (on {disk.disk_id}, {disk.path}): "
            + "; ".join(problems)
        )


def _check_new_file(path: str, option: str, why: str) -> None:
    """Refuse a file path an install step is to create, if it exists (``why`` says what
    the step would do to it) or its directory does not."""
    if os.path.lexists(path):
        raise UsageError(
            f"{option} {path!r} already exists ({why}): move it away or choose another path"
        )
    directory = Path(path).parent
    if not directory.is_dir():
        raise UsageError(f"{option} {path!r}: directory {str(directory)!r} does not exist")


def make_plan(spec: InstallSpec, plugins: LoadedPlugins) -> Plan:
    """The plan for ``spec``, with the datasets of its layout file, if it has one."""
    return build_plan(
        spec,
        plugins.backend(spec.backend),
        generate_hardware_config=runner.which("nixos-generate-config") is not None,
        datasets=layout_datasets(spec.settings),
        method=plugins.unlock_method(spec.settings.unlock),
    )


def find_target(text: str) -> disk_probe.Disk:
    """The disk the user named; a :class:`UsageError` if it must not be touched."""
    disk = disk_probe.find_disk(disk_probe.discover_disks(), text)
    if os.geteuid() == 0:
        # Another program holding the disk open (a mount we cannot see, a partitioner)
        # shows as EBUSY on an exclusive open.
        disk = disk_probe.check_exclusive(disk)
    if not disk.usable:
        raise UsageError(
            f"refusing to use {disk.disk_id} ({disk.path}): " + "; ".join(disk.problems)
        )
    return disk


def find_targets(texts: Sequence[str]) -> list[disk_probe.Disk]:
    """The disks the user named, in order, each checked by :func:`find_target`; a
    :class:`UsageError` for one named twice, whatever the names."""
    disks: list[disk_probe.Disk] = []
    for text in texts:
        disk = find_target(text)
        for other, earlier in zip(disks, texts, strict=False):
            if other.name == disk.name:
                raise UsageError(
                    f"--disk {text} and --disk {earlier} are the same disk "
                    f"({disk.disk_id}, {disk.path}): give each disk once"
                )
        disks.append(disk)
    return disks


def confirm(
    disks: Sequence[disk_probe.Disk],
    yes_wipe: Sequence[str],
    ask: Callable[[str], str] | None,
    *,
    headers: Sequence[str] = (),
) -> None:
    """The user must name every disk: ``--yes-wipe DISK-ID`` once for each, or type each
    id at a prompt. Detached ``headers`` that are devices are overwritten too: the
    messages name them."""
    devices = [header for header in headers if header.startswith("/dev/")]
    also = ""
    if devices:
        also = f", and the header device{'s' if len(devices) > 1 else ''} "
        also += f"{', '.join(devices)} will be overwritten"
    ids = [disk.disk_id for disk in disks]
    listing = ", ".join(
        f"{disk.disk_id} ({disk.path}, serial {disk.serial or 'none'})" for disk in disks
    )
    everything = f"everything on {'it' if len(disks) == 1 else 'them'} will be erased{also}"
    if yes_wipe:
        unknown = [given for given in yes_wipe if given not in ids]
        if unknown:
            raise UsageError(
                f"--yes-wipe {unknown[0]!r} does not name a target disk: "
                f"{'its id is' if len(ids) == 1 else 'their ids are'} {listing}; {everything}"
            )
        missing = [disk_id for disk_id in ids if disk_id not in yes_wipe]
        if missing:
            raise UsageError(
                f"--yes-wipe names {len(set(yes_wipe))} of the {len(ids)} disks: add "
                + " ".join(f"--yes-wipe {disk_id}" for disk_id in missing)
                + f" ({everything})"
            )
        return
    if ask is None:
        raise UsageError(
            f"refusing to erase {', '.join(ids)} without confirmation ({everything}): run at "
            "a terminal, or pass " + " ".join(f"--yes-wipe {disk_id}" for disk_id in ids)
        )
    if len(disks) > 1:
        ask_note = f"These {len(disks)} disks will be erased: {listing}{also}. "
    else:
        ask_note = ""
    for disk in disks:
        if len(disks) == 1:
            prompt = f"Everything on {disk.disk_id} will be erased{also}. Type its id to go on: "
        else:
            prompt = f"{ask_note}Type the id of disk {disk.disk_id} to go on: "
            ask_note = ""
        answer = ask(prompt)
        if answer.strip() != disk.disk_id:
            raise UsageError("the typed id does not match the disk; nothing was changed")


def identity_check(spec: InstallSpec, *, resuming: bool) -> Callable[[], None]:
    """A check that the disks are still the confirmed ones, for just before destruction.

    On a resume the disks are expected to be in use by the install itself (open LUKS
    containers, mounted datasets), so only their identity is compared.
    """
    consequence = "it was left as it is" if resuming else "nothing was changed"

    def check() -> None:
        found = disk_probe.discover_disks()
        for member in spec.members:
            try:
                disk = disk_probe.check_exclusive(disk_probe.find_disk(found, member.disk_id))
            except UsageError:
                raise AdvisorError(
                    f"the target disk {member.disk_id} is gone; {consequence}"
                ) from None
            problems = identity_changes(member, disk) + ([] if resuming else list(disk.problems))
            if problems:
                raise AdvisorError(
                    f"the target disk {member.disk_id} is not the disk that was confirmed, "
                    f"or is in use now ({'; '.join(problems)}); {consequence}"
                )

    return check


def identity_changes(member: Member, disk: disk_probe.Disk) -> list[str]:
    """How ``disk`` differs from the disk ``member`` was made for (empty: the same)."""
    changes = []
    if disk.serial != member.disk_serial:
        changes.append(f"serial {member.disk_serial} became {disk.serial}")
    if disk.size_bytes != member.disk_size:
        changes.append(f"size {member.disk_size} became {disk.size_bytes}")
    if disk.stable_path != member.disk:
        changes.append(f"path {member.disk} became {disk.stable_path}")
    return changes


def check_privileges(allow_bios: bool) -> None:
    if os.geteuid() != 0:
        raise UsageError(
            "advisor install partitions disks and must run as root; "
            "--dry-run shows the plan without root"
        )
    firmware = disk_probe.firmware()
    if firmware != "efi" and not allow_bios:
        warning = disk_probe.firmware_warning(firmware) or "this machine did not boot with EFI"
        raise UsageError(
            f"{warning} (override with --allow-bios, e.g. to prepare a disk for another machine)"
        )


def run(
    plan: Plan,
    state_dir: Path,
    secrets: dict[str, str],
    progress: Progress,
    *,
    resume: bool,
    stop_after: str | None,
) -> Outcome:
    """Run ``plan`` (its ``stop_after`` and ``state_dir`` checked beforehand, with
    :func:`check_stop_after` and :func:`prepare_state_dir`)."""
    if not resume:
        save_spec(state_dir, plan)
    executor = Executor(
        plan,
        state_dir,
        secrets,
        progress,
        check_target=identity_check(
            plan.spec, resuming=resume and destruction_started(state_dir, plan)
        ),
        stop_after=stop_after,
    )
    return executor.run()


def check_terminal(plan: Plan, at_terminal: bool) -> None:
    """Refuse, before anything is done, to run ``plan`` without a terminal
    (``at_terminal`` false: stdin or stderr is not one) when a step of it needs the
    person there (``Step.interactive``): it would fail, or wait for nobody, halfway
    through an install. Every such step counts, even one a resume may not run again:
    the rule is the same whichever run meets it."""
    if at_terminal:
        return
    for number, step in enumerate(plan.steps, start=1):
        if step.interactive:
            raise UsageError(
                f"step {number} ({step.id}: {step.title}) needs you at the terminal, and "
                "this install has none: run advisor install at a terminal"
            )


def check_stop_after(plan: Runnable, stop_after: str | None) -> None:
    """Refuse a ``--stop-after`` that names no step of ``plan`` (an install's, a finish's)."""
    if stop_after is not None and stop_after not in {step.id for step in plan.steps}:
        raise UsageError(f"--stop-after {stop_after!r}: no such step (see 'advisor plan')")


def prepare_state_dir(state_dir: Path, *, resume: bool) -> None:
    """Make sure the state directory can hold the install before anything is asked:
    create it (mode 0700) for a new install, unless it is not a directory, cannot be
    created or holds an earlier install. A resume found its spec there already."""
    if resume:
        return
    if state_dir.exists() and not state_dir.is_dir():
        raise UsageError(f"--state-dir {str(state_dir)!r} is not a directory")
    if (state_dir / JOURNAL_FILE).exists():
        raise UsageError(
            f"{state_dir} holds an earlier install: continue it with --resume, or remove "
            "the directory to start over"
        )
    try:
        make_private_dirs(state_dir)
    except OSError as error:
        raise UsageError(
            f"--state-dir {str(state_dir)!r} cannot be created: {error.strerror}"
        ) from None


def resume_spec(state_dir: Path, plugins: LoadedPlugins) -> Plan:
    """The plan of the install in ``state_dir``, exactly as it started."""
    spec, fingerprint = load_spec(state_dir)
    spec = _validate_saved(spec, plugins, state_dir / SPEC_FILE)
    return _rebuild_plan(
        spec,
        fingerprint,
        plugins,
        f"the plan for the install in {state_dir} would differ now (another advisor "
        "version or backend plugin, or an edited --layout file?): finish it with what "
        "started it, or remove the directory to start over",
    )


def destruction_started(state_dir: Path, plan: Plan) -> bool:
    """Whether the journal in ``state_dir`` records a destructive step of ``plan`` as done
    (or found in place by its probe): from then on the disk is the install's own."""
    destructive = {step.id for step in plan.steps if step.destructive}
    return any(
        event.get("event") in ("done", "probed") and event.get("step") in destructive
        for event in journal_events(state_dir)
    )


def resume_target(
    state_dir: Path, plan: Plan, plugins: LoadedPlugins
) -> list[disk_probe.Disk] | None:
    """The disks of the install in ``state_dir``, checked as for a fresh install (usable,
    and the disks the install was started for) while no destructive step is done; the
    caller then asks for the confirmation again. None once a destructive step is done:
    the disks are then in use by the install itself (open containers, a pool), and only
    their identity is checked, just before the next destructive step."""
    if destruction_started(state_dir, plan):
        return None
    return _target_again(plan.spec, plugins, f"the install in {state_dir} was started for")


def saved_plan(path: Path, plugins: LoadedPlugins) -> tuple[Plan, list[disk_probe.Disk]]:
    """The plan ``advisor plan --save`` wrote to ``path``, and its disks, found again.

    The plan must come out the same on this machine (same advisor, plugins and tools) and
    the disks must be the ones it was made for, and still usable.
    """
    spec, fingerprint = read_plan_file(path)
    spec = _validate_saved(spec, plugins, path)
    plan = _rebuild_plan(
        spec,
        fingerprint,
        plugins,
        f"the plan in {path} would come out differently now (another advisor version, "
        "backend plugin or machine, or an edited file): make it again with 'advisor plan'",
    )
    return plan, _target_again(spec, plugins, f"the plan in {path} was made for")


def _target_again(
    spec: InstallSpec, plugins: LoadedPlugins, made_for: str
) -> list[disk_probe.Disk]:
    """The disks of a saved ``spec``, found again: usable (:func:`find_targets`), the
    same disks (else a :class:`UsageError` saying one is not the disk ``made_for``), and
    the rest of the spec still fit for a fresh install (:func:`check_fresh_install`)."""
    disks = find_targets([member.disk_id for member in spec.members])
    for member, disk in zip(spec.members, disks, strict=True):
        if changes := identity_changes(member, disk):
            raise UsageError(
                f"{member.disk_id} is not the disk {made_for} ({'; '.join(changes)}); "
                "nothing was changed"
            )
    check_fresh_install(spec, disks, plugins)
    return disks


def _validate_saved(spec: InstallSpec, plugins: LoadedPlugins, path: Path) -> InstallSpec:
    """A spec read back from ``path``, through :func:`validate_spec`; its message names
    the file, where the bad value is."""
    try:
        return validate_spec(spec, plugins)
    except UsageError as error:
        raise UsageError(f"{path} holds a value a new install would refuse: {error}") from None


def _rebuild_plan(
    spec: InstallSpec, fingerprint: str, plugins: LoadedPlugins, differs: str
) -> Plan:
    """The plan for a saved spec; a :class:`UsageError` saying ``differs`` unless it has
    the fingerprint that was saved with it (same advisor, plugins and tools)."""
    plan = make_plan(spec, plugins)
    if plan.fingerprint != fingerprint:
        raise UsageError(differs)
    return plan


def interactive() -> bool:
    """Whether a person is at a terminal: stdin and stderr are one (prompts, the
    confirmation and interactive steps need it)."""
    return sys.stdin.isatty() and sys.stderr.isatty()
