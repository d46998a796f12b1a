"""advisor diff: the parser, the classification, the tally and the command, against
``zfs diff -H -F`` output as libzfs writes it (a stand-in ``zfs`` prints it)."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

import nixeval
import pytest
from test_configuration import VARIANTS

from advisor.cli import main
from advisor.datasets import DATASETS
from advisor.diff import command
from advisor.diff.classify import (
    DIRECTORY_ENTRY,
    ERASED,
    FILE_ENTRY,
    NOISE,
    NOISE_STATUS,
    PERSISTED,
    SUGGESTIONS,
    Classifier,
    Persisted,
    ancestors,
)
from advisor.diff.parse import Change, DiffFormatError, parse_line, relocate, unescape
from advisor.diff.report import TABLE_ROWS, DiffResult, nix_fragment, render
from advisor.diff.tally import EXAMPLES, MAX_GROUPS, Group, Tally
from advisor.layoutrecord import RECORD_FILE, record_text
from advisor.runner import CommandError, stream_lines

# --- parsing ---------------------------------------------------------------------------


def test_lines_of_each_shape_parse() -> None:
    assert parse_line("+\tF\t/mnt/etc/adjtime\n") == Change("+", "F", "/mnt/etc/adjtime")
    assert parse_line("M\tF\t/mnt/var/x\t(+1)\n") == Change("M", "F", "/mnt/var/x")
    assert parse_line("R\tF\t/a\t/b\n") == Change("R", "F", "/a", "/b")
    assert parse_line("M\t/\t/mnt/\n") == Change("M", "/", "/mnt/")


@pytest.mark.parametrize(
    "line",
    ["", "+\t/mnt/x", "X\tF\t/a", "+\tQ\t/a", "R\tF\t/a", "M /mnt/etc/passwd"],
)
def test_anything_else_is_refused(line: str) -> None:
    with pytest.raises(DiffFormatError):
        parse_line(line)


def test_libzfs_escapes_are_undone() -> None:
    # stream_bytes() in libzfs_diff.c: a space, a tab, a backslash, and each byte of a
    # non-ASCII name as \ and four octal digits.
    assert unescape(r"/etc/my\0040file") == "/etc/my file"
    assert unescape(r"/a\0011b\0134c") == "/a\tb\\c"
    assert unescape(r"/caf\0303\0251") == "/café"
    assert unescape(r"/bad\0377") == "/bad\\xff"  # not UTF-8: printable all the same


def test_mountinfo_gives_where_each_dataset_is_mounted_whole() -> None:
    mountinfo = (
        "22 1 0:21 / / rw - ext4 /dev/sda1 rw\n"
        "90 22 0:50 / /mnt rw - zfs rpool/local/root rw\n"
        "91 22 0:50 / /my\\040root rw - zfs rpool/local/root rw\n"
        "92 22 0:51 /var/log /var/log rw - zfs rpool/safe/persist rw\n"  # a bind mount
        "93 22 0:52 / /persist rw shared:5 - zfs rpool/safe/persist rw\n"
    )
    assert command.mount_points(mountinfo) == {
        "rpool/local/root": ["/mnt", "/my root"],
        "rpool/safe/persist": ["/persist"],
    }


def test_paths_are_moved_to_where_the_booted_system_has_them() -> None:
    assert relocate("/mnt/etc/x", ["/mnt"], "/") == "/etc/x"
    assert relocate("/mnt/", ["/mnt"], "/") == "/"
    assert relocate("/etc/x", ["/"], "/") == "/etc/x"  # mounted at /: no prefix
    assert relocate("/mnt/var/cache/a/", ["/mnt/var/cache"], "/var/cache") == "/var/cache/a"
    assert relocate("/x/y", ["/", "/x"], "/") == "/y"  # the longest mount point first
    with pytest.raises(DiffFormatError):
        relocate("/elsewhere/x", ["/mnt"], "/")


# --- classification --------------------------------------------------------------------

KEPT = Persisted(
    directories=("/etc/nixos", "/var/log", "/var/lib/nixos", "/var/lib/systemd/coredump"),
    files=("/etc/machine-id",),
    datasets={
        "/nix": "rpool/local/nix",
        "/home": "rpool/safe/home",
        "/persist": "rpool/safe/persist",
    },
)


def classifier() -> Classifier:
    return Classifier(
        KEPT,
        copied_etc=["/etc/sudoers"],
        link_target=lambda path: {"/etc/hosts": "/etc/static/hosts"}.get(path, "/nix/store/x"),
    )


@pytest.mark.parametrize(
    ("path", "file_type", "status", "entry", "kind"),
    [
        # Erased, with the entry that would keep it.
        ("/etc/adjtime", "F", ERASED, "/etc/adjtime", FILE_ENTRY),
        ("/etc/ssh/ssh_host_ed25519_key", "F", ERASED, "/etc/ssh/ssh_host_ed25519_key", FILE_ENTRY),
        ("/etc/NetworkManager/system-connections/home.nmconnection", "F", ERASED,
         "/etc/NetworkManager/system-connections", DIRECTORY_ENTRY),
        ("/var/lib/postgresql/16/base/1", "F", ERASED, "/var/lib/postgresql", DIRECTORY_ENTRY),
        ("/var/lib/postgresql", "/", ERASED, "/var/lib/postgresql", DIRECTORY_ENTRY),
        ("/var/lib/logrotate.status", "F", ERASED, "/var/lib/logrotate.status", FILE_ENTRY),
        ("/var/lib/systemd/timers/stamp-x.timer", "F", ERASED, "/var/lib/systemd/timers",
         DIRECTORY_ENTRY),
        ("/var/lib/private/yggdrasil/keys", "F", ERASED, "/var/lib/private/yggdrasil",
         DIRECTORY_ENTRY),
        ("/root/.ssh/known_hosts", "F", ERASED, "/root/.ssh", DIRECTORY_ENTRY),
        ("/root/.bash_history", "F", ERASED, "/root/.bash_history", FILE_ENTRY),
        ("/data/photos/a.jpg", "F", ERASED, "/data", DIRECTORY_ENTRY),
        ("/notes.txt", "F", ERASED, "/notes.txt", FILE_ENTRY),
        ("/srv/www/index.html", "F", ERASED, "/srv/www", DIRECTORY_ENTRY),
        ("/etc/my file", "F", ERASED, "/etc/my file", FILE_ENTRY),
        # Kept already.
        ("/etc/nixos/configuration.nix", "F", PERSISTED, "/etc/nixos", DIRECTORY_ENTRY),
        ("/etc/nixos", "/", PERSISTED, "/etc/nixos", DIRECTORY_ENTRY),
        ("/var/log/journal/x/system.journal", "F", PERSISTED, "/var/log", DIRECTORY_ENTRY),
        ("/etc/machine-id", "F", PERSISTED, "/etc/machine-id", FILE_ENTRY),
        ("/persist/x", "F", PERSISTED, "/persist", DIRECTORY_ENTRY),
        # Noise.
        ("/persist", "/", NOISE_STATUS, "/persist", DIRECTORY_ENTRY),
        ("/boot", "/", NOISE_STATUS, "/boot", DIRECTORY_ENTRY),
        ("/boot-2", "/", NOISE_STATUS, "/boot-2", DIRECTORY_ENTRY),
        ("/etc/static", "@", NOISE_STATUS, "/etc/static", FILE_ENTRY),
        ("/etc/hosts", "@", NOISE_STATUS, "/etc/hosts", FILE_ENTRY),
        ("/etc/sudoers", "F", NOISE_STATUS, "/etc/sudoers", FILE_ENTRY),
        ("/etc/passwd", "F", NOISE_STATUS, "/etc/passwd", FILE_ENTRY),
        ("/etc/ssh", "/", NOISE_STATUS, "/etc/ssh", DIRECTORY_ENTRY),
        ("/tmp/x/y", "F", NOISE_STATUS, "/tmp", DIRECTORY_ENTRY),
        ("/var/lib", "/", NOISE_STATUS, "/var/lib", DIRECTORY_ENTRY),
        ("/var/lib/systemd", "/", NOISE_STATUS, "/var/lib/systemd", DIRECTORY_ENTRY),
        ("/root", "/", NOISE_STATUS, "/root", DIRECTORY_ENTRY),
        ("/bin/sh", "@", NOISE_STATUS, "/bin/sh", FILE_ENTRY),
        ("/bin", "/", NOISE_STATUS, "/bin", DIRECTORY_ENTRY),
    ],
)  # fmt: skip
def test_each_path_gets_its_verdict(
    path: str, file_type: str, status: str, entry: str, kind: str
) -> None:
    verdict = classifier().classify(path, file_type)
    assert (verdict.status, verdict.entry, verdict.kind) == (status, entry, kind)
    assert verdict.reason or status == ERASED


def test_a_link_not_into_etc_static_is_state() -> None:
    # Made by the user (or a program), not by NixOS: a link to the store stays erased.
    assert classifier().classify("/etc/foo.conf", "@").status == ERASED


def test_a_path_of_your_own_entries_is_kept() -> None:
    kept = Persisted((*KEPT.directories, "/var/lib/postgresql"), KEPT.files, KEPT.datasets)
    verdict = Classifier(kept).classify("/var/lib/postgresql/16/x", "F")
    assert (verdict.status, verdict.entry) == (PERSISTED, "/var/lib/postgresql")


def test_ancestors() -> None:
    assert ancestors("/a/b") == ["/a/b", "/a", "/"]
    assert ancestors("/") == ["/"]


# --- the tally -------------------------------------------------------------------------


def test_the_tally_groups_by_entry_and_keeps_few_examples() -> None:
    tally = Tally()
    rules = classifier()
    paths = [f"/var/lib/app/f{n}" for n in range(EXAMPLES + 5)]
    for path in paths:
        tally.add(path, rules.classify(path, "F"))
    tally.add("/var/lib/app", rules.classify("/var/lib/app", "/"))
    (group,) = tally.result(ERASED)
    assert (group.entry, group.kind, group.count) == ("/var/lib/app", DIRECTORY_ENTRY, EXAMPLES + 6)
    assert group.examples == paths[:EXAMPLES] and group.more == 6
    assert tally.counts == {ERASED: EXAMPLES + 6, PERSISTED: 0, NOISE_STATUS: 0}


def test_files_inside_a_suggested_directory_join_it() -> None:
    tally = Tally()
    rules = Classifier(KEPT)
    for path, kind in [("/data", "/"), ("/data/x", "F"), ("/notes", "F"), ("/data/y/z", "F")]:
        tally.add(path, rules.classify(path, kind))
    groups = tally.result(ERASED)
    assert [(g.entry, g.count) for g in groups] == [("/data", 3), ("/notes", 1)]
    assert tally.result(ERASED) == groups  # result() leaves the tally as it was


def test_groups_beyond_the_cap_are_counted_not_kept() -> None:
    tally = Tally()
    rules = Classifier(KEPT)
    for n in range(MAX_GROUPS + 3):
        tally.add(f"/f{n}", rules.classify(f"/f{n}", "F"))
    assert len(tally.groups) == MAX_GROUPS and tally.not_grouped == 3
    assert tally.counts[ERASED] == MAX_GROUPS + 3


# --- the Nix fragment ------------------------------------------------------------------


def test_the_fragment_is_a_module_nix_evaluates(tmp_path: Path) -> None:
    groups = [
        Group(ERASED, "/var/lib/postgresql", DIRECTORY_ENTRY, "", 3),
        Group(ERASED, '/etc/my "odd" ${file}', FILE_ENTRY, "", 1),
    ]
    path = tmp_path / "persistence-extra.nix"
    path.write_text(nix_fragment(groups))
    nixeval.parse(path)
    value = nixeval.eval_expression(f"import {path} {{ }}")
    assert value == {
        "environment": {
            "persistence": {
                "/persist": {
                    "directories": ["/var/lib/postgresql"],
                    "files": ['/etc/my "odd" ${file}'],
                }
            }
        }
    }


# --- the streaming runner --------------------------------------------------------------


def test_stream_lines_yields_as_written_and_reports_failure(tmp_path: Path) -> None:
    assert list(stream_lines(["printf", "a\\nb\\n"])) == ["a\n", "b\n"]
    failing = ["sh", "-c", "echo out; echo 'it broke' >&2; exit 3"]
    lines = []
    with pytest.raises(CommandError, match="status 3: it broke"):
        for line in stream_lines(failing):
            lines.append(line)
    assert lines == ["out\n"]
    with pytest.raises(CommandError, match="command not found"):
        list(stream_lines([str(tmp_path / "missing")]))


def test_closing_the_stream_early_stops_the_child() -> None:
    lines = stream_lines(["yes"])
    assert next(lines) == "y\n"
    lines.close()  # would hang (or fill memory) if the child kept running


# --- the command -----------------------------------------------------------------------

#: What libzfs prints for a root mounted at /mnt after an install and a little use.
ZFS_DIFF = "\n".join(
    [
        "M\t/\t/mnt/",
        "+\t/\t/mnt/etc",
        "+\t/\t/mnt/etc/nixos",
        "+\tF\t/mnt/etc/nixos/configuration.nix",
        "+\tF\t/mnt/etc/adjtime",
        "+\tF\t/mnt/etc/my\\0040notes",
        "+\t@\t/mnt/etc/static",
        "+\t@\t/mnt/etc/hosts",
        "+\tF\t/mnt/etc/.clean",
        "+\tF\t/mnt/etc/sudoers",
        "+\t/\t/mnt/var",
        "+\t/\t/mnt/var/lib",
        "+\t/\t/mnt/var/lib/app",
        "+\tF\t/mnt/var/lib/app/state.db",
        "+\t/\t/mnt/var/log",
        "+\tF\t/mnt/var/log/messages",
        "M\tF\t/mnt/var/lib/app/state.db\t(+1)",
        "R\tF\t/mnt/var/tmp/a\t/mnt/srv/site/b",
        "-\tF\t/mnt/gone",
        "+\t/\t/mnt/persist",
        "+\t/\t/mnt/boot",
        "",
    ]
)


@pytest.fixture
def system(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A root at tmp_path/root with its layout record, a stand-in ``zfs`` on PATH that
    prints :data:`ZFS_DIFF` (and logs its arguments), and the root dataset mounted at
    /mnt as mountinfo tells."""
    root = tmp_path / "root"
    (root / "etc" / "nixos").mkdir(parents=True)
    (root / "etc" / "nixos" / RECORD_FILE).write_text(record_text(VARIANTS["zfs-native-systemd"]))
    (root / "etc" / ".clean").write_text("sudoers\n")
    (root / "etc" / "hosts").symlink_to("/etc/static/hosts")
    output = tmp_path / "diff.txt"
    output.write_text(ZFS_DIFF)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    zfs = bin_dir / "zfs"
    zfs.write_text(f'#!/bin/sh\necho "$@" >> {tmp_path}/zfs-args\ncat {output}\n')
    zfs.chmod(zfs.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    mountinfo = tmp_path / "mountinfo"
    mountinfo.write_text(
        "22 1 0:21 / / rw - ext4 /dev/sda1 rw\n"
        "90 22 0:50 / /mnt rw,relatime - zfs rpool/local/root rw,xattr\n"
        "91 90 0:51 / /mnt/nix rw - zfs rpool/local/nix rw\n"
        "92 22 0:50 /etc /elsewhere rw - zfs rpool/local/root rw\n"
    )
    monkeypatch.setattr(command, "MOUNTINFO", mountinfo)
    return root


def diff_json(root: Path, capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    assert main(["diff", "--root", str(root), "--json", *args]) == 0
    data: dict[str, Any] = json.loads(capsys.readouterr().out)
    return data


def test_the_command_lists_what_is_not_kept(
    system: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = diff_json(system, capsys)
    groups = data["groups"]
    assert isinstance(groups, list)
    erased = {g["entry"]: g["examples"] for g in groups if g["status"] == ERASED}
    assert erased == {
        "/etc/adjtime": ["/etc/adjtime"],
        "/etc/my notes": ["/etc/my notes"],
        "/srv/site": ["/srv/site/b"],
        "/var/lib/app": ["/var/lib/app", "/var/lib/app/state.db", "/var/lib/app/state.db"],
    }
    kept = {g["entry"] for g in groups if g["status"] == PERSISTED}
    assert kept == {"/etc/nixos", "/var/log"}
    assert data["counts"] == {ERASED: 6, PERSISTED: 4, NOISE_STATUS: 9}
    assert data["datasets"] == [
        {
            "dataset": "rpool/local/root",
            "snapshot": "rpool/local/root@blank",
            "mountpoint": "/",
            "mounted_at": "/mnt",
        }
    ]
    args = (system.parent / "zfs-args").read_text()
    assert args == "diff -H -F rpool/local/root@blank rpool/local/root\n"


def test_all_adds_the_noise(system: Path, capsys: pytest.CaptureFixture[str]) -> None:
    groups = diff_json(system, capsys, "--all")["groups"]
    assert isinstance(groups, list)
    noise = {g["entry"] for g in groups if g["status"] == NOISE_STATUS}
    assert {"/etc/static", "/etc/hosts", "/etc/.clean", "/etc/sudoers", "/persist"} <= noise


def test_persisted_entries_of_your_own(system: Path, capsys: pytest.CaptureFixture[str]) -> None:
    groups = diff_json(system, capsys, "--persisted", "/var/lib/app/")["groups"]
    assert isinstance(groups, list)
    assert {"status": PERSISTED, "entry": "/var/lib/app"}.items() <= next(
        g for g in groups if g["entry"] == "/var/lib/app"
    ).items()


def test_nix_prints_the_module(
    system: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert main(["diff", "--root", str(system), "--nix"]) == 0
    module = tmp_path / "module.nix"
    module.write_text(capsys.readouterr().out)
    value = nixeval.eval_expression(f"import {module} {{ }}")
    assert value["environment"]["persistence"]["/persist"] == {
        "directories": ["/srv/site", "/var/lib/app"],
        "files": ["/etc/adjtime", "/etc/my notes"],
    }


def test_the_table(system: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["diff", "--root", str(system)]) == 0
    out = capsys.readouterr().out
    assert "Erased at the next boot" in out and "/var/lib/app" in out
    assert "/etc/static" not in out and "--all shows them" in out


def test_an_unmounted_root_fails(
    system: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    (tmp_path / "mountinfo").write_text("22 1 0:21 / / rw - ext4 /dev/sda1 rw\n")
    assert main(["diff", "--root", str(system)]) == 1
    assert "rpool/local/root is not mounted" in capsys.readouterr().err


def test_zfs_failing_fails(
    system: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    refusal = "#!/bin/sh\necho \"cannot open 'x': permission denied\" >&2\nexit 1\n"
    (tmp_path / "bin" / "zfs").write_text(refusal)
    assert main(["diff", "--root", str(system)]) == 1
    assert "permission denied" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--persisted", "var/lib/x"], "absolute"),
        (["--record", "/nonexistent/advisor.json"], "does not exist"),
        (["--layout", "/nonexistent/layout.toml"], "--layout '/nonexistent/layout.toml'"),
    ],
)
def test_bad_input_is_exit_2(
    system: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    assert main(["diff", "--root", str(system), *args]) == 2
    assert message in capsys.readouterr().err


def test_a_layout_file_rolled_back_dataset_is_diffed_too(
    system: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    layout = tmp_path / "layout.toml"
    layout.write_text('[datasets."local/cache"]\nmountpoint = "/var/cache"\nrollback = true\n')
    with (tmp_path / "mountinfo").open("a") as mountinfo:
        mountinfo.write("93 90 0:52 / /mnt/var/cache rw - zfs rpool/local/cache rw\n")
    (tmp_path / "diff.txt").write_text("+\tF\t/mnt/var/cache/app/blob\n")
    data = diff_json(system, capsys, "--layout", str(layout))
    assert [d["dataset"] for d in data["datasets"]] == ["rpool/local/root", "rpool/local/cache"]
    groups = data["groups"]
    assert isinstance(groups, list)
    assert [g["entry"] for g in groups] == ["/var/cache/app"]
    assert groups[0]["paths"] == 2  # the stand-in prints the same line for both


def test_the_core_table_has_one_root() -> None:
    assert [d.mountpoint for d in DATASETS if d.rolled_back] == ["/"]


# --- the docs and the table's bound ----------------------------------------------------

DOCS = Path(__file__).resolve().parent.parent / "docs" / "diff.md"


def test_every_rule_is_documented() -> None:
    text = DOCS.read_text(encoding="utf-8")
    missing = [path for path in (*NOISE, *SUGGESTIONS) if f"`{path}`" not in text]
    assert missing == []


def test_the_table_shows_the_first_entries_and_says_how_many_more() -> None:
    from rich.console import Console

    tally = Tally()
    rules = Classifier(KEPT)
    for n in range(TABLE_ROWS + 7):
        tally.add(f"/f{n}", rules.classify(f"/f{n}", "F"))
    console = Console(record=True, width=100)
    render(console, DiffResult("advisor.json", (), tally), show_noise=False)
    out = console.export_text()
    assert "… and 7 more entries" in out and "/f0" in out


def test_output_that_is_not_zfs_diff_fails(
    system: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    (tmp_path / "diff.txt").write_text("+\tF\t/mnt/ok\nsomething else\n")
    assert main(["diff", "--root", str(system)]) == 1
    assert "printed what it should not" in capsys.readouterr().err


def test_a_layout_file_gone_from_where_the_record_says_asks_for_a_copy(
    system: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from dataclasses import replace

    layout = VARIANTS["zfs-native-systemd"]
    gone = replace(layout, settings=replace(layout.settings, layout="/installer/layout.toml"))
    (system / "etc" / "nixos" / RECORD_FILE).write_text(record_text(gone))
    assert main(["diff", "--root", str(system)]) == 2
    assert "give a copy with --layout FILE" in capsys.readouterr().err
