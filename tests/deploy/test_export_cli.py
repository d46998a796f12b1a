"""``advisor export disko`` end to end: the files it writes parse and evaluate (disko.nix
with the vendored disko, flake.nix against stand-ins, configuration.nix against the
module arguments' stand-ins), the configuration is the one the install's write-config
step writes, no secret reaches a file, and bad input exits 2 having written nothing."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import nixeval
import pytest
from disko_compare import differences
from helpers import RunCli, pool_spec, yescrypt_verifies

from advisor.deploy.disko import KEY_FILE
from advisor.install.executor import write_plan_file
from advisor.install.plan import build_plan
from advisor.layoutfile import layout_datasets
from advisor.layoutrecord import RECORD_FILE, read_record
from advisor.pluginmanager import load_plugins

CANARY = "canary-Pa55w0rd-export-91c4"
DISKS = ("/dev/disk/by-id/nvme-Samsung_SSD_1", "/dev/disk/by-id/nvme-Samsung_SSD_2")
FILES = {"disko.nix", "configuration.nix", RECORD_FILE, "flake.nix"}


@pytest.fixture
def password_file(tmp_path: Path) -> Path:
    path = tmp_path / "password"
    path.write_text(CANARY + "\n")
    return path


def export_args(out: Path, password_file: Path, *extra: str, backend: str = "luks") -> list[str]:
    args = ["export", "disko", "--backend", backend, "--out", str(out)]
    args += ["--password-file", str(password_file), "--hostname", "atlas", "--host-id", "8f2a91c4"]
    return [*args, *extra]


def _written(out: Path) -> dict[str, str]:
    return {path.name: path.read_text(encoding="utf-8") for path in out.iterdir()}


@pytest.mark.parametrize("backend", ["luks", "zfs-native"])
@pytest.mark.parametrize("shape", ["one-disk", "mirror-swap"])
def test_the_exported_files_parse_and_evaluate(
    run_cli: RunCli, tmp_path: Path, password_file: Path, backend: str, shape: str
) -> None:
    out = tmp_path / "atlas"
    count = 2 if shape == "mirror-swap" else 1
    disks = ["--disk", DISKS[0]]
    if count == 2:
        disks += ["--disk", DISKS[1], "--swap", "4G", "--trim"]
    result = run_cli(*export_args(out, password_file, *disks, "--json", backend=backend))
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert set(_written(out)) == FILES
    assert {Path(p).name for p in report["written"]} == FILES
    assert report["flake"] == ".#atlas" and report["key_file"] == KEY_FILE
    files = _written(out)
    for name, text in files.items():
        assert CANARY not in text, name
        if name.endswith(".nix"):
            nixeval.parse(out / name)
    assert CANARY not in result.stdout + result.stderr
    # disko.nix: disko's own types accept it, and it lays out what the flake names.
    evaluated = nixeval.eval_disko(out / "disko.nix")
    assert sorted(evaluated["tree"]["disk"]) == [f"disk{n}" for n in range(1, count + 1)]
    # flake.nix: disko's input (its nixpkgs following the flake's) and the host's modules.
    flake = nixeval.eval_flake(out / "flake.nix")
    assert flake["inputs"]["disko"] == {
        "url": "github:nix-community/disko",
        "inputs": {"nixpkgs": {"follows": "nixpkgs"}},
    }
    assert list(flake["nixosConfigurations"]) == ["atlas"]
    modules = flake["nixosConfigurations"]["atlas"]["modules"]
    assert modules == [
        str(out / "configuration.nix"),
        "impermanence-module",
        "disko-module",
        str(out / "disko.nix"),
    ]
    assert (
        f"nixos-anywhere --flake '.#atlas' --disk-encryption-keys {KEY_FILE}" in files["flake.nix"]
    )
    # configuration.nix evaluates, names the devices disko makes, and holds the hash.
    config = nixeval.eval_config(out / "configuration.nix")
    (hashed,) = [user["initialHashedPassword"] for user in config["users"]["users"].values()]
    assert yescrypt_verifies(CANARY, hashed)
    esp = evaluated["tree"]["disk"]["disk1"]["content"]["partitions"]["ESP"]
    assert config["fileSystems"]["/boot"]["device"] == esp["device"]
    assert config["networking"]["hostId"] == "8f2a91c4"
    record = read_record(out / RECORD_FILE)
    assert record.backend == backend and len(record.members) == count
    assert (record.members[0].swap_device is not None) == (shape == "mirror-swap")
    # disko's own module configuration is off: configuration.nix is the one.
    assert "enableConfig = false;" in files["disko.nix"]


def test_the_configuration_is_the_one_the_install_writes(
    run_cli: RunCli, tmp_path: Path, password_file: Path
) -> None:
    # A plan saved with fixed GUIDs: the export and the install's write-config step (run
    # as the install runs it, as 'advisor config') give the same configuration.
    plugins = load_plugins(environ={})
    for backend in ("luks", "zfs-native"):
        spec = replace(pool_spec(2, swap_size="4G"), backend=backend)
        spec = replace(
            spec,
            members=tuple(
                replace(m, swap_partuuid=f"5{m.number}0e8400-e29b-41d4-a716-446655440000")
                for m in spec.members
            ),
        )
        plan = build_plan(spec, plugins.backend(backend), generate_hardware_config=False)
        saved = tmp_path / f"{backend}.json"
        write_plan_file(saved, plan)
        out = tmp_path / f"export-{backend}"
        result = run_cli("export", "disko", "--plan", str(saved), "--out", str(out),
                         "--password-file", str(password_file))  # fmt: skip
        assert result.returncode == 0, result.stderr
        (step,) = [s for s in plan.steps if s.id == "write-config"]
        argv = list(step.argv[step.argv.index("config") :])
        installed = tmp_path / f"install-{backend}"
        argv[argv.index("--out") + 1] = str(installed)
        at = argv.index("--persist-root")
        del argv[at : at + 2]
        argv[argv.index("--password-stdin")] = "--password-file"
        argv.insert(argv.index("--password-file") + 1, str(password_file))
        result = run_cli(*argv)
        assert result.returncode == 0, result.stderr
        exported, written = _written(out), _written(installed)
        hashes = re.compile(r'initialHashedPassword = "[^"]*";')
        assert hashes.sub("", exported["configuration.nix"]) == hashes.sub(
            "", written["configuration.nix"]
        )
        assert exported[RECORD_FILE] == written[RECORD_FILE]
        # And the disko.nix of that plan makes what the plan makes.
        evaluated = nixeval.eval_disko(out / "disko.nix")
        datasets = layout_datasets(spec.settings)
        assert differences(plan, evaluated, datasets) == []


def test_a_saved_plan_fixes_the_layout(
    run_cli: RunCli, tmp_path: Path, password_file: Path
) -> None:
    plugins = load_plugins(environ={})
    plan = build_plan(pool_spec(1), plugins.backend("luks"), generate_hardware_config=False)
    saved = tmp_path / "plan.json"
    write_plan_file(saved, plan)
    out = tmp_path / "out"
    result = run_cli("export", "disko", "--plan", str(saved), "--out", str(out),
                     "--password-file", str(password_file), "--hostname", "other",
                     "--disk", DISKS[0])  # fmt: skip
    assert result.returncode == 2
    assert "--disk, --hostname: --plan" in result.stderr
    assert not out.exists()


def _refused(run_cli: RunCli, out: Path, *args: str) -> str:
    result = run_cli(*args)
    assert result.returncode == 2, (args, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    assert not out.exists() or not any(out.iterdir()), list(out.iterdir())
    return result.stderr


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--disk", "/dev/sda"], "whole disk as /dev/disk/by-id/"),
        (["--disk", f"{DISKS[0]}-part2"], "whole disk as /dev/disk/by-id/"),
        ([], "give --disk"),
        (["--disk", DISKS[0], "--disk", DISKS[0]], "a disk is given twice"),
        (["--disk", DISKS[0], "--topology", "mirror"], "a pool on one disk has no topology"),
        (["--disk", DISKS[0], "--disk", DISKS[1], "--topology", "raidz1"], "at least 3"),
        (["--disk", DISKS[0], "--swap", "lots"], "--swap 'lots'"),
        (["--disk", DISKS[0], "--swap", "1536K"], "whole MiB"),
        (["--disk", DISKS[0], "--fs-option", "mountpoint=/x"], "cannot be overridden"),
        (["--disk", DISKS[0], "--pool-option", "keylocation=prompt"], "cannot be overridden"),
        (["--disk", DISKS[0], "--unlock", "tpm2"], "disko cannot run"),
        (["--disk", DISKS[0], "--sops"], "export cannot reach"),
        (["--disk", DISKS[0], "--hostname", "bad host"], "--hostname"),
        (["--disk", DISKS[0], "--header", "/dev/disk/by-id/usb-key"], "--header"),
    ],
)
def test_bad_input_exits_2_and_writes_nothing(
    run_cli: RunCli, tmp_path: Path, password_file: Path, extra: list[str], message: str
) -> None:
    out = tmp_path / "out"
    stderr = _refused(run_cli, out, *export_args(out, password_file, *extra))
    assert message in stderr


def test_luks_detached_is_refused_with_the_reason(
    run_cli: RunCli, tmp_path: Path, password_file: Path
) -> None:
    out = tmp_path / "out"
    args = export_args(out, password_file, "--disk", DISKS[0], backend="luks-detached")
    stderr = _refused(run_cli, out, *args, "--header", "/dev/disk/by-id/usb-key-part1")
    assert "luks-detached cannot be exported to disko" in stderr
    assert "disko issue 962" in stderr and "formats the data partition again" in stderr
    # The same reason whatever else is missing (no --header here).
    assert "disko issue 962" in _refused(run_cli, out, *args)


def test_no_password_without_a_terminal_is_refused(run_cli: RunCli, tmp_path: Path) -> None:
    out = tmp_path / "out"
    args = ["export", "disko", "--backend", "luks", "--disk", DISKS[0], "--out", str(out)]
    assert "--password-file" in _refused(run_cli, out, *args)


def test_a_different_file_is_kept_without_force(
    run_cli: RunCli, tmp_path: Path, password_file: Path
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "flake.nix").write_text("{ }\n")
    args = export_args(out, password_file, "--disk", DISKS[0])
    result = run_cli(*args)
    assert result.returncode == 2 and "--force" in result.stderr
    assert _written(out) == {"flake.nix": "{ }\n"}  # nothing else written either
    result = run_cli(*args, "--force")
    assert result.returncode == 0, result.stderr
    assert set(_written(out)) == FILES


def test_the_report_prints_the_whole_install_command(
    run_cli: RunCli, tmp_path: Path, password_file: Path
) -> None:
    result = run_cli(*export_args(tmp_path / "out", password_file, "--disk", DISKS[0]))
    assert result.returncode == 0, result.stderr
    (line,) = [line for line in result.stdout.splitlines() if "nixos-anywhere" in line]
    assert line.split() == [
        "nixos-anywhere", "--flake", "'.#atlas'", "--disk-encryption-keys", "/tmp/secret.key",
        "PASSPHRASE-FILE", "--generate-hardware-config", "nixos-generate-config",
        "./hardware-configuration.nix", "root@HOST",
    ]  # fmt: skip


def test_a_bad_plan_file_is_refused(run_cli: RunCli, tmp_path: Path, password_file: Path) -> None:
    out = tmp_path / "out"
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"version": 999}))
    args = ["export", "disko", "--plan", str(plan), "--out", str(out)]
    assert "another advisor version" in _refused(
        run_cli, out, *args, "--password-file", str(password_file)
    )


@pytest.mark.parametrize(
    ("profile", "backend"), [("homelab", "zfs-native"), ("conservative-server", "luks")]
)
def test_the_assessment_chooses_the_backend(
    run_cli: RunCli, tmp_path: Path, password_file: Path, profile: str, backend: str
) -> None:
    assessment = tmp_path / "assessment.json"
    saved = run_cli("assess", "--profile", profile, "--save", str(assessment), "--json")
    assert saved.returncode == 0, saved.stderr
    assert json.loads(saved.stdout)["recommendation"] == backend
    out = tmp_path / "out"
    args = ["--from-assessment", str(assessment), "--disk", DISKS[0], "--out", str(out)]
    result = run_cli("export", "disko", *args, "--password-file", str(password_file), "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["backend"] == backend
    assert read_record(out / RECORD_FILE).backend == backend


def test_the_flag_table_in_docs_matches_the_command() -> None:
    import argparse

    from advisor.cli import build_parser

    def choices(parser: argparse.ArgumentParser) -> Any:
        return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices

    disko = choices(choices(build_parser())["export"])["disko"]
    options = {o for a in disko._actions for o in a.option_strings if o.startswith("--")}
    text = (Path(__file__).resolve().parents[2] / "docs" / "disko.md").read_text(encoding="utf-8")
    section = text.split("## Flags", 1)[1]
    cells = re.findall(r"^\| ([^|]+) \|", section, re.MULTILINE)
    documented = {flag for cell in cells for flag in re.findall(r"--[a-z0-9-]+", cell)}
    assert documented == options - {"--help"}
