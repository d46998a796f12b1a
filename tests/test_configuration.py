"""Generated NixOS configuration: content evaluated by real Nix, golden files, merging."""

from __future__ import annotations

import os
import subprocess
from dataclasses import replace
from pathlib import Path
from typing import Any

import nixeval
import pytest

from advisor.errors import PluginError, PluginRefusal
from advisor.models import (
    Backend,
    Layout,
    LayoutMember,
    NixFragment,
    RemoteUnlock,
    Settings,
    luks_names,
)
from advisor.nixos.generate import (
    ConfigConflict,
    Contribution,
    core_fragments,
    generate,
    merge,
)
from advisor.pluginmanager import load_plugins
from advisor_luks import LuksBackend
from advisor_luks_detached import INITRD_HEADER, LuksDetachedBackend
from advisor_unlock import Tpm2Unlock
from advisor_zfs_native import ZfsNativeBackend

GOLDEN = Path(__file__).resolve().parent / "golden"
BACKENDS: dict[str, Backend] = {
    "luks": LuksBackend(),
    "zfs-native": ZfsNativeBackend(),
    "luks-detached": LuksDetachedBackend(),
}
HASH = "$y$j9T$7cM0Q2yWm/Abc1defGhij.$0123456789abcdefghijklmnopqrstuvwxyzABCD"


def golden_layout(backend: str, initrd: str) -> Layout:
    """Fixed inputs for the golden files: one realistic machine per backend."""
    base = Layout(
        backend=backend,
        settings=Settings(hostname="atlas", host_id="8f2a91c4", user="alice", initrd=initrd),
        hashed_password=HASH,
        members=(LayoutMember(1, DATA_DEVICE, ESP_DEVICE),),
    )
    if backend == "luks":
        return replace(base, settings=replace(base.settings, ssd=True))
    if backend == "zfs-native":
        return replace(
            base,
            settings=replace(base.settings, trim=True, ssd=True),
            members=(
                LayoutMember(
                    1,
                    "/dev/disk/by-id/nvme-Samsung_SSD_980_1TB_S64DNX0R123456A-part2",
                    ESP_DEVICE,
                ),
            ),
        )
    return with_header(base, "/dev/disk/by-partuuid/9e8d7c6b-5a4f-4e3d-8c2b-1a0f9e8d7c6b")


DATA_DEVICE = "/dev/disk/by-partuuid/6a3d2c1b-5e4f-4a8b-9c0d-1e2f3a4b5c6d"
ESP_DEVICE = "/dev/disk/by-partuuid/0b5e1f2c-3d4e-4f5a-8b6c-7d8e9f0a1b2c"


def with_header(layout: Layout, *headers: str) -> Layout:
    """``layout`` with a detached header for each disk, as ``advisor config`` sets it."""
    return replace(
        layout,
        settings=replace(layout.settings, header=headers),
        members=tuple(
            replace(member, header=header)
            for member, header in zip(layout.members, headers, strict=True)
        ),
    )


def data_device(layout: Layout) -> str:
    return layout.members[0].data_device


def remote_sops_layout() -> Layout:
    return replace(
        golden_layout("luks", "systemd"),
        settings=replace(golden_layout("luks", "systemd").settings, trim=True, sops=True),
        remote_unlock=RemoteUnlock(
            ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExampleKey alice@laptop",)
        ),
    )


def backup_layout(backend: str, target: str, trust: str) -> Layout:
    """The golden layout of ``backend`` backed up to ``target``."""
    layout = golden_layout(backend, "systemd")
    settings = replace(layout.settings, backup_target=target, backup_trust=trust)
    return replace(layout, settings=settings)


VARIANTS: dict[str, Layout] = {
    f"{backend}-{initrd}": golden_layout(backend, initrd)
    for backend in BACKENDS
    for initrd in ("systemd", "scripted")
}
VARIANTS["luks-systemd-remote-sops"] = remote_sops_layout()
VARIANTS["zfs-native-systemd-backup"] = backup_layout(
    "zfs-native", "backup@vault.example:tank/atlas", "untrusted"
)
VARIANTS["luks-systemd-backup-trusted"] = backup_layout("luks", "backup/atlas", "trusted")
VARIANTS["luks-systemd-tpm2"] = replace(
    golden_layout("luks", "systemd"),
    settings=replace(golden_layout("luks", "systemd").settings, unlock="tpm2"),
    unlock_options=("tpm2-device=auto",),
)


def write_variant(name: str, folder: Path) -> dict[str, Path]:
    layout = VARIANTS[name]
    method = Tpm2Unlock() if layout.settings.unlock == "tpm2" else None
    files = generate(layout, BACKENDS[layout.backend], method=method).files
    paths = {}
    for file_name, text in files.items():
        paths[file_name] = folder / file_name
        paths[file_name].write_text(text, encoding="utf-8")
    return paths


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Any, Any, Path]]:
    """Every variant written, parsed and evaluated once: (config, flake, folder)."""
    results = {}
    for name in VARIANTS:
        folder = tmp_path_factory.mktemp(name)
        paths = write_variant(name, folder)
        for path in paths.values():
            if path.suffix == ".nix":
                nixeval.parse(path)
        results[name] = (
            nixeval.eval_config(paths["configuration.nix"]),
            nixeval.eval_flake(paths["flake.nix"]),
            folder,
        )
    return results


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_golden_files(name: str, tmp_path: Path) -> None:
    """The generated files, as reviewed in tests/golden/ (ADVISOR_UPDATE_GOLDEN=1 rewrites)."""
    paths = write_variant(name, tmp_path)
    for file_name, path in paths.items():
        golden = GOLDEN / name / file_name
        if os.environ.get("ADVISOR_UPDATE_GOLDEN") == "1":
            golden.parent.mkdir(parents=True, exist_ok=True)
            golden.write_text(path.read_text(encoding="utf-8"), encoding="utf-8")
        assert path.read_text(encoding="utf-8") == golden.read_text(encoding="utf-8"), (
            f"{golden} is stale: review the diff, then rerun with ADVISOR_UPDATE_GOLDEN=1"
        )


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_shared_content(name: str, evaluated: dict[str, tuple[Any, Any, Path]]) -> None:
    cfg, flake, folder = evaluated[name]
    layout = VARIANTS[name]
    boot = cfg["boot"]
    assert cfg["imports"] == [str(folder / "hardware-configuration.nix")]
    assert boot["loader"]["systemd-boot"] == {"enable": True, "editor": False}
    assert boot["loader"]["efi"]["canTouchEfiVariables"] is True
    assert cfg["fileSystems"]["/boot"] == {
        "device": layout.members[0].esp_device,
        "fsType": "vfat",
        "options": ["umask=0077"],
    }
    assert boot["supportedFilesystems"] == ["zfs"]
    assert cfg["networking"] == {"hostId": "8f2a91c4", "hostName": "atlas"}
    assert boot["zfs"]["forceImportRoot"] is False
    assert cfg["services"]["zfs"] == {
        "autoScrub": {"enable": True},
        "trim": {"enable": layout.settings.trim},
    }
    for mount, dataset in (("/", "local/root"), ("/nix", "local/nix"), ("/home", "safe/home")):
        assert cfg["fileSystems"][mount] == {"device": f"rpool/{dataset}", "fsType": "zfs"}
    assert cfg["fileSystems"]["/persist"] == {
        "device": "rpool/safe/persist",
        "fsType": "zfs",
        "neededForBoot": True,
    }
    persistence = cfg["environment"]["persistence"]["/persist"]
    assert {"/etc/nixos", "/var/log", "/var/lib/nixos"} <= {
        d for d in persistence["directories"] if isinstance(d, str)
    }
    assert persistence["files"] == ["/etc/machine-id"]
    assert cfg["services"]["openssh"]["hostKeys"] == [
        {"path": "/persist/etc/ssh/ssh_host_ed25519_key", "type": "ed25519"}
    ]
    assert cfg["users"]["mutableUsers"] is False
    assert cfg["users"]["users"]["alice"] == {
        "isNormalUser": True,
        "extraGroups": ["wheel"],
        "initialHashedPassword": HASH,
    }
    assert cfg["system"]["stateVersion"] == "26.05"
    assert flake["inputs"]["nixpkgs"]["url"] == "github:NixOS/nixpkgs/nixos-26.05"
    assert flake["inputs"]["impermanence"]["url"] == "github:nix-community/impermanence"
    modules = flake["nixosConfigurations"]["atlas"]["modules"]
    assert modules[:2] == [str(folder / "configuration.nix"), "impermanence-module"]


@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_rollback_systemd_initrd(backend: str, evaluated: dict[str, Any]) -> None:
    cfg = evaluated[f"{backend}-systemd"][0]
    initrd = cfg["boot"]["initrd"]
    assert initrd["systemd"]["enable"] is True
    assert "postResumeCommands" not in initrd
    assert initrd["systemd"]["services"]["rollback"] == {
        "description": "Roll back the root dataset to its blank snapshot",
        "wantedBy": ["initrd.target"],
        "after": ["zfs-import-rpool.service"],
        "before": ["sysroot.mount"],
        "path": [{"_package": "zfs"}],
        "unitConfig": {"DefaultDependencies": "no"},
        "serviceConfig": {"Type": "oneshot"},
        "script": "zfs rollback -r rpool/local/root@blank",
    }


@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_rollback_scripted_initrd(backend: str, evaluated: dict[str, Any]) -> None:
    cfg = evaluated[f"{backend}-scripted"][0]
    initrd = cfg["boot"]["initrd"]
    assert initrd["systemd"] == {"enable": False}  # no rollback unit, no import ordering
    assert initrd["postResumeCommands"] == {
        "_order": 1500,  # lib.mkAfter: after the pool import
        "content": "zfs rollback -r rpool/local/root@blank\n",
    }


@pytest.mark.parametrize("initrd", ["systemd", "scripted"])
def test_luks(initrd: str, evaluated: dict[str, Any]) -> None:
    cfg = evaluated[f"luks-{initrd}"][0]
    layout = VARIANTS[f"luks-{initrd}"]
    assert cfg["boot"]["initrd"]["luks"]["devices"] == {
        "cryptroot": {"device": data_device(layout), "bypassWorkqueues": True}
    }  # no allowDiscards: TRIM was not accepted
    assert cfg["boot"]["zfs"]["devNodes"] == "/dev/mapper"
    assert "requestEncryptionCredentials" not in cfg["boot"]["zfs"]
    services = cfg["boot"]["initrd"]["systemd"].get("services", {})
    if initrd == "systemd":
        assert services["zfs-import-rpool"] == {
            "after": ["cryptsetup.target"],
            "wants": ["cryptsetup.target"],
        }


def test_luks_tpm2(evaluated: dict[str, Any]) -> None:
    """The TPM2 unlocks in the systemd initrd: systemd-cryptsetup reads the token when the
    crypttab line says tpm2-device=auto (crypttab(5)), and the initrd has TPM2 support."""
    cfg = evaluated["luks-systemd-tpm2"][0]
    layout = VARIANTS["luks-systemd-tpm2"]
    assert cfg["boot"]["initrd"]["luks"]["devices"]["cryptroot"] == {
        "device": data_device(layout),
        "bypassWorkqueues": True,
        "crypttabExtraOpts": ["tpm2-device=auto"],
    }
    assert cfg["boot"]["initrd"]["systemd"]["tpm2"] == {"enable": True}
    assert cfg["boot"]["initrd"]["systemd"]["enable"] is True


@pytest.mark.parametrize("initrd", ["systemd", "scripted"])
def test_luks_detached(initrd: str, evaluated: dict[str, Any]) -> None:
    cfg = evaluated[f"luks-detached-{initrd}"][0]
    layout = VARIANTS[f"luks-detached-{initrd}"]
    assert cfg["boot"]["initrd"]["luks"]["devices"]["cryptroot"] == {
        "device": data_device(layout),
        "header": layout.settings.header[0],
    }


def test_detached_header_file_goes_into_the_initrd(tmp_path: Path) -> None:
    layout = with_header(VARIANTS["luks-detached-systemd"], "/persist/etc/luks/header.img")
    path = tmp_path / "configuration.nix"
    path.write_text(generate(layout, BACKENDS["luks-detached"]).files["configuration.nix"])
    cfg = nixeval.eval_config(path)
    assert cfg["boot"]["initrd"]["luks"]["devices"]["cryptroot"]["header"] == INITRD_HEADER
    assert cfg["boot"]["initrd"]["secrets"] == {INITRD_HEADER: "/persist/etc/luks/header.img"}


@pytest.mark.parametrize("initrd", ["systemd", "scripted"])
def test_zfs_native(initrd: str, evaluated: dict[str, Any]) -> None:
    cfg = evaluated[f"zfs-native-{initrd}"][0]
    assert cfg["boot"]["zfs"]["requestEncryptionCredentials"] == ["rpool"]
    # The disk has a serial: the pool is found by id.
    assert cfg["boot"]["zfs"]["devNodes"] == "/dev/disk/by-id"
    assert "luks" not in cfg["boot"]["initrd"]


def test_zfs_native_without_serial_imports_by_partuuid() -> None:
    layout = replace(
        VARIANTS["zfs-native-systemd"],
        members=(LayoutMember(1, "/dev/disk/by-partuuid/6a3d2c1b-aaaa", ESP_DEVICE),),
    )
    text = generate(layout, BACKENDS["zfs-native"]).files["configuration.nix"]
    assert 'boot.zfs.devNodes = "/dev/disk/by-partuuid";' in text


def test_trim_turns_on_discards_for_luks(tmp_path: Path) -> None:
    layout = replace(
        VARIANTS["luks-systemd"],
        settings=replace(VARIANTS["luks-systemd"].settings, trim=True, ssd=False),
    )
    path = tmp_path / "configuration.nix"
    path.write_text(generate(layout, BACKENDS["luks"]).files["configuration.nix"])
    device = nixeval.eval_config(path)["boot"]["initrd"]["luks"]["devices"]["cryptroot"]
    assert device == {"device": data_device(layout), "allowDiscards": True}


def test_remote_unlock_and_sops(evaluated: dict[str, Any]) -> None:
    cfg, flake, _ = evaluated["luks-systemd-remote-sops"]
    initrd = cfg["boot"]["initrd"]
    assert initrd["network"]["ssh"] == {
        "enable": True,
        "port": 2222,
        "hostKeys": ["/persist/etc/secrets/initrd/ssh_host_ed25519_key"],
        "authorizedKeys": ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExampleKey alice@laptop"],
    }
    assert initrd["systemd"]["network"]["enable"] is True
    assert initrd["systemd"]["users"]["root"]["shell"] == "/bin/systemd-tty-ask-password-agent"
    assert cfg["sops"]["age"]["keyFile"] == "/persist/var/lib/sops-nix/key.txt"
    assert flake["inputs"]["sops-nix"]["inputs"]["nixpkgs"]["follows"] == "nixpkgs"
    assert flake["nixosConfigurations"]["atlas"]["modules"][-1] == "sops-module"


def test_remote_unlock_scripted_initrd_uses_kernel_dhcp(tmp_path: Path) -> None:
    layout = replace(
        remote_sops_layout(), settings=replace(remote_sops_layout().settings, initrd="scripted")
    )
    path = tmp_path / "configuration.nix"
    path.write_text(generate(layout, BACKENDS["luks"]).files["configuration.nix"])
    cfg = nixeval.eval_config(path)
    assert cfg["boot"]["initrd"]["network"]["enable"] is True
    assert cfg["boot"]["kernelParams"] == ["ip=dhcp"]


# Merging


def frag(section: str, **settings: object) -> NixFragment:
    return NixFragment(section, {tuple(k.split("__")): v for k, v in settings.items()})


def test_merge_concatenates_lists_and_merges_sets() -> None:
    statements = merge(
        [
            Contribution("core", frag("A", boot__supportedFilesystems=["zfs"])),
            Contribution("plugin x", frag("B", boot__supportedFilesystems=["zfs", "vfat"])),
            Contribution("core", frag("A", users__users__alice={"isNormalUser": True})),
            Contribution("plugin x", frag("B", users__users__alice__uid=1000)),
        ]
    )
    values = {s.path: s.value for s in statements}
    assert values[("boot", "supportedFilesystems")] == ["zfs", "vfat"]
    # the longer path folds into the statement of the shorter one
    assert values[("users", "users", "alice")] == {"isNormalUser": True, "uid": 1000}
    assert ("users", "users", "alice", "uid") not in values


def test_merge_accepts_equal_values_and_names_both_sides_of_a_conflict() -> None:
    same = [Contribution(who, frag("A", networking__hostId="8f2a91c4")) for who in ("a", "b")]
    assert len(merge(same)) == 1
    with pytest.raises(ConfigConflict) as info:
        merge(
            [
                Contribution("core", frag("A", networking__hostId="8f2a91c4")),
                Contribution("plugin evil", frag("B", networking__hostId="deadbeef")),
            ]
        )
    message = str(info.value)
    assert "networking.hostId" in message
    assert '"8f2a91c4" from core' in message and '"deadbeef" from plugin evil' in message


def test_conflicting_values_are_shown_as_nix() -> None:
    # As the configuration spells them, not as Python would (False, None, {'a': 1}).
    with pytest.raises(ConfigConflict) as info:
        merge(
            [
                Contribution("core", frag("A", boot__zfs__forceImportRoot=False)),
                Contribution("backend b", frag("B", boot__zfs__forceImportRoot=True)),
            ]
        )
    assert str(info.value) == (
        "conflicting values for boot.zfs.forceImportRoot: false from core and true from backend b"
    )
    with pytest.raises(ConfigConflict) as info:
        merge(
            [
                Contribution("a", frag("A", boot__zfs="oops")),
                Contribution("b", frag("B", boot__zfs__devNodes="/dev/mapper")),
            ]
        )
    assert str(info.value) == (
        'conflicting values for boot.zfs: "oops" from a and { devNodes = "/dev/mapper"; } from b'
    )


def test_merge_conflict_between_a_value_and_a_set() -> None:
    with pytest.raises(ConfigConflict, match=r"boot\.zfs: .* from a and .* from b"):
        merge(
            [
                Contribution("a", frag("A", boot__zfs="oops")),
                Contribution("b", frag("B", boot__zfs__devNodes="/dev/mapper")),
            ]
        )


def test_core_fragments_do_not_conflict_with_any_backend() -> None:
    for layout in VARIANTS.values():
        backend = BACKENDS[layout.backend]
        contributions = [Contribution("core", f) for f in core_fragments(layout)]
        contributions += [Contribution("backend", f) for f in backend.nix_fragments(layout)]
        assert merge(contributions)


PLUGIN_WITH_FRAGMENTS = """
    from advisor.plugin import NixFragment

    def advisor_nix_fragments(layout):
        return [NixFragment("Persistence", {
            ("environment", "persistence", "/persist", "directories"): ["/var/lib/tailscale"],
        })]
"""


def generate_with_plugins(layout: Layout) -> dict[str, str]:
    plugins = load_plugins(environ={})
    backend = plugins.backend(layout.backend)
    extra = [
        Contribution(f"plugin {name}", fragment)
        for name, fragment in plugins.nix_fragments(layout, backend)
    ]
    return dict(generate(layout, backend, extra).files)


def test_plugins_add_fragments_through_the_hook(
    make_plugin_dist: Any, plugin_on_path: Any, tmp_path: Path
) -> None:
    plugin_on_path(make_plugin_dist(PLUGIN_WITH_FRAGMENTS, name="tailscale"))
    files = generate_with_plugins(VARIANTS["luks-systemd"])
    path = tmp_path / "configuration.nix"
    path.write_text(files["configuration.nix"])
    directories = nixeval.eval_config(path)["environment"]["persistence"]["/persist"]["directories"]
    assert directories[-1] == "/var/lib/tailscale"
    assert "/var/log" in directories


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            'return [NixFragment("X", {("networking", "hostId"): "deadbeef"})]',
            'from core and "deadbeef" from plugin bad',
        ),
        ("raise RuntimeError('boom')", "plugin 'bad': advisor_nix_fragments raised RuntimeError"),
        ("return ['not a fragment']", "returned str, not NixFragment"),
    ],
)
def test_plugin_fragment_failures_stop_generation(
    body: str, message: str, make_plugin_dist: Any, plugin_on_path: Any
) -> None:
    source = f"""
    from advisor.plugin import NixFragment

    def advisor_nix_fragments(layout, backend):
        {body}
    """
    plugin_on_path(make_plugin_dist(source, name="bad"))
    with pytest.raises(PluginError, match=message):
        generate_with_plugins(VARIANTS["luks-systemd"])


def test_generation_is_deterministic() -> None:
    for layout in VARIANTS.values():
        backend = BACKENDS[layout.backend]
        assert generate(layout, backend).files == generate(layout, backend).files


# Pools on several disks


def mirror_layout(backend: str, initrd: str = "systemd", *, swap: bool = False) -> Layout:
    """Two disks, each with its data partition and ESP (and swap partition)."""
    names = luks_names("cryptroot", 2)
    members = tuple(
        LayoutMember(
            number,
            data_device=f"/dev/disk/by-partuuid/6a3d2c1b-5e4f-4a8b-9c0d-1e2f3a4b5c6{number}",
            esp_device=f"/dev/disk/by-partuuid/0b5e1f2c-3d4e-4f5a-8b6c-7d8e9f0a1b2{number}",
            swap_device=(
                f"/dev/disk/by-partuuid/3e8b4c5f-6a7b-4c8d-9e0f-1a2b3c4d5e6{number}"
                if swap
                else None
            ),
            luks_name=names[number - 1],
        )
        for number in (1, 2)
    )
    layout = Layout(
        backend=backend,
        settings=Settings(hostname="atlas", host_id="8f2a91c4", user="alice", initrd=initrd),
        hashed_password=HASH,
        members=members,
    )
    if backend == "luks-detached":
        return with_header(layout, "/dev/disk/by-id/usb-KEY1", "/persist/etc/luks/h2.img")
    return layout


def evaluate(layout: Layout, tmp_path: Path) -> Any:
    path = tmp_path / "configuration.nix"
    path.write_text(generate(layout, BACKENDS[layout.backend]).files["configuration.nix"])
    nixeval.parse(path)
    return nixeval.eval_config(path)


def test_a_luks_mirror_unlocks_each_disk_and_boots_without_either(tmp_path: Path) -> None:
    cfg = evaluate(mirror_layout("luks"), tmp_path)
    devices = cfg["boot"]["initrd"]["luks"]["devices"]
    assert set(devices) == {"cryptroot1", "cryptroot2"}
    for device in devices.values():
        # A missing disk is not waited for: the pool imports degraded.
        assert device["crypttabExtraOpts"] == ["nofail"]
    # systemd-cryptsetup tries the passphrase typed for one on the next (its keyring
    # cache); reusePassphrases is the scripted initrd's, and asserted unset here.
    assert "reusePassphrases" not in cfg["boot"]["initrd"]["luks"]
    import_unit = cfg["boot"]["initrd"]["systemd"]["services"]["zfs-import-rpool"]
    assert import_unit["after"] == [
        "cryptsetup.target",
        "systemd-cryptsetup@cryptroot1.service",
        "systemd-cryptsetup@cryptroot2.service",
    ]


def test_every_esp_is_mounted_without_failing_the_boot_and_kept_in_step(tmp_path: Path) -> None:
    cfg = evaluate(mirror_layout("zfs-native"), tmp_path)
    for mountpoint, number in (("/boot", 1), ("/boot-2", 2)):
        assert cfg["fileSystems"][mountpoint] == {
            "device": f"/dev/disk/by-partuuid/0b5e1f2c-3d4e-4f5a-8b6c-7d8e9f0a1b2{number}",
            "fsType": "vfat",
            "options": ["umask=0077", "nofail", "x-systemd.device-timeout=10s"],
        }
    loader = cfg["boot"]["loader"]
    assert loader["efi"]["efiSysMountPoint"] == "/boot"
    script = loader["systemd-boot"]["extraInstallCommands"]
    assert "for esp in /boot-2; do" in script
    assert (
        "/usr/bin/rsync --recursive --times --modify-window=1 --delete \\\n"
        '      --exclude=/loader/random-seed /boot/ "$esp"/' in script
    )
    # One disk keeps the plain layout.
    single = evaluate(VARIANTS["zfs-native-systemd"], tmp_path)
    assert "extraInstallCommands" not in single["boot"]["loader"]["systemd-boot"]
    assert single["fileSystems"]["/boot"]["options"] == ["umask=0077"]


def test_the_esp_sync_copies_the_first_esp_and_skips_a_missing_one(tmp_path: Path) -> None:
    """The configuration's own script, run with the ESPs moved under tmp_path."""
    cfg = evaluate(mirror_layout("luks"), tmp_path)
    script = cfg["boot"]["loader"]["systemd-boot"]["extraInstallCommands"]
    boot, other = tmp_path / "boot", tmp_path / "boot-2"
    (boot / "EFI" / "BOOT").mkdir(parents=True)
    (boot / "EFI" / "BOOT" / "BOOTX64.EFI").write_bytes(b"loader")
    (boot / "loader").mkdir()
    (boot / "loader" / "random-seed").write_bytes(b"seed")
    moved = script.replace("/boot-2", str(other)).replace(" /boot/", f" {boot}/")
    # Not a mount point here: skipped with a warning, nothing written.
    result = subprocess.run(["bash", "-c", moved], capture_output=True, text=True, check=True)
    assert f"warning: {other} is not mounted" in result.stderr and not other.exists()
    # A mount point (as the test cannot mount, mountpoint(1) is asked of / instead).
    other.mkdir()
    (other / "stale").write_text("old")
    moved = moved.replace('mountpoint -q "$esp"', "mountpoint -q /")
    subprocess.run(["bash", "-c", moved], check=True)
    assert (other / "EFI" / "BOOT" / "BOOTX64.EFI").read_bytes() == b"loader"
    assert not (other / "stale").exists() and not (other / "loader" / "random-seed").exists()


def test_swap_partitions_are_encrypted_with_a_random_key_and_hibernation_stays_off(
    tmp_path: Path,
) -> None:
    cfg = evaluate(mirror_layout("luks", swap=True), tmp_path)
    assert cfg["swapDevices"] == [
        {
            "device": f"/dev/disk/by-partuuid/3e8b4c5f-6a7b-4c8d-9e0f-1a2b3c4d5e6{n}",
            "randomEncryption": {"enable": True},
            "options": ["nofail"],
        }
        for n in (1, 2)
    ]
    assert cfg["boot"]["zfs"]["allowHibernation"] is False
    assert "swapDevices" not in evaluate(VARIANTS["luks-systemd"], tmp_path)


def test_a_detached_header_for_each_disk(tmp_path: Path) -> None:
    cfg = evaluate(mirror_layout("luks-detached"), tmp_path)
    devices = cfg["boot"]["initrd"]["luks"]["devices"]
    assert devices["cryptroot1"]["header"] == "/dev/disk/by-id/usb-KEY1"
    # A header file is copied into the initrd, under a name of its own.
    assert devices["cryptroot2"]["header"] == "/etc/luks/header-2.img"
    assert cfg["boot"]["initrd"]["secrets"] == {
        "/etc/luks/header-2.img": "/persist/etc/luks/h2.img"
    }


def test_the_scripted_initrd_is_refused_for_a_pool_of_several_luks_disks() -> None:
    with pytest.raises(PluginRefusal, match="refused: --initrd scripted: the scripted initrd"):
        generate(mirror_layout("luks", "scripted"), BACKENDS["luks"])
    # ZFS imports a degraded pool under either initrd: zfs-native takes it.
    generate(mirror_layout("zfs-native", "scripted"), BACKENDS["zfs-native"])
