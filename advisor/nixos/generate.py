"""The NixOS configuration for a layout: core fragments, merging, and the files' text.

Pure: a validated :class:`~advisor.models.Layout` and the chosen backend in, file contents
out. Nothing here touches a disk or runs a program; ``advisor config`` and the installer
write the result.

The core contributes what every layout shares (boot loader, ZFS basics, root rollback,
file systems, persistence, users, optional remote unlock and sops key); the backend adds
how its pool is unlocked and imported; plugins may add more through the
``advisor_nix_fragments`` hook. Everything is merged into one attribute tree before it is
rendered, so two contributors can never silently override each other.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TypeGuard, cast

from advisor import __version__, backups, nix
from advisor.datasets import (
    DATASETS,
    PERSISTED_DIRECTORIES,
    PERSISTED_FILES,
    Dataset,
    rolled_back_datasets,
)
from advisor.errors import PluginError
from advisor.layoutrecord import RECORD_FILE, record_text
from advisor.models import (
    ESP_MOUNTPOINT,
    AttrPath,
    Backend,
    Layout,
    NixFragment,
    RemoteUnlock,
    UnlockMethod,
    esp_mountpoint,
)
from advisor.plugincall import (
    backend_owner,
    call_backend,
    call_method,
    method_owner,
    sequence_of,
)

#: Sections appear in this order; sections the core does not know follow, in order of
#: first appearance.
SECTION_ORDER = (
    "Boot loader",
    "ZFS",
    "Encryption",
    "Root rollback",
    "File systems",
    "Swap",
    "Persistence",
    "Users",
    "Remote unlock",
    "Secrets",
    "Backups",
    "System",
)

SSH_HOST_KEY = "/persist/etc/ssh/ssh_host_ed25519_key"


@dataclass(frozen=True)
class Contribution:
    """A fragment and who contributed it (``core``, ``backend luks``, ``plugin x``)."""

    contributor: str
    fragment: NixFragment


@dataclass(frozen=True)
class Statement:
    """One ``path = value;`` line of the rendered configuration."""

    section: str
    path: AttrPath
    value: object


@dataclass(frozen=True)
class GeneratedConfig:
    """The text of the generated files, by file name."""

    files: Mapping[str, str]


class ConfigConflict(PluginError):
    """Two contributors set one option to different values."""


def core_fragments(layout: Layout, datasets: Sequence[Dataset] = DATASETS) -> list[NixFragment]:
    """What every layout needs, whichever backend encrypts it. ``datasets`` are mounted
    and the rolled-back ones rolled back (the layout's: :data:`~advisor.datasets.DATASETS`,
    and a layout file's, :func:`advisor.layoutfile.layout_datasets`)."""
    systemd_initrd = layout.settings.initrd == "systemd"
    fragments = [
        NixFragment("Boot loader", _boot_loader(layout)),
        NixFragment(
            "ZFS",
            {
                ("boot", "supportedFilesystems"): ["zfs"],
                ("boot", "initrd", "systemd", "enable"): systemd_initrd,
                # The pool was created under this host id (zgenhostid), so it imports
                # without force; forceImportRoot=false keeps it that way.
                ("networking", "hostId"): layout.settings.host_id,
                ("boot", "zfs", "forceImportRoot"): False,
                ("services", "zfs", "autoScrub", "enable"): True,
                ("services", "zfs", "trim", "enable"): layout.settings.trim,
            },
        ),
        NixFragment("Root rollback", _rollback(layout, rolled_back_datasets(datasets))),
        NixFragment("File systems", _file_systems(layout, datasets)),
        *_swap(layout),
        NixFragment(
            "Persistence",
            {
                ("environment", "persistence", "/persist"): {
                    "hideMounts": True,
                    "directories": list(PERSISTED_DIRECTORIES),
                    "files": list(PERSISTED_FILES),
                },
                # Read from /persist directly: an impermanence bind mount would come too
                # late for sshd and for secrets decrypted with the host key.
                ("services", "openssh", "hostKeys"): [{"path": SSH_HOST_KEY, "type": "ed25519"}],
            },
        ),
        NixFragment(
            "Users",
            {
                # /etc/shadow is wiped at every boot: passwords must come from here.
                ("users", "mutableUsers"): False,
                ("users", "users", layout.settings.user): {
                    "isNormalUser": True,
                    "extraGroups": ["wheel"],
                    "initialHashedPassword": layout.hashed_password,
                },
            },
        ),
    ]
    if layout.remote_unlock is not None:
        fragments.append(NixFragment("Remote unlock", _remote_unlock(layout, layout.remote_unlock)))
    if layout.sops_age_key_file is not None:
        fragments.append(
            NixFragment(
                "Secrets",
                # On /persist, readable before sops-nix decrypts at activation.
                {("sops", "age", "keyFile"): layout.sops_age_key_file},
            )
        )
    fragments.append(
        NixFragment(
            "System",
            {
                ("networking", "hostName"): layout.settings.hostname,
                ("system", "stateVersion"): layout.settings.nixos_release,
            },
        )
    )
    return fragments


def _boot_loader(layout: Layout) -> dict[AttrPath, object]:
    """systemd-boot on the first disk's ESP, at /boot; on a pool of several disks, the
    ESP copied to every other disk's at each rebuild, so any disk boots alone (the
    firmware finds the copy at the removable-media path, EFI/BOOT/BOOTX64.EFI)."""
    settings: dict[AttrPath, object] = {
        ("boot", "loader", "systemd-boot", "enable"): True,
        # The boot-menu editor allows init=/bin/sh: a root shell without a password.
        ("boot", "loader", "systemd-boot", "editor"): False,
        ("boot", "loader", "efi", "canTouchEfiVariables"): True,
        ("boot", "loader", "efi", "efiSysMountPoint"): ESP_MOUNTPOINT,
    }
    others = [esp_mountpoint(member.number) for member in layout.members[1:]]
    if others:
        settings[("boot", "loader", "systemd-boot", "extraInstallCommands")] = nix.Raw(
            _esp_sync_script(others)
        )
    return settings


def _esp_sync_script(mountpoints: Sequence[str]) -> str:
    """The shell commands, as a Nix string, that make each of ``mountpoints`` a copy of
    /boot after systemd-boot installed or updated it. rsync only copies what changed
    and deletes what /boot no longer has; FAT keeps neither owners nor modes, and its
    times in steps of 2 s. The random seed stays each ESP's own (systemd-boot refreshes
    it at every boot from the ESP it started from). An ESP that is not mounted (its disk
    is missing) is skipped with a warning, not written into the root file system."""
    lines = [
        "# Keep every other disk's ESP in step with /boot (advisor: several disks).",
        f"for esp in {' '.join(mountpoints)}; do",
        '  if ${pkgs.util-linux}/bin/mountpoint -q "$esp"; then',
        "    ${pkgs.rsync}/bin/rsync --recursive --times --modify-window=1 --delete \\",
        f'      --exclude=/loader/random-seed {ESP_MOUNTPOINT}/ "$esp"/',
        "  else",
        '    echo "warning: $esp is not mounted (is its disk missing?): its boot loader was'
        ' not updated" >&2',
        "  fi",
        "done",
    ]
    return "''\n" + "".join(f"    {line}\n" for line in lines) + "  ''"


def _file_systems(layout: Layout, datasets: Sequence[Dataset]) -> dict[AttrPath, object]:
    """A legacy ZFS mount for each dataset, in the table's order, then each disk's ESP.
    On a pool of several disks an ESP may be missing with its disk: ``nofail`` lets the
    boot go on without it (the pool imports degraded)."""
    settings: dict[AttrPath, object] = {}
    for dataset in datasets:
        entry: dict[str, object] = {
            "device": dataset.full_name(layout.settings.pool),
            "fsType": "zfs",
        }
        if dataset.needed_for_boot:
            entry["neededForBoot"] = True
        settings[("fileSystems", dataset.mountpoint)] = entry
    several = len(layout.members) > 1
    for member in layout.members:
        settings[("fileSystems", esp_mountpoint(member.number))] = {
            "device": member.esp_device,
            "fsType": "vfat",
            "options": ["umask=0077", *(ESP_NOFAIL if several else ())],
        }
    return settings


#: The mount options of an ESP that may be missing with its disk: boot without it, and
#: do not wait the default 90 s for it.
ESP_NOFAIL = ("nofail", "x-systemd.device-timeout=10s")


def _swap(layout: Layout) -> list[NixFragment]:
    """Each disk's swap partition, encrypted with a new random key at every boot (its
    content is gone at power-off, as a secret in memory is), and no hibernation: a
    hibernated image of a system with an imported pool can corrupt it."""
    devices = [member.swap_device for member in layout.members if member.swap_device]
    if not devices:
        return []
    # A dead disk's swap must not hold up the boot (swap.nix's own example option).
    options = {"options": ["nofail"]} if len(layout.members) > 1 else {}
    return [
        NixFragment(
            "Swap",
            {
                ("swapDevices",): [
                    {"device": device, "randomEncryption": {"enable": True}, **options}
                    for device in devices
                ],
                ("boot", "zfs", "allowHibernation"): False,
            },
        )
    ]


def _rollback(layout: Layout, datasets: Sequence[Dataset]) -> dict[AttrPath, object]:
    """Roll ``datasets`` back to their blank snapshots in the initrd, before they are
    mounted: the root first (the unit runs before ``sysroot.mount``), then a layout
    file's, which NixOS mounts only in stage 2."""
    pool = layout.settings.pool
    commands = [f"zfs rollback -r {dataset.blank_snapshot(pool)}" for dataset in datasets]
    if layout.settings.initrd == "scripted":
        # mkAfter: the scripted initrd imports the pool in postResumeCommands too, and
        # the rollback must come after the import.
        text = "".join(command + "\n" for command in commands)
        return {("boot", "initrd", "postResumeCommands"): nix.Apply("lib.mkAfter", text)}
    return {
        ("boot", "initrd", "systemd", "services", "rollback"): {
            "description": "Roll back the root dataset to its blank snapshot"
            if len(datasets) == 1
            else "Roll back the root dataset, then the other rolled-back ones, to their "
            "blank snapshots",
            "wantedBy": ["initrd.target"],
            # After the pool is imported (and its key loaded), before / is mounted.
            "after": [f"zfs-import-{pool}.service"],
            "before": ["sysroot.mount"],
            "path": [nix.Raw("pkgs.zfs")],
            "unitConfig": {"DefaultDependencies": "no"},
            "serviceConfig": {"Type": "oneshot"},
            "script": "\n".join(commands),
        }
    }


def _remote_unlock(layout: Layout, remote: RemoteUnlock) -> dict[AttrPath, object]:
    settings: dict[AttrPath, object] = {
        ("boot", "initrd", "network", "ssh"): {
            "enable": True,
            "port": remote.port,
            "hostKeys": [remote.host_key],
            "authorizedKeys": list(remote.authorized_keys),
        },
    }
    if layout.settings.initrd == "systemd":
        settings[("boot", "initrd", "systemd", "network", "enable")] = True
        settings[("boot", "initrd", "systemd", "network", "networks", "10-uplink")] = {
            "matchConfig": {"Name": "en* eth*"},
            "networkConfig": {"DHCP": "yes"},
        }
        # The login shell answers the passphrase prompts that are waiting.
        settings[("boot", "initrd", "systemd", "users", "root", "shell")] = (
            "/bin/systemd-tty-ask-password-agent"
        )
    else:
        settings[("boot", "initrd", "network", "enable")] = True
        settings[("boot", "kernelParams")] = ["ip=dhcp"]
    return settings


def merge(contributions: Sequence[Contribution]) -> list[Statement]:
    """Merge every contribution into one tree and cut it into statements.

    A statement is made for each path that was set and is not inside another set path,
    under the section of its first contributor. Lists at one path are concatenated
    (without repeats), mappings merged key by key; anything else must be equal, or a
    :class:`ConfigConflict` names both contributors.
    """
    tree: dict[str, object] = {}
    owners: dict[AttrPath, str] = {}
    declared: dict[AttrPath, str] = {}  # path -> section, in order of declaration
    for contribution in contributions:
        _check_fragment(contribution)
        for path, item in contribution.fragment.settings.items():
            _insert(tree, owners, path, item, contribution.contributor)
            declared.setdefault(path, contribution.fragment.section)
    roots = [path for path in declared if not any(_is_prefix(other, path) for other in declared)]
    return [Statement(declared[path], path, _lookup(tree, path)) for path in roots]


def _check_fragment(contribution: Contribution) -> None:
    """Raise :class:`PluginError` naming the contributor unless its fragment can be
    rendered: checked here, where the contributor is known, rather than when the merged
    tree is rendered and a bad value has lost its owner."""
    who, fragment = contribution.contributor, contribution.fragment
    if not isinstance(fragment.section, str) or not isinstance(fragment.settings, Mapping):
        raise PluginError(f"{who}: a NixFragment needs a section name and a settings mapping")
    for path, item in fragment.settings.items():
        if not isinstance(path, tuple) or not all(isinstance(name, str) for name in path):
            raise PluginError(f"{who}: attribute path {path!r} is not a tuple of names")
        if not path:
            raise ConfigConflict(f"{who} set an empty attribute path")
        try:
            nix.value(item)
        except nix.NixRenderError as error:
            raise PluginError(f"{who}: {nix.attr_path(path)}: {error}") from None


def _is_prefix(shorter: AttrPath, longer: AttrPath) -> bool:
    return len(shorter) < len(longer) and longer[: len(shorter)] == shorter


def _insert(
    tree: dict[str, object],
    owners: dict[AttrPath, str],
    path: AttrPath,
    item: object,
    contributor: str,
) -> None:
    if isinstance(item, Mapping):
        if not item:
            _set_leaf(tree, owners, path, {}, contributor)
        for key, sub in item.items():
            _insert(tree, owners, (*path, key), sub, contributor)
        return
    _set_leaf(tree, owners, path, item, contributor)


def _set_leaf(
    tree: dict[str, object],
    owners: dict[AttrPath, str],
    path: AttrPath,
    item: object,
    contributor: str,
) -> None:
    node = tree
    for depth, key in enumerate(path[:-1]):
        child = node.setdefault(key, {})
        if not isinstance(child, dict):
            prefix = path[: depth + 1]
            below = _nested(path[depth + 1 :], item)
            raise _conflict(prefix, child, owners[prefix], below, contributor)
        node = child
    key = path[-1]
    if key not in node:
        node[key] = list(item) if _is_list(item) else item
        owners[path] = contributor
        return
    current = node[key]
    if isinstance(current, dict) and current and not isinstance(item, Mapping):
        raise _conflict(path, current, _owner_below(owners, path), item, contributor)
    if isinstance(current, list) and _is_list(item):
        current.extend(element for element in item if element not in current)
        return
    if current != item:
        raise _conflict(path, current, owners.get(path, "?"), item, contributor)


def _nested(path: AttrPath, item: object) -> object:
    """``item`` at ``path`` below a set: ``{a = {b = item;};}`` for ``("a", "b")``."""
    for key in reversed(path):
        item = {key: item}
    return item


def _owner_below(owners: Mapping[AttrPath, str], path: AttrPath) -> str:
    return next((owner for p, owner in owners.items() if p[: len(path)] == path), "?")


def _is_list(item: object) -> TypeGuard[Sequence[object]]:
    return isinstance(item, Sequence) and not isinstance(item, str | bytes)


def _conflict(
    path: AttrPath, first: object, first_owner: str, second: object, second_owner: str
) -> ConfigConflict:
    return ConfigConflict(
        f"conflicting values for {nix.attr_path(path)}: {_as_nix(first)} from {first_owner} "
        f"and {_as_nix(second)} from {second_owner}"
    )


def _as_nix(item: object) -> str:
    """``item`` as the configuration would spell it, on one line."""
    return " ".join(line.strip() for line in nix.value(item).splitlines())


def _lookup(tree: Mapping[str, object], path: AttrPath) -> object:
    node: object = tree
    for key in path:
        node = cast(Mapping[str, object], node)[key]
    return node


def render_configuration(layout: Layout, statements: Sequence[Statement]) -> str:
    """``configuration.nix``: a NixOS module, one commented block per section."""
    known = {title: index for index, title in enumerate(SECTION_ORDER)}
    first_seen: dict[str, int] = {}
    for statement in statements:
        first_seen.setdefault(statement.section, len(first_seen))
    sections = sorted(first_seen, key=lambda s: (known.get(s, len(known)), first_seen[s]))

    # nixos-generate-config writes hardware-configuration.nix (run it with
    # --no-filesystems: the file systems are defined here).
    body = [f"{nix.INDENT}imports = {nix.value([nix.Raw('./hardware-configuration.nix')], 1)};\n"]
    for section in sections:
        body.append("\n" + nix.comment(section, 1))
        for statement in statements:
            if statement.section == section:
                rendered = nix.value(statement.value, 1)
                body.append(f"{nix.INDENT}{nix.attr_path(statement.path)} = {rendered};\n")
    header = nix.comment(
        f"Generated by advisor {__version__} for the {layout.backend} backend.\n"
        "Edit freely: advisor does not read this file back. See docs/configuration.md."
    )
    return header + "{ config, lib, pkgs, ... }:\n\n{\n" + "".join(body) + "}\n"


#: A folder of a host's files in a flake, relative to it: ``.`` or ``./hosts/alpha``
#: (written into the flake as Nix path literals, so only these characters).
_FLAKE_FOLDER = re.compile(r"\.(/[A-Za-z0-9_+][A-Za-z0-9._+-]*)*")
DISKO_URL = "github:nix-community/disko"


@dataclass(frozen=True)
class FlakeHost:
    """One ``nixosConfigurations`` entry of a flake: the host's ``name`` (its host
    name), the ``folder`` of its files relative to the flake (``.``, or
    ``./hosts/alpha``; ``configuration.nix`` there, and ``disko.nix`` when ``disko``),
    and whether it takes sops-nix's module (``sops``) and disko's (``disko``)."""

    name: str
    folder: str = "."
    sops: bool = False
    disko: bool = False

    def modules(self) -> list[object]:
        """Its modules, in order: its configuration, impermanence's module, sops-nix's,
        then disko's module and its ``disko.nix``."""
        if not _FLAKE_FOLDER.fullmatch(self.folder) or "/../" in f"{self.folder}/":
            raise ValueError(f"a flake host's folder must be ./a/b, not {self.folder!r}")
        modules: list[object] = [
            nix.Raw(f"{self.folder}/configuration.nix"),
            nix.Raw("impermanence.nixosModules.impermanence"),
        ]
        if self.sops:
            modules.append(nix.Raw("sops-nix.nixosModules.sops"))
        if self.disko:
            modules += [nix.Raw("disko.nixosModules.disko"), nix.Raw(f"{self.folder}/disko.nix")]
        return modules


def flake_host(layout: Layout, folder: str = ".", *, disko: bool = False) -> FlakeHost:
    """The flake entry of ``layout``'s host, its files in ``folder``."""
    return FlakeHost(
        layout.settings.hostname, folder, sops=layout.sops_age_key_file is not None, disko=disko
    )


def render_flake(hosts: Sequence[FlakeHost], *, release: str, description: str, usage: str) -> str:
    """``flake.nix`` with a ``nixosConfigurations`` entry for each of ``hosts`` (one or
    several, names unique), nixpkgs at ``release`` (``26.05``: ``nixos-26.05``), and
    the inputs their modules need: impermanence always, sops-nix and disko (its nixpkgs
    following the flake's) when a host takes them. ``usage`` is the header comment's
    second line (how to install a host)."""
    names = [host.name for host in hosts]
    if not hosts or len(set(names)) < len(names):
        raise ValueError(f"a flake needs hosts with unique names, not {names!r}")
    inputs: dict[str, object] = {
        "nixpkgs": {"url": f"github:NixOS/nixpkgs/nixos-{release}"},
        "impermanence": {"url": "github:nix-community/impermanence"},
    }
    arguments = ["nixpkgs", "impermanence"]
    follows = {"nixpkgs": {"follows": "nixpkgs"}}
    if any(host.sops for host in hosts):
        inputs["sops-nix"] = {"url": "github:Mic92/sops-nix", "inputs": follows}
        arguments.append("sops-nix")
    if any(host.disko for host in hosts):
        inputs["disko"] = {"url": DISKO_URL, "inputs": follows}
        arguments.append("disko")
    flake = {
        "description": description,
        "inputs": inputs,
        "outputs": nix.Function(
            tuple(arguments),
            {
                "nixosConfigurations": {
                    host.name: nix.Apply("nixpkgs.lib.nixosSystem", {"modules": host.modules()})
                    for host in hosts
                }
            },
        ),
    }
    header = nix.comment(f"Generated by advisor {__version__}. {usage}")
    return header + nix.value(flake) + "\n"


def config_flake(layout: Layout) -> str:
    """``flake.nix`` of ``advisor config``, for ``nixos-install --flake .#<hostname>``."""
    hostname = layout.settings.hostname
    return render_flake(
        [flake_host(layout)],
        release=layout.settings.nixos_release,
        description=f"NixOS on encrypted ZFS for {hostname} (generated by advisor)",
        usage=f"Install with:\n  nixos-install --flake /mnt/etc/nixos#{hostname}",
    )


def backup_fragments(layout: Layout, backend: Backend) -> list[NixFragment]:
    """sanoid and syncoid for ``layout.settings.backup_target``, if any: raw sends when
    ``backend`` encrypts natively (:attr:`Backend.native_encryption`), refused
    (:class:`~advisor.backups.BackupRefused`) for plaintext to an untrusted target."""
    settings = layout.settings
    target = None
    if settings.backup_target is not None:
        target = backups.parse_target(settings.backup_target)
    return backups.nix_fragments(
        settings.pool,
        target,
        trusted=backups.trust(settings.backup_trust),
        native=bool(backend.native_encryption),
    )


def generate(
    layout: Layout,
    backend: Backend,
    extra: Sequence[Contribution] = (),
    datasets: Sequence[Dataset] = DATASETS,
    method: UnlockMethod | None = None,
) -> GeneratedConfig:
    """The files for ``layout`` (the configuration, the flake and the layout record),
    with ``backend``'s fragments, the unlock ``method``'s (``settings.unlock``; ``None``:
    a passphrase, which needs none) and any ``extra`` ones; ``datasets`` are the
    layout's (:func:`core_fragments`)."""
    contributions = [Contribution("core", f) for f in core_fragments(layout, datasets)]
    contributions += [Contribution("core", f) for f in backup_fragments(layout, backend)]
    fragments = call_backend(backend, "nix_fragments", layout)
    contributions += [
        Contribution(f"backend {backend.name}", f)
        for f in sequence_of(backend_owner(backend), "nix_fragments", fragments, NixFragment)
    ]
    if method is not None:
        owner = method_owner(method)
        fragments = call_method(method, "nix_fragments", layout)
        contributions += [
            Contribution(owner, f)
            for f in sequence_of(owner, "nix_fragments", fragments, NixFragment)
        ]
    contributions += extra
    statements = merge(contributions)
    return GeneratedConfig(
        {
            "configuration.nix": render_configuration(layout, statements),
            "flake.nix": config_flake(layout),
            RECORD_FILE: record_text(layout),
        }
    )
