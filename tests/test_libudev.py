"""Loading libudev where ctypes cannot find it (NixOS), against the host's real libudev:
copied into the places advisor looks, or made unfindable, in this process and through the
real CLI."""

from __future__ import annotations

import ctypes.util
import functools
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import pyudev
from pyudev._ctypeslib import utils

from advisor.errors import UsageError
from advisor.install import libudev
from advisor.install.libudev import SONAME, candidate_paths, open_context


@functools.cache
def _host_libudev() -> Path:
    """The file this process's loader opened for libudev, as pyudev found it normally."""
    pyudev.Context()
    for line in Path("/proc/self/maps").read_text(encoding="utf-8").splitlines():
        path = line.split(maxsplit=5)[-1]
        if Path(path).name.startswith("libudev.so"):
            return Path(path)
    raise AssertionError("pyudev.Context() loaded no libudev.so")


def _sys_names(context: pyudev.Context) -> list[str]:
    return sorted(device.sys_name for device in context.list_devices(subsystem="block"))


def _block_devices() -> list[str]:
    """The block devices as sysfs lists them, without udev."""
    return sorted(path.name for path in Path("/sys/class/block").iterdir())


def _with_libudev(folder: Path) -> Path:
    """``folder`` holding ``libudev.so.1``: a link to the host's real one."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / SONAME).symlink_to(_host_libudev())
    return folder


def _nixos_udevadm(root: Path) -> Path:
    """A NixOS-like tree: ``sw/bin/udevadm`` links to ``store/systemd/bin/udevadm``,
    which has ``store/systemd/lib/libudev.so.1`` beside it. Returns the ``sw/bin`` folder."""
    store_bin = root / "store/systemd/bin"
    store_bin.mkdir(parents=True)
    (store_bin / "udevadm").write_text("#!/bin/sh\n", encoding="utf-8")
    (store_bin / "udevadm").chmod(0o755)
    _with_libudev(root / "store/systemd/lib")
    sw_bin = root / "sw/bin"
    sw_bin.mkdir(parents=True)
    (sw_bin / "udevadm").symlink_to(store_bin / "udevadm")
    return sw_bin


@pytest.fixture
def unfindable(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Callable[..., None]]:
    """libudev as pyudev sees it on NixOS: its ``find_library`` finds no "udev" (other
    names as before); no LD_LIBRARY_PATH, no udevadm on PATH, no fallback folder. Call it
    to set the fallback folders, PATH and LD_LIBRARY_PATH a test needs."""
    real = utils.find_library

    def no_udev(name: str) -> str | None:
        return None if name == "udev" else real(name)

    monkeypatch.setattr(utils, "find_library", no_udev)
    empty = tmp_path / "empty"
    empty.mkdir()

    def arrange(*fallback: Path, path: Path = empty, ld_library_path: str | None = None) -> None:
        monkeypatch.setattr(libudev, "FALLBACK_DIRS", tuple(str(f) for f in fallback))
        monkeypatch.setenv("PATH", str(path))
        if ld_library_path is None:
            monkeypatch.delenv("LD_LIBRARY_PATH", raising=False)
        else:
            monkeypatch.setenv("LD_LIBRARY_PATH", ld_library_path)

    arrange(empty)
    yield arrange
    # Put back only while the context was made: the test's stand-in is still in place.
    assert utils.find_library is no_udev


# --- where it looks -----------------------------------------------------------------------------


def test_candidates_are_ld_library_path_then_the_fallbacks_then_beside_udevadm(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sw_bin = _nixos_udevadm(tmp_path)
    monkeypatch.setattr(libudev, "FALLBACK_DIRS", ("/run/current-system/sw/lib", "/a"))
    paths = candidate_paths(
        {"LD_LIBRARY_PATH": "/a::/b:"}, str(sw_bin / "udevadm")
    )  # empty entries skipped, /a once
    assert paths == [
        Path("/a", SONAME),
        Path("/b", SONAME),
        Path("/run/current-system/sw/lib", SONAME),
        tmp_path / "store/systemd/lib" / SONAME,  # the link followed to the store path
    ]
    assert candidate_paths({}, None) == [
        Path("/run/current-system/sw/lib", SONAME),
        Path("/a", SONAME),
    ]


def test_nixos_keeps_libudev_in_the_system_profile() -> None:
    assert libudev.FALLBACK_DIRS == ("/run/current-system/sw/lib",)


# --- loading it ---------------------------------------------------------------------------------


def test_the_normal_load_is_used_when_it_works() -> None:
    context = open_context()
    assert context._libudev._name == ctypes.util.find_library("udev")
    assert _sys_names(context) == _sys_names(pyudev.Context())


def test_unfindable_libudev_is_found_in_a_fallback_folder(
    unfindable: Callable[..., None], tmp_path: Path
) -> None:
    with pytest.raises(ImportError, match="No library named udev"):
        pyudev.Context()  # the failure on NixOS, reproduced
    unfindable(tmp_path / "missing", _with_libudev(tmp_path / "sw-lib"))
    context = open_context()
    assert Path(context._libudev._name) == tmp_path / "sw-lib" / SONAME
    assert _sys_names(context) == _block_devices()


def test_unfindable_libudev_is_found_beside_udevadm(
    unfindable: Callable[..., None], tmp_path: Path
) -> None:
    unfindable(path=_nixos_udevadm(tmp_path / "nixos"))
    context = open_context()
    assert Path(context._libudev._name) == tmp_path / "nixos/store/systemd/lib" / SONAME
    assert _sys_names(context) == _block_devices()


def test_unfindable_libudev_is_found_through_ld_library_path(
    unfindable: Callable[..., None], tmp_path: Path
) -> None:
    folder = _with_libudev(tmp_path / "lib")
    unfindable(ld_library_path=f"{tmp_path / 'nothing'}:{folder}")
    assert Path(open_context()._libudev._name) == folder / SONAME


def test_a_libudev_that_does_not_load_is_passed_over(
    unfindable: Callable[..., None], tmp_path: Path
) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / SONAME).write_bytes(b"not a shared object")
    unfindable(broken, _with_libudev(tmp_path / "good"))
    assert Path(open_context()._libudev._name) == tmp_path / "good" / SONAME


def test_no_loadable_libudev_is_a_usage_error_naming_each_place_and_the_ways_out(
    unfindable: Callable[..., None], tmp_path: Path
) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / SONAME).write_bytes(b"not a shared object")
    unfindable(tmp_path / "missing", broken)
    with pytest.raises(UsageError) as raised:
        open_context()
    message = str(raised.value)
    assert raised.value.exit_status == 2
    assert "No library named udev" in message
    assert f"{tmp_path / 'missing' / SONAME}: not there" in message
    assert f"{broken / SONAME}: " in message
    assert "invalid ELF header" in message or "file too short" in message  # the loader's word
    for way_out in ("nix run", "nix-shell -p systemd", "LD_LIBRARY_PATH", "libudev1"):
        assert way_out in message


# --- through the CLI ----------------------------------------------------------------------------

#: ``python DRIVER FALLBACK_DIRS ARGS...``: the advisor CLI in a process whose ctypes finds
#: no libudev, as on NixOS, with advisor's fallback folders set (colon-separated).
DRIVER = textwrap.dedent(
    """
    import ctypes.util
    import sys

    real = ctypes.util.find_library
    ctypes.util.find_library = lambda name: None if name == "udev" else real(name)

    from advisor.cli import main
    from advisor.install import libudev

    libudev.FALLBACK_DIRS = tuple(folder for folder in sys.argv[1].split(":") if folder)
    sys.exit(main(sys.argv[2:]))
    """
)


def _advisor_without_libudev(
    tmp_path: Path, fallback: list[Path], *args: str
) -> subprocess.CompletedProcess[str]:
    """``advisor ARGS`` where ctypes finds no libudev, nothing is on PATH (no udevadm) and
    LD_LIBRARY_PATH is unset; advisor's fallback folders are ``fallback``."""
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER, encoding="utf-8")
    empty = tmp_path / "empty-bin"
    empty.mkdir(exist_ok=True)
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("ADVISOR_") and key != "LD_LIBRARY_PATH"
    }
    env["PATH"] = str(empty)
    return subprocess.run(
        [sys.executable, str(driver), ":".join(map(str, fallback)), *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    "args",
    [["disks"], ["disks", "--json"], ["plan", "--backend", "luks", "--disk", "virtio-disk01"]],
    ids=" ".join,
)
def test_advisor_without_libudev_exits_2_saying_what_to_do(tmp_path: Path, args: list[str]) -> None:
    result = _advisor_without_libudev(tmp_path, [tmp_path / "nowhere"], *args)
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    assert result.stderr.startswith("advisor: error: cannot load libudev (libudev.so.1)")
    text = " ".join(result.stderr.split())  # the console wraps long lines
    assert f"{tmp_path / 'nowhere' / SONAME}: not there" in text
    assert "nix run <the advisor's flake> -- disks" in text
    assert "nix-shell -p systemd" in text
    assert "set LD_LIBRARY_PATH to the folder that holds libudev.so.1" in text
    assert "Traceback" not in result.stderr


def test_advisor_disks_finds_libudev_in_a_fallback_folder(tmp_path: Path) -> None:
    folder = _with_libudev(tmp_path / "sw-lib")
    result = _advisor_without_libudev(tmp_path, [tmp_path / "nowhere", folder], "disks", "--json")
    assert result.returncode == 0, result.stderr
    normal = subprocess.run(
        [sys.executable, "-m", "advisor", "disks", "--json"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert json.loads(result.stdout) == json.loads(normal.stdout)
