"""The one flake renderer (``nixos.generate.render_flake``) for several hosts, as a
fleet writes it: each host's modules from its own folder, the inputs the hosts need."""

from __future__ import annotations

from pathlib import Path

import nixeval
import pytest

from advisor.nixos.generate import FlakeHost, render_flake


def test_a_flake_of_several_hosts_parses_and_evaluates(tmp_path: Path) -> None:
    hosts = [
        FlakeHost("alpha", "./hosts/alpha", disko=True),
        FlakeHost("beta", "./hosts/beta", sops=True, disko=True),
        FlakeHost("gamma"),
    ]
    path = tmp_path / "flake.nix"
    text = render_flake(hosts, release="26.05", description="fleet", usage="Deploy it.")
    path.write_text(text, encoding="utf-8")
    nixeval.parse(path)
    flake = nixeval.eval_flake(path)
    assert flake["description"] == "fleet"
    assert set(flake["inputs"]) == {"nixpkgs", "impermanence", "sops-nix", "disko"}
    assert flake["inputs"]["nixpkgs"]["url"] == "github:NixOS/nixpkgs/nixos-26.05"
    modules = {name: entry["modules"] for name, entry in flake["nixosConfigurations"].items()}
    assert modules == {
        "alpha": [
            str(tmp_path / "hosts/alpha/configuration.nix"),
            "impermanence-module",
            "disko-module",
            str(tmp_path / "hosts/alpha/disko.nix"),
        ],
        "beta": [
            str(tmp_path / "hosts/beta/configuration.nix"),
            "impermanence-module",
            "sops-module",
            "disko-module",
            str(tmp_path / "hosts/beta/disko.nix"),
        ],
        "gamma": [str(tmp_path / "configuration.nix"), "impermanence-module"],
    }


def test_inputs_only_as_the_hosts_need_them(tmp_path: Path) -> None:
    text = render_flake([FlakeHost("alpha")], release="26.05", description="d", usage="u")
    assert "disko" not in text and "sops-nix" not in text


@pytest.mark.parametrize("folder", ["hosts/a", "./../a", "./a/../../b", "./a b", "./a;b", "/abs"])
def test_a_folder_that_is_no_plain_relative_path_is_refused(folder: str) -> None:
    with pytest.raises(ValueError, match="folder"):
        render_flake([FlakeHost("a", folder)], release="26.05", description="d", usage="u")


def test_host_names_are_unique() -> None:
    with pytest.raises(ValueError, match="unique"):
        render_flake(
            [FlakeHost("a", "./x"), FlakeHost("a", "./y")],
            release="26.05",
            description="d",
            usage="u",
        )
