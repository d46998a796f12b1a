"""Connecting to udev where ctypes cannot find libudev, as on NixOS; or saying what to do.

pyudev loads libudev when a ``pyudev.Context`` is made, not when it is imported
(``load_ctypes_library`` in pyudev/_ctypeslib/utils.py): it asks
``ctypes.util.find_library("udev")`` for a file name and opens that with ``ctypes.CDLL``;
no name raises ``ImportError: No library named udev``. ``find_library`` reads the
``ldconfig -p`` cache, then asks gcc or ld and objdump. NixOS has no ld.so cache, its
installer ISO no compiler, and nixpkgs' Python drops those look-ups (its patch "CPython:
Don't use ldconfig"), so a pip-installed pyudev fails there, as it does on other systems
without a library cache (pyudev issues #83 and #108). nixpkgs' own pyudev
replaces that ``find_library(name)`` call with its libudev's store path
(pkgs/development/python-modules/pyudev/default.nix, ``postPatch``), so the advisor from
its flake never needs what follows.

When the normal load fails, :func:`open_context` looks for ``libudev.so.1`` where NixOS
keeps it (:func:`candidate_paths`) and hands the first one that loads to pyudev the way
nixpkgs' patch does: its ``find_library`` answers ``"udev"`` with that path, only while
the context is made. When none loads, :class:`~advisor.errors.UsageError` says what is
missing and what to do.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from advisor import runner
from advisor.errors import UsageError

SONAME = "libudev.so.1"

#: Folders tried after LD_LIBRARY_PATH's. NixOS links the ``lib`` folder of every system
#: package into /run/current-system/sw (``environment.pathsToLink`` has "/lib":
#: nixos/modules/config/system-path.nix), and systemd, which holds libudev, is one.
FALLBACK_DIRS: tuple[str, ...] = ("/run/current-system/sw/lib",)


def candidate_paths(environ: Mapping[str, str], udevadm: str | None) -> list[Path]:
    """Where to look for ``libudev.so.1``, in order and each once: every folder of
    ``LD_LIBRARY_PATH`` in ``environ`` (the fix the error message offers), then
    :data:`FALLBACK_DIRS`, then the ``lib`` folder of the systemd that ``udevadm`` (its
    path on PATH, or None) comes from. nixpkgs builds systemd with one output for
    programs and libraries (``outputs = [ "out" "man" "dev" ]``,
    pkgs/os-specific/linux/systemd/default.nix), so the real path of ``udevadm``,
    ``<store path>/bin/udevadm``, has ``libudev.so.1`` in ``<store path>/lib``."""
    folders = [folder for folder in environ.get("LD_LIBRARY_PATH", "").split(":") if folder]
    folders.extend(FALLBACK_DIRS)
    if udevadm is not None:
        folders.append(str(Path(os.path.realpath(udevadm)).parent.parent / "lib"))
    paths: list[Path] = []
    for folder in folders:
        path = Path(folder) / SONAME
        if path not in paths:
            paths.append(path)
    return paths


def open_context() -> Any:
    """A new ``pyudev.Context``: loaded the way pyudev loads libudev, or else from the
    first of :func:`candidate_paths` that loads. Raises :class:`UsageError` when none
    does, naming each place tried and what to do."""
    import pyudev

    try:
        return pyudev.Context()
    except (ImportError, OSError) as error:  # no name from find_library / CDLL refused it
        first = str(error)
    tried: list[str] = []
    for path in candidate_paths(os.environ, runner.which("udevadm")):
        if not path.exists():
            tried.append(f"{path}: not there")
            continue
        try:
            return _context_from(path)
        except (ImportError, OSError) as error:  # the loader's reason (wrong glibc, ...)
            tried.append(f"{path}: {error}")
    raise UsageError(_missing_message(first, tried))


def _context_from(path: Path) -> Any:
    """A ``pyudev.Context`` on the libudev at ``path``: pyudev's ``find_library`` gives
    ``path`` for ``"udev"`` while the context is made, then is put back. Raises
    ImportError when this pyudev has no such call to answer, or OSError from the loader."""
    import pyudev

    try:
        from pyudev._ctypeslib import utils
    except ImportError:
        raise ImportError("this pyudev loads libudev in a way advisor cannot redirect") from None
    real: Callable[[str], str | None] | None = getattr(utils, "find_library", None)
    if real is None:
        raise ImportError("this pyudev loads libudev in a way advisor cannot redirect")
    lookup = real

    def find_library(name: str) -> str | None:
        return str(path) if name == "udev" else lookup(name)

    utils.find_library = find_library
    try:
        return pyudev.Context()
    finally:
        utils.find_library = real


def _missing_message(first: str, tried: Sequence[str]) -> str:
    """What the person reads when no libudev loads: pyudev's own error ``first``, each
    place ``tried`` with why it failed, and the ways out."""
    return (
        f"cannot load libudev ({SONAME}), which advisor needs to list disks: pyudev says "
        f"{first!r}; also tried {'; '.join(tried) or 'nothing else'}. On NixOS, run advisor "
        "from its flake, whose pyudev brings libudev (nix run <the advisor's flake> -- "
        "disks, and likewise plan and install), or in a shell with systemd "
        "(nix-shell -p systemd), or set LD_LIBRARY_PATH to the folder that holds "
        f"{SONAME} (such as /run/current-system/sw/lib). Elsewhere, install libudev "
        "(Debian and Ubuntu: libudev1; Fedora: systemd-libs)"
    )
