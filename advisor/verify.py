"""Checks the installer runs as plan steps: ``python -m advisor.verify CHECK ARGS``.

They are separate commands (not code inside the engine) so that the dry-run script shows
them and a reviewer can run them by hand.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

from advisor import runner


def header_backup(header: Path, backup: Path, data: Path) -> list[str]:
    """Problems with a detached header's backup; empty when it is sound.

    The backup must hold the same bytes as the start of the header, be a LUKS header
    itself, and be accepted as the header of the data partition.
    """
    problems = []
    copy = backup.read_bytes()
    if not copy:
        return [f"{backup} is empty"]
    with header.open("rb") as source:
        original = source.read(len(copy))
    if hashlib.sha256(original).digest() != hashlib.sha256(copy).digest():
        problems.append(f"{backup} differs from the first {len(copy)} bytes of {header}")
    if runner.run(["cryptsetup", "isLuks", str(backup)], check=False).returncode != 0:
        problems.append(f"{backup} is not a LUKS header")
    verify_data = ["cryptsetup", "isLuks", "--header", str(backup), str(data)]
    if runner.run(verify_data, check=False).returncode != 0:
        problems.append(f"{backup} is not accepted as the header of {data}")
    return problems


def main(argv: list[str]) -> int:
    if len(argv) != 4 or argv[0] != "header-backup":
        sys.stderr.write("usage: python -m advisor.verify header-backup HEADER BACKUP DATA\n")
        return 2
    problems = header_backup(Path(argv[1]), Path(argv[2]), Path(argv[3]))
    for problem in problems:
        sys.stderr.write(f"advisor.verify: {problem}\n")
    if not problems:
        sys.stdout.write(f"header backup verified: {argv[2]}\n")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
