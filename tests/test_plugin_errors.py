"""A plugin's failure is reported as the plugin's, by every command that calls plugin code.

Each case runs ``cli.main`` in this process with a plugin written to a temporary
distribution: a refusal (:class:`PluginRefusal`) exits 2, any other failure 1, and the
message names the plugin or backend and the hook or method. An exception escaping
``main`` (a traceback) fails the test.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers import MakePluginDist, PluginDist
from test_install import DISK, Machine, machine  # noqa: F401 - machine is a fixture

from advisor import cli

_SCRIPTED = "layout.settings.initrd == 'scripted'"
_HEADER = "layout.settings.header"

#: An installable backend ``odd`` whose ``{method}`` runs ``{body}``, and an
#: ``advisor_nix_fragments`` hook that runs ``{hook_body}``.
PLUGIN = """
    from advisor.plugin import Backend, NixFragment, PluginRefusal, hookimpl

    class Odd(Backend):
        name = "odd"
        summary = "a test backend"
        api_version = 3
        installable = True
        capabilities = {{}}

        def pool_encryption(self, spec):
            return {{"encryption": "on", "keyformat": "passphrase"}}

        def {method}(self, *args):
            {body}

    @hookimpl
    def advisor_backends():
        return [Odd()]

    @hookimpl
    def advisor_nix_fragments(layout):
        {hook_body}
"""
#: What an overridden method returns when it is not the one under test.
DEFAULTS = {"method": "summary_of", "body": "return None", "hook_body": "return []"}
ESP = "/dev/disk/by-partuuid/0b5e1f2c-3d4e-4f5a-8b6c-7d8e9f0a1b2c"
DATA = "/dev/disk/by-partuuid/6a3d2c1b-5e4f-4a8b-9c0d-1e2f3a4b5c6d"

Main = Callable[..., tuple[int, str]]


@pytest.fixture
def main(
    make_plugin_dist: MakePluginDist,
    plugin_on_path: Callable[[PluginDist], None],
    monkeypatch: pytest.MonkeyPatch,
) -> Main:
    """Install the plugin ``PLUGIN`` filled with ``fields``, run ``cli.main(argv)`` off a
    terminal, return its exit status and stderr."""

    def run(*argv: str, **fields: str) -> tuple[int, str]:
        plugin_on_path(make_plugin_dist(PLUGIN.format(**{**DEFAULTS, **fields}), name="odd"))
        stderr = io.StringIO()
        monkeypatch.setattr("sys.stderr", stderr)
        monkeypatch.setattr("sys.stdin", io.StringIO())
        return cli.main(list(argv)), stderr.getvalue()

    return run


def config_args(tmp_path: Path, *extra: str) -> list[str]:
    password = tmp_path / "password"
    password.write_text("secret\n")
    args = ["config", "--backend", "odd", "--out", str(tmp_path / "out"), "--data-device"]
    args += [DATA, "--esp-device", ESP, "--user", "alice", "--password-file", str(password)]
    return [*args, "--host-id", "8f2a91c4", *extra]


@pytest.mark.parametrize(
    ("fields", "status", "message"),
    [
        (
            {"method": "nix_fragments", "body": "raise RuntimeError('boom')"},
            1,
            "backend 'odd': nix_fragments raised RuntimeError: boom",
        ),
        (
            {"method": "nix_fragments", "body": "return {('a',): 1}"},
            1,
            "backend 'odd': nix_fragments must return a sequence, not dict",
        ),
        (
            {"method": "nix_fragments", "body": "return ['services']"},
            1,
            "backend 'odd': nix_fragments returned str, not NixFragment",
        ),
        (
            {"method": "nix_fragments", "body": "return [NixFragment('X', {('a',): 1.5})]"},
            1,
            "backend odd: a: cannot render float as Nix",
        ),
        (
            {"method": "nix_fragments", "body": "raise PluginRefusal('no scripted initrd')"},
            2,
            "backend 'odd': nix_fragments refused: no scripted initrd",
        ),
        (
            {"hook_body": "raise KeyError('layout')"},
            1,
            "plugin 'odd': advisor_nix_fragments raised KeyError: 'layout'",
        ),
        (
            {"hook_body": "return NixFragment('X', {})"},
            1,
            "plugin 'odd': advisor_nix_fragments must return a sequence, not NixFragment",
        ),
        (
            {"hook_body": "raise PluginRefusal('TRIM is not for this pool')"},
            2,
            "plugin 'odd': advisor_nix_fragments refused: TRIM is not for this pool",
        ),
    ],
)
def test_config_names_the_failing_plugin(
    fields: dict[str, str], status: int, message: str, main: Main, tmp_path: Path
) -> None:
    code, stderr = main(*config_args(tmp_path), **fields)
    assert (code, stderr) == (status, f"advisor: error: {message}\n")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("fields", "status", "message"),
    [
        (
            {"method": "provision_steps", "body": "raise PluginRefusal('no SSD here')"},
            2,
            "backend 'odd': provision_steps refused: no SSD here",
        ),
        (
            {"method": "pool_device", "body": "raise OSError('gone')"},
            1,
            "backend 'odd': pool_device raised OSError: gone",
        ),
    ],
)
def test_plan_names_the_failing_backend(
    fields: dict[str, str],
    status: int,
    message: str,
    main: Main,
    machine: Machine,  # noqa: F811
) -> None:
    argv = ["plan", "--backend", "odd", "--disk", DISK.disk_id, "--root", str(machine.root)]
    code, stderr = main(*argv, **fields)
    assert (code, stderr) == (status, f"advisor: error: {message}\n")
    assert machine.ran == []


@pytest.mark.parametrize(
    ("fields", "status", "message"),
    [
        (
            {"method": "gate", "body": "raise RuntimeError('boom')"},
            1,
            "backend 'odd': gate raised RuntimeError: boom",
        ),
        (
            {"method": "gate", "body": "return True"},
            1,
            "backend 'odd': gate must return a reason or None, not True",
        ),
        (
            {"method": "warnings", "body": "return 'careful'"},
            1,
            "backend 'odd': warnings must return a sequence, not str",
        ),
        (
            {"method": "mitigations", "body": "raise PluginRefusal('answer tpm2 first')"},
            2,
            "backend 'odd': mitigations refused: answer tpm2 first",
        ),
    ],
)
def test_assess_names_the_failing_backend(
    fields: dict[str, str],
    status: int,
    message: str,
    main: Main,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Alone, the backend is recommended: its warnings and mitigations are asked for.
    monkeypatch.setenv("ADVISOR_DISABLE_PLUGINS", "luks,zfs-native,luks-detached,tpm2")
    code, stderr = main("assess", "--profile", "journalist", "--json", **fields)
    assert (code, stderr) == (status, f"advisor: error: {message}\n")


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        (
            {
                "method": "nix_fragments",
                "body": "if args[0].settings.initrd == 'scripted':\n"
                "                raise KeyError('x')\n"
                "            return []",
            },
            "--check: backend 'odd': nix_fragments raised KeyError: 'x'",
        ),
        (
            {"method": "provision_steps", "body": "return ['cryptsetup luksFormat']"},
            "--check: backend 'odd': provision_steps returned str, not Step",
        ),
        (
            {"method": "pool_device", "body": "return None"},
            "--check: backend 'odd': pool_device must be a path, not None",
        ),
        (
            {"method": "gate", "body": "raise RuntimeError('boom')"},
            "--check: backend 'odd': gate raised RuntimeError: boom",
        ),
        (
            {"method": "mitigations", "body": "return [None]"},
            "--check: backend 'odd': mitigations returned NoneType, not Note",
        ),
        (
            {"method": "rekey_steps", "body": "return [None] if args[0].recovery_key else []"},
            "--check: backend 'odd': rekey_steps returned NoneType, not Step",
        ),
        (
            {"method": "disko_content", "body": "raise RuntimeError('boom')"},
            "--check: backend 'odd': disko_content raised RuntimeError: boom",
        ),
        (
            {"method": "disko_content", "body": "return {'type': 2}"},
            "--check: backend 'odd': disko_content must return a disko content with a type, "
            "not {'type': 2}",
        ),
        (
            {"hook_body": "return [NixFragment('X', {('networking', 'hostId'): 'deadbeef'})]"},
            '--check: conflicting values for networking.hostId: "8f2a91c4" from core and '
            '"deadbeef" from plugin odd',
        ),
        (
            {"hook_body": f"return [NixFragment('X', {{('a',): 0.5}})] if {_HEADER} else []"},
            "--check: plugin odd: a: cannot render float as Nix",
        ),
    ],
)
def test_check_runs_what_config_plan_and_assess_would(
    fields: dict[str, str], reason: str, main: Main, capsys: pytest.CaptureFixture[str]
) -> None:
    # Each failure shows only in a command other than 'plugins', for some sample only
    # (the scripted initrd; luks-detached's header): --check finds it.
    code, stderr = main("plugins", "--check", "--json", **fields)
    assert (code, stderr) == (1, "")
    records = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert (records["odd"]["status"], records["odd"]["reason"]) == ("broken", reason)
    assert {records[name]["status"] for name in ("luks", "zfs-native", "luks-detached")} == {
        "active"
    }


def test_check_accepts_a_refusal(main: Main, capsys: pytest.CaptureFixture[str]) -> None:
    refuse = f"if {_SCRIPTED}:\n            raise PluginRefusal('no')\n        return []"
    fields = {
        "method": "provision_steps",
        "body": "raise PluginRefusal('not on this disk')",
        "hook_body": refuse,
    }
    code, stderr = main("plugins", "--check", "--json", **fields)
    assert (code, stderr) == (0, "")
    records = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert records["odd"]["status"] == "active"


def test_listing_without_check_does_not_run_backends(
    main: Main, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _ = main("plugins", "--json", method="gate", body="raise RuntimeError('boom')")
    assert code == 0
    assert {r["name"]: r for r in json.loads(capsys.readouterr().out)}["odd"]["status"] == "active"


#: A plugin with an unlock method ``odd-unlock`` whose ``{method}`` returns ``{value}``.
UNLOCK_PLUGIN = """
    from advisor.plugin import UnlockMethod, hookimpl

    class OddUnlock(UnlockMethod):
        name = "odd-unlock"
        summary = "a test unlock method"
        api_version = 3
        capabilities = {{}}

        def {method}(self, answers, system):
            return {value}

    @hookimpl
    def advisor_unlock_methods():
        return [OddUnlock()]
"""


@pytest.mark.parametrize(
    ("method", "value", "reason"),
    [
        ("gate", "42", "--check: unlock method 'odd-unlock': gate must return a reason or None"),
        (
            "warnings",
            "[None]",
            "--check: unlock method 'odd-unlock': warnings returned NoneType, not Note",
        ),
        (
            "mitigations",
            "'x'",
            "--check: unlock method 'odd-unlock': mitigations must return a sequence, not str",
        ),
    ],
)
def test_check_runs_what_assess_asks_of_an_unlock_method(
    method: str,
    value: str,
    reason: str,
    make_plugin_dist: MakePluginDist,
    plugin_on_path: Callable[[PluginDist], None],
    capsys: pytest.CaptureFixture[str],
) -> None:
    plugin_on_path(make_plugin_dist(UNLOCK_PLUGIN.format(method=method, value=value), name="odd"))
    assert cli.main(["plugins", "--check", "--json"]) == 1
    records = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert records["odd"]["status"] == "broken"
    assert records["odd"]["reason"].startswith(reason)
    assert records["unlock"]["status"] == "active"


#: A hardware method (it needs a LUKS2 header) whose ``{method}`` returns ``{value}``.
ENROLLING_PLUGIN = """
    from advisor.plugin import UnlockMethod, hookimpl

    class OddEnroll(UnlockMethod):
        name = "odd-enroll"
        summary = "a test unlock method that enrolls"
        api_version = 3
        carrier = "luks2-token"
        recovery_key = True  # so the passphrase may go, and its removal is asked for
        capabilities = {{}}

        def {method}(self, *arguments):
            return {value}

    @hookimpl
    def advisor_unlock_methods():
        return [OddEnroll()]
"""


@pytest.mark.parametrize(
    ("method", "value", "reason"),
    [
        ("enroll_steps", "['x']", "enroll_steps returned str, not Step"),
        ("retire_passphrase_steps", "None", "retire_passphrase_steps must return a sequence"),
        ("crypttab_options", "[1]", "crypttab_options returned int, not str"),
        ("nix_fragments", "42", "nix_fragments must return a sequence, not int"),
    ],
)
def test_check_runs_what_config_and_plan_ask_of_an_unlock_method(
    method: str,
    value: str,
    reason: str,
    make_plugin_dist: MakePluginDist,
    plugin_on_path: Callable[[PluginDist], None],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """With every backend that carries it (luks, luks-detached), as config and plan
    would run it: a method broken there is broken for --check too."""
    source = ENROLLING_PLUGIN.format(method=method, value=value)
    plugin_on_path(make_plugin_dist(source, name="odd"))
    assert cli.main(["plugins", "--check", "--json"]) == 1
    records = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert records["odd"]["status"] == "broken"
    assert reason in records["odd"]["reason"], records["odd"]["reason"]
    assert records["unlock"]["status"] == "active"  # the built-in methods pass
