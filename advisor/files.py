"""Writing files so that a reader never sees half of one: temporary file, fsync, rename."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable
from pathlib import Path


def write_atomically(
    path: Path, data: bytes, mode: int = 0o644, *, sync_directory: bool = True
) -> None:
    """Replace ``path`` with ``data`` in one step, with permissions exactly ``mode``.

    The temporary file is created in the same directory (so the rename stays on one file
    system) with ``mode`` from the start: a secret is never readable by others, not even
    briefly. Parent directories must exist. ``sync_directory=False`` leaves the flush of
    the directory entry to the caller, which writes many files to one directory and
    flushes it once (:func:`sync_directories`).
    """
    # os.urandom(8).hex() is secrets.token_hex(8), without importing secrets and hmac.
    tmp = path.parent / f".{path.name}.{os.urandom(8).hex()}.tmp"
    # O_EXCL|O_NOFOLLOW: never write through a file or symlink someone planted there.
    flags = os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(tmp, flags, mode)
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), mode)  # the create mode passed through the umask
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        tmp.replace(path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise
    if sync_directory:
        sync_directories([path.parent])


def sync_directories(directories: Iterable[Path]) -> None:
    """Flush the entries of the renames in each of ``directories``, once each."""
    for directory in dict.fromkeys(directories):
        # The data is in place; failing to flush the directory entry does not undo that.
        with contextlib.suppress(OSError):
            _fsync_directory(directory)


def make_private_dirs(directory: Path) -> None:
    """Create ``directory`` and missing parents with mode 0700 (existing ones untouched)."""
    missing: list[Path] = []
    current = directory
    while not current.exists():
        missing.append(current)
        if current.parent == current:
            break
        current = current.parent
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=0o700)
        except FileExistsError:
            # Someone else made it meanwhile; it is not ours to chmod.
            if not folder.is_dir():
                raise
            continue
        folder.chmod(0o700)  # mkdir's mode passes through the umask


def _fsync_directory(directory: Path) -> None:
    """Flush the directory entry of a rename, so the new file survives a power cut."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
