"""The install's layout as a disko configuration (``advisor export disko``): pure.

An :class:`~advisor.models.InstallSpec`, its backend and the layout's datasets in, the
value of ``disko.devices`` (:func:`disko_devices`) or the text of a NixOS module that
sets it (:func:`render_disko`, through the one Nix renderer :mod:`advisor.nix`) out.
Everything is derived from the declarations the install plan reads, so that disko's own
scripts lay the disks out as ``advisor install`` does (docs/disko.md):

- the GPT of :mod:`advisor.install.plan` (``ESP_*``, ``DATA_*``, ``SWAP_*``), each
  partition by its GUID, name and type code (the data partition's is the backend's);
- the data partition's content from the backend (:meth:`Backend.disko_content`: a LUKS
  container with the install's ``luksFormat`` options, or the pool member itself);
- the host id set before the pool is created, by the plan's own steps (the pool's
  ``preCreateHook``);
- the pool's properties (``POOL_PROPERTIES``, ``FILESYSTEM_PROPERTIES``, the overrides,
  the backend's ``pool_encryption``), with one generic change: a key read from the
  prompt is read from :data:`KEY_FILE` at creation, and ``keylocation=prompt`` is set
  back in the pool's ``postCreateHook``;
- every dataset with its properties and mount point, a rolled-back one snapshotted
  ``@blank`` in its ``postCreateHook`` by the plan's own snapshot step, guarded by its
  probe, so a second run of disko's create script leaves the snapshot alone.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping, Sequence

from advisor import __version__, nix
from advisor.datasets import Dataset
from advisor.errors import PluginError, UsageError
from advisor.install.plan import (
    DATA_NAME,
    DATA_NUMBER,
    ESP_FILESYSTEM,
    ESP_MKFS_OPTIONS,
    ESP_MOUNT_OPTIONS,
    ESP_NAME,
    ESP_NUMBER,
    ESP_START,
    ESP_TYPE,
    FILESYSTEM_PROPERTIES,
    POOL_PROPERTIES,
    SWAP_NAME,
    SWAP_NUMBER,
    SWAP_TYPE,
    Plan,
    build_plan,
    pool_device_of,
    pool_encryption_of,
)
from advisor.layoutfile import layout_datasets
from advisor.models import Backend, InstallSpec, Member, esp_mountpoint
from advisor.plugincall import backend_owner, blame, call_backend
from advisor.settings import check_installable

#: Where disko reads the disk passphrase from while it creates the disks: the path
#: nixos-anywhere's ``--disk-encryption-keys /tmp/secret.key FILE`` copies FILE to (on
#: the installer's /tmp, in memory; disko's own examples use it).
KEY_FILE = "/tmp/secret.key"  # noqa: S108 (on the target machine, made by nixos-anywhere)
#: The same file as a ZFS ``keylocation`` (zfsprops(7): ``file:///absolute/path``).
KEY_LOCATION = f"file://{KEY_FILE}"
#: sgdisk's size units (K, M, G, T: binary), in KiB.
_KIB = {"K": 1, "M": 1024, "G": 1024**2, "T": 1024**3}
_SIZE = re.compile(r"([0-9]+)([KMGT])")


def check_exportable(backend: Backend) -> None:
    """Raise :class:`UsageError` for a backend the export cannot hand to disko: one that
    does not install (``installable``), or one that says why disko cannot make its
    layout (``disko_unsupported``, such as a detached header)."""
    check_installable(backend)
    reason = backend.disko_unsupported
    if reason is not None:
        raise UsageError(f"{backend.name} cannot be exported to disko: {reason}")


def disko_devices(
    spec: InstallSpec, backend: Backend, datasets: Sequence[Dataset] | None = None
) -> dict[str, object]:
    """The value of ``disko.devices`` that lays out ``spec``'s disks as ``advisor
    install`` does with ``backend`` and ``datasets`` (by default the layout's,
    ``layout_datasets(spec.settings)``: the core's and a layout file's):
    ``{"disk": {"disk1": ...}, "zpool": {<pool>: ...}}``, one disk per member (its
    ``tag``), in order.

    ``spec`` is checked (``validate_spec``). The install's plan is built first, so
    whatever it refuses is refused here too. Raises :class:`UsageError` for a backend
    :func:`check_exportable` refuses or a ``--swap`` size that leaves the data partition
    off a MiB boundary, ``PluginRefusal``/:class:`PluginError` for the backend's.
    """
    check_exportable(backend)
    if datasets is None:
        datasets = layout_datasets(spec.settings)
    plan = build_plan(spec, backend, generate_hardware_config=False, datasets=datasets)
    disks = {member.tag: _disk(spec, backend, member) for member in spec.members}
    return {"disk": disks, "zpool": {spec.settings.pool: _zpool(plan, backend, datasets)}}


def render_disko(
    spec: InstallSpec, backend: Backend, datasets: Sequence[Dataset] | None = None
) -> str:
    """``disko.nix``: a NixOS module setting ``disko.devices`` to :func:`disko_devices`.

    It also sets ``disko.enableConfig = false``: the NixOS configuration of these disks
    is advisor's own ``configuration.nix`` (the same as ``advisor install`` writes);
    disko's module would otherwise define each file system a second time (disko
    module.nix: ``fileSystems = lib.mkIf cfg.enableConfig ...``).
    """
    devices = disko_devices(spec, backend, datasets)
    header = nix.comment(
        f"Generated by advisor {__version__}: the disks of {spec.settings.hostname} for disko "
        f"(backend {backend.name}),\n"
        "laid out as 'advisor install' lays them out. See docs/disko.md.\n"
        f"The disk passphrase is read from {KEY_FILE} while the disks are created: "
        f"nixos-anywhere\n--disk-encryption-keys {KEY_FILE} FILE puts it there."
    )
    module = nix.Function((), {"disko": {"enableConfig": False, "devices": devices}})
    return header + nix.value(module) + "\n"


def _disk(spec: InstallSpec, backend: Backend, member: Member) -> dict[str, object]:
    """``member``'s disk: the install's GPT (:func:`partitions`) on its whole disk."""
    return {
        "type": "disk",
        "device": member.disk,
        "content": {"type": "gpt", "partitions": partitions(spec, backend, member)},
    }


def partitions(spec: InstallSpec, backend: Backend, member: Member) -> dict[str, object]:
    """``member``'s partitions for disko's gpt type, by GPT name, as the install's
    ``partition`` step makes them: same numbers (disko numbers them in the order of their
    ``priority``), GUIDs, names and type codes.

    With ``--swap`` one thing differs: sgdisk puts the install's swap partition (number
    3) before the data partition (2), but disko creates partitions in the order of their
    numbers. The data partition is therefore given the absolute start the install's
    has (1 MiB + ESP + swap), and the swap partition, created last at the default start
    (sgdisk: the largest free block), fills the gap before it: the same places.
    """
    pool_member = {
        "type": "zfs",
        "pool": spec.settings.pool,
        "device": pool_device_of(backend, spec, member),
    }
    esp: dict[str, object] = {
        "priority": ESP_NUMBER,
        "type": ESP_TYPE,
        "uuid": member.esp_partuuid,
        "label": ESP_NAME,
        "start": ESP_START,
        "size": spec.esp_size,
        "content": {
            "type": "filesystem",
            "format": ESP_FILESYSTEM,
            "extraArgs": list(ESP_MKFS_OPTIONS),
            "mountpoint": esp_mountpoint(member.number),
            "mountOptions": list(ESP_MOUNT_OPTIONS),
        },
    }
    data: dict[str, object] = {
        "priority": DATA_NUMBER,
        "type": backend.partition_type,
        "uuid": member.data_partuuid,
        "label": DATA_NAME,
        "size": "100%",
        "content": _data_content(spec, backend, member, pool_member),
    }
    result: dict[str, object] = {ESP_NAME: esp, DATA_NAME: data}
    if spec.swap_size is not None and member.swap_partuuid is not None:
        data["start"] = _data_start(spec.esp_size, spec.swap_size)
        result[SWAP_NAME] = {
            "priority": SWAP_NUMBER,
            "type": SWAP_TYPE,
            "uuid": member.swap_partuuid,
            "label": SWAP_NAME,
            "size": spec.swap_size,
        }
    return result


def _data_start(esp_size: str, swap_size: str) -> str:
    """Where the install's data partition starts when a swap partition lies before it:
    after the ESP (from :data:`ESP_START`) and the swap, in MiB; a :class:`UsageError`
    when that is no whole MiB (sgdisk would align the install's partitions)."""
    kib = sum(_kib(size) for size in (ESP_START, esp_size, swap_size))
    if kib % 1024:
        raise UsageError(
            f"--swap {swap_size}: the export needs the ESP and swap sizes in whole MiB "
            "(such as 16G or 512M), to place the data partition where the install does"
        )
    return f"{kib // 1024}M"


def _kib(size: str) -> int:
    """An sgdisk size (``16G``) in KiB."""
    match = _SIZE.fullmatch(size)
    if match is None:
        raise UsageError(f"{size!r} is not a size such as 16G or 512M")
    return int(match[1]) * _KIB[match[2]]


def _data_content(
    spec: InstallSpec, backend: Backend, member: Member, pool_member: Mapping[str, object]
) -> dict[str, object]:
    """The backend's content of ``member``'s data partition around ``pool_member``
    (:meth:`Backend.disko_content`), checked: a mapping Nix can hold, with a ``type``."""
    owner = backend_owner(backend)
    content = call_backend(backend, "disko_content", spec, member, dict(pool_member), KEY_FILE)
    if not isinstance(content, Mapping) or not isinstance(content.get("type"), str):
        detail = f"disko_content must return a disko content with a type, not {content!r}"
        raise PluginError(blame(owner, detail))
    try:
        nix.value(content)
    except nix.NixRenderError as error:
        raise PluginError(blame(owner, f"disko_content: {error}")) from None
    return dict(content)


def _zpool(plan: Plan, backend: Backend, datasets: Sequence[Dataset]) -> dict[str, object]:
    """The pool as disko's zpool type: the topology (``mode``), the install's ``-o``
    and ``-O`` properties, and the datasets (:func:`_datasets`)."""
    spec = plan.spec
    pool = spec.settings.pool
    created, after = key_at_creation(pool_encryption_of(backend, spec), pool)
    zpool: dict[str, object] = {
        "type": "zpool",
        "mode": spec.topology or "",
        "options": {**POOL_PROPERTIES, **spec.pool_options},
        "rootFsOptions": {**FILESYSTEM_PROPERTIES, **spec.dataset_options, **created},
        "preCreateHook": host_id_hook(plan),
    }
    if after:
        zpool["postCreateHook"] = after
    zpool["datasets"] = _datasets(plan, datasets)
    return zpool


def host_id_hook(plan: Plan) -> str:
    """The plan's steps that set the live system's host id (``hostid-write``,
    ``hostid``), as the shell commands of the pool's ``preCreateHook``: the pool records
    the host id it is created under, and NixOS imports it without force only under the
    same one (``networking.hostId``, ``boot.zfs.forceImportRoot = false``). Run again,
    they write the same id."""
    steps = [step for step in plan.steps if step.id in ("hostid-write", "hostid")]
    if len(steps) != 2:  # the plan always has both (_hostid_steps)
        raise ValueError("the plan has no host id steps")
    return " && ".join(shlex.join(step.argv) for step in steps)


def key_at_creation(encryption: Mapping[str, str], pool: str) -> tuple[dict[str, str], str]:
    """The backend's pool ``encryption`` properties as disko creates the pool with them,
    and the shell commands for after (the pool's ``postCreateHook``, empty for none).

    ``keylocation=prompt`` cannot be answered by disko's create script: the key is read
    from :data:`KEY_LOCATION` at creation, and ``keylocation=prompt`` set right after,
    so the boot asks for the passphrase as after ``advisor install`` (disko's zfs
    example does the same; nixos-anywhere issue 161). A second run of the create script
    sets the file location again (disko sets the root's properties on an existing pool)
    and then, in the hook, the prompt again: the end state is the same.
    """
    if encryption.get("keylocation") != "prompt":
        return dict(encryption), ""
    created = {**encryption, "keylocation": KEY_LOCATION}
    return created, shlex.join(("zfs", "set", "keylocation=prompt", pool))


def _datasets(plan: Plan, datasets: Sequence[Dataset]) -> dict[str, object]:
    """Each dataset as disko's zfs_fs type, by name below the pool: its properties (the
    plan's ``zfs create -o``), its mount point (disko mounts it there under its root, a
    legacy mount as the install's), and for a rolled-back one the plan's ``@blank``
    snapshot step in its ``postCreateHook``, run only when its probe finds no snapshot."""
    pool = plan.spec.settings.pool
    result: dict[str, object] = {}
    for dataset in sorted(datasets, key=lambda dataset: dataset.name):
        entry: dict[str, object] = {
            "type": "zfs_fs",
            "mountpoint": dataset.mountpoint,
            "options": dict(dataset.properties),
        }
        if dataset.rolled_back:
            entry["postCreateHook"] = _blank_hook(plan, dataset.blank_snapshot(pool))
        result[dataset.name] = entry
    return result


def _blank_hook(plan: Plan, snapshot: str) -> str:
    """The plan's step that takes ``snapshot``, as a shell command guarded by the step's
    probe: ``<probe> >/dev/null 2>&1 || <argv>``, so it runs once."""
    step = next(step for step in plan.steps if step.argv == ("zfs", "snapshot", snapshot))
    if step.probe is None:  # the plan's snapshot steps have one: _dataset_steps
        raise ValueError(f"the plan's step {step.id} has no probe")
    return f"{shlex.join(step.probe)} >/dev/null 2>&1 || {shlex.join(step.argv)}"
