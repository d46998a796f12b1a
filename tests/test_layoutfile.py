"""Datasets of the user's own, from a layout file: what it accepts, what it refuses (exit 2,
a message naming the file and the dataset, nothing written), and that the plan, the
configuration's ``fileSystems`` and its rollback all come from the one table."""

from __future__ import annotations

import dataclasses
import io
import textwrap
from pathlib import Path

import nixeval
import pytest
from helpers import PLAN_SPEC, RunCli

from advisor import cli
from advisor import settings as settings_options
from advisor.datasets import DATASETS, PERSISTED_DIRECTORIES, PERSISTED_FILES
from advisor.errors import UsageError
from advisor.install.plan import build_plan, render_script
from advisor.layoutfile import layout_datasets, read_layout
from advisor_luks import LuksBackend

DATA = "/dev/disk/by-partuuid/6a3d2c1b-5e4f-4a8b-9c0d-1e2f3a4b5c6d"
ESP = "/dev/disk/by-partuuid/0b5e1f2c-3d4e-4f5a-8b6c-7d8e9f0a1b2c"

#: Two datasets of the user's own, as docs/configuration.md shows them.
TWO = """\
[datasets."safe/postgres"]
mountpoint = "/var/lib/postgresql"
properties = { recordsize = "16K", "com.sun:auto-snapshot" = "true", copies = 2 }

[datasets."local/cache"]
mountpoint = "/var/cache"
rollback = true
"""


def layout_file(folder: Path, text: str) -> Path:
    path = folder / "layout.toml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def test_two_datasets_come_with_their_properties_after_the_core(tmp_path: Path) -> None:
    path = layout_file(tmp_path, TWO)
    settings = dataclasses.replace(PLAN_SPEC.settings, layout=str(path))
    datasets = layout_datasets(settings)
    assert datasets[:4] == DATASETS
    postgres, cache = datasets[4:]
    assert (postgres.name, postgres.mountpoint, postgres.rolled_back) == (
        "safe/postgres", "/var/lib/postgresql", False,
    )  # fmt: skip
    # mountpoint=legacy first, then the file's, in its order (an integer as its digits).
    assert list(postgres.properties.items()) == [
        ("mountpoint", "legacy"), ("recordsize", "16K"), ("com.sun:auto-snapshot", "true"),
        ("copies", "2"),
    ]  # fmt: skip
    assert (cache.name, cache.rolled_back, dict(cache.properties)) == (
        "local/cache", True, {"mountpoint": "legacy"},
    )  # fmt: skip
    assert not postgres.needed_for_boot and not cache.needed_for_boot
    assert (postgres.step_id("mount"), cache.step_id("snapshot")) == (
        "mount-safe-postgres", "snapshot-local-cache",
    )  # fmt: skip
    # Without a file, the core's table alone.
    assert layout_datasets(PLAN_SPEC.settings) is DATASETS


def test_a_parent_mount_point_comes_before_the_ones_below_it(tmp_path: Path) -> None:
    path = layout_file(
        tmp_path,
        """\
        [datasets."safe/vm/images"]
        mountpoint = "/srv/vm/images"
        [datasets."local/scratch"]
        mountpoint = "/scratch"
        [datasets."safe/vm"]
        mountpoint = "/srv/vm"
        [datasets."safe/home/alice"]
        mountpoint = "/home/alice"
        """,
    )
    assert [d.mountpoint for d in read_layout(str(path))] == [
        "/srv/vm", "/srv/vm/images", "/scratch", "/home/alice",
    ]  # fmt: skip


#: Each kind of layout file that is refused, and what the message says.
REFUSED: list[tuple[str, str, str]] = [
    ("not TOML", "[datasets\n", "is not a TOML file"),
    ("not UTF-8", '[datasets."safe/x"]\nmountpoint = "/\xff"\n', "is not a TOML file"),
    ("unknown top-level key", 'pool = "tank"\n', "unknown key 'pool'"),
    ("no dataset", "[datasets]\n", "holds no dataset"),
    ("datasets not a table", 'datasets = "safe/x"\n', "holds no dataset"),
    ("dataset not a table", '[datasets]\n"safe/x" = "/x"\n', "dataset 'safe/x': give it a table"),
    ("unknown dataset key", '[datasets."safe/x"]\nmountpoint = "/x"\nquota = "1G"\n',
     "dataset 'safe/x': unknown key 'quota'"),
    ("no mountpoint", '[datasets."safe/x"]\nrollback = false\n',
     "dataset 'safe/x': give its mountpoint"),
    ("a core dataset", '[datasets."safe/home"]\nmountpoint = "/x"\n',
     "dataset 'safe/home' is one of the core's datasets"),
    ("not below safe or local", '[datasets."data/x"]\nmountpoint = "/x"\n',
     "dataset 'data/x': the name must be below safe/"),
    ("unquoted name", '[datasets.safe.x]\nmountpoint = "/x"\n',
     "dataset 'safe': the name must be below safe/"),
    ("a branch alone", '[datasets."local"]\nmountpoint = "/x"\n',
     "dataset 'local': the name must be below safe/"),
    ("bad characters", '[datasets."safe/a b"]\nmountpoint = "/x"\n',
     "dataset 'safe/a b': each part of the name"),
    ("a snapshot name", '[datasets."safe/x@blank"]\nmountpoint = "/x"\n',
     "dataset 'safe/x@blank': each part of the name"),
    ("too long", f'[datasets."safe/{"x" * 190}"]\nmountpoint = "/x"\n', "at most 190 characters"),
    ("same step ids", '[datasets."safe/a-b"]\nmountpoint = "/x"\n'
     '[datasets."safe/a/b"]\nmountpoint = "/y"\n',
     "datasets 'safe/a-b' and 'safe/a/b' would give the install plan the same step ids "
     "(dataset-safe-a-b, mount-safe-a-b)"),
    ("relative mountpoint", '[datasets."safe/x"]\nmountpoint = "x"\n',
     "dataset 'safe/x': mountpoint 'x': give an absolute path"),
    ("mountpoint not a string", '[datasets."safe/x"]\nmountpoint = 1\n', "mountpoint 1:"),
    ("mountpoint not normalised", '[datasets."safe/x"]\nmountpoint = "/srv/../x"\n',
     "mountpoint '/srv/../x': give it without '.', '..'"),
    ("mountpoint with a final slash", '[datasets."safe/x"]\nmountpoint = "/srv/"\n',
     "('/srv'?)"),
    ("mountpoint /", '[datasets."local/x"]\nmountpoint = "/"\n',
     "is the core dataset local/root's"),
    ("mountpoint /nix", '[datasets."local/x"]\nmountpoint = "/nix"\n',
     "is the core dataset local/nix's"),
    ("mountpoint /persist", '[datasets."safe/x"]\nmountpoint = "/persist"\n',
     "is the core dataset safe/persist's"),
    ("mountpoint /home", '[datasets."safe/x"]\nmountpoint = "/home"\n',
     "is the core dataset safe/home's"),
    ("mountpoint /boot", '[datasets."safe/x"]\nmountpoint = "/boot"\n', "is in /boot: the ESP"),
    ("mountpoint in /boot", '[datasets."safe/x"]\nmountpoint = "/boot/efi"\n', "is in /boot"),
    ("mountpoint of another ESP", '[datasets."safe/x"]\nmountpoint = "/boot-2/x"\n',
     "is in /boot-N: a pool of several disks mounts their other ESPs there"),
    ("mountpoint in /nix", '[datasets."local/x"]\nmountpoint = "/nix/store"\n', "is in /nix"),
    ("mountpoint in /etc", '[datasets."safe/x"]\nmountpoint = "/etc/nixos"\n', "is in /etc"),
    ("mountpoint in /run", '[datasets."local/x"]\nmountpoint = "/run/x"\n', "is in /run"),
    ("mountpoint hiding a persisted directory", '[datasets."safe/x"]\nmountpoint = "/var"\n',
     "mountpoint '/var' would hide /var/log: impermanence bind-mounts it from /persist before"),
    ("mountpoint hiding /usr/bin/env", '[datasets."safe/x"]\nmountpoint = "/usr"\n',
     "would hide /usr/bin/env"),
    ("same mountpoint twice", '[datasets."safe/x"]\nmountpoint = "/srv"\n'
     '[datasets."local/y"]\nmountpoint = "/srv"\n',
     "datasets 'safe/x' and 'local/y' have the same mountpoint '/srv'"),
    ("properties not a table", '[datasets."safe/x"]\nmountpoint = "/x"\nproperties = "a=b"\n',
     "properties is a table"),
    ("property mountpoint", '[datasets."safe/x"]\nmountpoint = "/x"\n'
     'properties = { mountpoint = "/x" }\n', "property mountpoint cannot be set: the layout"),
    ("property canmount", '[datasets."safe/x"]\nmountpoint = "/x"\n'
     'properties = { canmount = "on" }\n', "property canmount cannot be set"),
    ("property encryption", '[datasets."safe/x"]\nmountpoint = "/x"\n'
     'properties = { encryption = "off" }\n', "property encryption cannot be set: encryption"),
    ("property keyformat", '[datasets."safe/x"]\nmountpoint = "/x"\n'
     'properties = { keyformat = "raw" }\n', "property keyformat cannot be set"),
    ("property keylocation", '[datasets."safe/x"]\nmountpoint = "/x"\n'
     'properties = { keylocation = "prompt" }\n', "property keylocation cannot be set"),
    ("property keysource", '[datasets."safe/x"]\nmountpoint = "/x"\n'
     'properties = { keysource = "raw,prompt" }\n', "property keysource cannot be set"),
    ("property pbkdf2iters", '[datasets."safe/x"]\nmountpoint = "/x"\n'
     'properties = { pbkdf2iters = "350000" }\n', "property pbkdf2iters cannot be set"),
    ("property name not ZFS-shaped", '[datasets."safe/x"]\nmountpoint = "/x"\n'
     'properties = { "Record Size" = "16K" }\n', "expected a ZFS property name"),
    ("property value not ZFS-shaped", '[datasets."safe/x"]\nmountpoint = "/x"\n'
     'properties = { recordsize = "-16K" }\n', "property recordsize=-16K: expected"),
    ("property value a boolean", '[datasets."safe/x"]\nmountpoint = "/x"\n'
     'properties = { atime = false }\n', "property atime = False: give its value as a string"),
    ("rollback not a boolean", '[datasets."local/x"]\nmountpoint = "/x"\nrollback = "yes"\n',
     "dataset 'local/x': rollback is true or false, not 'yes'"),
    ("rollback below safe", '[datasets."safe/x"]\nmountpoint = "/x"\nrollback = true\n',
     "dataset 'safe/x': rollback = true wipes it at every boot: only a dataset below local/"),
]  # fmt: skip


def _write_refused(folder: Path, text: str) -> Path:
    path = folder / "layout.toml"
    path.write_bytes(text.encode("latin-1") if "\xff" in text else text.encode())
    return path


@pytest.mark.parametrize(("text", "message"), [c[1:] for c in REFUSED], ids=[c[0] for c in REFUSED])
def test_a_bad_layout_file_is_refused_naming_the_file_and_the_rule(
    tmp_path: Path, text: str, message: str
) -> None:
    path = _write_refused(tmp_path, text)
    chosen = dataclasses.replace(PLAN_SPEC.settings, layout=str(path))
    with pytest.raises(UsageError) as refused:
        settings_options.check_settings(chosen, LuksBackend())
    assert str(refused.value).startswith(f"--layout {str(path)!r}")
    assert message in str(refused.value)


def test_a_layout_file_that_is_missing_or_relative_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="cannot be read: No such file or directory"):
        read_layout(str(tmp_path / "missing.toml"))
    with pytest.raises(UsageError, match="the path must be absolute"):
        read_layout("layout.toml")
    # As the command line gives it: made absolute when read.
    args = cli.build_parser().parse_args(["plan", "--disk", "d", "--layout", "my.toml"])
    assert settings_options.from_arguments(args).layout == str(Path("my.toml").resolve())


def test_the_mount_points_impermanence_keeps_are_refused(tmp_path: Path) -> None:
    # The rule keeps up with advisor.nixos.generate's list of persisted paths.
    for persisted in (*PERSISTED_DIRECTORIES, *PERSISTED_FILES):
        path = layout_file(tmp_path, f'[datasets."safe/x"]\nmountpoint = "{persisted}"\n')
        with pytest.raises(UsageError, match=r"is in /etc|would hide"):
            read_layout(str(path))


def _config(out: Path, password: Path, *extra: str) -> list[str]:
    return [
        "config", "--backend", "luks", "--out", str(out), "--data-device", DATA,
        "--esp-device", ESP, "--user", "alice", "--password-file", str(password),
        "--host-id", "8f2a91c4", *extra,
    ]  # fmt: skip


@pytest.mark.parametrize(("text", "message"), [c[1:] for c in REFUSED], ids=[c[0] for c in REFUSED])
def test_config_refuses_a_bad_layout_file_and_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, message: str
) -> None:
    path = _write_refused(tmp_path, text)
    (tmp_path / "persist").mkdir()
    (tmp_path / "password").write_text("a password\n")
    stderr = io.StringIO()
    monkeypatch.setattr("sys.stderr", stderr)
    args = _config(tmp_path / "out", tmp_path / "password", "--layout", str(path), "--sops")
    status = cli.main([*args, "--persist-root", str(tmp_path / "persist")])
    assert status == 2
    assert stderr.getvalue().startswith(f"advisor: error: --layout {str(path)!r}")
    assert message in stderr.getvalue() and "Traceback" not in stderr.getvalue()
    assert not (tmp_path / "out").exists()  # no configuration
    assert not any((tmp_path / "persist").iterdir())  # no key


def test_the_real_command_refuses_a_bad_layout_file_cleanly(
    run_cli: RunCli, tmp_path: Path
) -> None:
    path = layout_file(tmp_path, '[datasets."safe/x"]\nmountpoint = "/x"\nrollback = true\n')
    (tmp_path / "password").write_text("a password\n")
    result = run_cli(*_config(tmp_path / "out", tmp_path / "password", "--layout", str(path)))
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.startswith(f"advisor: error: --layout {str(path)!r}: dataset 'safe/x'")
    assert "Traceback" not in result.stderr and not (tmp_path / "out").exists()


def _plan_with(path: Path) -> tuple[list[str], dict[str, tuple[str, ...]]]:
    spec = dataclasses.replace(
        PLAN_SPEC, settings=dataclasses.replace(PLAN_SPEC.settings, layout=str(path))
    )
    plan = build_plan(
        spec,
        LuksBackend(),
        generate_hardware_config=False,
        datasets=layout_datasets(spec.settings),
    )
    return [step.id for step in plan.steps], {step.id: step.argv for step in plan.steps}


def test_the_plan_creates_snapshots_and_mounts_the_files_datasets(tmp_path: Path) -> None:
    ids, argv = _plan_with(layout_file(tmp_path, TWO))
    core = build_plan(PLAN_SPEC, LuksBackend(), generate_hardware_config=False)
    assert "snapshot-blank" in ids  # the root's keeps its id
    created = ids[ids.index("dataset-persist") + 1 : ids.index("root-dir")]
    assert created == ["dataset-safe-postgres", "dataset-local-cache", "snapshot-local-cache"]
    assert argv["dataset-safe-postgres"] == (
        "zfs", "create", "-p", "-o", "mountpoint=legacy", "-o", "recordsize=16K",
        "-o", "com.sun:auto-snapshot=true", "-o", "copies=2", "rpool/safe/postgres",
    )  # fmt: skip
    assert argv["snapshot-local-cache"] == ("zfs", "snapshot", "rpool/local/cache@blank")
    assert ids[-7:-4] == ["mount-persist", "mount-safe-postgres", "mount-local-cache"]
    mount = ("mount", "-t", "zfs", "rpool/local/cache", "/mnt/var/cache")
    assert argv["mount-local-cache"] == mount
    assert argv["mount-points"] == (
        "mkdir", "-p", "/mnt/nix", "/mnt/home", "/mnt/persist", "/mnt/var/lib/postgresql",
        "/mnt/var/cache", "/mnt/boot",
    )  # fmt: skip
    # The core's steps are the same steps, with the same ids; write-config passes the file on.
    config = argv["write-config"]
    at = config.index("--layout")
    assert config[at : at + 2] == ("--layout", str(tmp_path / "layout.toml"))
    same = [step for step in core.steps if step.id not in ("mount-points", "write-config")]
    assert all(step.id in ids and argv[step.id] == step.argv for step in same)
    assert len(ids) == len(set(ids))


def test_a_mount_point_below_another_dataset_is_made_once_that_one_is_mounted(
    tmp_path: Path,
) -> None:
    path = layout_file(
        tmp_path,
        """\
        [datasets."safe/home/alice/vms"]
        mountpoint = "/home/alice/vms"
        [datasets."local/build"]
        mountpoint = "/build"
        [datasets."local/build/cache"]
        mountpoint = "/build/cache"
        """,
    )
    ids, argv = _plan_with(path)
    assert ids[ids.index("mount-persist") + 1 :][:6] == [
        "mkdir-safe-home-alice-vms", "mount-safe-home-alice-vms", "mount-local-build",
        "mkdir-local-build-cache", "mount-local-build-cache", "write-config",
    ]  # fmt: skip
    assert argv["mkdir-safe-home-alice-vms"] == ("mkdir", "-p", "/mnt/home/alice/vms")
    assert "/mnt/build" in argv["mount-points"]
    assert "/mnt/home/alice/vms" not in argv["mount-points"]  # /home would hide it
    # zfs create makes a parent before its child, whatever their mount points.
    assert ids.index("dataset-local-build") < ids.index("dataset-local-build-cache")


def test_the_install_hands_the_layout_file_to_config() -> None:
    spec = dataclasses.replace(
        PLAN_SPEC, settings=dataclasses.replace(PLAN_SPEC.settings, layout="/root/layout.toml")
    )
    plan = build_plan(spec, LuksBackend(), generate_hardware_config=False)
    argv = plan.step("write-config").argv
    assert argv[argv.index("--layout") + 1] == "/root/layout.toml"
    assert "--layout /root/layout.toml" in render_script(plan)


@pytest.mark.parametrize("initrd", ["systemd", "scripted"])
def test_the_configuration_mounts_the_files_datasets_and_rolls_back_its_own(
    run_cli: RunCli, tmp_path: Path, initrd: str
) -> None:
    path = layout_file(tmp_path, TWO)
    (tmp_path / "password").write_text("a password\n")
    out = tmp_path / "out"
    args = _config(out, tmp_path / "password", "--layout", str(path), "--initrd", initrd)
    result = run_cli(*args)
    assert result.returncode == 0, result.stderr
    cfg = nixeval.eval_config(out / "configuration.nix")
    file_systems = cfg["fileSystems"]
    assert list(file_systems) == sorted(
        ["/", "/nix", "/home", "/persist", "/var/lib/postgresql", "/var/cache", "/boot"]
    )
    assert file_systems["/var/lib/postgresql"] == {"device": "rpool/safe/postgres", "fsType": "zfs"}
    assert file_systems["/var/cache"] == {"device": "rpool/local/cache", "fsType": "zfs"}
    expected = "zfs rollback -r rpool/local/root@blank\nzfs rollback -r rpool/local/cache@blank"
    if initrd == "systemd":
        service = cfg["boot"]["initrd"]["systemd"]["services"]["rollback"]
        assert service["script"] == expected
        assert service["before"] == ["sysroot.mount"]
    else:
        hook = cfg["boot"]["initrd"]["postResumeCommands"]
        assert hook == {"_order": 1500, "content": expected + "\n"}
    assert "postgres@blank" not in (out / "configuration.nix").read_text()
