"""Checks the installer runs as plan steps, or as their probes (``advisor finish``'s
unmount and export): ``python -m advisor.install.verify CHECK ARGS``.

They are separate commands (not code inside the engine) so that the dry-run script shows
them and a reviewer can run them by hand. A passphrase comes on stdin, as the executor
feeds every step's secret, and goes on to cryptsetup on its stdin only.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

from advisor import runner

USAGE = (
    "usage: printf '%s' PASS | python -m advisor.install.verify header-backup HEADER BACKUP DATA\n"
    "       python -m advisor.install.verify unmounted PATH\n"
    "       python -m advisor.install.verify exported POOL\n"
)


def header_backup(header: Path, backup: Path, data: Path, passphrase: str) -> list[str]:
    """Problems with a detached header's backup; empty when it is sound.

    The backup must hold the same bytes as the start of the header, be a LUKS header
    itself, and unlock the data partition with ``passphrase`` (``cryptsetup open
    --test-passphrase``, which opens nothing): only then can it stand in for the header.
    """
    problems = []
    copy = backup.read_bytes()
    if not copy:
        return [f"{backup} is empty"]
    with header.open("rb") as source:
        original = source.read(len(copy))
    if hashlib.sha256(original).digest() != hashlib.sha256(copy).digest():
        problems.append(f"{backup} differs from the first {len(copy)} bytes of {header}")
    if _cryptsetup(["isLuks", str(backup)]) != 0:
        problems.append(f"{backup} is not a LUKS header")
    unlock = ["open", "--test-passphrase", "--header", str(backup), "--key-file=-", str(data)]
    if _cryptsetup(unlock, passphrase) != 0:
        problems.append(f"{backup} with the passphrase does not unlock {data}")
    return problems


def unmounted(path: Path) -> list[str]:
    """Problems with ``path`` being unmounted: nothing may be mounted on or below it
    (``findmnt`` lists the mounts, so a bind or a nested mount counts too)."""
    listed = runner.run(["findmnt", "-rn", "-o", "TARGET"], check=False)
    prefix = str(path).rstrip("/") + "/"
    below = [
        target
        for target in listed.stdout.splitlines()
        if target == str(path) or target.startswith(prefix)
    ]
    return [f"{target} is still mounted" for target in below]


def exported(pool: str) -> list[str]:
    """Problems with ``pool`` being exported: it must not be imported on this machine."""
    if runner.run(["zpool", "list", "-H", "-o", "name", pool], check=False).returncode == 0:
        return [f"the pool {pool} is still imported"]
    return []


def _cryptsetup(arguments: list[str], secret: str | None = None) -> int:
    """The exit status of ``cryptsetup ARGUMENTS``, ``secret`` (if any) on its stdin."""
    try:
        return runner.run(["cryptsetup", *arguments], secret=secret, check=False).returncode
    except runner.CommandError as error:  # not installed, or hung: the check fails
        sys.stderr.write(f"advisor.install.verify: {error}\n")
        return 1


def main(argv: list[str]) -> int:
    """Run the check ``argv`` names, the passphrase read from stdin exactly as given (the
    install feeds it with no newline, as luksFormat took it). Returns the exit status:
    0 sound, 1 a problem, 2 a wrong call."""
    if len(argv) == 2 and argv[0] in ("unmounted", "exported"):
        problems = unmounted(Path(argv[1])) if argv[0] == "unmounted" else exported(argv[1])
        return _report(problems, f"{argv[1]}: {argv[0]}")
    if len(argv) != 4 or argv[0] != "header-backup":
        sys.stderr.write(USAGE)
        return 2
    try:
        passphrase = sys.stdin.buffer.read().decode("utf-8")
    except UnicodeDecodeError:
        passphrase = ""  # the installer sends UTF-8: this is not its passphrase
    if not passphrase:
        sys.stderr.write("advisor.install.verify: no (UTF-8) passphrase on stdin\n" + USAGE)
        return 2
    problems = header_backup(Path(argv[1]), Path(argv[2]), Path(argv[3]), passphrase)
    return _report(problems, f"header backup verified: {argv[2]}")


def _report(problems: list[str], verified: str) -> int:
    """Print ``problems`` (or ``verified`` when there is none); the exit status."""
    for problem in problems:
        sys.stderr.write(f"advisor.install.verify: {problem}\n")
    if not problems:
        sys.stdout.write(f"{verified}\n")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
