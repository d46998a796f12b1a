"""Install plans: the ordered steps that turn a disk into a NixOS-ready encrypted pool.

Pure: an :class:`~advisor.models.InstallSpec` and a backend in, a :class:`Plan` out. The
same plan is printed by ``--dry-run`` (as a shell script, secrets as placeholders) and
run by :mod:`advisor.install.executor`, so what a review shows is exactly what runs.
"""

from __future__ import annotations

import hashlib
import json
import re
import shlex
import sys
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import cast

from advisor import __version__
from advisor.datasets import DATASETS, FIXED_PROPERTIES, Dataset
from advisor.errors import PluginError, UsageError
from advisor.models import Backend, InstallSpec, Member, Step, UnlockMethod, esp_mountpoint
from advisor.plugincall import (
    backend_owner,
    blame,
    call_backend,
    call_method,
    method_owner,
    sequence,
)
from advisor.settings import check_installable, to_argv

#: The reference pool properties (zpool create -o), each overridable.
POOL_PROPERTIES: Mapping[str, str] = {"ashift": "12", "autotrim": "on"}
#: The reference properties of the pool's root file system (zpool create -O).
FILESYSTEM_PROPERTIES: Mapping[str, str] = {
    "acltype": "posixacl",
    "canmount": "off",
    "compression": "zstd",
    "normalization": "none",
    "relatime": "on",
    "xattr": "sa",
    "dnodesize": "auto",
    "mountpoint": "none",
}
#: The GPT every disk gets (:func:`_partition_step`), one declaration for the plan and
#: ``advisor export disko``: the ESP first, from 1 MiB (sgdisk's numbers, names and type
#: codes); the data partition (its type code is the backend's ``partition_type``) over
#: the rest; with ``--swap`` a swap partition, numbered 3 but placed before the data one.
ESP_NUMBER, ESP_NAME, ESP_TYPE, ESP_START = 1, "ESP", "EF00", "1M"
DATA_NUMBER, DATA_NAME = 2, "data"
SWAP_NUMBER, SWAP_NAME, SWAP_TYPE = 3, "swap", "8200"
#: How the ESP is formatted (``mkfs.<ESP_FILESYSTEM>`` with these options: FAT32,
#: labelled) and mounted.
ESP_FILESYSTEM = "vfat"
ESP_MKFS_OPTIONS = ("-F", "32", "-n", "ESP")
ESP_MOUNT_OPTIONS = ("umask=0077",)
#: Environment variables the dry-run script reads the secrets from.
SECRET_VARIABLES = {
    "passphrase": "ADVISOR_PASSPHRASE",
    "password": "ADVISOR_PASSWORD",
    "new-passphrase": "ADVISOR_NEW_PASSPHRASE",
    "recovery-key": "ADVISOR_RECOVERY_KEY",
}
#: Secrets made of others, one a line in this order (``cryptsetup luksAddKey`` without
#: ``--key-file`` reads the passphrase that opens the disk, then the one to add).
SECRET_LINES: Mapping[str, tuple[str, ...]] = {
    "old-and-new-passphrase": ("passphrase", "new-passphrase"),
    "new-passphrase-and-recovery-key": ("new-passphrase", "recovery-key"),
    "passphrase-and-recovery-key": ("passphrase", "recovery-key"),
}
#: The secrets an install feeds its steps: the disk passphrase, the user's password, and
#: for an unlock method with a recovery key (:attr:`UnlockMethod.recovery_key`) that key,
#: alone or after the passphrase (to add it with ``cryptsetup luksAddKey``).
INSTALL_SECRETS = ("passphrase", "password", "recovery-key", "passphrase-and-recovery-key")
#: A step id: kebab-case, so it is one plain word in the journal, the log and the script.
_STEP_ID = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
#: A name a step's ``env`` may set: the portable shell variable names, upper case.
_ENV_NAME = re.compile(r"[A-Z_][A-Z0-9_]*")
#: Names a step's ``env`` may not set, with why.
RESERVED_ENV: Mapping[str, str] = {
    "LC_ALL": "the runner fixes the locale (LC_ALL=C) so every command's messages read alike",
}
#: A prefix of names a step's ``env`` may not use: the script reads the secrets from
#: such variables (:data:`SECRET_VARIABLES`), and a step must not look like it carries one.
RESERVED_ENV_PREFIX = "ADVISOR_"


@dataclass(frozen=True)
class Plan:
    spec: InstallSpec
    steps: tuple[Step, ...]

    @property
    def fingerprint(self) -> str:
        """A hash of every step, so ``--resume`` can tell the plan has not changed."""
        return steps_fingerprint(self.steps)

    def step(self, step_id: str) -> Step:
        for step in self.steps:
            if step.id == step_id:
                return step
        raise KeyError(step_id)


def steps_fingerprint(steps: Sequence[Step]) -> str:
    """A hash of ``steps`` (every field of each), so a resume can tell they are the same."""
    data = json.dumps([_fingerprinted(step) for step in steps], sort_keys=True)
    return hashlib.sha256(data.encode()).hexdigest()[:16]


def _fingerprinted(step: Step) -> dict[str, object]:
    """``step`` as the plain data its plan's fingerprint hashes: every field, ``env`` as
    a dict (JSON has no other mapping). ``probe_secret`` only when set: it came after
    plans were saved, and a plan whose steps do not use it keeps its fingerprint."""
    data = {**asdict(step), "env": dict(step.env)}
    if step.probe_secret is None:
        del data["probe_secret"]
    return data


def _properties(flag: str, values: Mapping[str, str]) -> list[str]:
    return [arg for key, value in values.items() for arg in (flag, f"{key}={value}")]


def _exists(kind: str, name: str) -> tuple[str, ...]:
    return ("zfs", "list", "-H", "-t", kind, "-o", "name", name)


#: Where the host id is written first. On the NixOS installer /etc/hostid is a link into
#: the read-only store, which zgenhostid would write through and fail; renaming a file
#: over it replaces the link itself.
HOSTID_DRAFT = "/etc/hostid.advisor"


def _hostid_steps(host_id: str) -> tuple[Step, ...]:
    """Set the live system's host id: the pool records it, and NixOS imports the pool
    only under the same id. Both steps run again on a resume (a reboot resets it)."""
    write = ("zgenhostid", "-f", "-o", HOSTID_DRAFT, host_id)
    move = ("mv", "-f", HOSTID_DRAFT, "/etc/hostid")
    return (
        Step("hostid-write", f"Write the host id {host_id}", write, restore=(write,)),
        Step("hostid", f"Set the host id to {host_id}", move, restore=(move,)),
    )


def check_overrides(pool_options: Mapping[str, str], dataset_options: Mapping[str, str]) -> None:
    """Raise :class:`UsageError` when ``--pool-option`` (``pool_options``) or
    ``--fs-option`` (``dataset_options``) sets a property in :data:`FIXED_PROPERTIES`.

    The pool options are checked too: there such a name is no pool property, and
    ``zpool create`` would fail only after the disk is wiped.
    """
    for option, values in (("--pool-option", pool_options), ("--fs-option", dataset_options)):
        for name in values:
            why = FIXED_PROPERTIES.get(name.lower())
            if why is not None:
                raise UsageError(f"{option} {name}: cannot be overridden: {why}")


def build_plan(
    spec: InstallSpec,
    backend: Backend,
    *,
    generate_hardware_config: bool,
    advisor_command: Sequence[str] = (sys.executable, "-m", "advisor"),
    datasets: Sequence[Dataset] = DATASETS,
    method: UnlockMethod | None = None,
) -> Plan:
    """Every step of the install, in order.

    ``method`` is the unlock method ``spec.settings.unlock`` names (already checked to
    suit the backend): its ``enroll_steps`` follow each disk's provisioning, and its
    ``retire_passphrase_steps`` come last when the passphrase is not kept. ``None``
    adds no step (the passphrase alone).

    ``generate_hardware_config`` adds ``nixos-generate-config`` (present on the NixOS
    installer). ``advisor_command`` runs ``advisor config`` for the configuration step and
    ``advisor check`` for the last one.
    ``datasets`` are created and mounted (the layout's, :data:`~advisor.datasets.DATASETS`).
    Raises :class:`UsageError` for a backend that is not ``installable`` and for
    options :func:`check_overrides` refuses, :class:`PluginError` when the backend adds
    no encryption to this install after all or contributes something unusable.
    """
    check_installable(backend)
    check_overrides(spec.pool_options, spec.dataset_options)
    provision = [_provision_steps(backend, spec, member) for member in spec.members]
    encryption = pool_encryption_of(backend, spec)
    pool_devices = [pool_device_of(backend, spec, member) for member in spec.members]
    if not all(provision) and not encryption:
        # Defined, but empty for this spec: the pool would be created unencrypted.
        raise PluginError(
            f"{backend_owner(backend)} adds no encryption to this install: its "
            "provision_steps returned no step and its pool_encryption no property"
        )
    configured = [configured_device_of(backend, spec, member) for member in spec.members]
    enroll = [_unlock_steps(method, "enroll_steps", backend, spec, m) for m in spec.members]
    pool, root = spec.settings.pool, spec.root
    several = len(spec.members) > 1
    steps: list[Step] = []
    for member in spec.members:
        steps += _member_steps(
            spec, member, (_wipe_step(member), _partition_step(spec, member, backend))
        )
    # The /dev/disk/by-partuuid links appear when udev has seen the new partitions.
    # The links the next steps name (by partition UUID, and the data partition by id
    # too): udev makes them once it has seen the new partitions.
    links: list[str] = []
    for member in spec.members:
        named = (member.esp_device, member.data_partuuid_device, member.data_device)
        links += [link for link in (*named, member.swap_device) if link and link not in links]
    steps.append(
        Step(
            "settle",
            "Wait for the partitions' device links",
            (sys.executable, "-m", "advisor.install.verify", "settled", *links),
        )
    )
    for member, member_provision, member_enroll in zip(
        spec.members, provision, enroll, strict=True
    ):
        steps += _member_steps(
            spec, member, (*_esp_steps(member), *member_provision, *member_enroll)
        )
    steps += _hostid_steps(spec.settings.host_id)
    vdevs = (spec.topology, *pool_devices) if spec.topology else tuple(pool_devices)
    steps.append(
        Step(
            "create-pool",
            f"Create the pool {pool}"
            + (f" ({spec.topology} of {len(spec.members)} disks)" if several else "")
            + (" (encrypted)" if encryption else ""),
            (
                "zpool",
                "create",
                *_properties("-o", {**POOL_PROPERTIES, **spec.pool_options}),
                *_properties("-O", {**FILESYSTEM_PROPERTIES, **spec.dataset_options, **encryption}),
                pool,
                *vdevs,
            ),
            secret="passphrase" if encryption else None,
            secret_newline=True,
            probe=("zpool", "list", "-H", "-o", "name", pool),
            destructive=True,
            # After a restart: import it from the same devices, without mounting, and
            # (natively encrypted) load its key from stdin, as the boot will.
            restore=(
                (
                    "zpool",
                    "import",
                    "-N",
                    *(word for device in pool_devices for word in ("-d", device)),
                    pool,
                ),
                *((("zfs", "load-key", pool),) if encryption else ()),
            ),
        )
    )
    steps += _dataset_steps(pool, datasets)
    steps += _mount_steps(spec, datasets)
    if generate_hardware_config:
        steps.append(
            Step(
                "hardware-config",
                "Detect the hardware (nixos-generate-config, file systems left to advisor)",
                ("nixos-generate-config", "--root", root, "--no-filesystems"),
            )
        )
    devices: list[str] = []
    for member, device in zip(spec.members, configured, strict=True):
        devices += ["--data-device", device, "--esp-device", member.esp_device]
        if member.swap_device is not None:
            devices += ["--swap-device", member.swap_device]
        if member.header_backup is not None:
            devices += ["--header-backup", member.header_backup]
    steps += [
        Step(
            "write-config",
            f"Write configuration.nix and flake.nix to {root}/etc/nixos",
            (
                *advisor_command,
                "config",
                "--backend",
                spec.backend,
                "--out",
                f"{root}/etc/nixos",
                *devices,
                *to_argv(spec.settings),
                "--password-stdin",
                "--persist-root",
                f"{root}/persist",
                "--force",
            ),
            secret="password",
            secret_newline=True,
        ),
        Step(
            "persist-config",
            "Keep a copy of the configuration in /persist/etc/nixos",
            ("mkdir", "-p", f"{root}/persist/etc/nixos"),
        ),
        Step(
            "copy-config",
            "Copy the configuration to /persist/etc/nixos",
            ("cp", "-a", f"{root}/etc/nixos/.", f"{root}/persist/etc/nixos/"),
        ),
        # Last: is the result going to boot? (docs/check.md) It only reads, so a resume
        # runs it again; the install's summary prints what it says.
        Step(
            "check",
            "Check that the installed system will boot (advisor check)",
            (*advisor_command, "check", "--root", root, "--summary"),
        ),
    ]
    if not spec.settings.keep_passphrase:
        # At the very end: until then a resume can still open the containers with it.
        for member in spec.members:
            retire = _unlock_steps(method, "retire_passphrase_steps", backend, spec, member)
            steps += _member_steps(spec, member, retire)
    _check_unique(steps, backend)
    return Plan(spec, tuple(steps))


def _member_steps(spec: InstallSpec, member: Member, steps: Sequence[Step]) -> list[Step]:
    """``member``'s steps, their ids prefixed with its tag (``disk2-partition``) when
    the pool has several disks; one disk's keep their plain ids."""
    if len(spec.members) == 1:
        return list(steps)
    return [replace(step, id=f"{member.tag}-{step.id}") for step in steps]


def _wipe_step(member: Member) -> Step:
    return Step(
        "wipe-disk",
        f"Erase partition tables and signatures on {member.disk_id}",
        ("wipefs", "--all", "--force", member.disk),
        destructive=True,
    )


def _partition_step(spec: InstallSpec, member: Member, backend: Backend) -> Step:
    """The GPT every disk gets: the ESP, the swap partition if asked for, and the data
    partition over the rest. The swap partition is number 3 but lies before the data
    partition, so the data partition keeps its number (and its ``-part2`` link)."""
    swap: tuple[str, ...] = ()
    if spec.swap_size is not None and member.swap_partuuid is not None:
        n = SWAP_NUMBER
        swap = (
            f"--new={n}:0:+{spec.swap_size}",
            f"--typecode={n}:{SWAP_TYPE}",
            f"--partition-guid={n}:{member.swap_partuuid}",
            f"--change-name={n}:{SWAP_NAME}",
        )
    esp, data = ESP_NUMBER, DATA_NUMBER
    return Step(
        "partition",
        f"Create the GPT on {member.disk_id}: ESP ({spec.esp_size}), "
        + (f"swap ({spec.swap_size}), " if swap else "")
        + "and the data partition",
        (
            "sgdisk",
            # Partition ends on a 1 MiB boundary too: LUKS2 with 4096-byte sectors
            # needs a size that is a multiple of them.
            "--align-end",
            f"--new={esp}:{ESP_START}:+{spec.esp_size}",
            f"--typecode={esp}:{ESP_TYPE}",
            f"--partition-guid={esp}:{member.esp_partuuid}",
            f"--change-name={esp}:{ESP_NAME}",
            *swap,
            f"--new={data}:0:0",
            f"--typecode={data}:{backend.partition_type}",
            f"--partition-guid={data}:{member.data_partuuid}",
            f"--change-name={data}:{DATA_NAME}",
            member.disk,
        ),
        probe=("blkid", "--match-token", f"PARTUUID={member.data_partuuid}"),
        destructive=True,
    )


def _esp_steps(member: Member) -> tuple[Step, ...]:
    """Clear the new partitions of old signatures, then format the ESP."""
    partitions = [member.esp_device, member.data_partuuid_device]
    if member.swap_device is not None:
        partitions.append(member.swap_device)
    return (
        Step(
            "wipe-partitions",
            "Erase stale signatures inside the new partitions",
            ("wipefs", "--all", "--force", *partitions),
            destructive=True,
        ),
        Step(
            "format-esp",
            "Format the ESP (FAT32)",
            (f"mkfs.{ESP_FILESYSTEM}", *ESP_MKFS_OPTIONS, member.esp_device),
            probe=("blkid", "--match-token", f"TYPE={ESP_FILESYSTEM}", member.esp_device),
            destructive=True,
        ),
    )


def _dataset_steps(pool: str, datasets: Sequence[Dataset]) -> list[Step]:
    """Create each dataset; snapshot a rolled-back one right after it is created.

    A parent comes before its children (by name: ``safe/a`` before ``safe/a/b``), whatever
    the order of their mount points: ``zfs create -p`` would make a missing parent itself,
    and then ignore the properties of the parent's own step.
    """
    steps = []
    for dataset in sorted(datasets, key=lambda dataset: dataset.name.count("/")):
        name = dataset.full_name(pool)
        steps.append(
            Step(
                dataset.step_id("dataset"),
                f"Create {name}",
                ("zfs", "create", "-p", *_properties("-o", dataset.properties), name),
                probe=_exists("filesystem", name),
            )
        )
        if dataset.rolled_back:
            # Created once, while the dataset is empty: every boot rolls back to it. The
            # root's step keeps the id it has always had.
            snapshot = dataset.blank_snapshot(pool)
            steps.append(
                Step(
                    "snapshot-blank" if dataset.mountpoint == "/" else dataset.step_id("snapshot"),
                    f"Snapshot {snapshot}",
                    ("zfs", "snapshot", snapshot),
                    probe=_exists("snapshot", snapshot),
                )
            )
    return steps


def _mount_steps(spec: InstallSpec, datasets: Sequence[Dataset]) -> list[Step]:
    """Mount the datasets and the ESPs under the root: the dataset at ``/`` first, since
    the other mount points are directories in it, then the ESPs, then the others in the
    table's order (a parent mount point before the ones below it).

    ``mount-points`` creates the mount points that are directories of the root; one
    below another dataset's mount point (``/home/alice/vm``) is created once that
    dataset is mounted, by its own ``mkdir-`` step, or it would be hidden under it.
    """
    pool, root = spec.settings.pool, spec.root
    top = [dataset for dataset in datasets if dataset.mountpoint == "/"]
    below = [dataset for dataset in datasets if dataset.mountpoint != "/"]
    nested = {
        dataset.name
        for dataset in below
        if any(dataset.mountpoint.startswith(other.mountpoint + "/") for other in below)
    }
    esps = [root + esp_mountpoint(member.number) for member in spec.members]
    steps = [
        # --root may name a directory that is not there yet; on the installer it lives in
        # memory, so a restart takes it away again before mount-root's restore needs it.
        Step(
            "root-dir",
            f"Create the mount point {root}",
            ("mkdir", "-p", root),
            probe=("test", "-d", root),
            restore=(("mkdir", "-p", root),),
        ),
        *(_mount_step(pool, root, dataset) for dataset in top),
        Step(
            "mount-points",
            "Create the mount points",
            (
                "mkdir",
                "-p",
                *(root + dataset.mountpoint for dataset in below if dataset.name not in nested),
                *esps,
            ),
        ),
    ]
    for member, target in zip(spec.members, esps, strict=True):
        options = ",".join(ESP_MOUNT_OPTIONS)
        mount = ("mount", "-t", ESP_FILESYSTEM, "-o", options, member.esp_device, target)
        step = Step(
            "mount-esp",
            f"Mount the ESP at {target} ({options})",
            mount,
            probe=("mountpoint", "-q", target),
            restore=(mount,),
        )
        steps += _member_steps(spec, member, (step,))
    for dataset in below:
        if dataset.name in nested:
            # In the dataset mounted above it, so it stays there across a restart.
            target = root + dataset.mountpoint
            steps.append(
                Step(
                    dataset.step_id("mkdir"),
                    f"Create the mount point {target}",
                    ("mkdir", "-p", target),
                    probe=("test", "-d", target),
                )
            )
        steps.append(_mount_step(pool, root, dataset))
    return steps


def _mount_step(pool: str, root: str, dataset: Dataset) -> Step:
    """Mount ``dataset`` at its mount point under ``root``; again on a resume after a
    restart unmounted it."""
    name = dataset.full_name(pool)
    target = root if dataset.mountpoint == "/" else root + dataset.mountpoint
    mount = ("mount", "-t", "zfs", name, target)
    return Step(
        dataset.step_id("mount"),
        f"Mount {name} at {target}",
        mount,
        probe=("mountpoint", "-q", target),
        restore=(mount,),
    )


# A backend's contributions are checked before they reach the plan: the executor, the
# journal and the script trust a plan, and a plugin's mistake must be an error naming
# it, not a traceback or a step silently skipped on resume.


def _provision_steps(backend: Backend, spec: InstallSpec, member: Member) -> tuple[Step, ...]:
    """The backend's steps for ``member``, each checked (:func:`_step_problem`)."""
    owner = backend_owner(backend)
    steps = sequence(
        owner, "provision_steps", call_backend(backend, "provision_steps", spec, member)
    )
    return checked_steps(owner, "provision_steps", steps, INSTALL_SECRETS)


def _unlock_steps(
    method: UnlockMethod | None, hook: str, backend: Backend, spec: InstallSpec, member: Member
) -> tuple[Step, ...]:
    """The unlock method's steps (its ``hook``: ``enroll_steps`` or
    ``retire_passphrase_steps``) for ``member``, given where the disk's LUKS2 header is
    (:meth:`Backend.token_device`, asked only of a backend that carries the method's
    kind), each checked as a backend's are."""
    if method is None:
        return ()
    header = ""  # a method every backend carries enrolls into no header
    if method.carrier is not None:
        header = str(call_backend(backend, "token_device", spec, member))
    owner = method_owner(method)
    steps = sequence(owner, hook, call_method(method, hook, spec, member, header))
    return checked_steps(owner, hook, steps, INSTALL_SECRETS)


def checked_steps(
    owner: str, method: str, steps: Sequence[object], secrets: Sequence[str]
) -> tuple[Step, ...]:
    """``steps`` a backend's ``method`` returned, each checked (:func:`_step_problem`)
    with ``secrets`` the names its steps may take; a :class:`PluginError` naming
    ``owner`` for the first that cannot go into a plan."""
    checked = []
    for step in steps:
        problem = _step_problem(step, method, secrets)
        if problem is not None:
            raise PluginError(blame(owner, problem))
        # A Step (_step_problem checked it); its env a plain dict, whatever mapping the
        # plugin chose: the fingerprint hashes it.
        step = cast(Step, step)
        checked.append(replace(step, env=dict(step.env)))
    return tuple(checked)


def _step_problem(
    step: object, method: str = "provision_steps", secrets: Sequence[str] = INSTALL_SECRETS
) -> str | None:
    """Why ``step`` (from the backend's ``method``, whose steps may take ``secrets``)
    cannot go into a plan, or ``None``."""
    if not isinstance(step, Step):
        return f"{method} returned {type(step).__name__}, not Step"
    if not isinstance(step.id, str) or not _STEP_ID.fullmatch(step.id):
        return f"step id {step.id!r} is not kebab-case (a-z, 0-9, single hyphens)"
    where = f"step {step.id!r}"
    if not isinstance(step.title, str) or not step.title or not step.title.isprintable():
        # The title becomes a comment line of the script: a newline would end it there.
        return f"{where}: the title must be one line of printable text, not {step.title!r}"
    for field, name in (("secret", step.secret), ("probe_secret", step.probe_secret)):
        if name is not None and name not in secrets:
            known = ", ".join(secrets)
            return f"{where}: {field} {name!r} is none of the secrets there are ({known})"
    interactive: object = step.interactive  # typed, but a plugin's object may be anything
    if not isinstance(interactive, bool):
        return f"{where}: interactive must be True or False, not {interactive!r}"
    if step.interactive and (step.secret is not None or step.probe_secret is not None):
        # Its stdin is the terminal: there is no other stdin to feed the secret on.
        return f"{where}: an interactive step reads the terminal and cannot take a secret"
    problem = _env_problem(step.env)
    if problem is not None:
        return f"{where}: env {problem}"
    restore: object = step.restore  # typed, but a plugin's object may be anything
    if not isinstance(restore, tuple | list):
        return f"{where}: restore must be a sequence of commands, not {restore!r}"
    commands = [("argv", step.argv)]
    if step.probe is not None:
        commands.append(("probe", step.probe))
    commands += [("restore", command) for command in step.restore]
    for field, command in commands:
        problem = _command_problem(command)
        if problem is not None:
            return f"{where}: {field} {problem}"
    return None


def _env_problem(env: object) -> str | None:
    """Why ``env`` is no set of environment variables a step may have, or ``None``."""
    if not isinstance(env, Mapping):
        return f"must map names to values, not {env!r}"
    for name, value in env.items():
        if not isinstance(name, str) or not _ENV_NAME.fullmatch(name):
            return f"name {name!r} is not A-Z, 0-9 and _ (not starting with a digit)"
        if name in RESERVED_ENV:
            return f"{name} cannot be set: {RESERVED_ENV[name]}"
        if name.startswith(RESERVED_ENV_PREFIX):
            return f"{name} cannot be set: {RESERVED_ENV_PREFIX}* names are the script's secrets"
        # printable: one line, no NUL, shown as it is in the script and the log.
        if not isinstance(value, str) or not value.isprintable():
            return f"{name}: the value must be one line of printable text, not {value!r}"
    return None


def _command_problem(argv: object) -> str | None:
    """Why ``argv`` is no command the runner can run, or ``None``."""
    if not isinstance(argv, tuple | list) or not argv:
        return f"must be a non-empty sequence of words, not {argv!r}"
    if not all(isinstance(word, str) and "\0" not in word for word in argv) or not argv[0]:
        return f"must hold only strings without NUL characters, not {argv!r}"
    return None


def pool_encryption_of(backend: Backend, spec: InstallSpec) -> Mapping[str, str]:
    """``backend.pool_encryption(spec)``, checked: the ``-O`` properties that encrypt
    the pool; a plugin error names the backend."""
    encryption = call_backend(backend, "pool_encryption", spec)
    if not isinstance(encryption, Mapping) or not all(
        isinstance(key, str) and key and isinstance(value, str) for key, value in encryption.items()
    ):
        detail = f"pool_encryption must map property names to strings, not {encryption!r}"
        raise PluginError(blame(backend_owner(backend), detail))
    return encryption


def pool_device_of(backend: Backend, spec: InstallSpec, member: Member) -> str:
    """``backend.pool_device(spec, member)``, checked; a plugin error names the backend."""
    device = call_backend(backend, "pool_device", spec, member)
    if not isinstance(device, str) or not device or not device.isprintable():
        detail = f"pool_device must be a path, not {device!r}"
        raise PluginError(blame(backend_owner(backend), detail))
    return device


def _check_unique(steps: Sequence[Step], backend: Backend) -> None:
    """Refuse a plan in which two steps share an id: the journal keys on it, so a
    resume would take the second for done."""
    seen: set[str] = set()
    for step in steps:
        if step.id in seen:
            detail = f"step id {step.id!r} is used twice in the plan (the journal keys on step ids)"
            raise PluginError(blame(backend_owner(backend), detail))
        seen.add(step.id)


def configured_device_of(backend: Backend, spec: InstallSpec, member: Member) -> str:
    """The device of ``member`` the configuration unlocks or imports, as the backend
    names it (``advisor config --data-device``), checked."""
    device = call_backend(backend, "configured_device", spec, member)
    if not isinstance(device, str) or not device.startswith("/dev/disk/by-"):
        detail = f"configured_device must be a /dev/disk/by-* path, not {device!r}"
        raise PluginError(blame(backend_owner(backend), detail))
    return device


def render_script(plan: Plan, runs_as: str | None = None) -> str:
    """The plan as a shell script a reviewer can read (and run): secrets come from
    environment variables, never from the script. ``runs_as`` holds the ``advisor
    install`` options that run exactly this plan (``--plan FILE`` once it is saved,
    ``--resume --state-dir DIR`` for an install under way); without them the script says
    that partition GUIDs and the host id are chosen anew at each run."""
    spec = plan.spec
    if runs_as is not None:
        exact = f"Its GUIDs and host id are fixed; run exactly it with: advisor install {runs_as}"
    else:
        exact = (
            "Partition GUIDs (and the host id, unless given) are chosen anew at each run: "
            "to run exactly this plan, save it with --save FILE and run 'advisor install "
            "--plan FILE'."
        )
    targets = [
        comment_line(
            f"{'target' if len(spec.members) == 1 else member.tag}: {member.disk} "
            f"(serial {member.disk_serial or 'none'}, {member.disk_size} bytes)"
        )
        for member in spec.members
    ]
    if spec.topology is not None:
        targets.insert(0, comment_line(f"pool: {spec.topology} of {len(spec.members)} disks"))
    lines = [
        "#!/bin/sh",
        comment_line(
            f"advisor {__version__} install plan {plan.fingerprint}: backend {spec.backend}"
        ),
        *targets,
        comment_line(
            f"host id {spec.settings.host_id}, pool {spec.settings.pool}, root {spec.root}"
        ),
        comment_line(exact),
        secrets_comment(INSTALL_SECRETS),
        "set -eu",
        "",
    ]
    return "\n".join([*lines, *script_steps(plan.steps)]) + "\n"


def secrets_comment(names: Sequence[str]) -> str:
    """The script's comment line saying which variable holds each of the secrets
    ``names`` (those of :data:`SECRET_VARIABLES`; the others are made of them)."""
    named = [name for name in names if name in SECRET_VARIABLES]
    return comment_line(
        "Secrets are read from: "
        + ", ".join(f"{SECRET_VARIABLES[name]} ({name})" for name in named)
    )


def script_steps(steps: Sequence[Step]) -> list[str]:
    """The lines of the script that run ``steps``: a comment with each one's number, id
    and title, then its command, its secret read from the variables."""
    lines = []
    for number, step in enumerate(steps, start=1):
        note = " -- DESTROYS DATA" if step.destructive else ""
        if step.interactive:
            note += " -- needs you at the terminal"
        lines.append(comment_line(f"[{number}/{len(steps)}] {step.id}: {step.title}{note}"))
        command = command_line(step, step.argv)
        if step.secret is not None:
            command = f"{_printf(step.secret, step.secret_newline)} | {command}"
        lines.append(command)
        # Not run here: what 'advisor install --resume' runs if a restart undid the step.
        for restore in step.restore:
            stdin = f" (stdin: {_variables(step.secret)})" if step.secret else ""
            lines.append(
                comment_line(f"  on --resume, if undone: {command_line(step, restore)}{stdin}")
            )
    return lines


def _variables(secret: str) -> str:
    """The variables ``secret`` is read from, as the script names them."""
    return " ".join(SECRET_VARIABLES[part] for part in SECRET_LINES.get(secret, (secret,)))


def _printf(secret: str, newline: bool) -> str:
    """The ``printf`` that writes ``secret`` as the executor feeds it: its parts one a
    line, the last one ended by a newline when ``newline``."""
    parts = SECRET_LINES.get(secret, (secret,))
    fmt = "\\n".join("%s" for _ in parts) + ("\\n" if newline else "")
    variables = " ".join(f'"${SECRET_VARIABLES[part]}"' for part in parts)
    return f"printf '{fmt}' {variables}"


def command_line(step: Step, argv: Sequence[str]) -> str:
    """One of ``step``'s commands as a shell command line that runs the same thing:
    ``env NAME=value ... argv`` when the step sets variables (the script and the log
    show it so), shell-quoted."""
    assignments = [f"{name}={value}" for name, value in step.env.items()]
    return shlex.join(["env", *assignments, *argv] if assignments else argv)


def comment_line(text: str) -> str:
    """``text`` as one comment line of the script. A newline would end the comment and
    run the rest as a command (a serial, a --root, a saved plan's name, a plugin's
    words), so it and every other unprintable character is shown escaped."""
    return "# " + "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
