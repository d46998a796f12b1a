"""tests/plugins/advisor-luks-tries-example, a backend built on the built-in ``luks``
from docs/plugins.md alone, takes part in ``assess``, ``config`` and ``plan``.

tox installs it through its real entry point (``pip install --no-deps``), as a user
would; these tests run the real command line.
"""

from __future__ import annotations

import io
import json
from importlib import metadata
from pathlib import Path

import nixeval
import pytest
from helpers import RunCli, assess_server
from test_install import DISK, Machine, machine  # noqa: F401 - machine is a fixture

from advisor import cli

DATA = "/dev/disk/by-partuuid/6a3d2c1b-5e4f-4a8b-9c0d-1e2f3a4b5c6d"
ESP = "/dev/disk/by-partuuid/0b5e1f2c-3d4e-4f5a-8b6c-7d8e9f0a1b2c"


@pytest.fixture(autouse=True)
def _installed() -> None:
    try:
        metadata.distribution("advisor-luks-tries-example")
    except metadata.PackageNotFoundError:
        pytest.fail(
            "install the example plugin first: pip install --no-deps "
            "tests/plugins/advisor-luks-tries-example (tox does this)"
        )


def test_it_loads_and_passes_the_check(run_cli: RunCli) -> None:
    result = run_cli("plugins", "--check", "--json")
    assert result.returncode == 0, result.stdout
    records = {record["name"]: record for record in json.loads(result.stdout)}
    assert records["luks-tries"]["status"] == "active"
    assert records["luks-tries"]["backends"] == ["luks-tries"]
    assert records["luks-tries"]["axes"] == ["console_guessing"]
    questions = {q["id"]: q for q in json.loads(run_cli("questions", "--json").stdout)}
    assert questions["console_access"]["plugin"] == "luks-tries"


def test_its_question_makes_it_the_recommendation(run_cli: RunCli, tmp_path: Path) -> None:
    plain = json.loads(run_cli("assess", "--profile", "conservative-server", "--json").stdout)
    assert plain["recommendation"] == "luks"  # its question is optional, and unanswered
    data = assess_server(run_cli, tmp_path / "console.toml", 'console_access = "yes"\n')
    assert data["recommendation"] == "luks-tries"
    cited = [r for r in data["reasons"] if r["axis"] == "console_guessing"]
    assert cited[0]["url"].startswith("https://www.freedesktop.org/")
    # Built on luks: it keeps luks's warnings (here, discards show the used blocks).
    trim = assess_server(
        run_cli, tmp_path / "trim.toml", 'console_access = "yes"\nssd_trim = "yes"\n'
    )
    assert "luks-discards" in [note["id"] for note in trim["warnings"]]


def _config(run_cli: RunCli, out: Path, password: Path, *extra: str) -> tuple[int, str]:
    result = run_cli(
        "config", "--backend", "luks-tries", "--out", str(out), "--data-device", DATA,
        "--esp-device", ESP, "--user", "alice", "--password-file", str(password),
        "--host-id", "8f2a91c4", *extra,
    )  # fmt: skip
    return result.returncode, result.stderr


def test_config_writes_its_crypttab_option(run_cli: RunCli, tmp_path: Path) -> None:
    password = tmp_path / "password"
    password.write_text("hunter2-example\n")
    out = tmp_path / "etc-nixos"
    status, stderr = _config(run_cli, out, password, "--luks-name", "vault")
    assert status == 0, stderr
    config = nixeval.eval_config(out / "configuration.nix")
    device = config["boot"]["initrd"]["luks"]["devices"]["vault"]
    # luks's entry, with the variant's option added (crypttab(5) tries=).
    assert device == {"device": DATA, "crypttabExtraOpts": ["tries=3"]}
    assert config["boot"]["zfs"]["devNodes"] == "/dev/mapper"


def test_its_option_joins_the_unlock_methods_and_nofail(run_cli: RunCli, tmp_path: Path) -> None:
    """A variant adds to luks's crypttab options, never replaces them: the unlock
    method's (tpm2-device=auto) and, on several disks, nofail stay."""
    password = tmp_path / "password"
    password.write_text("hunter2-example\n")
    out = tmp_path / "etc-nixos"
    two = ["--data-device", DATA.replace("1b", "2b"), "--esp-device", ESP.replace("2c", "3c")]
    status, stderr = _config(run_cli, out, password, "--unlock", "tpm2", *two)
    assert status == 0, stderr
    devices = nixeval.eval_config(out / "configuration.nix")["boot"]["initrd"]["luks"]["devices"]
    assert [device["crypttabExtraOpts"] for device in devices.values()] == [
        ["tpm2-device=auto", "nofail", "tries=3"]
    ] * 2


def test_config_with_the_scripted_initrd_is_refused_by_the_backend(
    run_cli: RunCli, tmp_path: Path
) -> None:
    password = tmp_path / "password"
    password.write_text("hunter2-example\n")
    out = tmp_path / "etc-nixos"
    status, stderr = _config(run_cli, out, password, "--initrd", "scripted")
    assert status == 2
    assert stderr.startswith(
        "advisor: error: backend 'luks-tries': check_settings refused: --initrd scripted: the "
        "tries limit is a crypttab option, which only the systemd initrd reads"
    ), stderr
    assert "Traceback" not in stderr
    assert not out.exists()


def test_plan_has_its_extra_step_between_luks_steps(
    machine: Machine,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stdout, stderr = io.StringIO(), io.StringIO()
    monkeypatch.setattr("sys.stdout", stdout)
    monkeypatch.setattr("sys.stderr", stderr)
    argv = ["plan", "--backend", "luks-tries", "--disk", DISK.disk_id]
    assert cli.main([*argv, "--root", str(machine.root)]) == 0, stderr.getvalue()
    script = stdout.getvalue()
    ids = [line.split("] ", 1)[1].split(":", 1)[0] for line in script.splitlines() if "] " in line]
    assert ids[ids.index("luks-format") : ids.index("luks-open") + 1] == [
        "luks-format",
        "luks-label",
        "luks-open",
    ]
    assert "cryptsetup config --label advisor-root /dev/disk/by-partuuid/" in script
    assert "config --backend luks-tries" in script and "--initrd systemd" in script
    assert machine.ran == []  # a plan runs nothing
