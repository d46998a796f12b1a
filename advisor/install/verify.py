"""Checks (and the header backup's refresh) that run as plan steps, or as their probes
(``advisor finish``'s unmount and export): ``python -m advisor.install.verify CHECK ARGS``.

They are separate commands (not code inside the engine) so that the dry-run script shows
them and a reviewer can run them by hand. A passphrase comes on stdin, as the executor
feeds every step's secret, and goes on to cryptsetup (or the command checked) on its
stdin only.

- ``header-backup HEADER BACKUP DATA``: the backup is sound (:func:`header_backup`);
- ``refresh-header-backup HEADER BACKUP DATA``: take a new backup beside the old one,
  check it, and only then put it in the old one's place (:func:`refresh_header_backup`);
- ``refused (--exit N | --message TEXT) -- COMMAND...``: exit 0 when COMMAND refuses the
  passphrase on stdin in the way that means a wrong key (:func:`refused`), as a step or
  a probe that says "the old passphrase no longer opens it";
- ``token TYPE HEADER``: the LUKS2 header has a token of that type (``systemd-tpm2``),
  the probe of an unlock method's enrollment (:func:`token`);
- ``settled PATH...``: udev has made these device links, the install's ``settle`` step
  (:func:`settled`).
"""

from __future__ import annotations

import hashlib
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from advisor import runner
from advisor.luksmeta import token_types
from advisor.mounts import current_mounts

USAGE = (
    "usage: printf '%s' PASS | python -m advisor.install.verify header-backup HEADER BACKUP DATA\n"
    "       printf '%s' PASS | python -m advisor.install.verify refresh-header-backup "
    "HEADER BACKUP DATA\n"
    "       printf '%s' PASS | python -m advisor.install.verify refused "
    "(--exit N | --message TEXT) -- COMMAND...\n"
    "       python -m advisor.install.verify unmounted PATH\n"
    "       python -m advisor.install.verify exported POOL\n"
    "       python -m advisor.install.verify token TYPE HEADER\n"
    "       python -m advisor.install.verify settled PATH...\n"
)
#: How often ``udevadm settle`` is asked, and how long the links then get to appear.
SETTLE_TRIES = 3
LINKS_TIMEOUT = 60.0
#: Beside the backup, the new one while it is taken and checked.
NEW_SUFFIX = ".new"


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
    (a bind or a nested mount counts too)."""
    prefix = str(path).rstrip("/") + "/"
    below = [
        entry.mountpoint
        for entry in current_mounts()
        if entry.mountpoint == str(path) or entry.mountpoint.startswith(prefix)
    ]
    return [f"{target} is still mounted" for target in below]


def exported(pool: str) -> list[str]:
    """Problems with ``pool`` being exported: it must not be imported on this machine."""
    if runner.run(["zpool", "list", "-H", "-o", "name", pool], check=False).returncode == 0:
        return [f"the pool {pool} is still imported"]
    return []


def refresh_header_backup(header: Path, backup: Path, data: Path, passphrase: str) -> list[str]:
    """Replace ``backup`` by a new backup of ``header`` (after a key change the old one
    still holds the old key slots); problems, empty when it is done.

    The new backup is taken beside the old one (``BACKUP.new``, on the same medium; a
    stale one from an interrupted run is removed first), checked as
    :func:`header_backup` checks it, with ``passphrase`` (the new one), flushed to the
    medium, and only then renamed over the old one: at every moment one sound backup is
    there. The old backup's bytes may stay on the medium's free blocks until they are
    reused (docs/rekey.md)."""
    new = backup.with_name(backup.name + NEW_SUFFIX)
    new.unlink(missing_ok=True)
    take = ["luksHeaderBackup", str(header), "--header-backup-file", str(new)]
    if _cryptsetup(take) != 0:
        new.unlink(missing_ok=True)
        return [f"cryptsetup luksHeaderBackup {header} failed"]
    problems = header_backup(header, new, data, passphrase)
    if problems:
        new.unlink(missing_ok=True)
        return problems
    _fsync(new)
    new.replace(backup)
    _fsync(backup.parent)  # the rename itself
    return []


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def refused(
    command: Sequence[str], passphrase: str, *, status: int | None, message: str | None
) -> str | None:
    """``None`` when ``command``, ``passphrase`` on its stdin, refuses it as a wrong key:
    it exits with ``status`` (``cryptsetup`` exits 2 for "No key available with this
    passphrase"), or fails with ``message`` in its error output (``zfs load-key``:
    "Incorrect key"). Otherwise why not: it accepted the passphrase, or failed for
    another reason (a missing device is no proof that the key is gone)."""
    try:
        result = runner.run(command, secret=passphrase, check=False)
    except runner.CommandError as error:
        return str(error)
    if result.returncode == 0:
        return f"{command[0]} accepted the passphrase: it still opens"
    if status is not None and result.returncode == status:
        return None
    if message is not None and message in result.stderr:
        return None
    tail = " ".join(result.stderr.strip().splitlines()[-2:])
    return f"{command[0]} failed with status {result.returncode}, not as for a wrong key: {tail}"


def token(kind: str, header: Path) -> list[str]:
    """Problems with ``header`` holding a token of type ``kind``: none when it does."""
    try:
        result = runner.run(["cryptsetup", "luksDump", "--dump-json-metadata", str(header)])
        found = token_types(result.stdout)
    except (runner.CommandError, ValueError) as error:
        return [f"cannot read the LUKS2 tokens of {header}: {error}"]
    if kind not in found:
        return [f"{header} has no {kind} token (tokens: {', '.join(found) or 'none'})"]
    return []


def settled(paths: Sequence[Path], timeout: float = LINKS_TIMEOUT) -> list[str]:
    """Problems with the device links ``paths`` being there: udev is asked to finish
    its queue (``udevadm settle``), again when it fails (a busy or restarting udevd can
    drop the connection: "Failed to wait for daemon to reply: Broken pipe"), then each
    link gets ``timeout`` seconds to appear. What counts is the links, which the next
    steps name, not settle's exit status."""
    failure = ""
    for attempt in range(SETTLE_TRIES):
        try:
            result = runner.run(["udevadm", "settle", "--timeout=120"], check=False)
        except runner.CommandError as error:  # not installed, or hung
            failure = str(error)
            break
        if result.returncode == 0:
            failure = ""
            break
        failure = "udevadm settle: " + (result.stderr.strip().splitlines() or ["failed"])[-1]
        time.sleep(1 + attempt)
    deadline = time.monotonic() + timeout
    missing = [path for path in paths if not path.exists()]
    while missing and time.monotonic() < deadline:
        time.sleep(0.2)
        missing = [path for path in missing if not path.exists()]
    problems = [f"{path} did not appear within {timeout:g} s" for path in missing]
    return [*problems, failure] if problems and failure else problems


def _cryptsetup(arguments: list[str], secret: str | None = None) -> int:
    """The exit status of ``cryptsetup ARGUMENTS``, ``secret`` (if any) on its stdin."""
    try:
        return runner.run(["cryptsetup", *arguments], secret=secret, check=False).returncode
    except runner.CommandError as error:  # not installed, or hung: the check fails
        sys.stderr.write(f"advisor.install.verify: {error}\n")
        return 1


def main(argv: list[str]) -> int:
    """Run the check ``argv`` names, the passphrase read from stdin exactly as given (the
    install feeds it with no newline, as luksFormat took it; ``refused`` passes it on to
    its command as it came). Returns the exit status: 0 sound, 1 a problem, 2 a wrong
    call."""
    if len(argv) >= 2 and argv[0] == "settled":
        links = [Path(path) for path in argv[1:]]
        return _report(settled(links), f"{len(links)} device links are there")
    if len(argv) == 3 and argv[0] == "token":
        return _report(token(argv[1], Path(argv[2])), f"{argv[2]}: a {argv[1]} token")
    if len(argv) == 2 and argv[0] in ("unmounted", "exported"):
        problems = unmounted(Path(argv[1])) if argv[0] == "unmounted" else exported(argv[1])
        return _report(problems, f"{argv[1]}: {argv[0]}")
    check = argv[0] if argv else ""
    paths = check in ("header-backup", "refresh-header-backup") and len(argv) == 4
    command = _refused_call(argv) if check == "refused" else None
    if not paths and command is None:
        sys.stderr.write(USAGE)
        return 2
    try:
        passphrase = sys.stdin.buffer.read().decode("utf-8")
    except UnicodeDecodeError:
        passphrase = ""  # the installer sends UTF-8: this is not its passphrase
    if not passphrase:
        sys.stderr.write("advisor.install.verify: no (UTF-8) passphrase on stdin\n" + USAGE)
        return 2
    if command is not None:
        words, status, text = command
        problem = refused(words, passphrase, status=status, message=text)
        problems = [] if problem is None else [problem]
        done = f"the passphrase is refused: {words[0]}"
    else:
        header, backup, data = Path(argv[1]), Path(argv[2]), Path(argv[3])
        if check == "header-backup":
            problems = header_backup(header, backup, data, passphrase)
            done = f"header backup verified: {backup}"
        else:
            problems = refresh_header_backup(header, backup, data, passphrase)
            done = f"header backup taken anew and verified: {backup}"
    return _report(problems, done)


def _report(problems: list[str], verified: str) -> int:
    """Print ``problems`` (or ``verified`` when there is none); the exit status."""
    for problem in problems:
        sys.stderr.write(f"advisor.install.verify: {problem}\n")
    if not problems:
        sys.stdout.write(f"{verified}\n")
    return 1 if problems else 0


def _refused_call(argv: list[str]) -> tuple[list[str], int | None, str | None] | None:
    """The command, exit status and message of ``refused (--exit N | --message TEXT) --
    COMMAND...``, or ``None`` for another shape."""
    if len(argv) < 5 or argv[3] != "--" or argv[1] not in ("--exit", "--message"):
        return None
    if argv[1] == "--exit":
        if not argv[2].isdigit():
            return None
        return argv[4:], int(argv[2]), None
    return (argv[4:], None, argv[2]) if argv[2] else None


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
