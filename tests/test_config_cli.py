"""``advisor config`` end to end, and hostile input in every name that reaches Nix."""

from __future__ import annotations

import dataclasses
import json
import stat
import subprocess
from pathlib import Path
from typing import Any

import nixeval
import pytest
from helpers import RunCli, yescrypt_verifies
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from advisor.errors import UsageError
from advisor.layoutrecord import RECORD_FILE, read_record
from advisor.models import Settings
from advisor.nixos.generate import generate
from advisor.nixos.write import ConfigRequest, build_layout
from advisor.pluginmanager import load_plugins

CANARY = "canary-Pa55w0rd-7f3e"
DATA = "/dev/disk/by-partuuid/6a3d2c1b-5e4f-4a8b-9c0d-1e2f3a4b5c6d"
ESP = "/dev/disk/by-partuuid/0b5e1f2c-3d4e-4f5a-8b6c-7d8e9f0a1b2c"
HEADER = "/dev/disk/by-partuuid/9e8d7c6b-5a4f-4e3d-8c2b-1a0f9e8d7c6b"
PUBKEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl me@x"


@pytest.fixture
def password_file(tmp_path: Path) -> Path:
    path = tmp_path / "password"
    path.write_text(CANARY + "\n")
    return path


def config_args(out: Path, password_file: Path, *extra: str, backend: str = "luks") -> list[str]:
    args = ["config", "--backend", backend, "--out", str(out), "--data-device", DATA]
    args += ["--esp-device", ESP, "--user", "alice", "--password-file", str(password_file)]
    args += ["--hostname", "atlas", "--host-id", "8f2a91c4"]
    if backend == "luks-detached" and "--header" not in extra:
        args += ["--header", HEADER]
    return [*args, *extra]


def assert_no_canary(*texts: str) -> None:
    for text in texts:
        assert CANARY not in text


@pytest.mark.parametrize("backend", ["luks", "zfs-native", "luks-detached"])
@pytest.mark.parametrize("initrd", ["systemd", "scripted"])
def test_config_writes_files_that_parse_and_evaluate(
    run_cli: RunCli, tmp_path: Path, password_file: Path, backend: str, initrd: str
) -> None:
    out = tmp_path / "etc-nixos"
    result = run_cli(
        *config_args(out, password_file, "--initrd", initrd, "--json", backend=backend)
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["written"] == [
        str(out / name) for name in ("configuration.nix", "flake.nix", "advisor.json")
    ]
    assert report["host_id"] == "8f2a91c4"
    assert report["hardware_configuration_missing"] is True
    for name in ("configuration.nix", "flake.nix"):
        nixeval.parse(out / name)
    cfg = nixeval.eval_config(out / "configuration.nix")
    user = cfg["users"]["users"]["alice"]
    assert user["initialHashedPassword"].startswith("$y$")  # yescrypt
    assert cfg["boot"]["initrd"]["systemd"]["enable"] is (initrd == "systemd")
    text = (out / "configuration.nix").read_text()
    assert_no_canary(result.stdout, result.stderr, text, (out / "flake.nix").read_text())


def test_password_hash_verifies(run_cli: RunCli, tmp_path: Path, password_file: Path) -> None:
    out = tmp_path / "o"
    assert run_cli(*config_args(out, password_file)).returncode == 0
    hashed = nixeval.eval_config(out / "configuration.nix")["users"]["users"]["alice"][
        "initialHashedPassword"
    ]
    assert yescrypt_verifies(CANARY, hashed)
    assert not yescrypt_verifies(CANARY + "x", hashed)


def test_assessment_supplies_backend_trim_and_ssd(
    run_cli: RunCli, tmp_path: Path, password_file: Path
) -> None:
    assessment = tmp_path / "assessment.json"
    answers = tmp_path / "a.toml"
    answers.write_text('ssd_trim = "yes"\n')
    saved = run_cli(
        "assess", "--profile", "homelab", "--answers", str(answers), "--save", str(assessment)
    )
    assert saved.returncode == 0, saved.stderr
    out = tmp_path / "o"
    args = config_args(out, password_file, "--from-assessment", str(assessment), "--json")
    args.remove("--backend")
    args.remove("luks")
    result = run_cli(*args)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["backend"] == "zfs-native"  # the recommendation
    cfg = nixeval.eval_config(out / "configuration.nix")
    assert cfg["services"]["zfs"]["trim"]["enable"] is True


def test_remote_unlock_and_sops_keys(run_cli: RunCli, tmp_path: Path, password_file: Path) -> None:
    keys = tmp_path / "authorized_keys"
    keys.write_text(f"# comment line\n{PUBKEY}\n")
    persist = tmp_path / "persist"
    persist.mkdir()  # mounted, at an install
    out = tmp_path / "o"
    args = config_args(
        out, password_file, "--remote-unlock-keys", str(keys), "--sops",
        "--persist-root", str(persist), "--json",
    )  # fmt: skip
    first = run_cli(*args)
    assert first.returncode == 0, first.stderr
    report = json.loads(first.stdout)

    host_key = persist / "etc/secrets/initrd/ssh_host_ed25519_key"
    age_key = persist / "var/lib/sops-nix/key.txt"
    assert report["secrets_written"] == [str(host_key), str(age_key)]
    for secret in (host_key, age_key):
        assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    # The printed fingerprint and public key are those of the files, as the real tools see them.
    public = subprocess.run(
        ["ssh-keygen", "-y", "-f", str(host_key)], capture_output=True, text=True, check=True
    ).stdout
    pub_file = tmp_path / "host.pub"
    pub_file.write_text(public)
    listed = subprocess.run(
        ["ssh-keygen", "-l", "-f", str(pub_file)], capture_output=True, text=True, check=True
    ).stdout
    assert report["initrd_host_key_fingerprint"] in listed
    age_public = subprocess.run(
        ["age-keygen", "-y", str(age_key)], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert report["age_public_key"] == age_public
    # Secrets never reach the output or the configuration.
    private_text = host_key.read_text() + age_key.read_text()
    secret_line = next(line for line in age_key.read_text().splitlines() if "SECRET" in line)
    config_text = (out / "configuration.nix").read_text() + (out / "advisor.json").read_text()
    for text in (first.stdout, first.stderr, config_text):
        assert secret_line not in text
        assert "PRIVATE KEY" not in text
    assert "PRIVATE KEY" in private_text

    cfg = nixeval.eval_config(out / "configuration.nix")
    assert cfg["boot"]["initrd"]["network"]["ssh"]["authorizedKeys"] == [PUBKEY]

    # Running again reuses the keys and leaves identical files alone. (The password hash
    # has a new salt, so configuration.nix differs and needs --force.)
    again = run_cli(*args, "--force")
    assert again.returncode == 0, again.stderr
    report_again = json.loads(again.stdout)
    assert report_again["secrets_written"] == []
    assert report_again["written"] == [str(out / "configuration.nix")]
    assert report_again["unchanged"] == [str(out / "flake.nix"), str(out / "advisor.json")]
    assert report_again["initrd_host_key_fingerprint"] == report["initrd_host_key_fingerprint"]
    assert report_again["age_public_key"] == report["age_public_key"]


def test_existing_different_files_need_force(
    run_cli: RunCli, tmp_path: Path, password_file: Path
) -> None:
    out = tmp_path / "o"
    out.mkdir()
    (out / "configuration.nix").write_text("{ }\n")
    result = run_cli(*config_args(out, password_file))
    assert result.returncode == 2
    assert "already exist" in result.stderr and "--force" in result.stderr
    assert (out / "configuration.nix").read_text() == "{ }\n"
    assert not (out / "flake.nix").exists()  # nothing half-written
    forced = run_cli(*config_args(out, password_file, "--force"))
    assert forced.returncode == 0, forced.stderr
    assert "boot.zfs.devNodes" in (out / "configuration.nix").read_text()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("--data-device", "/dev/sda2"), "can change between boots"),
        (("--esp-device", "sda1"), "expected /dev/disk/by-id/"),
        (("--hostname", "bad host"), "--hostname 'bad host'"),
        (("--user", "root"), "system account"),
        (("--user", 'x"; }; evil = {'), "--user"),
        (("--host-id", "xyz"), "8 hexadecimal digits"),
        (("--host-id", "00000000"), "no host id"),
        (("--pool", "mirror"), "reserved"),
        (("--pool", "rpool/x"), "--pool"),
        (("--nixos-release", "unstable"), "26.05"),
        (("--backend", "btrfs"), "unknown backend 'btrfs'"),
        (("--header", HEADER), "only for the luks-detached backend"),
    ],
)
def test_bad_input_exits_2_and_writes_nothing(
    run_cli: RunCli,
    tmp_path: Path,
    password_file: Path,
    change: tuple[str, str],
    message: str,
) -> None:
    out = tmp_path / "o"
    args = config_args(out, password_file)
    option, bad = change
    if option in args:
        args[args.index(option) + 1] = bad
    else:
        args += [option, bad]
    result = run_cli(*args)
    assert result.returncode == 2, result
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert not out.exists()
    assert_no_canary(result.stdout, result.stderr)


def test_a_mirror_is_configured_from_a_device_of_each_kind_per_disk(
    run_cli: RunCli, tmp_path: Path, password_file: Path
) -> None:
    out = tmp_path / "o"
    second = ["--data-device", DATA.replace("6d", "6e"), "--esp-device", ESP.replace("2c", "2d")]
    swaps = [word for n in (1, 2) for word in ("--swap-device", f"{DATA[:-1]}{n}")]
    result = run_cli(*config_args(out, password_file, *second, *swaps))
    assert result.returncode == 0, result.stderr
    nixeval.parse(out / "configuration.nix")
    cfg = nixeval.eval_config(out / "configuration.nix")
    assert set(cfg["boot"]["initrd"]["luks"]["devices"]) == {"cryptroot1", "cryptroot2"}
    assert cfg["fileSystems"]["/boot-2"]["device"] == ESP.replace("2c", "2d")
    assert [swap["device"] for swap in cfg["swapDevices"]] == [f"{DATA[:-1]}1", f"{DATA[:-1]}2"]
    scripted = run_cli(*config_args(tmp_path / "s", password_file, *second, "--initrd",
                                    "scripted"))  # fmt: skip
    assert scripted.returncode == 2 and "--initrd scripted: the scripted initrd" in scripted.stderr
    # One of each device per disk, each its own.
    for extra, message in (
        (second[:2], "--data-device is given 2 times and --esp-device 1"),
        ([*second, swaps[0], swaps[1]], "--swap-device is given 1 times for 2 disks"),
        ([second[0], second[1], "--esp-device", ESP], "--esp-device: each disk needs its own"),
    ):
        refused = run_cli(*config_args(tmp_path / "r", password_file, *extra))
        assert refused.returncode == 2 and message in refused.stderr, refused.stderr
        assert not (tmp_path / "r").exists()


def test_other_refusals(run_cli: RunCli, tmp_path: Path, password_file: Path) -> None:
    out = tmp_path / "o"
    detached = config_args(out, password_file, backend="luks-detached")
    without_header = (
        detached[: detached.index("--header")] + detached[detached.index("--header") + 2 :]
    )
    assert "needs --header" in run_cli(*without_header).stderr
    keys = tmp_path / "keys"
    keys.write_text(PUBKEY + "\n")
    no_root = run_cli(*config_args(out, password_file, "--remote-unlock-keys", str(keys)))
    assert no_root.returncode == 2 and "--persist-root" in no_root.stderr
    keys.write_text('command="rm -rf /" ssh-ed25519 AAAA x\n')
    bad_keys = run_cli(
        *config_args(out, password_file, "--remote-unlock-keys", str(keys), "--persist-root", "p")
    )
    assert bad_keys.returncode == 2 and "not an OpenSSH public key line" in bad_keys.stderr
    no_password = [a for a in config_args(out, password_file) if a != str(password_file)]
    no_password.remove("--password-file")
    missing = run_cli(*no_password)
    assert missing.returncode == 2 and "--password-file" in missing.stderr
    bad_assessment = tmp_path / "a.json"
    bad_assessment.write_text('{"schema": 99}')
    result = run_cli(*config_args(out, password_file, "--from-assessment", str(bad_assessment)))
    assert result.returncode == 2 and "schema 1" in result.stderr
    assert not out.exists()


@pytest.mark.parametrize(
    ("out", "persist", "message"),
    [
        ("/proc/advisor-test", None, "--out '/proc/advisor-test' cannot be created"),
        ("afile/sub", None, "/afile' is not a directory"),
        ("afile", None, "--out 'afile' is not a directory"),
        ("o", "afile", "--persist-root 'afile' is not a directory"),
        # Never made on the live system: a typo would leave secret keys there.
        ("o", "missing/persist", "--persist-root 'missing/persist' is not a directory"),
        # The output is checked before any key is written to the persist root.
        ("/proc/advisor-test", "persist", "--out '/proc/advisor-test' cannot be created"),
    ],
)
def test_unusable_outputs_exit_2_before_anything_is_written(
    run_cli: RunCli,
    tmp_path: Path,
    password_file: Path,
    out: str,
    persist: str | None,
    message: str,
) -> None:
    (tmp_path / "afile").touch()
    (tmp_path / "persist").mkdir()
    extra = ["--sops", "--persist-root", persist] if persist else []
    result = run_cli(*config_args(Path(out), password_file, *extra), cwd=tmp_path)
    assert result.returncode == 2, result
    assert message in result.stderr and "Traceback" not in result.stderr
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["afile", "password", "persist"]


def test_canary_never_in_a_failure(run_cli: RunCli, tmp_path: Path) -> None:
    # A password mkpasswd cannot take is refused without echoing it.
    password = tmp_path / "password"
    password.write_text("")
    result = run_cli(*config_args(tmp_path / "o", password))
    assert result.returncode == 2 and "empty" in result.stderr


# Hostile input: every accepted value round-trips through Nix; the rest is a UsageError.

PLUGINS = load_plugins(environ={})
hostile = st.text(
    alphabet=st.one_of(
        st.sampled_from(list("$\\{}'\"\n;=/ .-_@:")),
        st.characters(exclude_categories=["Cs"], exclude_characters="\0"),
    ),
    min_size=1,
    max_size=30,
)


def request(**overrides: Any) -> ConfigRequest:
    """A request for luks-detached; ``overrides`` may name settings or request fields."""
    names = {f.name for f in dataclasses.fields(Settings)}
    chosen: dict[str, Any] = {"host_id": "8f2a91c4", "user": "alice", "header": (HEADER,)}
    chosen.update({k: v for k, v in overrides.items() if k in names})
    if isinstance(chosen["header"], str):
        chosen["header"] = (chosen["header"],)
    fields: dict[str, Any] = {
        "backend": "luks-detached",
        "settings": Settings(**chosen),
        "out_dir": Path("/nonexistent"),
        "data_devices": (DATA,),
        "esp_devices": (ESP,),
        "password": "x",
    }
    for name in ("data_device", "esp_device"):
        if name in overrides:
            fields[name + "s"] = (overrides.pop(name),)
    fields.update({k: v for k, v in overrides.items() if k not in names})
    return ConfigRequest(**fields)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    field=st.sampled_from(["hostname", "user", "pool", "data_device", "esp_device", "header"]),
    text=hostile,
    prefix=st.sampled_from(["", "/dev/disk/by-id/", "/dev/disk/by-partuuid/", "/persist/"]),
)
def test_hostile_names_are_refused_or_inert(
    field: str, text: str, prefix: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    value = prefix + text if field in ("data_device", "esp_device", "header") else text
    try:
        layout = build_layout(request(**{field: value}), PLUGINS, hashed_password="$y$x")
    except UsageError:
        return  # refused with a message: fine
    folder = tmp_path_factory.mktemp("hostile")
    files = generate(layout, PLUGINS.backend(layout.backend)).files
    for name, content in files.items():
        (folder / name).write_text(content)
        if name.endswith(".nix"):
            nixeval.parse(folder / name)
    # The record gives back the layout, but for what it leaves out (the hash, the keys).
    assert read_record(folder / RECORD_FILE) == dataclasses.replace(
        layout, hashed_password="", remote_unlock=None
    )
    cfg = nixeval.eval_config(folder / "configuration.nix")
    flake = nixeval.eval_flake(folder / "flake.nix")
    # Whatever was accepted lands exactly where it belongs, as the same string.
    assert cfg["networking"]["hostName"] == layout.settings.hostname
    assert list(flake["nixosConfigurations"]) == [layout.settings.hostname]
    assert list(cfg["users"]["users"]) == [layout.settings.user]
    assert cfg["fileSystems"]["/"]["device"] == f"{layout.settings.pool}/local/root"
    assert cfg["fileSystems"]["/boot"]["device"] == layout.members[0].esp_device
    device = cfg["boot"]["initrd"]["luks"]["devices"]["cryptroot"]
    assert device["device"] == layout.members[0].data_device
    (header,) = layout.settings.header
    expected_header = header if header.startswith("/dev/") else "/etc/luks/header.img"
    assert device["header"] == expected_header


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(comment=hostile.filter(lambda c: "\n" not in c and "\r" not in c))
def test_hostile_key_comments_stay_inert(
    comment: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    folder = tmp_path_factory.mktemp("keys")
    keys = folder / "keys"
    keys.write_text(f"{PUBKEY.rsplit(' ', 1)[0]} {comment}\n")
    try:
        layout = build_layout(
            request(remote_unlock_keys=str(keys), persist_root=folder),
            PLUGINS,
            hashed_password="$y$x",
        )
    except UsageError:
        return
    (folder / "configuration.nix").write_text(
        generate(layout, PLUGINS.backend(layout.backend)).files["configuration.nix"]
    )
    cfg = nixeval.eval_config(folder / "configuration.nix")
    assert layout.remote_unlock is not None
    assert cfg["boot"]["initrd"]["network"]["ssh"]["authorizedKeys"] == list(
        layout.remote_unlock.authorized_keys
    )


def test_an_assessment_without_a_recommendation_says_so(
    run_cli: RunCli, tmp_path: Path, password_file: Path
) -> None:
    assessment = tmp_path / "assessment.json"
    saved = run_cli("assess", "--profile", "homelab", "--save", str(assessment))
    assert saved.returncode == 0, saved.stderr
    data = json.loads(assessment.read_text())
    data["recommendation"] = None  # every backend ruled out
    assessment.write_text(json.dumps(data))
    out = tmp_path / "o"
    args = config_args(out, password_file, "--from-assessment", str(assessment))
    args.remove("--backend")
    args.remove("luks")
    for command in (args, ["plan", "--from-assessment", str(assessment), "--disk", "x"]):
        result = run_cli(*command)
        assert result.returncode == 2
        assert "recommends no backend" in result.stderr and "--backend NAME" in result.stderr
    assert not out.exists()
