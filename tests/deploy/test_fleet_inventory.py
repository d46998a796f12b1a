"""The fleet's inventory, read and checked (advisor/deploy/inventory.py): what it takes,
and every kind of bad input refused with exit status 2, naming the host and the field."""

from __future__ import annotations

import itertools
import re
import textwrap
from pathlib import Path

import pytest
from fleetdata import HASH, KEY, NAMES, disk, three_hosts, write_inventory
from helpers import RunCli

from advisor.assess.answers import load_profile
from advisor.assess.assessment import assess
from advisor.deploy.inventory import FIELDS, GROUPS, Inventory, read_inventory
from advisor.errors import UsageError
from advisor.models import SystemFacts
from advisor.pluginmanager import LoadedPlugins, load_plugins
from advisor.settings import OPTIONS

PLUGINS = load_plugins(environ={})


def read(folder: Path, body: str | None = None, **options: object) -> Inventory:
    return read_inventory(write_inventory(folder, body), PLUGINS, **options)  # type: ignore[arg-type]


def refused(folder: Path, body: str) -> str:
    """The message of the :class:`UsageError` ``body`` is refused with."""
    with pytest.raises(UsageError) as caught:
        read(folder, body)
    assert caught.value.exit_status == 2
    return str(caught.value)


def one_host(fields: str = "", defaults: str = "") -> str:
    """An inventory of one host, ``web1``, with ``fields`` added to its table."""
    return f"""
[defaults]
backend = "luks"
user = "admin"
password_hash = "{HASH}"
{defaults}

[[hosts]]
name = "web1"
target = "root@192.0.2.11"
disks = ["{disk("web1")}"]
{fields}
"""


def second(name: str, target: str, fields: str = "") -> str:
    """Another host's table, to follow :func:`one_host`."""
    return f"""
[[hosts]]
name = "{name}"
target = "{target}"
disks = ["{disk(name)}"]
{fields}
"""


def test_three_hosts(tmp_path: Path) -> None:
    inventory = read(tmp_path)
    assert [h.name for h in inventory.hosts] == list(NAMES)
    web1, web2, db1 = inventory.hosts
    assert (web1.backend, web2.backend, db1.backend) == ("luks", "luks", "zfs-native")
    assert web1.settings.host_id == "8425e349" and web1.fixed_host_id
    assert web1.settings.hostname == "web1" and web1.settings.user == "admin"
    assert web1.settings.remote_unlock_keys == str(tmp_path / "keys" / "admins.pub")
    assert web2.settings.remote_unlock_keys is None
    assert web2.ssh_port == 2222 and web1.ssh_port is None
    assert db1.disks == (disk("db1", 1), disk("db1", 2)) and db1.topology == "mirror"
    assert web1.authorized_keys == (KEY,)
    # A host's password_file replaces the defaults' password_hash: one group.
    assert (db1.password_hash, db1.password_file) == (None, tmp_path / "secrets" / "password")
    assert web1.password_hash == HASH and web1.password_file is None
    # {host} is each host's name; relative paths are the inventory's folder's.
    assert db1.passphrase is not None
    assert db1.passphrase.file == tmp_path / "secrets" / "db1.key"
    ids = {h.settings.host_id for h in inventory.hosts}
    assert len(ids) == 3 and all(re.fullmatch("[0-9a-f]{8}", i) for i in ids)


def test_every_field_is_documented_and_every_setting_is_a_field_or_excluded() -> None:
    text = (Path(__file__).parents[2] / "docs" / "fleet.md").read_text(encoding="utf-8")
    missing = [f.name for f in FIELDS if f"`{f.name}`" not in text]
    assert not missing, f"docs/fleet.md does not list {missing}"
    names = {f.name for f in FIELDS}
    from advisor.deploy.inventory import EXCLUDED_SETTINGS

    assert {o.field for o in OPTIONS} <= names | set(EXCLUDED_SETTINGS)
    for group in GROUPS:
        assert set(group) <= names


def test_generated_host_ids_are_unique_and_earlier_ones_are_kept(tmp_path: Path) -> None:
    # The generator first draws the fixed id of web1, then one id twice.
    drawn = iter(["8425e349", "0000aaaa", "0000aaaa", "0000bbbb"])
    inventory = read(tmp_path, new_host_id=lambda: next(drawn))
    assert [h.settings.host_id for h in inventory.hosts] == ["8425e349", "0000aaaa", "0000bbbb"]
    # An earlier generation's id stays, unless another host has it (fixed wins).
    earlier = {"web2": "12345678", "db1": "8425e349"}
    again = read(tmp_path, earlier_ids=earlier, new_host_id=itertools.repeat("0000cccc").__next__)
    assert [h.settings.host_id for h in again.hosts] == ["8425e349", "12345678", "0000cccc"]


def test_a_profile_is_scored_to_its_backend_and_unlock_method(tmp_path: Path) -> None:
    defaults = 'profile = "journalist"'
    inventory = read(tmp_path, one_host(defaults=defaults).replace('backend = "luks"', ""))
    host = inventory.hosts[0]
    plugins: LoadedPlugins = PLUGINS
    expected = assess(
        axes=plugins.axes,
        questions=plugins.questions,
        backends=plugins.backends,
        answers=load_profile("journalist").answers,
        system=SystemFacts(),
        unlock_methods=plugins.unlock_methods,
    )
    assert expected.recommended is not None and expected.unlock_method is not None
    assert host.backend == expected.recommended.backend
    assert host.settings.unlock == expected.unlock_method.method
    assert host.chosen_by == "profile"


def test_an_answers_file_overrides_the_profile(tmp_path: Path) -> None:
    (tmp_path / "answers.toml").write_text('adversary = "thief"\n', encoding="utf-8")
    body = one_host('profile = "journalist"\nanswers = "answers.toml"')
    host = read(tmp_path, body).hosts[0]
    assert host.chosen_by == "profile+answers"
    assert host.backend in {b.name for b in PLUGINS.backends}


def test_a_host_backend_overrides_the_fleet_profile(tmp_path: Path) -> None:
    body = one_host('backend = "zfs-native"', defaults='profile = "journalist"').replace(
        'backend = "luks"\n', "", 1
    )
    host = read(tmp_path, body).hosts[0]
    assert (host.backend, host.chosen_by, host.settings.unlock) == (
        "zfs-native",
        "backend",
        "passphrase",
    )


def test_a_passphrase_command_takes_the_host_name(tmp_path: Path) -> None:
    body = one_host('passphrase_command = ["pass", "show", "disks/{host}"]')
    host = read(tmp_path, body).hosts[0]
    assert host.passphrase is not None
    assert host.passphrase.command == ("pass", "show", "disks/web1")


BAD = {
    # kind: (body, the field named, words of the message)
    "unknown field": (one_host('diks = ["x"]'), "host 'web1': diks", "did you mean 'disks'"),
    "unknown field in defaults": (one_host(defaults="usr = 'x'"), "defaults: usr", "unknown"),
    "excluded setting": (one_host("sops = true"), "host 'web1': sops", "nixos-anywhere"),
    "host field in defaults": (
        one_host(defaults='target = "root@x"'),
        "defaults: target",
        "[[hosts]]",
    ),
    "unknown table": (one_host() + "\n[host]\nname = 'x'\n", "top level: host", "[[hosts]]"),
    "bad type: list": (
        one_host().replace(f'disks = ["{disk("web1")}"]', f'disks = "{disk("web1")}"'),
        "host 'web1': disks",
        "a list of strings",
    ),
    "bad type: int": (one_host('ssh_port = "22"'), "host 'web1': ssh_port", "a whole number"),
    "bad type: bool": (one_host('trim = "yes"'), "host 'web1': trim", "true or false"),
    "bad type: table": (one_host("pool_options = 3"), "host 'web1': pool_options", "a table"),
    "bad port": (one_host("ssh_port = 70000"), "host 'web1': ssh_port", "not a port"),
    "bad disk id": (
        one_host().replace(disk("web1"), "/dev/sda"),
        "host 'web1': disks",
        "/dev/disk/by-id",
    ),
    "by-path is no disk id": (
        one_host().replace(disk("web1"), "/dev/disk/by-path/pci-0000:00:1f.2-ata-1"),
        "host 'web1': disks",
        "by-id",
    ),
    "disk twice": (
        one_host().replace(f'["{disk("web1")}"]', f'["{disk("web1")}", "{disk("web1")}"]'),
        "host 'web1': disks",
        "twice",
    ),
    "no disk": (
        one_host().replace(f'["{disk("web1")}"]', "[]"),
        "host 'web1': disks",
        "no disk",
    ),
    "missing target": (
        one_host().replace('target = "root@192.0.2.11"', ""),
        "host 'web1': target",
        "missing",
    ),
    "target read as an option": (
        one_host().replace("root@192.0.2.11", "-oProxyCommand=touch /tmp/x"),
        "host 'web1': target",
        "[user@]host",
    ),
    "bad host name": (
        one_host().replace('name = "web1"', 'name = "web_1"'),
        "host 'web_1': name",
        "letters, digits and hyphens",
    ),
    "host without a name": (
        one_host().replace('name = "web1"', ""),
        "hosts[1]: name",
        "missing",
    ),
    "bad host id": (one_host('host_id = "xyz"'), "host 'web1': host_id", "8 hexadecimal"),
    # Named where the host's settings are checked, the value from [defaults].
    "bad user": (one_host().replace('"admin"', '"root"'), "host 'web1': user", "system account"),
    "unknown backend": (
        one_host().replace('backend = "luks"', 'backend = "btrfs"'),
        "host 'web1': backend",
        "unknown backend 'btrfs'",
    ),
    "backend and profile": (
        one_host('backend = "luks"\nprofile = "homelab"'),
        "host 'web1': profile",
        "not both",
    ),
    "unknown profile": (one_host('profile = "spy"'), "host 'web1': profile", "unknown profile"),
    "no backend": (
        one_host().replace('backend = "luks"', ""),
        "host 'web1': backend",
        "missing",
    ),
    "unknown unlock": (one_host('unlock = "smoke"'), "host 'web1': unlock", "no such unlock"),
    "missing keys file": (
        one_host('remote_unlock_keys = "keys/none.pub"'),
        "host 'web1': remote_unlock_keys",
        "cannot be read",
    ),
    "missing authorized keys": (
        one_host('authorized_keys = "keys/none.pub"'),
        "host 'web1': authorized_keys",
        "cannot be read",
    ),
    "not a key": (
        one_host('authorized_keys = "secrets/password"'),
        "host 'web1': authorized_keys",
        "not an OpenSSH public key",
    ),
    "missing password file": (
        one_host('password_file = "secrets/none"'),
        "host 'web1': password_file",
        "not a file",
    ),
    "plaintext as a hash": (
        one_host('password_hash = "hunter22"'),
        "host 'web1': password_hash",
        "never goes into the inventory",
    ),
    "no password": (
        one_host().replace(f'password_hash = "{HASH}"', ""),
        "host 'web1': password_hash",
        "missing",
    ),
    "both passphrase sources": (
        one_host('passphrase_file = "a"\npassphrase_command = ["b"]'),
        "host 'web1': passphrase_command",
        "passphrase_file or",
    ),
    "empty command": (
        one_host("passphrase_command = []"),
        "host 'web1': passphrase_command",
        "empty",
    ),
    "bad swap": (one_host('swap = "lots"'), "host 'web1': swap", "a size"),
    "bad pool option": (
        one_host('pool_options = { ashift = "-x" }'),
        "host 'web1': pool_options",
        "ZFS property",
    ),
    "duplicate host names": (
        one_host() + second("WEB1", "root@192.0.2.12"),
        "host 'WEB1': name",
        "'web1''s already",
    ),
    "duplicate targets": (
        one_host() + second("web2", "root@192.0.2.11"),
        "host 'web2': target",
        "already",
    ),
    "duplicate host ids": (
        one_host('host_id = "8425E349"')
        + second("web2", "root@192.0.2.12", 'host_id = "8425e349"'),
        "host 'web2': host_id",
        "'8425e349' is host 'web1''s already",
    ),
    "no host": ('[defaults]\nbackend = "luks"\n', "top level: hosts", "no host"),
    "not TOML": ("[[hosts]\nname=", "fleet.toml", "not TOML"),
}


@pytest.mark.parametrize("kind", BAD)
def test_a_bad_inventory_is_refused_naming_the_host_and_field(tmp_path: Path, kind: str) -> None:
    body, where, words = BAD[kind]
    message = refused(tmp_path, body)
    assert f"{tmp_path / 'fleet.toml'}: " in message
    assert where in message, message
    assert words in message, message


def test_the_cli_refuses_a_bad_inventory_with_status_2_and_writes_nothing(
    run_cli: RunCli, tmp_path: Path
) -> None:
    path = write_inventory(tmp_path, three_hosts().replace("8425e349", "8425e34"))
    out = tmp_path / "out"
    for args in (
        ("fleet", "--inventory", str(path), "--out", str(out)),
        ("fleet", "deploy", "--inventory", str(path), "--flake", str(out), "--dry-run"),
    ):
        result = run_cli(*args)
        assert result.returncode == 2, result.stderr
        assert "host 'web1': host_id" in result.stderr
        assert "Traceback" not in result.stderr
    assert not out.exists()


def test_a_missing_inventory_is_exit_2(run_cli: RunCli, tmp_path: Path) -> None:
    result = run_cli("fleet", "--inventory", str(tmp_path / "none.toml"), "--out", str(tmp_path))
    assert result.returncode == 2
    assert "cannot be read" in result.stderr


def test_fleet_needs_its_options(run_cli: RunCli) -> None:
    result = run_cli("fleet")
    assert result.returncode == 2
    assert "--inventory FILE and --out DIR" in result.stderr


def test_the_bodies_are_toml(tmp_path: Path) -> None:
    import tomllib

    for kind, (body, _, _) in BAD.items():
        if kind != "not TOML":
            tomllib.loads(textwrap.dedent(body))
