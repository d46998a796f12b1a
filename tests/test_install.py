"""advisor install's decisions: which disk, which paths and which resumes it refuses.

Nothing here touches a disk: discovery, the exclusive open, the firmware probe and the
command runner are replaced by fakes (:class:`Machine`), and ``cli.main`` runs in this
process against them.
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import json
import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from helpers import MakePluginDist, PluginDist, usable_disk
from test_layoutfile import REFUSED as REFUSED_LAYOUTS

from advisor import cli, runner
from advisor import settings as settings_options
from advisor.errors import UsageError
from advisor.install import disks as disk_probe
from advisor.install import session as install
from advisor.install.executor import JOURNAL_FILE, save_spec, write_plan_file
from advisor.install.plan import Plan
from advisor.models import InstallSpec, Member, Settings
from advisor.pluginmanager import load_plugins

DISK = usable_disk(
    name="sdz",
    path="/dev/sdz",
    by_id=("/dev/disk/by-id/ata-FAKE_S1",),
    serial="S1",
    model="Fake",
    size_bytes=64 * disk_probe.GIB,
    transport="sata",
)
MOUNTED = dataclasses.replace(DISK, mountpoints=("/home",), problems=("mounted at /home",))


class Machine:
    """The fake machine: ``disks`` is what discovery finds, ``busy`` the device paths an
    exclusive open fails on, ``mounts`` the mount points, ``root`` an empty directory
    for ``--root``, ``ran`` every command the install would have run."""

    def __init__(self, root: Path) -> None:
        self.disks: list[disk_probe.Disk] = [DISK]
        self.busy: set[str] = set()
        self.mounts: list[str] = ["/", "/proc", "/nix/store"]
        self.root = root
        self.ran: list[tuple[str, ...]] = []
        self.failing: set[str] = set()  # programs that exit 1
        self.pools: list[str] = []  # imported
        self.devices: set[str] = set()  # device nodes there are (/dev/mapper/...)

    def discover(self, context: object = None) -> list[disk_probe.Disk]:
        return list(self.disks)

    def exclusive_open_error(self, path: str) -> int | None:
        return 16 if path in self.busy else None  # EBUSY

    def run(self, argv: Sequence[str], **kwargs: object) -> runner.Result:
        self.ran.append(tuple(argv))
        return runner.Result(tuple(argv), int(argv[0] in self.failing), "", "")

    def imported_pools(self, proc: Path = Path("/proc")) -> frozenset[str]:
        return frozenset(self.pools)


@pytest.fixture
def machine(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Machine:
    fake = Machine(tmp_path / "target")
    fake.root.mkdir()
    monkeypatch.setattr(install, "_mount_points", lambda: list(fake.mounts))
    monkeypatch.setattr(disk_probe, "discover_disks", fake.discover)
    monkeypatch.setattr(disk_probe, "exclusive_open_error", fake.exclusive_open_error)
    monkeypatch.setattr(disk_probe, "firmware", lambda root=Path("/"): "efi")
    monkeypatch.setattr(disk_probe, "imported_pools", fake.imported_pools)
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setattr(runner, "run", fake.run)
    lexists = os.path.lexists
    monkeypatch.setattr(os.path, "lexists", lambda path: path in fake.devices or lexists(path))
    return fake


@pytest.fixture
def secret_file(tmp_path: Path) -> Path:
    path = tmp_path / "secret"
    path.write_text("correct horse battery\n")
    return path


def run_cli(*argv: str, monkeypatch: pytest.MonkeyPatch) -> tuple[int, str]:
    """``cli.main(argv)`` off a terminal: its exit status and what it wrote to stderr."""
    stderr = io.StringIO()
    monkeypatch.setattr("sys.stderr", stderr)
    monkeypatch.setattr("sys.stdin", io.StringIO())
    return cli.main(list(argv)), stderr.getvalue()


def luks_plan(target: Path, disk: disk_probe.Disk = DISK, **changes: Any) -> Plan:
    spec = InstallSpec(
        backend="luks",
        settings=Settings(host_id="8f2a91c4", hostname="h", user="u"),
        members=(
            Member(
                1,
                disk=disk.stable_path,
                disk_id=disk.disk_id,
                disk_serial=disk.serial,
                disk_size=disk.size_bytes,
                esp_partuuid="0b1c7a4e-3d2f-4e5a-9b6c-7d8e9f0a1b2c",
                data_partuuid="1c2d8b5f-4e3a-4f6b-8c7d-8e9f0a1b2c3d",
            ),
        ),
        root=str(target),
    )
    # A change may name a setting (``pool``), a field of the disk's (``esp_partuuid``)
    # or of the spec's own (``root``); a header is the one disk's, as an install sets it.
    header = changes.pop("header", None)
    names = {f.name for f in dataclasses.fields(Settings)}
    disk_names = {f.name for f in dataclasses.fields(Member)}
    chosen = dataclasses.replace(spec.settings, **{k: v for k, v in changes.items() if k in names})
    member = dataclasses.replace(
        spec.members[0], **{k: v for k, v in changes.items() if k in disk_names}
    )
    if header is not None:
        chosen = dataclasses.replace(chosen, header=(header,))
        member = dataclasses.replace(member, header=header)
    others = {k: v for k, v in changes.items() if k not in names | disk_names}
    spec = dataclasses.replace(spec, settings=chosen, members=(member,), **others)
    return install.make_plan(spec, load_plugins())


def started_install(state_dir: Path, plan: Plan, *events: dict[str, str]) -> None:
    """The state an install of ``plan`` leaves behind after ``events``."""
    save_spec(state_dir, plan)
    lines = [{"event": "plan", "fingerprint": plan.fingerprint}, *events]
    (state_dir / JOURNAL_FILE).write_text("".join(json.dumps(e) + "\n" for e in lines))


# --- Resuming -------------------------------------------------------------------------------


def test_a_resume_before_any_destruction_checks_the_disk_as_a_fresh_install(
    machine: Machine, tmp_path: Path
) -> None:
    plan = luks_plan(machine.root)
    # The first try stopped at the identity check: nothing was destroyed.
    started_install(tmp_path, plan, {"event": "started", "step": "wipe-disk"})
    machine.disks = [MOUNTED]
    with pytest.raises(UsageError, match=r"refusing to use ata-FAKE_S1.*mounted at /home"):
        install.resume_target(tmp_path, plan, load_plugins())
    machine.disks = [DISK]
    machine.busy = {DISK.path}
    with pytest.raises(UsageError, match="in use by another program"):
        install.resume_target(tmp_path, plan, load_plugins())
    machine.busy = set()
    machine.disks = [dataclasses.replace(DISK, size_bytes=DISK.size_bytes * 2)]
    with pytest.raises(UsageError, match=r"not the disk the install in .* was started for"):
        install.resume_target(tmp_path, plan, load_plugins())
    machine.disks = [DISK]
    assert install.resume_target(tmp_path, plan, load_plugins()) == [DISK]


@pytest.mark.parametrize("event", ["done", "probed"])
def test_after_a_destructive_step_the_disk_is_the_installs_own(
    machine: Machine, tmp_path: Path, event: str
) -> None:
    plan = luks_plan(machine.root)
    started_install(
        tmp_path,
        plan,
        {"event": "started", "step": "wipe-disk"},
        {"event": event, "step": "wipe-disk"},
    )
    machine.disks = [MOUNTED]  # its pool mounted under --root, say
    machine.mounts.append(str(machine.root))
    assert install.destruction_started(tmp_path, plan)
    assert install.resume_target(tmp_path, plan, load_plugins()) is None


def test_a_resume_before_any_destruction_needs_the_confirmation_again(
    machine: Machine, tmp_path: Path, secret_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plan = luks_plan(machine.root)
    started_install(tmp_path, plan)
    resume = ["install", "--resume", "--state-dir", str(tmp_path)]
    secrets = ["--passphrase-file", str(secret_file), "--password-file", str(secret_file)]
    status, stderr = run_cli(*resume, *secrets, monkeypatch=monkeypatch)
    assert status == 2
    assert "refusing to erase ata-FAKE_S1 without confirmation" in stderr
    status, stderr = run_cli(*resume, *secrets, "--yes-wipe", "other", monkeypatch=monkeypatch)
    assert status == 2 and "does not name a target disk" in stderr
    machine.disks = [MOUNTED]
    status, stderr = run_cli(*resume, *secrets, "--yes-wipe", DISK.disk_id, monkeypatch=monkeypatch)
    assert status == 2 and "mounted at /home" in stderr
    assert machine.ran == []  # nothing was run


def test_a_confirmed_resume_before_any_destruction_checks_the_disk_in_full_again(
    machine: Machine, tmp_path: Path, secret_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plan = luks_plan(machine.root)
    started_install(tmp_path, plan)
    # Usable when asked, mounted by the time the first destructive step is due.
    discoveries = iter([[DISK], [MOUNTED]])
    monkeypatch.setattr(disk_probe, "discover_disks", lambda context=None: next(discoveries))
    status, stderr = run_cli(
        "install", "--resume", "--state-dir", str(tmp_path), "--yes-wipe", DISK.disk_id,
        "--passphrase-file", str(secret_file), "--password-file", str(secret_file),
        monkeypatch=monkeypatch,
    )  # fmt: skip
    assert status == 1
    assert "in use now (mounted at /home); nothing was changed" in stderr
    assert not [argv for argv in machine.ran if argv[0] in ("wipefs", "sgdisk")]


# --- Detached headers -----------------------------------------------------------------------

STICK = dataclasses.replace(
    DISK,
    name="sdy",
    path="/dev/sdy",
    by_id=("/dev/disk/by-id/usb-STICK",),
    serial="STICK",
    size_bytes=64 * 1024**2,  # too small for NixOS, big enough for a header
    problems=("too small for NixOS (64.0 MiB; at least 8.0 GiB is needed)",),
    partitions=(
        disk_probe.Partition(
            "sdy1", "/dev/sdy1", 1, 32 * 1024**2, None, "vfat", None, (), False, ()
        ),
    ),
)


def detached(header: str, backup: str, root: Path) -> install.InstallRequest:
    return install.InstallRequest(
        backend="luks-detached",
        settings=Settings(host_id="8f2a91c4", header=(header,)),
        header_backup=(backup,),
        root=str(root),
    )


@pytest.fixture
def links(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Device links the test resolves (to paths that need not exist)."""
    table: dict[str, str] = {}
    real = os.path.realpath
    monkeypatch.setattr(os.path, "realpath", lambda path, **kw: table.get(path) or real(path, **kw))
    return table


def test_a_header_device_that_nothing_uses_is_accepted(machine: Machine, tmp_path: Path) -> None:
    machine.disks = [DISK, STICK]
    backup = str(tmp_path / "header.backup")
    spec = install.new_spec(
        detached("/dev/disk/by-id/usb-STICK", backup, machine.root), load_plugins(), [DISK]
    )
    assert spec.settings.header == ("/dev/disk/by-id/usb-STICK",)
    assert spec.members[0].header == "/dev/disk/by-id/usb-STICK"


@pytest.mark.parametrize(
    ("stick", "busy", "header", "message"),
    [
        pytest.param(
            dataclasses.replace(STICK, problems=("mounted at /media/stick",)),
            False, "/dev/disk/by-id/usb-STICK", "mounted at /media/stick", id="disk-mounted",
        ),
        pytest.param(
            dataclasses.replace(STICK, problems=("holds active swap",)),
            False, "/dev/disk/by-id/usb-STICK-part1", "holds active swap", id="partition's-disk",
        ),
        pytest.param(
            dataclasses.replace(STICK, problems=("holds the running system",)),
            False, "/dev/disk/by-id/usb-STICK", "holds the running system", id="running",
        ),
        pytest.param(
            STICK, True, "/dev/disk/by-id/usb-STICK-part1", "in use by another program", id="busy",
        ),
        pytest.param(
            STICK, False, "/dev/disk/by-id/ata-FAKE_S1-part3", "not be on a disk being encrypted",
            id="on-the-target",
        ),
        pytest.param(
            STICK, False, "/dev/disk/by-id/dm-name-x", "not a disk, or a partition of a disk",
            id="not-a-disk",
        ),
    ],
)  # fmt: skip
def test_a_header_device_in_use_is_refused(
    machine: Machine,
    links: dict[str, str],
    tmp_path: Path,
    stick: disk_probe.Disk,
    busy: bool,
    header: str,
    message: str,
) -> None:
    links.update(
        {
            "/dev/disk/by-id/usb-STICK-part1": "/dev/sdy1",
            "/dev/disk/by-id/ata-FAKE_S1-part3": "/dev/sdz3",
        }
    )
    target = dataclasses.replace(
        DISK,
        partitions=(dataclasses.replace(STICK.partitions[0], name="sdz3", path="/dev/sdz3"),),
    )
    machine.disks = [target, stick]
    machine.busy = {stick.path} if busy else set()
    with pytest.raises(UsageError, match=message):
        install.new_spec(
            detached(header, str(tmp_path / "b"), machine.root), load_plugins(), [target]
        )


def test_header_files_must_be_new_and_apart_from_their_backup(
    machine: Machine, tmp_path: Path
) -> None:
    plugins = load_plugins()
    header, backup = tmp_path / "header.img", Path("/proc/advisor-header.backup")
    assert header.parent.stat().st_dev != backup.parent.stat().st_dev
    spec = install.new_spec(detached(str(header), str(backup), machine.root), plugins, [DISK])
    assert (spec.members[0].header, spec.members[0].header_backup) == (str(header), str(backup))
    refusals = {
        # luksFormat would overwrite an existing header file...
        "already exists (cryptsetup luksFormat would overwrite it)": (str(tmp_path), str(backup)),
        # ... and luksHeaderBackup would fail, after the disk is wiped.
        "already exists (cryptsetup luksHeaderBackup": (str(header), "/proc/cpuinfo"),
        "is the header itself": (str(header), str(header)),
        "must be on another medium": (str(header), str(tmp_path / "header.backup")),
        "does not exist": (str(tmp_path / "no" / "header.img"), str(backup)),
    }
    for message, (given_header, given_backup) in refusals.items():
        with pytest.raises(UsageError, match=re.escape(message)):
            install.new_spec(detached(given_header, given_backup, machine.root), plugins, [DISK])


def test_the_confirmation_names_a_header_device() -> None:
    asked: list[str] = []

    def ask(prompt: str) -> str:
        asked.append(prompt)
        return DISK.disk_id

    header = "/dev/disk/by-id/usb-STICK"
    install.confirm([DISK], [], ask, headers=[header])
    assert asked == [
        f"Everything on {DISK.disk_id} will be erased, and the header device {header} will be "
        "overwritten. Type its id to go on: "
    ]
    for yes_wipe in ([], ["wrong"]):
        with pytest.raises(UsageError, match=f"the header device {header} will be overwritten"):
            install.confirm([DISK], yes_wipe, None, headers=[header])
    install.confirm([DISK], [], ask, headers=["/root/header.img"])  # a file is not named
    assert "header" not in asked[-1]


# --- Where the new system is mounted --------------------------------------------------------


@pytest.mark.parametrize(
    ("root", "message"),
    [
        ("//", "a directory of the running system"),
        ("/nix", "a directory of the running system"),
        ("/nix/store/abc", "a directory of the running system"),
        ("/mnt/..", "without '..'"),
        ("/mnt/a b", "letters, digits"),
        ("/mnt\n", "letters, digits"),
        ("mnt", "an absolute path"),
    ],
)
def test_a_root_of_the_running_system_or_of_odd_characters_is_refused(
    machine: Machine, root: str, message: str
) -> None:
    request = install.InstallRequest(
        backend="luks", settings=Settings(host_id="8f2a91c4"), root=root
    )
    with pytest.raises(UsageError, match=re.escape(message)):
        install.new_spec(request, load_plugins(), [DISK])


def test_a_root_with_something_mounted_on_or_below_it_is_refused(
    machine: Machine, tmp_path: Path
) -> None:
    plugins = load_plugins()
    request = install.InstallRequest(
        backend="luks", settings=Settings(host_id="8f2a91c4"), root=f"{machine.root}//"
    )
    assert install.new_spec(request, plugins, [DISK]).root == str(machine.root)  # normalised
    for mounted in (machine.root, machine.root / "boot"):
        machine.mounts = ["/", str(mounted)]
        with pytest.raises(UsageError, match=f"{mounted} is mounted now"):
            install.new_spec(request, plugins, [DISK])
    machine.mounts = ["/"]
    (tmp_path / "system").symlink_to("/etc")
    (tmp_path / "file").touch()
    for root, message in (
        (tmp_path / "system", "leads to '/etc'"),
        (tmp_path / "file", "not a dir"),
    ):
        request = dataclasses.replace(request, root=str(root))
        with pytest.raises(UsageError, match=message):
            install.new_spec(request, plugins, [DISK])
    # One that is not there yet is made by the plan.
    request = dataclasses.replace(request, root=str(tmp_path / "new" / "root"))
    assert install.new_spec(request, plugins, [DISK]).root == str(tmp_path / "new" / "root")


# --- Saved plans and state directories are checked as new specs are -------------------------


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"hostname": "box\nevil"}, "--hostname"),
        ({"user": "root"}, "--user 'root' is a system account"),
        ({"pool": "mirror"}, "--pool 'mirror' is reserved"),
        ({"host_id": "00000000"}, "--host-id 00000000"),
        ({"root": "/"}, "--root '/'"),
        ({"esp_partuuid": "1:EF00"}, "the ESP's partition GUID '1:EF00' is not a GUID"),
        ({"dataset_options": {"compression": "-f"}}, "--fs-option compression=-f"),
        ({"pool_options": {"-f": "x"}}, "--pool-option -f=x"),
        ({"backend": "luks-detached", "header": "/etc/../x", "header_backup": "/b"}, "--header"),
        ({"header": "/root/h.img"}, "--header is only for the luks-detached backend"),
    ],
)
def test_an_edited_saved_plan_or_state_is_checked_as_a_new_spec(
    machine: Machine, tmp_path: Path, change: dict[str, Any], message: str
) -> None:
    # Made with a fingerprint that matches, as a careful editor of the file would.
    edited = luks_plan(machine.root, **change)
    write_plan_file(tmp_path / "plan.json", edited)
    with pytest.raises(UsageError, match=f"plan.json holds a value .*{re.escape(message)}"):
        install.saved_plan(tmp_path / "plan.json", load_plugins())
    save_spec(tmp_path / "state", edited)
    with pytest.raises(UsageError, match=f"spec.json holds a value .*{re.escape(message)}"):
        install.resume_spec(tmp_path / "state", load_plugins())


# --- Inputs that were found bad only after the disk was wiped ------------------------------


def plan_args(machine: Machine, *extra: str) -> list[str]:
    return ["--backend", "luks", "--disk", DISK.disk_id, "--root", str(machine.root), *extra]


def test_remote_unlock_keys_are_read_before_anything_and_kept_absolute(
    machine: Machine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    Path("keys").write_text("not a key\n")
    status, stderr = run_cli(
        "plan", *plan_args(machine, "--remote-unlock-keys", "keys"), monkeypatch=monkeypatch
    )
    assert status == 2 and "is not an OpenSSH public key line" in stderr
    Path("keys").write_text("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHx0 me@host\n")
    # As the command line gives it: relative, made absolute when read.
    chosen = settings_options.from_arguments(argparse.Namespace(remote_unlock_keys="keys"))
    request = install.InstallRequest(backend="luks", settings=chosen, root=str(machine.root))
    spec = install.new_spec(request, load_plugins(), [DISK])
    assert spec.settings.remote_unlock_keys == str(tmp_path / "keys")
    relative = dataclasses.replace(
        spec, settings=dataclasses.replace(spec.settings, remote_unlock_keys="keys")
    )
    with pytest.raises(UsageError, match="the path must be absolute"):
        install.validate_spec(relative, load_plugins())


@pytest.mark.parametrize("command", ["plan", "install"])
def test_a_stop_after_that_names_no_step_is_refused_before_anything(
    machine: Machine, monkeypatch: pytest.MonkeyPatch, command: str
) -> None:
    status, stderr = run_cli(
        command, *plan_args(machine, "--stop-after", "nope"), monkeypatch=monkeypatch
    )
    assert status == 2
    assert "--stop-after 'nope': no such step" in stderr
    assert "confirmation" not in stderr


def test_the_state_dir_is_checked_and_made_before_the_confirmation(
    machine: Machine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "afile").touch()
    refusals = {
        str(tmp_path / "afile"): "is not a directory",
        str(tmp_path / "afile" / "sub"): "cannot be created: Not a directory",
    }
    for state_dir, message in refusals.items():
        status, stderr = run_cli(
            "install", *plan_args(machine, "--state-dir", state_dir), monkeypatch=monkeypatch
        )
        assert status == 2 and message in stderr and "Traceback" not in stderr, stderr
    new_state_dir = tmp_path / "new" / "state"
    status, stderr = run_cli(
        "install", *plan_args(machine, "--state-dir", str(new_state_dir)), monkeypatch=monkeypatch
    )
    assert status == 2 and "without confirmation" in stderr
    assert new_state_dir.is_dir() and new_state_dir.stat().st_mode & 0o777 == 0o700
    started_install(new_state_dir, luks_plan(machine.root))
    status, stderr = run_cli(
        "install", *plan_args(machine, "--state-dir", str(new_state_dir)), monkeypatch=monkeypatch
    )
    assert status == 2 and "holds an earlier install" in stderr


def test_plan_save_to_a_directory_is_refused_before_anything(
    machine: Machine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    status, stderr = run_cli(
        "plan", *plan_args(machine, "--save", str(tmp_path)), monkeypatch=monkeypatch
    )
    assert status == 2
    assert stderr == f"advisor: error: --save {str(tmp_path)!r} is a directory\n"


# --- A layout file: checked before anything, and read again by a resume -------------------


@pytest.mark.parametrize(
    ("text", "message"), [c[1:] for c in REFUSED_LAYOUTS], ids=[c[0] for c in REFUSED_LAYOUTS]
)
@pytest.mark.parametrize("command", ["plan", "install"])
def test_a_bad_layout_file_is_refused_before_anything(
    machine: Machine,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    command: str,
    text: str,
    message: str,
) -> None:
    layout = tmp_path / "layout.toml"
    layout.write_bytes(text.encode("latin-1") if "\xff" in text else text.encode())
    state = tmp_path / "state"
    args = plan_args(machine, "--layout", str(layout), "--state-dir", str(state))
    status, stderr = run_cli(command, *args, monkeypatch=monkeypatch)
    assert status == 2
    assert stderr.startswith(f"advisor: error: --layout {str(layout)!r}")
    assert message in stderr
    assert machine.ran == [] and not state.exists()  # nothing run, nothing made


def test_a_resume_or_a_saved_plan_with_an_edited_layout_file_is_refused(
    machine: Machine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    layout = tmp_path / "layout.toml"
    layout.write_text('[datasets."safe/postgres"]\nmountpoint = "/var/lib/postgresql"\n')
    plan = luks_plan(machine.root, layout=str(layout))
    assert plan.step("dataset-safe-postgres").argv[-1] == "rpool/safe/postgres"
    started_install(tmp_path / "state", plan, {"event": "done", "step": "wipe-disk"})
    write_plan_file(tmp_path / "plan.json", plan)
    # Unchanged, both go on with the same plan.
    assert install.resume_spec(tmp_path / "state", load_plugins()) == plan
    assert install.saved_plan(tmp_path / "plan.json", load_plugins())[0] == plan
    layout.write_text(layout.read_text() + 'properties = { recordsize = "16K" }\n')
    with pytest.raises(UsageError, match=r"for the install in .* would differ now"):
        install.resume_spec(tmp_path / "state", load_plugins())
    with pytest.raises(UsageError, match="would come out differently now"):
        install.saved_plan(tmp_path / "plan.json", load_plugins())
    # A file that can no longer be read is named.
    layout.unlink()
    with pytest.raises(UsageError, match=r"spec.json holds a value .*--layout .* cannot be read"):
        install.resume_spec(tmp_path / "state", load_plugins())


# --- How to go on after a stop or a failure --------------------------------------------------


def test_the_resume_command_carries_what_a_resume_needs_again(
    machine: Machine,
    tmp_path: Path,
    secret_file: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(secret_file.parent)
    run = [
        "install", *plan_args(machine), "--yes-wipe", DISK.disk_id, "--allow-bios",
        "--passphrase-file", secret_file.name, "--password-file", secret_file.name,
    ]  # fmt: skip
    secrets = f"--passphrase-file {secret_file} --password-file {secret_file}"
    # The first step fails: nothing is destroyed, so a resume confirms the disk again.
    machine.failing = {"wipefs"}
    status, stderr = run_cli(*run, "--state-dir", "s1", monkeypatch=monkeypatch)
    assert status == 1
    assert (
        f"continue with: advisor install --resume --state-dir s1 --allow-bios {secrets} "
        f"--yes-wipe {DISK.disk_id}\n"
    ) in stderr
    assert f"umount -R {machine.root}; zpool export rpool; cryptsetup close cryptroot" in stderr
    # Stopped after it: the disk is the install's own, no confirmation is asked again.
    machine.failing = set()
    status, _ = run_cli(
        *run, "--state-dir", "s2", "--stop-after", "wipe-disk", monkeypatch=monkeypatch
    )
    assert status == 0
    assert capsys.readouterr().out.startswith(
        f"Stopped after step wipe-disk. Continue with: advisor install --resume --state-dir s2 "
        f"--allow-bios {secrets}\n"
    )


# --- Names an earlier install may still hold ------------------------------------------------


@pytest.mark.parametrize("backend", ["luks", "zfs-native"])
def test_a_pool_or_container_of_the_same_name_is_refused_up_front(
    machine: Machine, monkeypatch: pytest.MonkeyPatch, backend: str
) -> None:
    args = ["--backend", backend, "--disk", DISK.disk_id, "--root", str(machine.root)]
    machine.pools = ["tank", "rpool"]
    status, stderr = run_cli("plan", *args, monkeypatch=monkeypatch)
    assert status == 2
    assert "a pool named rpool is imported on this machine already" in stderr
    status, stderr = run_cli("plan", *args, "--pool", "other", monkeypatch=monkeypatch)
    assert status == 0, stderr
    machine.devices = {"/dev/mapper/cryptroot"}
    status, stderr = run_cli("plan", *args, "--pool", "other", monkeypatch=monkeypatch)
    if backend == "luks":
        assert status == 2
        assert "/dev/mapper/cryptroot is open already" in stderr
        assert "cryptsetup close cryptroot" in stderr
    else:  # zfs-native opens no container
        assert status == 0, stderr


def test_the_pool_check_starts_no_process(machine: Machine) -> None:
    machine.pools = ["tank"]
    spec = install.new_spec(
        install.InstallRequest(
            backend="luks", settings=Settings(host_id="8f2a91c4"), root=str(machine.root)
        ),
        load_plugins(),
        [DISK],
    )
    install.check_names_free(spec, ["/dev/mapper/cryptroot"])
    assert machine.ran == []


# --- A plan with a step that needs the person at the terminal -------------------------------

#: A plugin backend: LUKS, then a FIDO2 enrolment that asks for the token's PIN.
FIDO2_PLUGIN = """
    from advisor.plugin import Step, hookimpl
    from advisor_luks import LuksBackend

    class LuksFido2(LuksBackend):
        name = "luks-fido2"
        summary = "LUKS with a FIDO2 token enrolled"

        def provision_steps(self, spec, member):
            enrol = Step(
                "fido2-enrol",
                "Enrol the FIDO2 token (PIN and touch)",
                ("systemd-cryptenroll", "--fido2-device=auto", member.data_partuuid_device),
                interactive=True,
            )
            return (*super().provision_steps(spec, member), enrol)

    @hookimpl
    def advisor_backends():
        return [LuksFido2()]
"""


def test_an_install_without_a_terminal_refuses_an_interactive_step_before_anything(
    machine: Machine,
    tmp_path: Path,
    secret_file: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    make_plugin_dist: MakePluginDist,
    plugin_on_path: Callable[[PluginDist], None],
) -> None:
    plugin_on_path(make_plugin_dist(FIDO2_PLUGIN, name="luks-fido2", dist="advisor-fido2"))
    args = ["--backend", "luks-fido2", "--disk", DISK.disk_id, "--root", str(machine.root)]
    status, stderr = run_cli("plan", *args, monkeypatch=monkeypatch)
    assert status == 0, stderr  # the plan shows it
    assert "-- needs you at the terminal" in capsys.readouterr().out
    state_dir = tmp_path / "state"
    secrets = ["--passphrase-file", str(secret_file), "--password-file", str(secret_file)]
    options = ["--state-dir", str(state_dir), "--yes-wipe", DISK.disk_id, *secrets]
    status, stderr = run_cli("install", *args, *options, monkeypatch=monkeypatch)
    assert status == 2
    assert stderr == (
        "advisor: error: step 8 (fido2-enrol: Enrol the FIDO2 token (PIN and touch)) needs "
        "you at the terminal, and this install has none: run advisor install at a terminal\n"
    )
    assert not state_dir.exists() and machine.ran == []  # no state, no command


def test_at_a_terminal_a_plan_with_an_interactive_step_may_run() -> None:
    plan = luks_plan(Path("/mnt"))
    asking = dataclasses.replace(plan.steps[-1], interactive=True)
    with_asking = dataclasses.replace(plan, steps=(*plan.steps[:-1], asking))
    install.check_terminal(with_asking, True)
    install.check_terminal(plan, False)  # nothing asks: no terminal needed
    with pytest.raises(UsageError, match=f"step {len(plan.steps)} .* needs you at the terminal"):
        install.check_terminal(with_asking, False)


# --- Several disks --------------------------------------------------------------------------

SECOND = dataclasses.replace(
    DISK, name="sdx", path="/dev/sdx", by_id=("/dev/disk/by-id/ata-FAKE_S2",), serial="S2"
)
THIRD = dataclasses.replace(
    DISK, name="sdw", path="/dev/sdw", by_id=("/dev/disk/by-id/ata-FAKE_S3",), serial="S3"
)


def test_a_disk_named_twice_under_two_names_is_refused(machine: Machine) -> None:
    machine.disks = [DISK, SECOND]
    with pytest.raises(UsageError, match="--disk sdz and --disk ata-FAKE_S1 are the same disk"):
        install.find_targets(["ata-FAKE_S1", "sdz"])
    assert install.find_targets(["ata-FAKE_S1", "ata-FAKE_S2"]) == [DISK, SECOND]


def test_one_refused_member_refuses_the_whole_install(
    machine: Machine, monkeypatch: pytest.MonkeyPatch
) -> None:
    machine.disks = [DISK, dataclasses.replace(SECOND, problems=("mounted at /srv",))]
    status, stderr = run_cli(
        "plan", "--backend", "luks", "--disk", "ata-FAKE_S1", "--disk", "ata-FAKE_S2",
        "--root", str(machine.root), monkeypatch=monkeypatch,
    )  # fmt: skip
    assert status == 2 and "refusing to use ata-FAKE_S2 (/dev/sdx): mounted at /srv" in stderr
    assert machine.ran == []


@pytest.mark.parametrize(
    ("count", "asked", "chosen", "message"),
    [
        (1, None, None, None),
        (2, None, "mirror", None),
        (3, "raidz1", "raidz1", None),
        (3, None, None, "3 disks: choose how the pool spans them with --topology"),
        (1, "mirror", None, "--topology mirror: a pool on one disk has no topology"),
        (2, "raidz1", None, "--topology raidz1 needs at least 3 disks, and 2 were given"),
        (4, "raidz3", None, "--topology raidz3 needs at least 5 disks"),
        (2, "stripe", None, "--topology 'stripe': choose mirror, raidz1, raidz2, raidz3"),
    ],
)
def test_the_topology_follows_the_number_of_disks(
    count: int, asked: str | None, chosen: str | None, message: str | None
) -> None:
    if message is None:
        assert install.choose_topology(count, asked) == chosen
    else:
        with pytest.raises(UsageError, match=re.escape(message)):
            install.choose_topology(count, asked)


def test_disks_of_different_sizes_say_how_much_is_lost() -> None:
    big = dataclasses.replace(SECOND, size_bytes=DISK.size_bytes * 2)
    assert install.size_mismatch([DISK, SECOND], "mirror") is None
    assert install.size_mismatch([DISK, dataclasses.replace(SECOND, size_bytes=65 * 1024**3)],
                                 "mirror") is None  # fmt: skip
    mismatch = install.size_mismatch([DISK, big, THIRD], "raidz1")
    assert mismatch is not None
    assert "differ in size by more than 3%" in mismatch
    assert "a raidz1 uses 64.0 GiB of each, and 64.0 GiB in all stays unused" in mismatch


def test_mixed_sizes_are_refused_unless_allowed(
    machine: Machine, monkeypatch: pytest.MonkeyPatch
) -> None:
    machine.disks = [DISK, dataclasses.replace(SECOND, size_bytes=DISK.size_bytes * 2)]
    args = ["plan", "--backend", "luks", "--disk", "ata-FAKE_S1", "--disk", "ata-FAKE_S2"]
    args += ["--root", str(machine.root)]
    status, stderr = run_cli(*args, monkeypatch=monkeypatch)
    assert status == 2 and "give disks of one size, or --allow-mixed-sizes" in stderr
    status, stderr = run_cli(*args, "--allow-mixed-sizes", monkeypatch=monkeypatch)
    assert status == 0 and "warning: the disks differ in size" in stderr


def test_every_disk_must_be_confirmed_by_its_id() -> None:
    disks = [DISK, SECOND]
    install.confirm(disks, ["ata-FAKE_S2", "ata-FAKE_S1"], None)  # any order
    with pytest.raises(
        UsageError, match="--yes-wipe names 1 of the 2 disks: add --yes-wipe ata-FAKE_S2"
    ):
        install.confirm(disks, ["ata-FAKE_S1"], None)
    with pytest.raises(UsageError, match="--yes-wipe 'sdx' does not name a target disk"):
        install.confirm(disks, ["ata-FAKE_S1", "sdx"], None)  # another name for it: no
    with pytest.raises(UsageError, match="pass --yes-wipe ata-FAKE_S1 --yes-wipe ata-FAKE_S2"):
        install.confirm(disks, [], None)
    asked: list[str] = []

    def ask(prompt: str) -> str:
        asked.append(prompt)
        return prompt.split("Type the id of disk ")[1].split(" ")[0]

    install.confirm(disks, [], ask)
    assert asked[0].startswith(
        "These 2 disks will be erased: ata-FAKE_S1 (/dev/sdz, serial S1), ata-FAKE_S2 "
        "(/dev/sdx, serial S2). Type the id of disk ata-FAKE_S1 to go on: "
    )
    assert asked[1] == "Type the id of disk ata-FAKE_S2 to go on: "
    with pytest.raises(UsageError, match="the typed id does not match the disk"):
        install.confirm(disks, [], lambda prompt: "ata-FAKE_S1")


def test_a_mirror_spec_numbers_its_disks_and_names_their_containers(
    machine: Machine, tmp_path: Path
) -> None:
    machine.disks = [DISK, SECOND]
    request = install.InstallRequest(
        backend="luks", settings=Settings(host_id="8f2a91c4"), root=str(machine.root),
        swap_size="8G",
    )  # fmt: skip
    spec = install.new_spec(request, load_plugins(), [DISK, SECOND])
    assert spec.topology == "mirror"
    assert [(m.number, m.disk_id, m.luks_name) for m in spec.members] == [
        (1, "ata-FAKE_S1", "cryptroot1"), (2, "ata-FAKE_S2", "cryptroot2"),
    ]  # fmt: skip
    guids = {g for m in spec.members for g in (m.esp_partuuid, m.data_partuuid, m.swap_partuuid)}
    assert len(guids) == 6  # every partition its own GUID
    # A saved spec is checked as a new one: an edited member is caught.
    twice = dataclasses.replace(spec, members=(spec.members[0], dataclasses.replace(
        spec.members[1], disk_id="ata-FAKE_S1")))  # fmt: skip
    with pytest.raises(UsageError, match="a disk is given twice"):
        install.validate_spec(twice, load_plugins())
    with pytest.raises(UsageError, match="2 disks need a --topology"):
        install.validate_spec(dataclasses.replace(spec, topology=None), load_plugins())
    with pytest.raises(UsageError, match="--swap '8 G'"):
        install.validate_spec(dataclasses.replace(spec, swap_size="8 G"), load_plugins())
    with pytest.raises(UsageError, match="a swap partition GUID is given, but no --swap size"):
        install.validate_spec(dataclasses.replace(spec, swap_size=None), load_plugins())


def test_luks_detached_needs_a_header_and_a_backup_per_disk(
    machine: Machine, tmp_path: Path
) -> None:
    machine.disks = [DISK, SECOND]
    (tmp_path / "keys").mkdir()
    headers = (str(tmp_path / "keys" / "h1"), str(tmp_path / "keys" / "h2"))
    backups = ("/proc/b1", "/proc/b2")  # another file system than the headers'

    def request(headers: tuple[str, ...], backups: tuple[str, ...]) -> install.InstallRequest:
        return install.InstallRequest(
            backend="luks-detached", settings=Settings(host_id="8f2a91c4", header=headers),
            header_backup=backups, root=str(machine.root),
        )  # fmt: skip

    spec = install.new_spec(request(headers, backups), load_plugins(), [DISK, SECOND])
    assert [(m.header, m.header_backup) for m in spec.members] == list(
        zip(headers, backups, strict=True)
    )
    with pytest.raises(UsageError, match="--header-backup is given 1 times for 2 disks"):
        install.new_spec(request(headers, backups[:1]), load_plugins(), [DISK, SECOND])
    with pytest.raises(UsageError, match="for each disk, in the order of the disks: 2 of each"):
        install.new_spec(request(headers[:1], ()), load_plugins(), [DISK, SECOND])
    with pytest.raises(UsageError, match="--header: each disk needs its own"):
        install.new_spec(request((headers[0],) * 2, backups), load_plugins(), [DISK, SECOND])
