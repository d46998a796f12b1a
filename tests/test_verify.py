"""``python -m advisor.install.verify``: the detached-header backup check, with a fake cryptsetup.

The fake records each call's arguments and stdin, and accepts the backup as the data's
header only with the right passphrase, so the tests see exactly what reaches cryptsetup
and how. The real cryptsetup runs in the VM tests.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

PASSPHRASE = "correct horse battery staple"

# Logs "argv: ARGS" and "stdin: HEX" for each call. `open` succeeds
# only with the passphrase in $FAKE_PASSPHRASE on stdin, byte for byte; `isLuks` fails
# for a file named in $FAKE_NOT_LUKS.
FAKE_CRYPTSETUP = """#!/bin/sh
stdin=$(od -An -tx1 | tr -d ' \\n')
printf 'argv: %s\\nstdin: %s\\n' "$*" "$stdin" >> "$FAKE_LOG"
case "$1" in
  isLuks) [ "$2" != "$FAKE_NOT_LUKS" ] ;;
  open) [ "$stdin" = "$(printf %s "$FAKE_PASSPHRASE" | od -An -tx1 | tr -d ' \\n')" ] ;;
  *) exit 9 ;;
esac
"""


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A header, a backup with the same bytes as its start, and a data 'partition'."""
    header, backup, data = tmp_path / "header.img", tmp_path / "backup.img", tmp_path / "data"
    header.write_bytes(b"LUKS\xba\xbe" + bytes(range(256)) * 16 + b"area after the backup")
    backup.write_bytes(header.read_bytes()[:4096])
    data.write_bytes(b"\0" * 4096)
    return header, backup, data


def verify(
    tmp_path: Path, args: list[str], stdin: bytes, **env: str
) -> tuple[subprocess.CompletedProcess[str], str]:
    """Run ``python -m advisor.install.verify ARGS`` with ``stdin`` and the fake cryptsetup first
    on PATH; return the result (output as text) and the fake's log."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    fake = bin_dir / "cryptsetup"
    fake.write_text(FAKE_CRYPTSETUP, encoding="utf-8")
    fake.chmod(0o755)
    log = tmp_path / "cryptsetup.log"
    log.write_text("")
    result = subprocess.run(
        [sys.executable, "-m", "advisor.install.verify", *args],
        input=stdin,
        capture_output=True,
        env={
            **os.environ,
            "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
            "FAKE_LOG": str(log),
            "FAKE_PASSPHRASE": PASSPHRASE,
            **env,
        },
        check=False,
    )
    text = subprocess.CompletedProcess(
        result.args, result.returncode, result.stdout.decode(), result.stderr.decode()
    )
    return text, log.read_text()


def paths(files: tuple[Path, Path, Path]) -> list[str]:
    return ["header-backup", *(str(path) for path in files)]


def test_sound_backup_unlocks_the_data_with_the_passphrase_on_stdin(
    tmp_path: Path, files: tuple[Path, Path, Path]
) -> None:
    _, backup, data = files
    result, log = verify(tmp_path, paths(files), PASSPHRASE.encode())
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"header backup verified: {backup}\n"
    calls = log.splitlines()
    assert f"argv: isLuks {backup}" in calls
    assert f"argv: open --test-passphrase --header {backup} --key-file=- {data}" in calls
    # Only the unlock test reads the passphrase, and as given: no newline added.
    assert [line for line in calls if line.startswith("stdin: ")] == [
        "stdin: ",
        f"stdin: {PASSPHRASE.encode().hex()}",
    ]
    assert PASSPHRASE not in "".join(line for line in calls if line.startswith("argv: "))


def test_wrong_passphrase_is_a_problem(tmp_path: Path, files: tuple[Path, Path, Path]) -> None:
    _, backup, data = files
    result, _ = verify(tmp_path, paths(files), (PASSPHRASE + "\n").encode())
    assert result.returncode == 1
    assert f"{backup} with the passphrase does not unlock {data}" in result.stderr
    assert PASSPHRASE not in result.stderr + result.stdout


def test_backup_that_differs_from_the_header_is_a_problem(
    tmp_path: Path, files: tuple[Path, Path, Path]
) -> None:
    header, backup, _ = files
    backup.write_bytes(backup.read_bytes()[:-1] + b"!")
    result, _ = verify(tmp_path, paths(files), PASSPHRASE.encode())
    assert result.returncode == 1
    assert f"{backup} differs from the first 4096 bytes of {header}" in result.stderr
    assert "does not unlock" not in result.stderr  # the fake accepts the passphrase


def test_backup_that_is_no_luks_header_is_a_problem(
    tmp_path: Path, files: tuple[Path, Path, Path]
) -> None:
    _, backup, _ = files
    result, _ = verify(tmp_path, paths(files), PASSPHRASE.encode(), FAKE_NOT_LUKS=str(backup))
    assert result.returncode == 1
    assert f"{backup} is not a LUKS header" in result.stderr


def test_empty_backup_is_a_problem(tmp_path: Path, files: tuple[Path, Path, Path]) -> None:
    _, backup, _ = files
    backup.write_bytes(b"")
    result, log = verify(tmp_path, paths(files), PASSPHRASE.encode())
    assert result.returncode == 1
    assert f"{backup} is empty" in result.stderr
    assert log == ""


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        ([], PASSPHRASE.encode(), "usage: "),
        (["header-backup", "h", "b"], PASSPHRASE.encode(), "usage: "),
        (["header-check", "h", "b", "d"], PASSPHRASE.encode(), "usage: "),
        (None, b"", "no (UTF-8) passphrase on stdin"),
        (None, b"\xff\xfe", "no (UTF-8) passphrase on stdin"),
    ],
)
def test_wrong_calls_exit_2_before_any_check(
    tmp_path: Path,
    files: tuple[Path, Path, Path],
    args: list[str] | None,
    stdin: bytes,
    message: str,
) -> None:
    result, log = verify(tmp_path, paths(files) if args is None else args, stdin)
    assert result.returncode == 2
    assert message in result.stderr
    assert log == ""


def test_settled_waits_for_the_links_and_tries_settle_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """udevadm settle losing its connection to udevd ("Broken pipe", seen in the VM) is
    asked again; what decides is whether the links the next steps name are there."""
    from advisor import runner
    from advisor.install import verify

    calls: list[list[str]] = []

    def flaky_settle(argv: list[str], **_: object) -> runner.Result:
        calls.append(list(argv))
        failed = len(calls) == 1
        stderr = "Failed to wait for daemon to reply: Broken pipe" if failed else ""
        return runner.Result(tuple(argv), 1 if failed else 0, "", stderr)

    monkeypatch.setattr(runner, "run", flaky_settle)
    monkeypatch.setattr("time.sleep", lambda seconds: None)
    link = tmp_path / "by-partuuid-1"
    link.touch()
    assert verify.settled([link], timeout=0.5) == []
    assert calls == [["udevadm", "settle", "--timeout=120"]] * 2
    gone = tmp_path / "never"
    problems = verify.settled([link, gone], timeout=0.2)
    assert problems == [f"{gone} did not appear within 0.2 s"]
