"""``advisor fleet``: one flake for every host of an inventory.

Each host's files come from the export's own code (:mod:`advisor.deploy.export`): its
spec made without discovery and checked by the install's ``validate_spec``, its
``disko.nix``, and its configuration (``configuration.nix``, ``advisor.json``) as
``advisor config`` generates it, in ``hosts/<name>/``. One ``flake.nix`` has a
``nixosConfigurations`` entry per host (the one flake renderer,
:func:`advisor.nixos.generate.render_flake`), and ``fleet.json`` keeps what was drawn at
random (each host's id and partition GUIDs) so that a later run keeps them: a host
installed from this flake must find its pool's host id and its partitions again after
the flake is written anew (for a host added to the fleet, say).

Nothing is written unless every host is valid. No secret is written: the password
becomes a yescrypt hash, the disk passphrases are ``fleet deploy``'s.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

from advisor import secrets, validate
from advisor.deploy.disko import check_exportable
from advisor.deploy.export import export_spec, host_files
from advisor.deploy.inventory import Host, Inventory, host_error, read_inventory
from advisor.errors import UsageError
from advisor.files import sync_directories, write_atomically
from advisor.install.session import InstallRequest, validate_spec
from advisor.models import AttrPath, InstallSpec, Member, NixFragment
from advisor.nixos.generate import Contribution, FlakeHost, render_flake
from advisor.nixos.write import check_out_dir, differs
from advisor.pluginmanager import LoadedPlugins

#: What a fleet's folder holds besides each host's files.
FLAKE_FILE = "flake.nix"
MANIFEST_FILE = "fleet.json"
MANIFEST_VERSION = 1
HOSTS_FOLDER = "hosts"

_T = TypeVar("_T")


@dataclass(frozen=True)
class Identity:
    """What was drawn at random for a host: its host id, and for its disks (in order)
    each one's partition GUIDs, ESP, data and swap."""

    host_id: str
    disks: tuple[str, ...]
    guids: tuple[tuple[str, str, str | None], ...]
    #: The user's password hash written (a hash is no secret: it is in the configuration
    #: too), so that a password file hashed again gives the same one.
    password_hash: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "host_id": self.host_id,
            "password_hash": self.password_hash,
            "disks": [
                {"disk": disk, "esp_partuuid": esp, "data_partuuid": data, "swap_partuuid": swap}
                for disk, (esp, data, swap) in zip(self.disks, self.guids, strict=True)
            ],
        }


@dataclass(frozen=True)
class FleetHost:
    """One host as written: its inventory entry, its spec, and whether its partition
    GUIDs are new (none kept: a new host, or its disks changed)."""

    host: Host
    spec: InstallSpec
    new_guids: bool


@dataclass(frozen=True)
class FleetResult:
    """What ``advisor fleet`` wrote, or found unchanged. Holds no secret."""

    out: Path
    inventory: Path
    hosts: tuple[FleetHost, ...]
    written: tuple[Path, ...]
    unchanged: tuple[Path, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "flake": str(self.out),
            "hosts": [
                {
                    "name": h.host.name,
                    "target": h.host.target,
                    "backend": h.host.backend,
                    "chosen_by": h.host.chosen_by,
                    "unlock": h.host.settings.unlock,
                    "host_id": h.spec.settings.host_id,
                    "disks": [member.disk for member in h.spec.members],
                    "topology": h.spec.topology,
                    "new_partition_guids": h.new_guids,
                }
                for h in self.hosts
            ],
            "written": [str(path) for path in self.written],
            "unchanged": [str(path) for path in self.unchanged],
        }

    def lines(self) -> list[str]:
        """The summary a person reads: a line per host, what was written, what next."""
        lines = []
        for h in self.hosts:
            disks = len(h.spec.members)
            layout = f"{disks} disk{'s' if disks > 1 else ''}"
            if h.spec.topology is not None:
                layout += f", {h.spec.topology}"
            lines.append(
                f"{h.host.name}: {h.host.backend} ({h.host.chosen_by}), unlock "
                f"{h.host.settings.unlock}, host id {h.spec.settings.host_id}, {layout}, "
                f"{h.host.target}"
            )
        lines.append(
            f"{len(self.written)} file(s) written, {len(self.unchanged)} unchanged, in {self.out}"
        )
        lines.append(
            f"Next: nix flake lock {self.out}; then review and deploy:\n"
            f"  advisor fleet deploy --inventory {self.inventory} --flake {self.out} --dry-run"
        )
        return lines


def read_manifest(out: Path) -> dict[str, Identity]:
    """The identities an earlier run wrote in ``out`` (none when it wrote none), each
    value checked; a :class:`UsageError` for a file that is not one."""
    path = out / MANIFEST_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise UsageError(f"{path} cannot be read: {error}") from None
    try:
        if data["version"] != MANIFEST_VERSION:
            raise ValueError(f"version {data['version']!r}, not {MANIFEST_VERSION}")
        return {
            validate.hostname(name): Identity(
                host_id=validate.host_id(entry["host_id"]),
                disks=tuple(validate.device_path(d["disk"], "disk") for d in entry["disks"]),
                guids=tuple(
                    (
                        validate.guid(d["esp_partuuid"], "esp_partuuid"),
                        validate.guid(d["data_partuuid"], "data_partuuid"),
                        None
                        if d["swap_partuuid"] is None
                        else validate.guid(d["swap_partuuid"], "swap_partuuid"),
                    )
                    for d in entry["disks"]
                ),
                password_hash=_hash_value(entry.get("password_hash")),
            )
            for name, entry in data["hosts"].items()
        }
    except (KeyError, TypeError, ValueError, UsageError) as error:
        raise UsageError(
            f"{path} is not a fleet manifest advisor wrote ({error}): remove it to draw new "
            "host ids and partition GUIDs for every host"
        ) from None


def _hash_value(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.startswith("$") or any(c.isspace() for c in value):
        raise ValueError("password_hash is not a password hash")
    return value


def manifest_text(hosts: Sequence[FleetHost], hashes: Mapping[str, str]) -> str:
    """``fleet.json``: each host's :class:`Identity`, with the password hash written."""
    identities = {h.host.name: identity(h.spec, hashes.get(h.host.name)).to_json() for h in hosts}
    return json.dumps({"version": MANIFEST_VERSION, "hosts": identities}, indent=2) + "\n"


def identity(spec: InstallSpec, password_hash: str | None = None) -> Identity:
    return Identity(
        host_id=spec.settings.host_id,
        disks=tuple(m.disk for m in spec.members),
        guids=tuple((m.esp_partuuid, m.data_partuuid, m.swap_partuuid) for m in spec.members),
        password_hash=password_hash,
    )


def host_spec(
    host: Host, plugins: LoadedPlugins, earlier: Identity | None
) -> tuple[InstallSpec, bool]:
    """``host``'s install spec, made as ``advisor export disko`` makes one, with the
    partition GUIDs of ``earlier`` when its disks are the same ones (and whether they
    are new); a :class:`UsageError` naming the host otherwise."""
    request = InstallRequest(
        backend=host.backend,
        settings=host.settings,
        pool_options=dict(host.pool_options),
        dataset_options=dict(host.fs_options),
        topology=host.topology,
        swap_size=host.swap,
    )
    # First, with the field that chose the backend: a backend disko cannot serve.
    chooser = host.chosen_by.split("+")[-1]
    _for_host(host, lambda: check_exportable(plugins.backend(host.backend)), chooser)
    spec = _for_host(host, lambda: export_spec(request, host.disks, plugins))
    same = earlier is not None and earlier.disks == host.disks
    if not same or earlier is None:
        return spec, True
    members = tuple(
        _kept(member, guids) for member, guids in zip(spec.members, earlier.guids, strict=True)
    )
    return _for_host(host, lambda: validate_spec(replace(spec, members=members), plugins)), False


def _kept(member: Member, guids: tuple[str, str, str | None]) -> Member:
    esp, data, swap = guids
    # A swap partition added or removed since: the new one's GUID, or none.
    swap = swap if member.swap_partuuid is not None and swap is not None else member.swap_partuuid
    return replace(member, esp_partuuid=esp, data_partuuid=data, swap_partuuid=swap)


def _for_host(host: Host, make: Callable[[], _T], field_name: str = "") -> _T:
    """``make()``, a :class:`UsageError` of the export's or the install's checks (which
    name their flags) reworded to name the inventory, the host and its field
    (``field_name``, else the flag's)."""
    try:
        return make()
    except UsageError as error:
        raise host_error(host, error, field_name) from None


def access_fragment(host: Host) -> list[Contribution]:
    """What a fleet's host needs that one installed at its console does not: an SSH
    server (nixos-anywhere reboots it into the new system, reached over the network
    from then on) and the user's authorized keys. Both options are declared in nixpkgs'
    nixos/modules/services/networking/ssh/sshd.nix (``services.openssh.enable``, and
    ``users.users.<name>.openssh.authorizedKeys.keys`` through its ``userOptions``)."""
    settings: dict[AttrPath, object] = {("services", "openssh", "enable"): True}
    if host.authorized_keys:
        path = ("users", "users", host.settings.user, "openssh", "authorizedKeys", "keys")
        settings[path] = list(host.authorized_keys)
    return [Contribution("fleet", NixFragment("Remote access", settings))]


def fleet_flake(hosts: Sequence[FleetHost], release: str) -> str:
    return render_flake(
        [FlakeHost(h.host.name, f"./{HOSTS_FOLDER}/{h.host.name}", disko=True) for h in hosts],
        release=release,
        description=f"NixOS on encrypted ZFS for a fleet of {len(hosts)} (generated by advisor)",
        usage=(
            "Install every host with nixos-anywhere (docs/fleet.md):\n"
            "  advisor fleet deploy --inventory INVENTORY --flake THIS-FOLDER"
        ),
    )


def write_fleet(
    inventory_path: Path, out: Path, plugins: LoadedPlugins, *, force: bool
) -> FleetResult:
    """Read the inventory, generate every host's files and the flake, and write them to
    ``out``: nothing is written unless every host is valid and no file would be replaced
    without ``force``. Each password file is hashed once (mkpasswd)."""
    check_out_dir(out)
    earlier = read_manifest(out)
    inventory = read_inventory(
        inventory_path, plugins, {name: e.host_id for name, e in earlier.items()}
    )
    release = _release(inventory)
    built = [
        FleetHost(host, *host_spec(host, plugins, earlier.get(host.name)))
        for host in inventory.hosts
    ]
    # Everything that can be refused is checked before a password is hashed: a host
    # with its hash in the inventory is generated once, one with a password file again
    # once the file is hashed.
    generated = {h.host.name: _files(h, plugins, h.host.password_hash or "") for h in built}
    hashes: dict[str, str] = {}
    made: dict[tuple[Path, str | None], str] = {}
    files: dict[Path, str] = {}
    for fleet_host in built:
        host = fleet_host.host
        hashes[host.name] = host.password_hash or ""
        if host.password_file is not None:
            kept = earlier[host.name].password_hash if host.name in earlier else None
            key = (host.password_file, kept)
            if key not in made:
                made[key] = _hash(host, host.password_file, kept)
            hashes[host.name] = made[key]
            generated[host.name] = _files(fleet_host, plugins, made[key])
        folder = Path(HOSTS_FOLDER) / host.name
        for name, text in generated[host.name].items():
            files[folder / name] = text
    files[Path(FLAKE_FILE)] = fleet_flake(built, release)
    files[Path(MANIFEST_FILE)] = manifest_text(built, hashes)
    return _write(out, inventory, built, files, force=force)


def _files(fleet_host: FleetHost, plugins: LoadedPlugins, hashed: str) -> dict[str, str]:
    """The host's files as ``advisor export disko`` makes them (``disko.nix``,
    ``configuration.nix``, ``advisor.json``), with :func:`access_fragment` added, and
    remote unlock kept (``persist_keys``): ``fleet deploy`` puts the initrd's host key on
    the target's /persist itself (``--extra-files``)."""
    host = fleet_host.host
    extra = access_fragment(host)
    return _for_host(
        host,
        lambda: host_files(fleet_host.spec, plugins, hashed, extra=extra, persist_keys=True)[1],
    )


def _hash(host: Host, path: Path, earlier: str | None) -> str:
    """A yescrypt hash of the password in ``path`` (its first line), ``host``'s: the
    ``earlier`` one if it still is the password's."""
    password = secrets.read_secret(
        path,
        "password",
        option=f"host {host.name!r}: password_file",
        interactive=False,
    )
    return _for_host(host, lambda: secrets.hash_password(password, like=earlier))


def _release(inventory: Inventory) -> str:
    """The one NixOS release of the fleet: a flake follows one nixpkgs."""
    first = inventory.hosts[0]
    for host in inventory.hosts[1:]:
        if host.settings.nixos_release != first.settings.nixos_release:
            raise UsageError(
                f"{inventory.path}: host {host.name!r}: nixos_release: "
                f"{host.settings.nixos_release} differs from host {first.name!r}'s "
                f"{first.settings.nixos_release}: the fleet's flake follows one nixpkgs; set "
                "it once, in [defaults]"
            )
    return first.settings.nixos_release


def _write(
    out: Path,
    inventory: Inventory,
    built: Sequence[FleetHost],
    files: Mapping[Path, str],
    *,
    force: bool,
) -> FleetResult:
    changed = {name: text for name, text in files.items() if differs(out / name, text)}
    clashing = [out / name for name in changed if (out / name).exists()]
    if clashing and not force:
        shown = ", ".join(map(str, clashing[:5])) + (" ..." if len(clashing) > 5 else "")
        raise UsageError(f"{shown} already exist(s) with other content; use --force to replace")
    for name, text in changed.items():
        try:
            (out / name).parent.mkdir(parents=True, exist_ok=True)
            # Each file is flushed; each folder's entries once, after (a hundred hosts).
            write_atomically(out / name, text.encode(), sync_directory=False)
        except OSError as error:
            raise UsageError(f"{out / name} cannot be written: {error.strerror}") from None
    # Deepest first, up to --out's parent: a new folder's own entry is in its parent.
    folders = (
        {out.parent}
        | {folder for name in changed for folder in (out / name).parents if out in folder.parents}
        | {out}
    )
    sync_directories(sorted(folders, key=lambda f: len(f.parts), reverse=True))
    return FleetResult(
        out=out,
        inventory=inventory.path,
        hosts=tuple(built),
        written=tuple(out / name for name in changed),
        unchanged=tuple(out / name for name in files if name not in changed),
    )
