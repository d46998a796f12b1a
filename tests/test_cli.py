"""The real ``advisor`` command in a child process: output, exit status, error messages."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
from helpers import MakePluginDist, Result, RunCli, assess_server

from advisor.models import InstallSpec, Member, Settings

# The answers-file contract: these ids and values must never change.
CONTRACT = {
    "metadata_exposure": ["none", "some", "severe"],
    "adversary": ["thief", "border", "targeted"],
    "offsite_backups": ["none", "trusted", "untrusted"],
    "granularity": ["no", "yes"],
    "integrity": ["no", "yes"],
    "deniability": ["no", "yes"],
    "header_custody": ["no", "yes"],
    "stability": ["conservative", "balanced", "early_adopter"],
    "unlock": ["console", "ssh", "unattended"],
    "ssd_trim": ["no", "yes"],
}


def assert_clean_usage_error(result: Result, *fragments: str) -> None:
    assert result.returncode == 2, result
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("advisor: error: ")
    for fragment in fragments:
        assert fragment in result.stderr
    assert result.stdout == ""


def test_help_lists_the_commands(run_cli: RunCli) -> None:
    result = run_cli("--help")
    assert result.returncode == 0
    for command in ("assess", "questions", "profiles", "plugins"):
        assert command in result.stdout


def test_assess_profile_json(run_cli: RunCli) -> None:
    result = run_cli("assess", "--profile", "journalist", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)  # stdout holds the JSON and nothing else
    assert data["recommendation"] == "luks"
    assert data["ranking"][0] == {**data["ranking"][0], "backend": "luks"}
    # A journalist crossing borders with a FIDO2 key: the plan enrolls it.
    assert data["unlock"]["method"] == "fido2"
    assert data["next_command"].splitlines()[0] == (
        "advisor plan --backend luks --disk DISK-ID --unlock fido2 --save plan.json > plan.sh"
    )
    assert data["answer_sources"]["metadata_exposure"] == "profile:journalist"
    assert data["system"]["memory_bytes"] > 0


def test_assess_human_report(run_cli: RunCli) -> None:
    result = run_cli("assess", "--profile", "homelab")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "Recommended: zfs-native" in out
    for section in ("Ranking", "What your answers weigh", "Why zfs-native", "Tension:"):
        assert section in out
    assert "Mitigations" in out and "generic names" in out
    assert "advisor plan --backend zfs-native --disk DISK-ID" in out
    # The unlock method next to the backend, and why the others are ruled out.
    assert "Unlock: passphrase" in out
    assert "fido2 is ruled out: needs a FIDO2 security key" in " ".join(out.split())


def test_assess_human_report_names_the_unlock_method_and_its_warnings(run_cli: RunCli) -> None:
    # The journalist's method needs no TPM, so the report is the same on any machine.
    out = " ".join(run_cli("assess", "--profile", "journalist").stdout.split())
    assert "Unlock: fido2 a FIDO2 security key" in out
    assert "Why fido2:" in out and "Key kept apart:" in out
    assert "Keep the token apart from the machine" in out
    assert "tpm2 is ruled out:" in out
    assert "--unlock fido2" in out


def test_answers_file_overrides_profile(run_cli: RunCli, tmp_path: Path) -> None:
    answers = tmp_path / "a.toml"
    answers.write_text('offsite_backups = "untrusted"\nmetadata_exposure = "none"\n')
    result = run_cli(
        "assess", "--profile", "conservative-server", "--answers", str(answers), "--json"
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["answers"]["offsite_backups"] == "untrusted"
    assert data["answer_sources"]["offsite_backups"] == f"file:{answers}"
    assert data["answer_sources"]["stability"] == "profile:conservative-server"


@pytest.mark.parametrize("suffix", [".toml", ".json"])
def test_complete_answers_file(run_cli: RunCli, tmp_path: Path, suffix: str) -> None:
    answers = {**{k: v[0] for k, v in CONTRACT.items()}, "offsite_backups": "untrusted"}
    path = tmp_path / f"answers{suffix}"
    if suffix == ".json":
        path.write_text(json.dumps(answers))
    else:
        path.write_text("".join(f'{k} = "{v}"\n' for k, v in answers.items()))
    result = run_cli("assess", "--answers", str(path), "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["answers"] == answers


def test_missing_answers_without_a_terminal_exit_2_and_list_them(
    run_cli: RunCli, tmp_path: Path
) -> None:
    path = tmp_path / "partial.toml"
    path.write_text('metadata_exposure = "some"\nadversary = "thief"\n')
    result = run_cli("assess", "--answers", str(path))
    assert_clean_usage_error(
        result,
        "8 question(s) unanswered and no terminal",
        "offsite_backups: none | trusted | untrusted",
        "stability: conservative | balanced | early_adopter",
    )
    assert "metadata_exposure:" not in result.stderr
    assert_clean_usage_error(run_cli("assess"), "10 question(s) unanswered")


@pytest.mark.parametrize(
    ("name", "content", "fragments"),
    [
        ("unknown.toml", 'metadata_exposur = "some"\n', ["unknown question id", "did you mean"]),
        ("value.toml", 'adversary = "alien"\n', ['adversary = "alien"', "thief, border, targeted"]),
        ("bool.toml", "granularity = true\n", ["granularity = true", "no, yes"]),
        ("broken.toml", 'metadata_exposure = "some\n', ["is malformed", "invalid TOML"]),
        ("broken.json", '{"adversary": ', ["is malformed", "invalid JSON"]),
        ("list.json", '["thief"]', ["must hold a table", "not list"]),
        ("binary.toml", b"\xff\xfe\x00", ["cannot read answers file"]),
    ],
)
def test_bad_answers_files_exit_2_with_a_clear_message(
    run_cli: RunCli, tmp_path: Path, name: str, content: str | bytes, fragments: list[str]
) -> None:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    assert_clean_usage_error(run_cli("assess", "--answers", str(path)), *fragments)


def test_missing_answers_file_and_unknown_profile(run_cli: RunCli, tmp_path: Path) -> None:
    assert_clean_usage_error(
        run_cli("assess", "--answers", str(tmp_path / "nope.toml")), "does not exist"
    )
    assert_clean_usage_error(
        run_cli("assess", "--profile", "spy"), "unknown profile 'spy'", "journalist"
    )


def test_bad_arguments_exit_2(run_cli: RunCli) -> None:
    result = run_cli("assess", "--frobnicate")
    assert result.returncode == 2
    assert "unrecognized arguments: --frobnicate" in result.stderr
    assert "Traceback" not in result.stderr
    assert run_cli().returncode == 2


def test_save_writes_the_assessment_atomically(run_cli: RunCli, tmp_path: Path) -> None:
    target = tmp_path / "assessment.json"
    result = run_cli("assess", "--profile", "activist", "--json", "--save", str(target))
    assert result.returncode == 0, result.stderr
    saved = json.loads(target.read_text())
    assert saved == json.loads(result.stdout)
    assert saved["next_command"].splitlines()[0] == (
        f"advisor plan --from-assessment {target} --disk DISK-ID --header HEADER "
        "--header-backup BACKUP-FILE --save plan.json > plan.sh"
    )
    assert [p.name for p in tmp_path.iterdir()] == ["assessment.json"]  # no temp file left


def test_save_refuses_an_unusable_path_before_doing_anything(
    run_cli: RunCli, tmp_path: Path
) -> None:
    assert_clean_usage_error(
        run_cli("assess", "--profile", "activist", "--save", str(tmp_path / "no/such/a.json")),
        "does not exist",
    )
    assert_clean_usage_error(
        run_cli("assess", "--profile", "activist", "--save", str(tmp_path)), "is a directory"
    )
    # a bad answers file with --save leaves an existing assessment untouched
    existing = tmp_path / "keep.json"
    existing.write_text("{}")
    bad = tmp_path / "bad.toml"
    bad.write_text('adversary = "alien"\n')
    result = run_cli("assess", "--answers", str(bad), "--save", str(existing))
    assert_clean_usage_error(result, "alien")
    assert existing.read_text() == "{}"


def test_questions_json_is_the_answers_contract(run_cli: RunCli) -> None:
    result = run_cli("questions", "--json")
    assert result.returncode == 0
    questions = {q["id"]: q for q in json.loads(result.stdout)}
    for qid, values in CONTRACT.items():
        assert [c["value"] for c in questions[qid]["choices"]] == values
        assert questions[qid]["plugin"] == "core"
        assert questions[qid]["text"] and questions[qid]["help"]
    assert "metadata_exposure" in run_cli("questions").stdout


def test_profiles_lists_the_examples(run_cli: RunCli) -> None:
    data = json.loads(run_cli("profiles", "--json").stdout)
    assert {p["name"] for p in data} == {
        "journalist",
        "homelab",
        "consultant",
        "activist",
        "conservative-server",
    }
    assert "activist" in run_cli("profiles").stdout


def test_plugins_json_shows_the_builtins_active(run_cli: RunCli) -> None:
    result = run_cli("plugins", "--json", "--check")
    assert result.returncode == 0, result.stdout
    records = {r["name"]: r for r in json.loads(result.stdout)}
    for name in ("luks", "zfs-native", "luks-detached"):
        assert records[name]["status"] == "active"
        assert records[name]["backends"] == [name]
        assert records[name]["distribution"] == "nixos-crypt-advisor"
        assert records[name]["hooks"] == ["advisor_backends"]
    assert records["unlock"]["unlock_methods"] == ["passphrase", "tpm2", "tpm2+pin", "fido2"]
    table = run_cli("plugins").stdout
    assert "luks-detached" in table
    for method in ("passphrase", "tpm2", "tpm2+pin", "fido2"):
        assert f"unlock {method}" in table


def test_a_broken_plugin_is_listed_while_assess_still_works(
    run_cli: RunCli, make_plugin_dist: MakePluginDist
) -> None:
    broken = make_plugin_dist("import package_that_does_not_exist\n", name="broken")
    plugins = run_cli("plugins", "--json", "--check", extra_path=[broken.path])
    assert plugins.returncode == 1
    record = next(r for r in json.loads(plugins.stdout) if r["name"] == "broken")
    assert record["status"] == "broken"
    assert "package_that_does_not_exist" in record["reason"]
    assert record["distribution"] == "advisor-example"

    assess = run_cli("assess", "--profile", "journalist", "--json", extra_path=[broken.path])
    assert assess.returncode == 0
    assert json.loads(assess.stdout)["recommendation"] == "luks"
    assert "plugin 'broken' is broken and was skipped" in assess.stderr

    strict = run_cli(
        "assess",
        "--profile",
        "journalist",
        extra_path=[broken.path],
        env={"ADVISOR_STRICT_PLUGINS": "1"},
    )
    assert strict.returncode == 1
    assert "advisor: error: plugin 'broken'" in strict.stderr
    assert "Traceback" not in strict.stderr


def test_disabled_plugin(run_cli: RunCli) -> None:
    env = {"ADVISOR_DISABLE_PLUGINS": "zfs-native"}
    records = json.loads(run_cli("plugins", "--json", env=env).stdout)
    assert next(r for r in records if r["name"] == "zfs-native")["status"] == "disabled"
    data = json.loads(run_cli("assess", "--profile", "homelab", "--json", env=env).stdout)
    assert "zfs-native" not in [r["backend"] for r in data["ranking"]]
    assert data["recommendation"] == "luks"


def test_installed_third_party_plugin_takes_part(run_cli: RunCli, tmp_path: Path) -> None:
    """tests/plugins/advisor-tpm2-example, installed by tox through its real entry point."""
    try:
        metadata.distribution("advisor-tpm2-example")
    except metadata.PackageNotFoundError:
        pytest.fail(
            "install the example plugin first: "
            "pip install --no-deps tests/plugins/advisor-tpm2-example (tox does this)"
        )
    records = {r["name"]: r for r in json.loads(run_cli("plugins", "--json").stdout)}
    assert records["tpm2"]["status"] == "active"
    assert records["tpm2"]["backends"] == ["luks-tpm2"]
    questions = {q["id"]: q for q in json.loads(run_cli("questions", "--json").stdout)}
    assert questions["tpm2"]["plugin"] == "tpm2"

    # Optional plugin questions do not break existing answers files...
    plain = json.loads(run_cli("assess", "--profile", "conservative-server", "--json").stdout)
    assert plain["recommendation"] == "luks"
    # ...and the plugin's backend wins when the answers favour it.
    data = assess_server(run_cli, tmp_path / "tpm.toml", 'tpm2 = "yes"\nunlock = "unattended"\n')
    assert data["recommendation"] == "luks-tpm2"
    assert data["axes"]["measured_boot"] == 4
    assert "measured_boot" in [reason["axis"] for reason in data["reasons"][:3]]


def test_closed_stdout_is_not_a_traceback() -> None:
    reader = subprocess.Popen(
        [sys.executable, "-m", "advisor", "questions", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={k: v for k, v in os.environ.items() if not k.startswith("ADVISOR_")},
    )
    assert reader.stdout is not None and reader.stderr is not None
    reader.stdout.read(10)
    reader.stdout.close()
    stderr = reader.stderr.read().decode()
    reader.wait(timeout=30)
    assert "Traceback" not in stderr


def test_output_to_a_full_disk_is_a_message_not_a_traceback(tmp_path: Path) -> None:
    with Path("/dev/full").open("w") as full:
        result = subprocess.run(
            [sys.executable, "-m", "advisor", "assess", "--profile", "journalist", "--json"],
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            check=False,
            timeout=60,
        )
    assert result.returncode == 1
    assert result.stderr == "advisor: error: No space left on device\n"


def test_install_needs_root(monkeypatch: pytest.MonkeyPatch) -> None:
    from advisor.errors import UsageError
    from advisor.install import session as install

    monkeypatch.setattr(os, "geteuid", lambda: 1000)  # as an ordinary user
    with pytest.raises(UsageError, match="must run as root"):
        install.check_privileges(allow_bios=True)


def test_install_refuses_the_disk_of_the_running_system(run_cli: RunCli) -> None:
    # The disk holding this machine's / is never a target, not even for a dry run.
    disks = json.loads(run_cli("disks", "--json").stdout)["disks"]
    running = next(d for d in disks if "holds the running system" in d["problems"])
    result = run_cli("plan", "--backend", "luks", "--disk", running["name"])
    assert result.returncode == 2
    assert "refusing to use" in result.stderr and "holds the running system" in result.stderr


def test_install_refuses_bios_firmware_unless_allowed(run_cli: RunCli) -> None:
    result = run_cli("install", "--backend", "luks", "--disk", "vda")
    assert result.returncode == 2
    if Path("/sys/firmware/efi").is_dir():  # an EFI machine goes on to the disk checks
        assert "refusing to use" in result.stderr
    else:
        assert "EFI" in result.stderr and "--allow-bios" in result.stderr
        allowed = run_cli("install", "--backend", "luks", "--disk", "vda", "--allow-bios")
        assert allowed.returncode == 2 and "refusing to use" in allowed.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["install", "--save", "p.json"], "--save is for 'advisor plan'"),
        (["plan", "--plan", "p.json", "--backend", "luks", "--hostname", "h"],
         "--backend, --hostname: --plan 'p.json' fixes these already"),
        (["install", "--resume", "--state-dir", "s", "--insecure-fast-kdf"],
         "--insecure-fast-kdf: --resume fixes these already"),
        (["plan", "--resume", "--state-dir", "s", "--plan", "p.json"], "takes no --plan"),
        (["plan", "--resume"], "--resume needs the --state-dir"),
        (["plan", "--plan", "missing.json"], "missing.json does not exist"),
    ],
)  # fmt: skip
def test_install_option_mistakes_are_named(
    run_cli: RunCli, tmp_path: Path, args: list[str], message: str
) -> None:
    result = run_cli(*args, cwd=tmp_path)
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr


def _luks_spec(disk_id: str) -> InstallSpec:
    return InstallSpec(
        backend="luks",
        settings=Settings(host_id="8f2a91c4", hostname="h", user="u"),
        members=(
            Member(
                1,
                disk=f"/dev/disk/by-id/{disk_id}",
                disk_id=disk_id,
                disk_serial="S1",
                disk_size=1 << 33,
                esp_partuuid="0b1c7a4e-3d2f-4e5a-9b6c-7d8e9f0a1b2c",
                data_partuuid="1c2d8b5f-4e3a-4f6b-8c7d-8e9f0a1b2c3d",
            ),
        ),
    )


def test_a_saved_plan_that_would_come_out_differently_is_refused(
    run_cli: RunCli, tmp_path: Path
) -> None:
    from advisor.install.executor import write_plan_file
    from advisor.install.session import make_plan
    from advisor.pluginmanager import load_plugins

    plan = make_plan(_luks_spec("ata-GONE_S1"), load_plugins())
    edited = dataclasses.replace(plan, steps=plan.steps[:-1])  # as if a step were removed
    write_plan_file(tmp_path / "plan.json", edited)
    result = run_cli("plan", "--plan", str(tmp_path / "plan.json"))
    assert result.returncode == 2
    assert "would come out differently now" in result.stderr


def test_a_saved_plan_for_a_disk_that_is_not_here_is_refused(
    run_cli: RunCli, tmp_path: Path
) -> None:
    from advisor.install.executor import write_plan_file
    from advisor.install.session import make_plan
    from advisor.pluginmanager import load_plugins

    write_plan_file(tmp_path / "plan.json", make_plan(_luks_spec("ata-GONE_S1"), load_plugins()))
    result = run_cli("plan", "--plan", str(tmp_path / "plan.json"))
    assert result.returncode == 2
    assert "ata-GONE_S1" in result.stderr and "Traceback" not in result.stderr


def test_the_plan_script_names_what_runs_exactly_it() -> None:
    from argparse import Namespace

    from advisor.cli import _runs_as

    state = Path("/var/lib/advisor/install-x")
    fresh = Namespace(save=None, plan=None, resume=False)
    assert _runs_as(fresh, state) is None  # GUIDs and host id chosen anew
    assert _runs_as(Namespace(save=Path("my plan.json"), plan=None, resume=False), state) == (
        "--plan 'my plan.json'"
    )
    assert _runs_as(Namespace(save=None, plan=Path("p.json"), resume=False), state) == (
        "--plan p.json"
    )
    assert _runs_as(Namespace(save=None, plan=None, resume=True), state) == (
        "--resume --state-dir /var/lib/advisor/install-x"
    )


def test_help_and_assess_do_not_import_the_layout_settings() -> None:
    # The settings' flags are for config, plan and install: the others start without them
    # (benchmarks/startup.py measures what that saves).
    code = (
        "import sys; from advisor import cli; cli.build_parser({!r}); "
        "print('advisor.settings' in sys.modules)"
    )
    for command, imported in (("", "False"), ("assess", "False"), ("plan", "True")):
        result = subprocess.run(
            [sys.executable, "-c", code.format(command)],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        assert result.stdout.strip() == imported, command
