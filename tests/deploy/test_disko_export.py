"""``disko.nix`` evaluated by disko's own code (the vendored disko and nixpkgs lib, through
``nixeval.eval_disko``) makes, item by item, what ``advisor install`` makes for the same
spec: partitions (and, run on image files, their places), LUKS arguments and mapper
names, pool members, topology and properties, datasets and their properties, @blank. A
deliberately wrong export makes the comparison fail."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import nixeval
import pytest
from disko_compare import differences, partition_tables, sgdisk_runs
from helpers import pool_spec

from advisor.datasets import Dataset
from advisor.deploy.disko import KEY_FILE, disko_devices, render_disko
from advisor.deploy.export import export_spec
from advisor.errors import PluginRefusal, UsageError
from advisor.install.plan import Plan, build_plan
from advisor.install.session import InstallRequest
from advisor.layoutfile import layout_datasets
from advisor.models import InstallSpec, Settings
from advisor.pluginmanager import LoadedPlugins, load_plugins

LAYOUT_FILE = """\
[datasets."safe/postgres"]
mountpoint = "/var/lib/postgresql"
properties = { recordsize = "16K" }

[datasets."local/cache"]
mountpoint = "/var/cache"
rollback = true

[datasets."safe/postgres/wal"]
mountpoint = "/var/lib/postgresql/wal"
"""


@pytest.fixture(scope="module")
def plugins() -> LoadedPlugins:
    return load_plugins(environ={})


@pytest.fixture(scope="module")
def layout_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("layout") / "layout.toml"
    path.write_text(LAYOUT_FILE, encoding="utf-8")
    return path


def _disks(count: int) -> list[str]:
    return [f"/dev/disk/by-id/nvme-Samsung_SSD_{n}" for n in range(1, count + 1)]


@dataclass(frozen=True)
class Variant:
    """A shape of the export: how many disks and their topology; ``full`` adds what the
    install lays out differently (swap, a layout file's datasets, TRIM, overrides)."""

    count: int
    topology: str | None = None
    full: bool = False


VARIANTS = {
    "one-disk": Variant(1),
    "mirror": Variant(2),
    "raidz1": Variant(3, "raidz1"),
    "one-disk-full": Variant(1, full=True),
    "mirror-full": Variant(2, full=True),
}


def _spec(plugins: LoadedPlugins, backend: str, variant: str, layout: Path) -> InstallSpec:
    """An exported spec (no discovery) of ``variant`` for ``backend``."""
    shape = VARIANTS[variant]
    settings = Settings(
        host_id="8f2a91c4",
        hostname="atlas",
        trim=shape.full,
        ssd=shape.full,
        layout=str(layout) if shape.full else None,
    )
    request = InstallRequest(
        backend=backend,
        settings=settings,
        topology=shape.topology,
        swap_size="8G" if shape.full else None,
        pool_options={"ashift": "13"} if shape.full else {},
        dataset_options={"compression": "lz4", "atime": "off"} if shape.full else {},
    )
    return export_spec(request, _disks(shape.count), plugins)


def _evaluate(
    spec: InstallSpec, plugins: LoadedPlugins, folder: Path
) -> tuple[Plan, Any, Sequence[Dataset]]:
    backend = plugins.backend(spec.backend)
    datasets = layout_datasets(spec.settings)
    path = folder / "disko.nix"
    path.write_text(render_disko(spec, backend, datasets), encoding="utf-8")
    plan = build_plan(spec, backend, generate_hardware_config=False, datasets=datasets)
    return plan, nixeval.eval_disko(path), datasets


CASES = [(b, v) for b in ("luks", "zfs-native") for v in VARIANTS]


@pytest.mark.parametrize(("backend", "variant"), CASES, ids=[f"{b}-{v}" for b, v in CASES])
def test_disko_makes_what_the_install_makes(
    plugins: LoadedPlugins, layout_file: Path, tmp_path: Path, backend: str, variant: str
) -> None:
    spec = _spec(plugins, backend, variant, layout_file)
    plan, evaluated, datasets = _evaluate(spec, plugins, tmp_path)
    assert differences(plan, evaluated, datasets) == []
    tree = evaluated["tree"]
    # What the comparison rests on is there (so it compared something).
    assert len(tree["disk"]) == len(spec.members)
    assert len(tree["zpool"][spec.settings.pool]["datasets"]) == len(datasets)
    if backend == "luks":
        assert evaluated["create"].count("cryptsetup -q luksFormat") == len(spec.members)
    else:
        # The key is read from the file at creation; the prompt is set back after it, and
        # after a second run's `zfs set -u ... keylocation=file://...` of the root too.
        create = evaluated["create"]
        prompt = create.rindex("zfs set keylocation=prompt rpool")
        assert create.index(f"-O keylocation=file://{KEY_FILE}") < prompt
        assert create.index(f"keylocation=file://{KEY_FILE} ", create.index("zfs set -u")) < prompt


@pytest.mark.parametrize("backend", ["luks", "zfs-native"])
def test_a_saved_plan_with_serials_exports_its_own_devices(
    plugins: LoadedPlugins, tmp_path: Path, backend: str
) -> None:
    # A plan saved on the target (disks with serials): zfs-native's pool is on the data
    # partitions by id there, and the export keeps exactly that.
    spec = replace(pool_spec(2), backend=backend)
    plan, evaluated, datasets = _evaluate(spec, plugins, tmp_path)
    assert differences(plan, evaluated, datasets) == []
    member = evaluated["tree"]["disk"]["disk1"]["content"]["partitions"]["data"]["content"]
    device = member["device"] if backend == "zfs-native" else member["content"]["device"]
    assert device == (
        "/dev/disk/by-id/virtio-disk01-part2"
        if backend == "zfs-native"
        else "/dev/mapper/cryptroot1"
    )


def _placed(
    plan: Plan, create: str, spec: InstallSpec, folder: Path
) -> Iterator[tuple[dict[int, str], dict[int, str]]]:
    for member in spec.members:
        install, disko = sgdisk_runs(plan, create, member)
        yield (
            partition_tables(install, member.disk, folder / f"{member.tag}-install.img"),
            partition_tables(disko, member.disk, folder / f"{member.tag}-disko.img"),
        )


@pytest.mark.parametrize("variant", ["one-disk", "mirror-full"])
def test_the_partitions_lie_where_the_install_puts_them(
    plugins: LoadedPlugins, layout_file: Path, tmp_path: Path, variant: str
) -> None:
    # sgdisk runs both sets of commands on image files: same sectors, types, GUIDs, names.
    spec = _spec(plugins, "luks", variant, layout_file)
    plan, evaluated, _ = _evaluate(spec, plugins, tmp_path)
    for install, disko in _placed(plan, evaluated["create"], spec, tmp_path):
        assert sorted(install) == ([1, 2, 3] if spec.swap_size else [1, 2])
        assert install == disko
        assert "First sector: 2048 " in install[1]


def test_a_moved_partition_is_seen(
    plugins: LoadedPlugins, layout_file: Path, tmp_path: Path
) -> None:
    spec = _spec(plugins, "luks", "one-disk-full", layout_file)
    plan, evaluated, _ = _evaluate(spec, plugins, tmp_path)
    create = evaluated["create"].replace("--new=2:9217M:-0", "--new=2:9218M:-0")
    assert create != evaluated["create"]
    ((install, disko),) = _placed(plan, create, spec, tmp_path)
    assert install[1] == disko[1]
    assert install[2] != disko[2]


#: One change each to a rendered disko.nix, and the item the comparison must name.
MUTATIONS = {
    "pool -O property": (
        'compression = "zstd";',
        'compression = "lz4";',
        "root file system properties",
    ),
    "pool -o property": ('ashift = "12";', 'ashift = "9";', "pool properties (-o)"),
    "dataset property": ('atime = "off";', 'atime = "on";', "dataset rpool/local/nix atime"),
    "partition type": ('type = "EF00";', 'type = "EF02";', "partition 1 type"),
    "partition name": ('label = "data";', 'label = "root";', "partition 2 name"),
    "LUKS sector size": ('"--sector-size" "4096"', '"--sector-size" "512"', "luksFormat arguments"),
    "mapper name": ('name = "cryptroot";', 'name = "cryptdata";', "mapper name"),
    "blank snapshot": (
        "|| zfs snapshot rpool/local/root@blank",
        "|| true",
        "@blank of rpool/local/root",
    ),
    "mount point": ('mountpoint = "/persist";', 'mountpoint = "/state";', "mount point"),
    "host id": ("/etc/hostid.advisor 8f2a91c4", "/etc/hostid.advisor 0badc0de", "host id"),
    # {esp}: the ESP's GUID in the export.
    "partition GUID": ("{esp}", "0f0f0f0f-0f0f-4f0f-8f0f-0f0f0f0f0f0f", "partition 1 guid"),
}
#: The same for zfs-native's key: created from the file, then the prompt set back.
NATIVE_MUTATIONS = {
    "prompt not set back": ("zfs set keylocation=prompt rpool", "true", "postCreateHook"),
    "key from the prompt": (
        'keylocation = "file:///tmp/secret.key";',
        'keylocation = "prompt";',
        "-O",
    ),
    "no encryption": ('encryption = "aes-256-gcm";', 'encryption = "off";', "encryption"),
}


MUTATION_CASES = [("luks", m, *MUTATIONS[m]) for m in MUTATIONS] + [
    ("zfs-native", m, *NATIVE_MUTATIONS[m]) for m in NATIVE_MUTATIONS
]


@pytest.mark.parametrize(
    ("backend_name", "mutation", "old", "new", "item"),
    MUTATION_CASES,
    ids=[case[1] for case in MUTATION_CASES],
)
def test_a_wrong_export_fails_the_comparison(
    plugins: LoadedPlugins,
    layout_file: Path,
    tmp_path: Path,
    backend_name: str,
    mutation: str,
    old: str,
    new: str,
    item: str,
) -> None:
    spec = _spec(plugins, backend_name, "one-disk", layout_file)
    backend = plugins.backend(backend_name)
    text = render_disko(spec, backend)
    old = old.format(esp=spec.members[0].esp_partuuid)
    assert text.count(old) >= 1, old
    path = tmp_path / "disko.nix"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    plan = build_plan(spec, backend, generate_hardware_config=False)
    found = differences(plan, nixeval.eval_disko(path), layout_datasets(spec.settings))
    assert found, mutation
    assert any(item in line for line in found), found


def test_luks_detached_is_refused_with_the_reason(plugins: LoadedPlugins) -> None:
    request = InstallRequest(backend="luks-detached", settings=Settings(host_id="8f2a91c4"))
    with pytest.raises(UsageError, match=r"disko issue 962.*formats the data partition again"):
        export_spec(request, _disks(1), plugins)


def test_a_variant_with_steps_disko_cannot_run_is_refused(plugins: LoadedPlugins) -> None:
    # luks-tries (tests/plugins) adds a LUKS2 label step that disko's luks type lacks.
    backend = plugins.backend("luks-tries")
    spec = replace(pool_spec(1), backend="luks-tries")
    with pytest.raises(PluginRefusal, match="luks-label"):
        disko_devices(spec, backend)


def test_a_backend_with_its_own_steps_and_no_disko_content_is_refused(
    plugins: LoadedPlugins,
) -> None:
    # The default Backend.disko_content refuses a backend that prepares disks itself: a
    # container left out would be an unencrypted pool.
    from advisor.models import Backend
    from advisor_luks import LuksBackend

    class Own(LuksBackend):
        name = "own"
        disko_content = Backend.disko_content

    with pytest.raises(PluginRefusal, match="luks-format, luks-open"):
        disko_devices(replace(pool_spec(1), backend="own"), Own())


def test_the_swap_must_keep_the_data_partition_on_a_mib(plugins: LoadedPlugins) -> None:
    request = InstallRequest(
        backend="luks", settings=Settings(host_id="8f2a91c4"), swap_size="1536K"
    )
    spec = export_spec(request, _disks(1), plugins)
    with pytest.raises(UsageError, match="whole MiB"):
        disko_devices(spec, plugins.backend("luks"))


def test_the_layout_files_datasets_are_there_by_default(
    plugins: LoadedPlugins, layout_file: Path
) -> None:
    spec = _spec(plugins, "zfs-native", "one-disk-full", layout_file)
    devices: Any = disko_devices(spec, plugins.backend("zfs-native"))
    names = set(devices["zpool"]["rpool"]["datasets"])
    assert {"safe/postgres", "safe/postgres/wal", "local/cache", "local/root"} <= names
    assert "postCreateHook" in devices["zpool"]["rpool"]["datasets"]["local/cache"]
