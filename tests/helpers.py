"""Types shared by the tests and their fixtures (imported as ``helpers``)."""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from dataclasses import dataclass, replace
from importlib import metadata
from pathlib import Path
from typing import Any

from advisor import runner
from advisor.install.disks import Disk
from advisor.models import InstallSpec, Settings
from advisor.pluginmanager import ENTRY_POINT_GROUP

#: A spec with fixed GUIDs and host id, so its plans come out the same every time.
PLAN_SPEC = InstallSpec(
    backend="luks",
    settings=Settings(host_id="8f2a91c4", hostname="atlas", user="alice"),
    disk="/dev/disk/by-id/virtio-disk01",
    disk_id="virtio-disk01",
    disk_serial="disk01",
    disk_size=8 * 1024**3,
    esp_partuuid="0b5e1f2c-3d4e-4f5a-8b6c-7d8e9f0a1b2c",
    data_partuuid="6a3d2c1b-5e4f-4a8b-9c0d-1e2f3a4b5c6d",
)


def usable_disk(**changes: Any) -> Disk:
    """A whole disk as discovery reports it, with nothing on it and nothing using it."""
    disk = Disk(
        name="vdb",
        path="/dev/vdb",
        by_id=("/dev/disk/by-id/virtio-disk01",),
        by_path=(),
        serial="disk01",
        model=None,
        size_bytes=16 * 1024**3,
        rotational=False,
        transport="virtio",
        removable=False,
        partitions=(),
        mountpoints=(),
        swap=False,
        holders=(),
        zfs_pool=None,
        fstype=None,
        running_system=False,
        problems=(),
        warnings=(),
    )
    return replace(disk, **changes)


@dataclass(frozen=True)
class PluginDist:
    """A plugin distribution written to a folder: put ``path`` on sys.path to install it."""

    path: Path
    module: str
    entry_point: str

    def entry_points(self) -> list[metadata.EntryPoint]:
        return [
            ep
            for dist in metadata.distributions(path=[str(self.path)])
            for ep in dist.entry_points
            if ep.group == ENTRY_POINT_GROUP
        ]


@dataclass(frozen=True)
class Result:
    returncode: int
    stdout: str
    stderr: str


MakePluginDist = Callable[..., PluginDist]
RunCli = Callable[..., Result]


def assess_server(run_cli: RunCli, answers: Path, text: str) -> dict[str, Any]:
    """The JSON of ``advisor assess`` for the conservative-server profile, with ``text``
    written to ``answers`` and given as the answers file (a plugin's question answered)."""
    answers.write_text(text)
    result = run_cli(
        "assess", "--profile", "conservative-server", "--answers", str(answers), "--json"
    )
    assert result.returncode == 0, result.stderr
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def yescrypt_verifies(password: str, hashed: str) -> bool:
    """Whether ``hashed`` is a yescrypt hash of ``password``, checked by another route."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            import crypt  # deprecated since 3.11, gone in 3.13
    except ImportError:
        # mkpasswd re-hashes with the same setting (everything before the last "$").
        setting = hashed.rsplit("$", 1)[0]
        argv = ["mkpasswd", "--method=yescrypt", f"--salt={setting}", "--stdin"]
        return runner.run(argv, secret=password).stdout.strip() == hashed
    return bool(crypt.crypt(password, hashed) == hashed)
