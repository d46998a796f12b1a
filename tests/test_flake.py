"""The advisor as a Nix flake (flake.nix, nix/programs.nix): every program a built-in plan
runs is in the one table, and the flake puts every table entry on the wrapped program's
PATH. The flake is evaluated by the real Nix evaluator against stand-ins for nixpkgs
(tests/nix/eval-advisor-flake.nix): building it needs the network and a flake-enabled Nix,
which the tests do not have."""

from __future__ import annotations

import shutil
import sys
import tomllib
from collections.abc import Iterable, Iterator
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

import nixeval
import pytest
from helpers import PLAN_SPEC, detached, pool_spec
from test_configuration import VARIANTS
from test_rekey import layout

from advisor import __version__
from advisor.errors import PluginRefusal
from advisor.install import rekey
from advisor.install.finish import build_finish
from advisor.install.plan import build_plan
from advisor.models import InstallSpec, RekeySpec, Settings, Step
from advisor.pluginmanager import BUILTIN_DISTRIBUTION, LoadedPlugins, load_plugins

#: The release the generated configurations follow, by default.
RELEASE = next(f.default for f in fields(Settings) if f.name == "nixos_release")
ROOT = Path(__file__).resolve().parent.parent
FLAKE = ROOT / "flake.nix"
TABLE = ROOT / "nix" / "programs.nix"
#: sys.executable in a step is the package's own interpreter: the table's ``python``.
PYTHON = "python"
#: Programs the advisor's own code runs inside steps that run it (``advisor config``,
#: ``advisor check``), which no step names: each with the module that runs it, whose
#: source must still name it (so this list cannot go stale unnoticed).
RUN_BY_ADVISOR = {
    "mkpasswd": "advisor/secrets.py",
    "nix-instantiate": "advisor/nixeval.py",
    "zdb": "advisor/check/probe.py",
    "cryptsetup": "advisor/check/probe.py",
    "zpool": "advisor/install/verify.py",
    "udevadm": "advisor/install/verify.py",  # the settle step's: verify settled
    "nixos-anywhere": "advisor/deploy/run.py",  # advisor fleet deploy
}


def read_table(path: Path = TABLE) -> dict[str, dict[str, str]]:
    """nix/programs.nix as data: ``prefix`` and ``suffix``, program to attribute."""
    data: dict[str, dict[str, str]] = nixeval.eval_expression(f"import {path}")
    return data


def commands(step: Step) -> Iterator[tuple[str, ...]]:
    """The step's command, its probe and its restores; and a command a step hands to
    the advisor's wrappers (``-m advisor.install.keyfile -- COMMAND``, ``verify refused
    ... -- COMMAND``), which run it in turn."""
    for command in (step.argv, step.probe, *step.restore):
        if not command:
            continue
        yield tuple(command)
        if command[0] == sys.executable and "--" in command:
            yield tuple(command[command.index("--") + 1 :])


def programs_of(steps: Iterable[Step]) -> set[str]:
    """The first word of every command of ``steps``, ``sys.executable`` as ``python``."""
    return {PYTHON if c[0] == sys.executable else c[0] for s in steps for c in commands(s)}


def builtin_plugins() -> LoadedPlugins:
    return load_plugins(environ={})


def install_specs(backend_detached: bool) -> Iterator[InstallSpec]:
    """One disk and a mirror of two, each as the backend takes it."""
    for spec in (PLAN_SPEC, pool_spec(2)):
        if backend_detached:
            count = len(spec.members)
            spec = detached(
                spec, [f"/k/h{n}" for n in range(count)], [f"/b/h{n}" for n in range(count)]
            )
        yield spec


def plan_programs(plugins: LoadedPlugins) -> dict[str, set[str]]:
    """Every program a built-in backend's plans run, with where: the install for each
    built-in unlock method it carries (passphrase kept and retired), the finish of every
    configuration variant, and the rekey of every built-in backend."""
    builtin = [r for r in plugins.records if r.distribution == BUILTIN_DISTRIBUTION]
    backends = [plugins.backend(name) for r in builtin for name in r.backends]
    methods = {name for r in builtin for name in r.unlock_methods}
    assert {b.name for b in backends} == {"luks", "luks-detached", "zfs-native"}
    assert methods == {"passphrase", "tpm2", "tpm2+pin", "fido2"}
    found: dict[str, set[str]] = {}

    def add(steps: Iterable[Step], where: str) -> None:
        for program in programs_of(steps):
            found.setdefault(program, set()).add(where)

    for backend in backends:
        carried = [m for m in plugins.unlock_methods_for(backend) if m.name in methods]
        assert carried, backend.name
        for method in carried:
            for spec in install_specs(backend.detached_header):
                for keep in (True, False):
                    settings = replace(spec.settings, unlock=method.name, keep_passphrase=keep)
                    spec = replace(spec, backend=backend.name, settings=settings)
                    plan = build_plan(spec, backend, generate_hardware_config=True, method=method)
                    add(plan.steps, f"install {backend.name} {method.name}")
        record = layout(backend.name)
        for recovery in (False, True):
            try:
                steps = rekey.build_plan(RekeySpec(record, recovery_key=recovery), backend).steps
            except PluginRefusal:  # zfs-native has no second key slot for one
                continue
            add(steps, f"rekey {backend.name}")
    for name, variant in VARIANTS.items():
        add(build_finish(variant, "/mnt", "/s", nixos_install=True).steps, f"finish {name}")
    return found


def missing_from(table: dict[str, dict[str, str]], programs: Iterable[str]) -> list[str]:
    listed = set(table["prefix"]) | set(table["suffix"])
    return sorted(set(programs) - listed)


@pytest.fixture(scope="module")
def found() -> dict[str, set[str]]:
    return plan_programs(builtin_plugins())


@pytest.fixture(scope="module")
def evaluated() -> Any:
    return nixeval.eval_file("eval-advisor-flake.nix", FLAKE)


def test_every_program_a_plan_runs_is_in_the_table(found: dict[str, set[str]]) -> None:
    # What the plans of this version run, so a change shows up here too.
    assert set(found) == {
        "blkid", "cp", "cryptsetup", "mkdir", "mkfs.vfat", "mount", "mountpoint", "mv",
        "nixos-generate-config", "nixos-install", "python", "sgdisk", "systemd-cryptenroll",
        "test", "umount", "wipefs", "zfs", "zgenhostid", "zpool",
    }  # fmt: skip
    assert missing_from(read_table(), found) == []


def test_programs_the_advisor_runs_itself_are_in_the_table() -> None:
    for program, module in RUN_BY_ADVISOR.items():
        assert f'"{program}"' in (ROOT / module).read_text(encoding="utf-8"), (program, module)
    assert missing_from(read_table(), RUN_BY_ADVISOR) == []


def test_a_program_missing_from_the_table_fails(found: dict[str, set[str]], tmp_path: Path) -> None:
    text = TABLE.read_text(encoding="utf-8")
    line = '    sgdisk = "gptfdisk";\n'
    assert line in text
    copy = tmp_path / "programs.nix"
    copy.write_text(text.replace(line, ""), encoding="utf-8")
    assert missing_from(read_table(copy), found) == ["sgdisk"]


def test_the_flake_parses() -> None:
    nixeval.parse(FLAKE)
    nixeval.parse(TABLE)


def wrapper_paths(arguments: list[str]) -> dict[str, list[str]]:
    """``makeWrapperArgs`` (words, joined by spaces as the builder joins them) to the
    directories each of ``--prefix PATH`` and ``--suffix PATH`` adds, and PYTHONPATH's."""
    words = " ".join(arguments).split()
    paths: dict[str, list[str]] = {}
    for at, word in enumerate(words):
        if word in ("--prefix", "--suffix") and words[at + 2] == ":":
            key = word[2:] if words[at + 1] == "PATH" else words[at + 1]
            paths.setdefault(key, []).extend(words[at + 3].split(":"))
    return paths


def test_the_wrapper_has_every_table_entry_on_its_path(evaluated: Any) -> None:
    table = read_table()
    assert not set(table["prefix"]) & set(table["suffix"])
    # An attribute in both would put the system's own behind the flake's after all.
    assert not set(table["prefix"].values()) & set(table["suffix"].values())
    assert set(evaluated["packages"]) == {"x86_64-linux", "aarch64-linux"}
    for package in evaluated["packages"].values():
        paths = wrapper_paths(package["makeWrapperArgs"])
        for where in ("prefix", "suffix"):
            expected = {f"/nix/store/{attribute}/bin" for attribute in table[where].values()}
            assert set(paths[where]) == expected, where
        assert table["prefix"][PYTHON] == "python3"  # the stand-in's interpreter
        # The interpreter a step runs finds the package and its dependencies.
        site = "lib/python3.13/site-packages"
        assert paths["PYTHONPATH"][0].endswith(f"/{site}")  # placeholder "out"
        for dependency in ("pluggy", "questionary", "rich", "pyudev", "cryptography"):
            assert f"/nix/store/{dependency}/{site}" in paths["PYTHONPATH"]


def test_the_wrapper_checks_itself_on_a_missing_program(tmp_path: Path) -> None:
    """The same check fails on a flake whose table lost a program's attribute."""
    for name in ("flake.nix", "advisor/__init__.py"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / name, tmp_path / name)
    (tmp_path / "nix").mkdir()
    text = TABLE.read_text(encoding="utf-8").replace('    sgdisk = "gptfdisk";\n', "")
    (tmp_path / "nix" / "programs.nix").write_text(text, encoding="utf-8")
    package = nixeval.eval_file("eval-advisor-flake.nix", tmp_path / "flake.nix")["packages"]
    prefix = wrapper_paths(package["x86_64-linux"]["makeWrapperArgs"])["prefix"]
    assert "/nix/store/gptfdisk/bin" not in prefix
    assert "/nix/store/cryptsetup/bin" in prefix


def test_the_package_and_the_app(evaluated: Any) -> None:
    # The release the generated configurations follow.
    assert evaluated["nixpkgs"] == f"github:NixOS/nixpkgs/nixos-{RELEASE}"
    for system, package in evaluated["packages"].items():
        assert package["pname"] == "nixos-crypt-advisor"
        assert package["version"] == __version__
        assert package["pyproject"] is True
        assert package["build-system"] == ["hatchling"]
        assert package["dependencies"] == [
            "pluggy",
            "questionary",
            "rich",
            "pyudev",
            "cryptography",
        ]
        assert package["src"] == str(ROOT)
        assert package["mainProgram"] == "advisor"
        # Every package pyproject.toml's wheel holds, the built-in plugins included.
        assert set(package["pythonImportsCheck"]) == {
            "advisor", "advisor_luks", "advisor_luks_detached", "advisor_unlock",
            "advisor_zfs_native",
        }  # fmt: skip
        assert 'advisor" plugins --check' in package["checkPhase"]
        app = evaluated["apps"][system]["default"]
        assert app["type"] == "app"
        assert app["program"] == f"{package['out']}/bin/advisor"


def test_the_dev_shell_has_the_test_tools(evaluated: Any) -> None:
    for shell in evaluated["devShells"].values():
        packages = {p["name"]: p["packages"] for p in shell["packages"]}
        assert {"pytest", "hypothesis", "mypy", "pip"} <= set(packages["python3-env"])
        assert {"ruff", "nix", "mkpasswd", "age", "openssh"} <= set(packages)
        assert "python3" not in packages  # the environment is the interpreter
        assert "pip install" in shell["shellHook"]


def test_the_pyproject_packages_are_the_import_checks(evaluated: Any) -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    listed = pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]
    imports = evaluated["packages"]["x86_64-linux"]["pythonImportsCheck"]
    assert sorted(Path(p).name for p in listed) == sorted(imports)
