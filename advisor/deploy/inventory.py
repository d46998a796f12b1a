"""A fleet's inventory (TOML), read and checked: ``advisor fleet`` and ``fleet deploy``.

The file has a ``[defaults]`` table for the whole fleet and one ``[[hosts]]`` table per
machine; a host's field overrides the default. Every field is declared once in
:data:`FIELDS` (the layout's settings come from :data:`advisor.settings.OPTIONS`, so a new
setting is a new field here too), and docs/fleet.md lists them. Everything is checked
before anything is generated or run: a bad field is a :class:`UsageError` (exit 2) that
names the file, the host and the field.

Pure apart from reading the files the inventory names (answers, authorized keys, a
layout file): no command runs here. A password file is only checked to be readable; it
is hashed where the configuration is generated (:mod:`advisor.deploy.fleet`). A disk
passphrase is never read here: only where it comes from, which ``fleet deploy`` reads at
deploy time (:mod:`advisor.deploy.run`).
"""

from __future__ import annotations

import difflib
import re
import tomllib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, TypeVar

from advisor import settings as layout_settings
from advisor import validate
from advisor.assess.answers import (
    describe_missing,
    load_profile,
    missing_questions,
    read_answers_file,
    validate_answers,
)
from advisor.assess.assessment import assess
from advisor.errors import UsageError
from advisor.models import Settings, SystemFacts
from advisor.pluginmanager import LoadedPlugins

#: What ``{host}`` in a passphrase file's path or command stands for: the host's name.
HOST_PLACEHOLDER = "{host}"
#: The field kinds, each with the TOML type it takes.
KINDS = {
    "str": "a string",
    "bool": "true or false",
    "int": "a whole number",
    "path": "a file path (relative to the inventory's folder)",
    "strings": "a list of strings",
    "table": "a table of strings",
}


@dataclass(frozen=True)
class Field:
    """One field of a host's table; ``fleet`` says whether ``[defaults]`` may set it."""

    name: str
    kind: str
    help: str
    fleet: bool = True


#: The fields that are not a layout setting, in the order docs/fleet.md lists them.
OWN_FIELDS: tuple[Field, ...] = (
    Field(
        "name",
        "str",
        "the host's name: networking.hostName, the flake's "
        "nixosConfigurations.<name> and its folder hosts/<name>",
        fleet=False,
    ),
    Field(
        "target",
        "str",
        "where nixos-anywhere connects: [user@]host (an address or a "
        "name; the target runs any Linux with kexec, or the NixOS installer)",
        fleet=False,
    ),
    Field("ssh_port", "int", "the target's SSH port (default: 22)"),
    Field(
        "disks",
        "strings",
        "the disks of the pool, each /dev/disk/by-id/... as the target names it",
        fleet=False,
    ),
    Field(
        "topology",
        "str",
        "how several disks make the pool: mirror, raidz1, ... (default: a mirror for two "
        "disks; three or more need it)",
    ),
    Field("swap", "str", "a swap partition of this size per disk, such as 16G (default: none)"),
    Field("pool_options", "table", "zpool create properties to override, NAME = VALUE"),
    Field("fs_options", "table", "zfs properties of the pool's root dataset, NAME = VALUE"),
    Field(
        "backend",
        "str",
        "the encryption backend (luks, zfs-native or a plugin's); or profile and/or answers",
    ),
    Field(
        "profile",
        "str",
        "a built-in assessment profile (advisor profiles): its "
        "recommended backend and unlock method",
    ),
    Field(
        "answers",
        "path",
        "an answers file (advisor assess --answers) scored the same way, "
        "over the profile's answers",
    ),
    Field(
        "password_hash",
        "str",
        "the user's password hash (mkpasswd -m yescrypt), written to the configuration",
    ),
    Field(
        "password_file",
        "path",
        "the user's password, first line: hashed at generation, never written",
    ),
    Field(
        "authorized_keys",
        "path",
        "an authorized_keys file: the user's SSH keys on the installed system",
    ),
    Field(
        "passphrase_file",
        "path",
        "the disk passphrase, first line, read at deploy time ({host} is the host's name)",
    ),
    Field(
        "passphrase_command",
        "strings",
        "a command (argv list, no shell) that prints the "
        "disk passphrase, run at deploy time ({host} is the host's name)",
    ),
)

#: Settings an inventory does not take, with the reason (docs/fleet.md says it too).
EXCLUDED_SETTINGS = {
    "hostname": "the host's name is its 'name' field",
    "host_id": "",  # a field of its own below: per host only
    "header": "a detached header cannot be exported to disko (docs/disko.md)",
    "sops": "the age key would be generated on the target's /persist, which nixos-anywhere "
    "does not reach before the install",
}


def _setting_kind(name: str) -> str:
    annotation = str(next(f.type for f in fields(Settings) if f.name == name))
    if annotation == "bool":
        return "bool"
    if name in layout_settings.PATH_FIELDS:
        return "path"
    if annotation.startswith("tuple"):
        return "strings"
    return "str"


#: Every field: the host's own, its host id, then the layout's settings an inventory takes.
FIELDS: tuple[Field, ...] = (
    *OWN_FIELDS,
    Field(
        "host_id",
        "str",
        "8 hex digits, unique in the fleet (default: generated, and "
        "kept from an earlier run's fleet.json in --out)",
        fleet=False,
    ),
    *(
        Field(option.field, _setting_kind(option.field), option.help)
        for option in layout_settings.OPTIONS
        if option.field not in EXCLUDED_SETTINGS
    ),
)
_BY_NAME = {f.name: f for f in FIELDS}
_SETTING_FIELDS = frozenset(o.field for o in layout_settings.OPTIONS) - set(EXCLUDED_SETTINGS)
#: Fields that say one thing together: a host that sets one of a group sets the group,
#: and the defaults' fields of that group do not apply to it.
GROUPS = (
    ("backend", "profile", "answers"),
    ("password_hash", "password_file"),
    ("passphrase_file", "passphrase_command"),
)
#: A password hash as crypt(3) writes it ($id$...), one word, no ':' (it goes to a
#: shadow line).
_PASSWORD_HASH = re.compile(r"\$[0-9a-z]+\$[!-9;-~]+")


@dataclass(frozen=True)
class Passphrase:
    """Where a host's disk passphrase comes from: a ``file`` (its first line) or a
    ``command``'s first line of output. The passphrase itself is read at deploy time."""

    file: Path | None = None
    command: tuple[str, ...] = ()

    def describe(self) -> str:
        """How the source reads in a dry run (never the passphrase)."""
        if self.file is not None:
            return f"file {self.file}"
        return "command " + " ".join(self.command)


@dataclass(frozen=True)
class Host:
    """One machine of the fleet, checked. Holds no secret: the password's hash or file,
    and where the disk passphrase comes from."""

    name: str
    target: str
    ssh_port: int | None
    disks: tuple[str, ...]
    backend: str
    #: Checked (:func:`advisor.settings.check_settings`), ``hostname`` the host's name.
    settings: Settings
    topology: str | None
    swap: str | None
    pool_options: Mapping[str, str]
    fs_options: Mapping[str, str]
    password_hash: str | None
    password_file: Path | None
    authorized_keys: tuple[str, ...]
    passphrase: Passphrase | None
    #: The host id was given in the inventory (not generated or kept from a record).
    fixed_host_id: bool
    #: Where backend/unlock came from: ``backend``, or the profile and answers scored.
    chosen_by: str
    #: The inventory it was read from, for messages.
    inventory: Path


@dataclass(frozen=True)
class Inventory:
    path: Path
    hosts: tuple[Host, ...]

    def host(self, name: str) -> Host:
        """The host called ``name``; a :class:`UsageError` naming the others."""
        for host in self.hosts:
            if host.name == name:
                return host
        known = ", ".join(h.name for h in self.hosts)
        raise UsageError(f"--host {name!r}: no such host in {self.path} (hosts: {known})")


class _Place:
    """Where a value is in the file, for messages: ``fleet.toml: host 'web1': disks``."""

    def __init__(self, path: Path, where: str) -> None:
        self.path = path
        self.where = where

    def error(self, name: str, problem: str) -> UsageError:
        return UsageError(f"{self.path}: {self.where}: {name}: {problem}")


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        raise UsageError(f"--inventory {str(path)!r} cannot be read: {error}") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise UsageError(f"{path}: not TOML: {error}") from None


def _check_table(table: Mapping[str, Any], place: _Place, *, fleet: bool) -> dict[str, Any]:
    """``table``'s fields, each of a known name and of its kind, relative paths made
    absolute (against the inventory's folder); defaults (``fleet``) take only fleet-wide
    fields."""
    checked: dict[str, Any] = {}
    for name, value in table.items():
        spec = _BY_NAME.get(name)
        if spec is None:
            close = difflib.get_close_matches(name, list(_BY_NAME), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            reason = f" ({EXCLUDED_SETTINGS[name]})" if EXCLUDED_SETTINGS.get(name) else ""
            raise place.error(name, f"unknown field{reason}{hint}; docs/fleet.md lists them")
        if fleet and not spec.fleet:
            raise place.error(name, "is a host's own: set it in its [[hosts]] table")
        checked[name] = _value(spec, value, place)
    return checked


def _value(spec: Field, value: Any, place: _Place) -> Any:
    kind = spec.kind
    good = {
        "str": isinstance(value, str),
        "path": isinstance(value, str),
        "bool": isinstance(value, bool),
        "int": isinstance(value, int) and not isinstance(value, bool),
        "strings": isinstance(value, list) and all(isinstance(v, str) for v in value),
        "table": isinstance(value, dict) and all(isinstance(v, str) for v in value.values()),
    }[kind]
    if not good:
        shown = type(value).__name__
        raise place.error(spec.name, f"expected {KINDS[kind]}, not a {shown} ({value!r})")
    if kind == "path":
        if not value:
            raise place.error(spec.name, "the path is empty")
        return (place.path.parent / value).absolute()
    if kind == "strings":
        return tuple(value)
    return value


def read_inventory(
    path: Path,
    plugins: LoadedPlugins,
    earlier_ids: Mapping[str, str] | None = None,
    new_host_id: Callable[[], str] = validate.new_host_id,
) -> Inventory:
    """The inventory in ``path``, every host checked with ``plugins`` (its backend, its
    settings, its unlock method). A host without a fixed ``host_id`` keeps the one
    ``earlier_ids`` gives it (the fleet's earlier generation, by host name) unless
    another host has it, else gets a new one (``new_host_id``) unique in the fleet.
    A :class:`UsageError` names the file, the host and the field of the first problem."""
    data = _read_toml(path)
    top = _Place(path, "top level")
    for key in data:
        if key not in ("defaults", "hosts"):
            raise top.error(key, "unknown table: an inventory has [defaults] and [[hosts]]")
    defaults_table = data.get("defaults", {})
    if not isinstance(defaults_table, dict):
        raise top.error("defaults", "expected a table, [defaults]")
    defaults = _check_table(defaults_table, _Place(path, "defaults"), fleet=True)
    _check_choice(defaults, _Place(path, "defaults"))
    tables = data.get("hosts", [])
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        raise top.error("hosts", "expected tables, [[hosts]]")
    if not tables:
        raise top.error("hosts", "no host: add a [[hosts]] table for each machine")
    scored: dict[tuple[str | None, Path | None], tuple[str, dict[str, Any]]] = {}
    hosts = [
        _host(number, table, defaults, path, plugins, scored)
        for number, table in enumerate(tables, start=1)
    ]
    _check_unique(hosts, path)
    return Inventory(path, tuple(_with_host_ids(hosts, path, earlier_ids or {}, new_host_id)))


def _check_choice(table: Mapping[str, Any], place: _Place) -> None:
    if "backend" in table and ("profile" in table or "answers" in table):
        other = "profile" if "profile" in table else "answers"
        raise place.error(other, "give backend, or profile and/or answers, not both")


def _host(
    number: int,
    table: Mapping[str, Any],
    defaults: Mapping[str, Any],
    path: Path,
    plugins: LoadedPlugins,
    scored: dict[tuple[str | None, Path | None], tuple[str, dict[str, Any]]],
) -> Host:
    """The ``number``-th host's table checked and merged over ``defaults``; its host id
    is left empty unless fixed (:func:`_with_host_ids` gives the others theirs)."""
    name = table.get("name")
    place = _Place(path, f"host {name!r}" if isinstance(name, str) else f"hosts[{number}]")
    own = _check_table(table, place, fleet=False)
    _check_choice(own, place)
    for required in ("name", "target", "disks"):
        if required not in own:
            raise place.error(required, "missing: every host needs its name, target and disks")
    name = _checked(place, "name", validate.hostname, own["name"])
    overridden = {field for group in GROUPS if set(group) & set(own) for field in group}
    merged = {**{k: v for k, v in defaults.items() if k not in overridden}, **own}
    target = _checked(place, "target", lambda v: validate.ssh_target(v, "target"), own["target"])
    port = merged.get("ssh_port")
    if port is not None and not 1 <= port <= 65535:
        raise place.error("ssh_port", f"{port} is not a port (1 to 65535)")
    disks = own["disks"]
    if not disks:
        raise place.error("disks", "no disk: give the pool's disks, /dev/disk/by-id/...")
    for disk in disks:
        if not disk.startswith("/dev/disk/by-id/"):
            raise place.error(
                "disks",
                f"{disk!r}: give the disk's /dev/disk/by-id/... link (advisor disks on the "
                "target lists them): a name like /dev/sda can change between boots",
            )
        _checked(place, "disks", lambda v: validate.device_path(v, "disk"), disk)
    if len(set(disks)) < len(disks):
        raise place.error("disks", "a disk is named twice")
    backend, chosen = _backend(merged, place, plugins, scored)
    values = {k: v for k, v in merged.items() if k in _SETTING_FIELDS}
    for key in layout_settings.PATH_FIELDS:
        if key in values:
            values[key] = str(values[key])
    for key, value in chosen.items():
        values.setdefault(key, value)
    fixed_id = own.get("host_id")
    record = Settings(host_id=fixed_id or "00000001", hostname=name, **values)
    backend_record = _checked(place, "backend", plugins.backend, backend)
    checked = _checked(
        place,
        "",
        lambda s: layout_settings.check_settings(
            s, backend_record, plugins.backends, plugins.unlock_methods
        ),
        record,
    )
    if fixed_id is None:
        checked = replace(checked, host_id="")
    return Host(
        name=name,
        target=target,
        ssh_port=port,
        disks=disks,
        backend=backend,
        settings=checked,
        topology=merged.get("topology"),
        swap=(
            _checked(place, "swap", lambda v: validate.partition_size(v, "swap"), merged["swap"])
            if "swap" in merged
            else None
        ),
        pool_options=_checked(
            place,
            "pool_options",
            lambda v: validate.zfs_properties(v, "pool_options"),
            merged.get("pool_options", {}),
        ),
        fs_options=_checked(
            place,
            "fs_options",
            lambda v: validate.zfs_properties(v, "fs_options"),
            merged.get("fs_options", {}),
        ),
        password_hash=_password_hash(merged, place),
        password_file=_password_file(merged, place),
        authorized_keys=_authorized_keys(merged.get("authorized_keys"), place),
        passphrase=_passphrase(merged, place, name),
        fixed_host_id=fixed_id is not None,
        chosen_by=_choice(merged) or "backend",
        inventory=path,
    )


def _choice(table: Mapping[str, Any]) -> str:
    """How ``table`` chooses the backend: ``backend``, ``profile``, ``answers``,
    ``profile+answers``, or ``""`` (it does not)."""
    if "backend" in table:
        return "backend"
    return "+".join(k for k in ("profile", "answers") if k in table)


_T = TypeVar("_T")
_R = TypeVar("_R")


def _checked(place: _Place, name: str, check: Callable[[_T], _R], value: _T) -> _R:
    """``check(value)``, its :class:`UsageError` reworded to name the host and ``name``
    (or, for the settings' own checks, the inventory field their flag stands for)."""
    try:
        return check(value)
    except UsageError as error:
        raise _reworded(place, name, error) from None


#: The flags of the install's and the export's checks that are not settings, by the
#: inventory field they stand for.
_FLAG_FIELDS = {
    "--disk": "disks",
    "--topology": "topology",
    "--swap": "swap",
    "--pool-option": "pool_options",
    "--fs-option": "fs_options",
    "--backend": "backend",
    **{option.flag: option.field for option in layout_settings.OPTIONS},
}


def _reworded(place: _Place, name: str, error: UsageError) -> UsageError:
    """``error`` of a check that names a flag, as one that names the field it stands
    for (``name`` if given, else the flag's own field) at ``place``."""
    message = str(error)
    field_name = name
    # Longest first: --disk must not take --disks' or --disk-id's place.
    for flag in sorted(_FLAG_FIELDS, key=len, reverse=True):
        if message.startswith((flag + " ", flag + ":")):
            field_name = name or _FLAG_FIELDS[flag]
            message = message[len(flag) :].lstrip(" :")
            break
    for flag in sorted(_FLAG_FIELDS, key=len, reverse=True):
        message = re.sub(re.escape(flag) + r"\b(?!-)", _FLAG_FIELDS[flag], message)
    message = message.removeprefix(f"{name} ") if name else message
    return place.error(field_name or "settings", message)


def host_error(host: Host, error: UsageError, field_name: str = "") -> UsageError:
    """``error``, raised by a check of ``host``'s spec or files (the install's, the
    export's), reworded to name the inventory, the host and its field: ``field_name``,
    else the one the flag it names stands for."""
    return _reworded(_Place(host.inventory, f"host {host.name!r}"), field_name, error)


def _backend(
    table: Mapping[str, Any],
    place: _Place,
    plugins: LoadedPlugins,
    scored: dict[tuple[str | None, Path | None], tuple[str, dict[str, Any]]],
) -> tuple[str, dict[str, Any]]:
    """The backend ``table`` names, or the one its profile and answers are scored to,
    with what that assessment decides besides (its unlock method); scored once for each
    profile and answers file in the fleet (``scored``)."""
    if "backend" in table:
        return table["backend"], {}
    profile, answers_file = table.get("profile"), table.get("answers")
    if profile is None and answers_file is None:
        raise place.error("backend", "missing: give backend, or profile and/or answers")
    key = (profile, answers_file)
    if key not in scored:
        scored[key] = _score(profile, answers_file, place, plugins)
    return scored[key]


def _score(
    profile: str | None, answers_file: Path | None, place: _Place, plugins: LoadedPlugins
) -> tuple[str, dict[str, Any]]:
    """The backend and unlock method an assessment of ``profile``'s answers, then
    ``answers_file``'s over them, recommends, on a machine nothing is known of (the
    target is not probed: its facts count as unknown)."""
    questions = plugins.questions
    answers: dict[str, str] = {}
    if profile is not None:
        given = _checked(place, "profile", load_profile, profile).answers
        answers.update(validate_answers(given, questions, f"profile {profile!r}"))
    if answers_file is not None:
        data = _checked(place, "answers", read_answers_file, answers_file)
        origin = f"{place.path}: {place.where}: answers: {answers_file}"
        answers.update(validate_answers(data, questions, origin))
    missing = missing_questions(questions, answers)
    field_name = "answers" if answers_file is not None else "profile"
    if missing:
        raise place.error(
            field_name,
            f"{len(missing)} question(s) unanswered; answer them in an answers file:\n"
            + describe_missing(missing),
        )
    assessment = assess(
        axes=plugins.axes,
        questions=questions,
        backends=plugins.backends,
        answers=answers,
        system=SystemFacts(),
        unlock_methods=plugins.unlock_methods,
    )
    best = assessment.recommended
    if best is None or not best.installable:
        raise place.error(field_name, "recommends no backend advisor can install: give backend")
    method = assessment.unlock_method
    return best.backend, ({"unlock": method.method} if method is not None else {})


def _password_hash(table: Mapping[str, Any], place: _Place) -> str | None:
    value = table.get("password_hash")
    if "password_hash" in table and "password_file" in table:
        raise place.error("password_file", "give password_hash or password_file, not both")
    if value is None:
        if "password_file" not in table:
            raise place.error("password_hash", "missing: give password_hash or password_file")
        return None
    if not _PASSWORD_HASH.fullmatch(value):
        raise place.error(
            "password_hash",
            "not a password hash such as mkpasswd -m yescrypt prints ($y$...): a plain "
            "password never goes into the inventory; use password_file for one",
        )
    return str(value)


def _password_file(table: Mapping[str, Any], place: _Place) -> Path | None:
    path: Path | None = table.get("password_file")
    if path is not None and not path.is_file():
        raise place.error("password_file", f"{str(path)!r} is not a file")
    return path


def _authorized_keys(path: Path | None, place: _Place) -> tuple[str, ...]:
    if path is None:
        return ()
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise place.error("authorized_keys", f"{str(path)!r} cannot be read: {error}") from None
    keys = tuple(
        _checked(
            place,
            "authorized_keys",
            lambda line: validate.authorized_key(line, str(path)),
            line.strip(),
        )
        for line in text.splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    )
    if not keys:
        raise place.error("authorized_keys", f"{str(path)!r} holds no public key")
    return keys


def _passphrase(table: Mapping[str, Any], place: _Place, name: str) -> Passphrase | None:
    file, command = table.get("passphrase_file"), table.get("passphrase_command")
    if file is not None and command is not None:
        raise place.error("passphrase_command", "give passphrase_file or passphrase_command")
    if file is not None:
        return Passphrase(file=Path(str(file).replace(HOST_PLACEHOLDER, name)))
    if command is not None:
        if not command or not command[0]:
            raise place.error("passphrase_command", "the command is empty")
        return Passphrase(command=tuple(w.replace(HOST_PLACEHOLDER, name) for w in command))
    return None


def _check_unique(hosts: Sequence[Host], path: Path) -> None:
    """Refuse two hosts of one name (compared without case: a DNS name and a folder on
    a case-insensitive file system), one target or one fixed host id."""
    for what, key in (
        ("name", lambda h: h.name.lower()),
        ("target", lambda h: (h.target, h.ssh_port)),
        ("host_id", lambda h: h.settings.host_id if h.fixed_host_id else None),
    ):
        seen: dict[object, str] = {}
        for host in hosts:
            value = key(host)
            if value is None:
                continue
            if value in seen:
                shown = getattr(host, what, None) or host.settings.host_id
                raise _Place(path, f"host {host.name!r}").error(
                    what, f"{shown!r} is host {seen[value]!r}'s already: each host needs its own"
                )
            seen[value] = host.name


def _with_host_ids(
    hosts: Sequence[Host],
    path: Path,
    earlier: Mapping[str, str],
    new_host_id: Callable[[], str],
) -> Iterator[Host]:
    """``hosts`` each with a host id unique in the fleet: the fixed one, else the one of
    an earlier generation (a pool created under it imports without force), else new."""
    taken = {h.settings.host_id for h in hosts if h.fixed_host_id}
    for host in hosts:
        if host.fixed_host_id:
            yield host
            continue
        host_id = earlier.get(host.name)
        if host_id is None or host_id in taken:
            host_id = new_host_id()
            while host_id in taken:
                host_id = new_host_id()
        taken.add(host_id)
        yield replace(host, settings=replace(host.settings, host_id=host_id))
