"""The layout's settings: one declaration each, and one conversion that round-trips.

Every field of :class:`Settings` must come back unchanged through the command line
(``to_argv`` parsed by the real ``config``, ``install`` and ``plan`` parsers), through
the install's ``write-config`` step (the argv ``advisor config`` is run with) and
through a saved plan.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any

import pytest
from helpers import PLAN_SPEC, detached
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from advisor import settings as settings_options
from advisor.backups import TRUST_CHOICES
from advisor.cli import build_parser
from advisor.errors import UsageError
from advisor.install.executor import read_plan_file, write_plan_file
from advisor.install.plan import build_plan
from advisor.models import Backend, Settings
from advisor_luks import LuksBackend
from advisor_luks_detached import LuksDetachedBackend
from advisor_zfs_native import ZfsNativeBackend

_word = st.from_regex(r"[a-z][a-z0-9]{0,10}", fullmatch=True)
# Paths that exist nowhere: one such as /bin would be resolved to /usr/bin.
_path = st.from_regex(r"/advisor-test-[a-z]{1,8}(/[a-z0-9]{1,8}){0,2}", fullmatch=True)

#: Valid values of every field; a new field without a strategy here fails the test below.
STRATEGIES: dict[str, st.SearchStrategy[object]] = {
    "host_id": st.from_regex(r"[0-9a-f]{7}[1-9a-f]", fullmatch=True),
    "hostname": st.from_regex(r"[A-Za-z0-9]([A-Za-z0-9-]{0,20}[A-Za-z0-9])?", fullmatch=True),
    "user": _word.filter(lambda name: name not in ("root", "nobody", "sshd", "nixbld")),
    "pool": st.from_regex(r"[A-Za-bd-z][A-Za-z0-9_-]{0,20}", fullmatch=True).filter(
        lambda name: name not in ("mirror", "raidz", "spare", "log", "draid")
    ),
    "initrd": st.sampled_from(settings_options.INITRD_CHOICES),
    "trim": st.booleans(),
    "ssd": st.booleans(),
    # One disk: no header, or one.
    "header": st.one_of(
        st.just(()), st.tuples(st.one_of(_path, _word.map(lambda w: f"/dev/disk/by-id/usb-{w}")))
    ),
    "remote_unlock_keys": st.one_of(st.none(), _path),
    "sops": st.booleans(),
    "nixos_release": st.from_regex(r"[0-9]{2}\.(05|11)", fullmatch=True),
    "luks_name": st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,20}", fullmatch=True),
    "layout": st.one_of(st.none(), _path),
    "backup_target": st.one_of(
        st.none(),
        st.builds(lambda user, name: f"{user}@vault.example:tank/{name}", _word, _word),
    ),
    "backup_trust": st.sampled_from((None, *TRUST_CHOICES)),
    "unlock": st.sampled_from(("passphrase", "tpm2", "tpm2+pin", "fido2")),
    "tpm2_pcrs": st.lists(st.integers(0, 23), min_size=1, max_size=4, unique=True).map(
        lambda pcrs: "+".join(map(str, pcrs))
    ),
    "keep_passphrase": st.booleans(),
}
all_settings = st.builds(Settings, **STRATEGIES)
_SLOW = {"deadline": None, "suppress_health_check": [HealthCheck.too_slow]}


def test_every_setting_has_one_flag_and_a_strategy() -> None:
    names = [field.name for field in dataclasses.fields(Settings)]
    assert [option.field for option in settings_options.OPTIONS] == names
    assert len({option.flag for option in settings_options.OPTIONS}) == len(names)
    assert set(STRATEGIES) == set(names)


def _parse(command: str, argv: list[str]) -> argparse.Namespace:
    required = {
        "config": ["--out", "/tmp/out", "--data-device", "/dev/disk/by-id/d", "--esp-device", "e"],
        "install": ["--disk", "d"],
        "plan": ["--disk", "d"],
        "export": ["disko", "--out", "/tmp/out"],
    }
    return build_parser().parse_args([command, *required[command], *argv])


@settings(max_examples=60, **_SLOW)  # type: ignore[arg-type]
@given(chosen=all_settings, command=st.sampled_from(["config", "install", "plan", "export"]))
def test_settings_round_trip_through_the_command_line(chosen: Settings, command: str) -> None:
    args = _parse(command, settings_options.to_argv(chosen))
    assert settings_options.from_arguments(args) == chosen


@settings(max_examples=40, **_SLOW)  # type: ignore[arg-type]
@given(chosen=all_settings)
def test_the_install_hands_its_settings_to_config_unchanged(chosen: Settings) -> None:
    spec = dataclasses.replace(PLAN_SPEC, settings=chosen)
    if chosen.header:
        spec = detached(spec, chosen.header, ["/backup/header.img"])
    backend = LuksDetachedBackend() if chosen.header else LuksBackend()
    plan = build_plan(spec, backend, generate_hardware_config=False)
    argv = plan.step("write-config").argv
    command = argv[argv.index("config") + 1 :]
    assert settings_options.from_arguments(build_parser().parse_args(["config", *command])) == (
        chosen
    )


@settings(max_examples=40, **_SLOW)  # type: ignore[arg-type]
@given(chosen=all_settings)
def test_settings_round_trip_through_a_saved_plan(
    chosen: Settings, tmp_path_factory: pytest.TempPathFactory
) -> None:
    spec = dataclasses.replace(PLAN_SPEC, settings=chosen)
    plan = build_plan(spec, LuksBackend(), generate_hardware_config=False)
    path = tmp_path_factory.mktemp("plan") / "plan.json"
    write_plan_file(path, plan)
    assert read_plan_file(path) == (spec, plan.fingerprint)


@settings(max_examples=40, **_SLOW)  # type: ignore[arg-type]
@given(chosen=all_settings)
def test_valid_settings_pass_their_checks_unchanged(chosen: Settings) -> None:
    # Files that are read: tested below, and in test_layoutfile.py.
    chosen = dataclasses.replace(chosen, remote_unlock_keys=None, layout=None)
    backend: Backend = LuksDetachedBackend() if chosen.header else LuksBackend()
    if chosen.backup_target is not None and chosen.backup_trust != "trusted":
        # Plaintext to an untrusted target is refused (tests/test_backups.py); ZFS
        # native encryption sends raw.
        backend = ZfsNativeBackend() if not chosen.header else backend
        chosen = dataclasses.replace(chosen, backup_trust="trusted") if chosen.header else chosen
    assert settings_options.check_settings(chosen, backend) == chosen


def test_what_is_not_given_comes_from_the_context_then_the_record() -> None:
    args = _parse("install", ["--pool", "tank"])
    chosen = settings_options.from_arguments(args, trim=True, ssd=None)
    assert (chosen.pool, chosen.trim, chosen.ssd, chosen.user) == ("tank", True, False, "nixos")
    assert len(chosen.host_id) == 8  # a new one
    given = _parse("install", ["--no-trim", "--host-id", "8f2a91c4"])
    assert settings_options.from_arguments(given, trim=True).trim is False
    assert settings_options.given(given) == ["--host-id", "--trim"]


def test_a_relative_key_file_is_made_absolute_and_must_hold_keys(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    chosen = settings_options.from_arguments(_parse("plan", ["--remote-unlock-keys", "keys"]))
    assert chosen.remote_unlock_keys == str(tmp_path / "keys")
    with pytest.raises(UsageError, match=r"--remote-unlock-keys .* cannot be read"):
        settings_options.check_settings(chosen, LuksBackend())
    (tmp_path / "keys").write_text("# none\n")
    with pytest.raises(UsageError, match="holds no public key"):
        settings_options.check_settings(chosen, LuksBackend())


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"luks_name": "a/b"}, "--luks-name 'a/b'"),
        ({"luks_name": "-x"}, "--luks-name '-x'"),
        ({"nixos_release": "26.04"}, "--nixos-release '26.04'"),
        ({"initrd": "dracut"}, "--initrd 'dracut'"),
        ({"header": ("/dev/sdb",)}, "--header '/dev/sdb'"),
        ({"header": ("/h.img",)}, "--header is only for the luks-detached backend, not luks"),
    ],
)
def test_a_bad_setting_is_refused_naming_its_flag(change: dict[str, Any], message: str) -> None:
    bad = dataclasses.replace(PLAN_SPEC.settings, **change)
    backends = (LuksBackend(), LuksDetachedBackend())
    with pytest.raises(UsageError, match=f"^{message}"):
        settings_options.check_settings(bad, LuksBackend(), backends)
