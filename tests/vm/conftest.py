"""Fixtures for the real-kernel tests: disk images and a shared folder under tmp_path.

The tests here boot a VM (see ``harness.py``) and are marked ``vm``; deselect them with
``pytest -m "not vm"``. They never skip: if the VM cannot be started (no kernel with ZFS, no
``vng``), they fail, naming ``scripts/install-vm-deps``, so a CI run (``CI=true``) without the
prerequisites goes red instead of silently green.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from harness import Disk, MakeDisk, VmUnavailable, create_disk, find_kernel, find_vng

# guest.py holds assertions the tests share (an install's end state, the next boot): let
# pytest show the values in them as it does in the tests' own.
pytest.register_assert_rewrite("guest")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "vm: boots a throw-away VM (QEMU TCG + virtme-ng) with dm-crypt and OpenZFS; slow; "
        "needs scripts/install-vm-deps",
    )


@pytest.fixture(autouse=True)
def _vm_available(request: pytest.FixtureRequest) -> None:
    """For ``vm`` tests: fail at once (never skip) with the fix if the VM cannot start here."""
    if request.node.get_closest_marker("vm") is None:
        return
    try:
        find_vng()
        find_kernel()
    except VmUnavailable as exc:
        ci = " (CI=true: the VM tests must run here)" if os.environ.get("CI") == "true" else ""
        pytest.fail(f"cannot start the test VM{ci}: {exc}", pytrace=False)


@pytest.fixture
def vm_kernel(_vm_available: None) -> Path:
    """The kernel the guest boots (``harness.find_kernel``)."""
    kernel: Path = find_kernel()
    return kernel


@pytest.fixture
def vm_rwdir(tmp_path: Path) -> Path:
    """A host folder the guest can write to (same path in the guest)."""
    path = tmp_path / "rw"
    path.mkdir()
    return path


@pytest.fixture
def make_disk(tmp_path: Path) -> MakeDisk:
    """Create sparse raw images under ``tmp_path/disks``: ``make_disk("2G", serial="disk01")``."""
    count = 0

    def make(size: int | str = "1G", *, serial: str | None = None) -> Disk:
        nonlocal count
        count += 1
        return create_disk(tmp_path / "disks" / f"disk{count}.img", size, serial=serial)

    return make
