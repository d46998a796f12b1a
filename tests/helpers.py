"""Types shared by the tests and their fixtures (imported as ``helpers``)."""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from importlib import metadata
from pathlib import Path
from typing import Any

from advisor import runner
from advisor.install.disks import Disk
from advisor.models import InstallSpec, Member, Settings, luks_names
from advisor.pluginmanager import ENTRY_POINT_GROUP

#: A spec with fixed GUIDs and host id, so its plans come out the same every time.
PLAN_MEMBER = Member(
    number=1,
    disk="/dev/disk/by-id/virtio-disk01",
    disk_id="virtio-disk01",
    disk_serial="disk01",
    disk_size=8 * 1024**3,
    esp_partuuid="0b5e1f2c-3d4e-4f5a-8b6c-7d8e9f0a1b2c",
    data_partuuid="6a3d2c1b-5e4f-4a8b-9c0d-1e2f3a4b5c6d",
)
PLAN_SPEC = InstallSpec(
    backend="luks",
    settings=Settings(host_id="8f2a91c4", hostname="atlas", user="alice"),
    members=(PLAN_MEMBER,),
)
#: The second and third disks of a pool, with fixed GUIDs.
MORE_MEMBERS = (
    Member(
        number=2,
        disk="/dev/disk/by-id/virtio-disk02",
        disk_id="virtio-disk02",
        disk_serial="disk02",
        disk_size=8 * 1024**3,
        esp_partuuid="1c6f2a3d-4e5f-4a6b-9c7d-8e9f0a1b2c3d",
        data_partuuid="7b4e3d2c-6f5a-4b9c-8d1e-2f3a4b5c6d7e",
    ),
    Member(
        number=3,
        disk="/dev/disk/by-id/virtio-disk03",
        disk_id="virtio-disk03",
        disk_serial="disk03",
        disk_size=8 * 1024**3,
        esp_partuuid="2d7a3b4e-5f6a-4b7c-8d8e-9f0a1b2c3d4e",
        data_partuuid="8c5f4e3d-7a6b-4c0d-9e2f-3a4b5c6d7e8f",
    ),
)


def pool_spec(count: int, topology: str | None = None, **changes: Any) -> InstallSpec:
    """:data:`PLAN_SPEC` on ``count`` disks (a mirror for two, else ``topology``), its
    containers named as an install names them."""
    names = luks_names(PLAN_SPEC.settings.luks_name, count)
    members = tuple(
        replace(member, luks_name=names[index])
        for index, member in enumerate((PLAN_MEMBER, *MORE_MEMBERS)[:count])
    )
    if count > 1 and topology is None:
        topology = "mirror"
    return replace(PLAN_SPEC, members=members, topology=topology, **changes)


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


def with_first(spec: InstallSpec, **changes: Any) -> InstallSpec:
    """``spec`` with its first disk changed (``disk_serial=None``...)."""
    return replace(spec, members=(replace(spec.members[0], **changes), *spec.members[1:]))


def detached(spec: InstallSpec, headers: Sequence[str], backups: Sequence[str]) -> InstallSpec:
    """``spec`` for luks-detached: each disk's header (``settings.header``) and backup,
    in the order of the disks, set as an install sets them."""
    members = tuple(
        replace(member, header=header, header_backup=backup)
        for member, header, backup in zip(spec.members, headers, backups, strict=True)
    )
    settings = replace(spec.settings, header=tuple(headers))
    return replace(spec, backend="luks-detached", settings=settings, members=members)
