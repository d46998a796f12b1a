"""The dataset table: what the plan, the configuration and the docs rely on holds for it."""

from __future__ import annotations

import re

import pytest
from helpers import PLAN_SPEC

from advisor.datasets import DATASETS, Dataset, mounted_at, rolled_back_datasets
from advisor.install.plan import build_plan
from advisor.models import Layout, LayoutMember, Settings
from advisor.nixos.generate import Contribution, core_fragments, merge, render_configuration
from advisor_luks import LuksBackend

#: The layout with a hypothetical fifth dataset: everything derived must pick it up.
SRV = Dataset(
    name="safe/srv",
    mountpoint="/srv",
    properties={"mountpoint": "legacy", "recordsize": "1M"},
    needed_for_boot=True,
    rolled_back=False,
    purpose="served files",
)
WITH_SRV = (*DATASETS, SRV)


def test_the_layout_is_erase_your_darlings() -> None:
    assert [(d.name, d.mountpoint) for d in DATASETS] == [
        ("local/root", "/"), ("local/nix", "/nix"), ("safe/home", "/home"),
        ("safe/persist", "/persist"),
    ]  # fmt: skip
    assert rolled_back_datasets() == (mounted_at("/"),)
    assert [d.mountpoint for d in DATASETS if d.needed_for_boot] == ["/persist"]
    assert mounted_at("/").blank_snapshot("rpool") == "rpool/local/root@blank"
    assert mounted_at("/nix").full_name("tank") == "tank/local/nix"


def test_every_dataset_is_a_legacy_mount_with_a_purpose() -> None:
    # NixOS mounts them (fileSystems, no zfsutil option); the pool mounts nothing itself.
    for dataset in DATASETS:
        assert dataset.properties["mountpoint"] == "legacy", dataset.name
        assert dataset.purpose and "\n" not in dataset.purpose and "|" not in dataset.purpose


def test_the_root_comes_first_and_names_and_mount_points_are_unique() -> None:
    # The plan mounts / first: the other mount points are directories in it.
    assert DATASETS[0].mountpoint == "/"
    assert len({d.step_id("dataset") for d in DATASETS}) == len(DATASETS)  # step ids
    assert len({d.mountpoint for d in DATASETS}) == len(DATASETS)
    for dataset in DATASETS:
        assert dataset.step_name is None  # the core's steps are named by the last part
        assert re.fullmatch(r"[a-z0-9]+(?:-[a-z0-9]+)*", dataset.short_name), dataset.name
        assert dataset.mountpoint.startswith("/") and dataset.mountpoint != "/boot"


def test_the_root_is_rolled_back_first_of_all() -> None:
    cache = Dataset("local/cache", "/var/cache", {"mountpoint": "legacy"}, False, True, "x")
    assert rolled_back_datasets((*DATASETS[1:], cache, DATASETS[0])) == (DATASETS[0], cache)
    unrolled = Dataset("local/root", "/", {"mountpoint": "legacy"}, False, False, "x")
    with pytest.raises(ValueError, match="root dataset local/root is not rolled back"):
        rolled_back_datasets((unrolled, cache))
    with pytest.raises(KeyError):
        rolled_back_datasets((cache,))  # no root at all
    with pytest.raises(KeyError):
        mounted_at("/srv")


def test_an_added_dataset_is_created_and_mounted_by_the_plan() -> None:
    plain = build_plan(PLAN_SPEC, LuksBackend(), generate_hardware_config=False)
    plan = build_plan(PLAN_SPEC, LuksBackend(), generate_hardware_config=False, datasets=WITH_SRV)
    expected = [step.id for step in plain.steps]
    expected.insert(expected.index("dataset-persist") + 1, "dataset-srv")
    expected.insert(expected.index("mount-persist") + 1, "mount-srv")
    assert [step.id for step in plan.steps] == expected
    create = plan.step("dataset-srv")
    assert create.title == "Create rpool/safe/srv"
    assert create.argv == (
        "zfs", "create", "-p", "-o", "mountpoint=legacy", "-o", "recordsize=1M", "rpool/safe/srv",
    )  # fmt: skip
    assert create.probe == ("zfs", "list", "-H", "-t", "filesystem", "-o", "name", "rpool/safe/srv")
    assert plan.step("mount-points").argv == (
        "mkdir", "-p", "/mnt/nix", "/mnt/home", "/mnt/persist", "/mnt/srv", "/mnt/boot",
    )  # fmt: skip
    mount = plan.step("mount-srv")
    assert mount.argv == ("mount", "-t", "zfs", "rpool/safe/srv", "/mnt/srv")
    assert mount.probe == ("mountpoint", "-q", "/mnt/srv") and mount.restore == (mount.argv,)
    # Nothing else changes.
    changed = ("dataset-srv", "mount-srv", "mount-points")
    assert [s for s in plan.steps if s.id not in changed] == [
        s for s in plain.steps if s.id not in changed
    ]


def a_layout() -> Layout:
    return Layout(
        backend="luks",
        settings=Settings(hostname="atlas", host_id="8f2a91c4", user="alice"),
        hashed_password="$y$j9T$salt$hash",
        members=(
            LayoutMember(
                1,
                data_device="/dev/disk/by-partuuid/6a3d2c1b-5e4f-4a8b-9c0d-1e2f3a4b5c6d",
                esp_device="/dev/disk/by-partuuid/0b5e1f2c-3d4e-4f5a-8b6c-7d8e9f0a1b2c",
            ),
        ),
    )


def test_the_layout_names_the_datasets_of_the_table() -> None:
    # For backends and plugins, which get the Layout in nix_fragments.
    layout = a_layout()
    assert (layout.root_dataset, layout.blank_snapshot) == (
        "rpool/local/root", "rpool/local/root@blank",
    )  # fmt: skip
    assert (layout.nix_dataset, layout.home_dataset, layout.persist_dataset) == (
        "rpool/local/nix", "rpool/safe/home", "rpool/safe/persist",
    )  # fmt: skip


def test_an_added_dataset_gets_a_file_system_in_the_configuration() -> None:
    layout = a_layout()
    fragments = core_fragments(layout, WITH_SRV)
    (file_systems,) = [f.settings for f in fragments if f.section == "File systems"]
    assert [path[1] for path in file_systems] == ["/", "/nix", "/home", "/persist", "/srv", "/boot"]
    assert file_systems[("fileSystems", "/srv")] == {
        "device": "rpool/safe/srv",
        "fsType": "zfs",
        "neededForBoot": True,
    }
    statements = merge([Contribution("core", fragment) for fragment in fragments])
    text = render_configuration(layout, statements)
    assert '  fileSystems."/srv" = {\n    device = "rpool/safe/srv";\n' in text
    # The added dataset is not rolled back: the root still is, and only it.
    assert text.count("zfs rollback") == 1 and "rpool/local/root@blank" in text
