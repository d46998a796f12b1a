"""``advisor fleet``: three hosts of an inventory become one flake that parses and
evaluates against stand-ins (tests/nix/eval-flake.nix), a disko configuration per host
that disko's own code evaluates (tests/vendor), configurations that evaluate, no secret
in any file, and the host ids and partition GUIDs kept when the fleet is written again."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import nixeval
import pytest
from fleetdata import CANARY, HASH, KEY, NAMES, PASSWORD_CANARY, disk, write_inventory
from helpers import RunCli, yescrypt_verifies


def write_fleet(run_cli: RunCli, inventory: Path, out: Path, *options: str) -> Any:
    result = run_cli("fleet", "--inventory", str(inventory), "--out", str(out), "--json", *options)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Any]:
    """The three hosts' inventory, the folder written from it and the --json output
    (written once for the tests that only read it)."""
    folder = tmp_path_factory.mktemp("fleet")
    inventory = write_inventory(folder)
    out = folder / "out"
    argv = ["fleet", "--inventory", str(inventory), "--out", str(out), "--json"]
    completed = subprocess.run(
        [sys.executable, "-m", "advisor", *argv],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    return inventory, out, json.loads(completed.stdout)


def test_the_files_of_every_host(fleet: tuple[Path, Path, Any]) -> None:
    _, out, data = fleet
    names = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    expected = ["flake.nix", "fleet.json"] + [
        f"hosts/{name}/{file}"
        for name in sorted(NAMES)
        for file in ("advisor.json", "configuration.nix", "disko.nix")
    ]
    assert names == expected
    assert sorted(data["written"]) == sorted(str(out / name) for name in expected)
    hosts = {h["name"]: h for h in data["hosts"]}
    assert hosts["web1"]["host_id"] == "8425e349"
    assert hosts["db1"]["backend"] == "zfs-native" and hosts["db1"]["topology"] == "mirror"
    assert len({h["host_id"] for h in data["hosts"]}) == 3


def test_the_flake_parses_and_has_a_configuration_per_host(fleet: tuple[Path, Path, Any]) -> None:
    _, out, _ = fleet
    nixeval.parse(out / "flake.nix")
    evaluated = nixeval.eval_flake(out / "flake.nix")
    assert set(evaluated["inputs"]) == {"nixpkgs", "impermanence", "disko"}
    assert evaluated["inputs"]["disko"]["inputs"]["nixpkgs"]["follows"] == "nixpkgs"
    configurations = evaluated["nixosConfigurations"]
    assert set(configurations) == set(NAMES)
    for name, system in configurations.items():
        folder = out / "hosts" / name
        assert system["modules"] == [
            str(folder / "configuration.nix"),
            "impermanence-module",
            "disko-module",
            str(folder / "disko.nix"),
        ]


def test_each_disko_configuration_evaluates_with_disko(fleet: tuple[Path, Path, Any]) -> None:
    _, out, data = fleet
    for host in data["hosts"]:
        evaluated = nixeval.eval_disko(out / "hosts" / host["name"] / "disko.nix")
        disks = {d["device"] for d in evaluated["tree"]["disk"].values()}
        assert disks == set(host["disks"])
        (pool,) = evaluated["tree"]["zpool"].values()
        assert pool["name"] == "rpool"
        assert "/tmp/secret.key" in evaluated["create"]
    assert data["hosts"][2]["disks"] == [disk("db1", 1), disk("db1", 2)]


def test_each_configuration_evaluates_with_its_host_id_and_ssh(
    fleet: tuple[Path, Path, Any],
) -> None:
    _, out, data = fleet
    manifest = json.loads((out / "fleet.json").read_text())
    for host in data["hosts"]:
        name = host["name"]
        config = nixeval.eval_config(out / "hosts" / name / "configuration.nix")
        assert config["networking"]["hostName"] == name
        assert config["networking"]["hostId"] == host["host_id"]
        assert manifest["hosts"][name]["host_id"] == host["host_id"]
        assert config["services"]["openssh"]["enable"] is True
        admin = config["users"]["users"]["admin"]
        assert admin["openssh"]["authorizedKeys"]["keys"] == [KEY]
        record = json.loads((out / "hosts" / name / "advisor.json").read_text())
        assert record["settings"]["host_id"] == host["host_id"]
        # The configuration names the partitions disko makes, by the GUIDs kept.
        guids = manifest["hosts"][name]["disks"][0]
        assert (
            record["members"][0]["esp_device"] == f"/dev/disk/by-partuuid/{guids['esp_partuuid']}"
        )
    web1 = nixeval.eval_config(out / "hosts" / "web1" / "configuration.nix")
    assert web1["boot"]["initrd"]["network"]["ssh"]["authorizedKeys"] == [KEY]


def test_no_secret_in_any_file_and_the_password_hashed(fleet: tuple[Path, Path, Any]) -> None:
    _, out, _ = fleet
    for path in out.rglob("*"):
        if path.is_file():
            text = path.read_text()
            assert CANARY not in text, path
            assert PASSWORD_CANARY not in text, path
            assert "PRIVATE KEY" not in text, path
    config = nixeval.eval_config(out / "hosts" / "db1" / "configuration.nix")
    hashed = config["users"]["users"]["admin"]["initialHashedPassword"]
    assert yescrypt_verifies(PASSWORD_CANARY, hashed)
    web1 = nixeval.eval_config(out / "hosts" / "web1" / "configuration.nix")
    assert web1["users"]["users"]["admin"]["initialHashedPassword"] == HASH


def test_written_again_a_fleet_keeps_its_ids_guids_and_hashes(
    run_cli: RunCli, tmp_path: Path
) -> None:
    inventory = write_inventory(tmp_path)
    out = tmp_path / "out"
    first = write_fleet(run_cli, inventory, out)
    before = {p: p.read_text() for p in out.rglob("*") if p.is_file()}
    # The same inventory again: nothing changes, not even the hashed password.
    again = write_fleet(run_cli, inventory, out)
    assert again["written"] == []
    assert {p: p.read_text() for p in out.rglob("*") if p.is_file()} == before
    # A fourth host: the flake and the manifest change (--force), the others' files not.
    text = inventory.read_text() + (
        f'\n[[hosts]]\nname = "web3"\ntarget = "root@192.0.2.13"\ndisks = ["{disk("web3")}"]\n'
    )
    inventory.write_text(text)
    refused = run_cli("fleet", "--inventory", str(inventory), "--out", str(out))
    assert refused.returncode == 2 and "use --force" in refused.stderr
    grown = write_fleet(run_cli, inventory, out, "--force")
    assert sorted(grown["written"]) == sorted(
        [str(out / "flake.nix"), str(out / "fleet.json")]
        + [
            str(out / "hosts" / "web3" / f)
            for f in ("advisor.json", "configuration.nix", "disko.nix")
        ]
    )
    ids = {h["name"]: h["host_id"] for h in grown["hosts"]}
    assert {n: ids[n] for n in NAMES} == {h["name"]: h["host_id"] for h in first["hosts"]}
    assert len(set(ids.values())) == 4
    # Other disks for db1: its partitions are new (and say so), its host id is kept.
    inventory.write_text(text.replace(disk("db1", 2), disk("db1", 3)))
    changed = write_fleet(run_cli, inventory, out, "--force")
    db1 = next(h for h in changed["hosts"] if h["name"] == "db1")
    assert db1["new_partition_guids"] is True and db1["host_id"] == ids["db1"]
    assert str(out / "hosts" / "web1" / "disko.nix") not in changed["written"]


REFUSED = {
    # kind: (what the inventory's db1 gets instead of its backend, the field, words)
    "luks-detached refused for disko": ('profile = "activist"', "profile", "disko"),
    "an enrollment disko cannot run": (
        'backend = "luks"\nunlock = "tpm2"',
        "unlock",
        "enroll",
    ),
    "two releases": ('backend = "luks"\nnixos_release = "25.11"', "nixos_release", "one nixpkgs"),
}


@pytest.mark.parametrize("kind", REFUSED)
def test_what_the_export_refuses_is_exit_2_naming_the_host(
    run_cli: RunCli, tmp_path: Path, kind: str
) -> None:
    replacement, field, words = REFUSED[kind]
    inventory = write_inventory(tmp_path)
    inventory.write_text(inventory.read_text().replace('backend = "zfs-native"', replacement))
    out = tmp_path / "out"
    result = run_cli("fleet", "--inventory", str(inventory), "--out", str(out))
    assert result.returncode == 2, result.stderr
    assert f"{inventory}: host 'db1': {field}: " in result.stderr
    assert words in result.stderr
    assert not out.exists()


def test_a_hosts_files_are_the_exports_with_ssh_added(tmp_path: Path) -> None:
    """For a host without remote unlock, the fleet's files are what 'advisor export
    disko' writes for it, but for the SSH section."""
    from advisor.deploy.export import host_files
    from advisor.deploy.fleet import FleetHost, _files, host_spec
    from advisor.deploy.inventory import read_inventory
    from advisor.pluginmanager import load_plugins

    plugins = load_plugins(environ={})
    inventory = read_inventory(write_inventory(tmp_path), plugins)
    for host in inventory.hosts[1:]:  # web2 and db1: no remote unlock
        spec, new = host_spec(host, plugins, None)
        ours = _files(FleetHost(host, spec, new), plugins, HASH)
        _, theirs = host_files(spec, plugins, HASH)
        assert ours["disko.nix"] == theirs["disko.nix"]
        assert ours["advisor.json"] == theirs["advisor.json"]
        ssh = "  services.openssh.enable = true;\n"
        keys = f'    openssh.authorizedKeys.keys = [\n      "{KEY}"\n    ];\n'
        text = ours["configuration.nix"]
        assert ssh in text and keys in text
        without = text.replace("\n  # Remote access\n" + ssh, "").replace(keys, "")
        assert without == theirs["configuration.nix"]


def test_the_flake_advisor_fleet_writes_is_the_one_deploy_takes(
    run_cli: RunCli, tmp_path: Path
) -> None:
    from test_fleet_deploy import STANDIN

    inventory = write_inventory(tmp_path)
    out = tmp_path / "out"
    write_fleet(run_cli, inventory, out)
    (tmp_path / "records").mkdir()
    base = ["fleet", "deploy", "--inventory", str(inventory), "--flake", str(out)]
    base += ["--nixos-anywhere", str(STANDIN), "--log-dir", str(tmp_path / "logs")]
    dry = run_cli(*base, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert sum(1 for line in dry.stdout.splitlines() if not line.startswith("#")) == 3
    result = run_cli(*base, "--host", "db1", env={"STANDIN_RECORDS": str(tmp_path / "records")})
    assert result.returncode == 0, result.stderr
    assert (out / "hosts" / "db1" / "hardware-configuration.nix").is_file()


def test_a_swap_partition_keeps_its_guid_too(run_cli: RunCli, tmp_path: Path) -> None:
    inventory = write_inventory(tmp_path)
    text = inventory.read_text().replace('topology = "mirror"', 'topology = "mirror"\nswap = "4G"')
    inventory.write_text(text)
    out = tmp_path / "out"
    write_fleet(run_cli, inventory, out)
    manifest = json.loads((out / "fleet.json").read_text())
    swaps = [d["swap_partuuid"] for d in manifest["hosts"]["db1"]["disks"]]
    assert all(swaps) and len(set(swaps)) == 2
    assert manifest["hosts"]["web1"]["disks"][0]["swap_partuuid"] is None
    disko = (out / "hosts" / "db1" / "disko.nix").read_text()
    assert all(guid in disko for guid in swaps)
    assert write_fleet(run_cli, inventory, out)["written"] == []
