"""``export.host_files`` as a fleet calls it: extra fragments, and SSH unlock when the
caller puts the initrd's host key on /persist itself."""

from __future__ import annotations

from pathlib import Path

import nixeval
import pytest

from advisor.deploy.export import export_spec, host_files
from advisor.errors import UsageError
from advisor.install.session import InstallRequest
from advisor.models import InstallSpec, NixFragment, Settings
from advisor.nixos.generate import ConfigConflict, Contribution
from advisor.nixos.write import INITRD_HOST_KEY
from advisor.pluginmanager import load_plugins

PLUGINS = load_plugins(environ={})
PUBKEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl me@x"
DISK = "/dev/disk/by-id/nvme-Samsung_SSD_1"


def _spec(remote_unlock_keys: str | None = None, *, sops: bool = False) -> InstallSpec:
    settings = Settings(
        host_id="8f2a91c4", hostname="atlas", remote_unlock_keys=remote_unlock_keys, sops=sops
    )
    return export_spec(InstallRequest(backend="luks", settings=settings), [DISK], PLUGINS)


def test_ssh_unlock_with_keys_put_on_persist_by_the_caller(tmp_path: Path) -> None:
    keys = tmp_path / "authorized_keys"
    keys.write_text(PUBKEY + "\n")
    spec = _spec(remote_unlock_keys=str(keys))
    with pytest.raises(UsageError, match="export cannot reach"):
        host_files(spec, PLUGINS, "$y$hash")
    layout, files = host_files(spec, PLUGINS, "$y$hash", persist_keys=True)
    assert layout.remote_unlock is not None
    assert layout.remote_unlock.authorized_keys == (PUBKEY,)
    assert layout.settings.remote_unlock_keys == str(keys)
    path = tmp_path / "configuration.nix"
    path.write_text(files["configuration.nix"])
    ssh = nixeval.eval_config(path)["boot"]["initrd"]["network"]["ssh"]
    assert ssh["hostKeys"] == [INITRD_HOST_KEY]
    assert ssh["authorizedKeys"] == [PUBKEY]


def test_sops_stays_refused() -> None:
    with pytest.raises(UsageError, match="--sops"):
        host_files(_spec(sops=True), PLUGINS, "$y$hash", persist_keys=True)


def test_extra_fragments_are_merged_after_the_plugins(tmp_path: Path) -> None:
    ssh = Contribution("fleet", NixFragment("Fleet", {("services", "openssh", "enable"): True}))
    _, files = host_files(_spec(), PLUGINS, "$y$hash", extra=[ssh])
    path = tmp_path / "configuration.nix"
    path.write_text(files["configuration.nix"])
    assert nixeval.eval_config(path)["services"]["openssh"]["enable"] is True
    clash = Contribution("fleet", NixFragment("Fleet", {("networking", "hostId"): "00000001"}))
    with pytest.raises(ConfigConflict, match="fleet"):
        host_files(_spec(), PLUGINS, "$y$hash", extra=[clash])
