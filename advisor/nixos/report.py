"""What ``advisor config`` wrote, as a person reads it."""

from __future__ import annotations

from rich.console import Console
from rich.text import Text

from advisor.nixos.write import ConfigResult
from advisor.report import indent


def render_config_result(console: Console, result: ConfigResult) -> None:
    """What ``advisor config`` wrote, and what to do next."""
    layout = result.layout
    console.print(
        Text(f"Configuration for {layout.settings.hostname} ({layout.backend}, ", style="bold")
        + Text(f"{layout.settings.initrd} initrd, host id {layout.settings.host_id})", style="bold")
    )
    for path in result.written:
        console.print(indent(Text(f"wrote {path}")))
    for path in result.unchanged:
        console.print(indent(Text(f"unchanged {path}", style="dim")))
    for path in result.secrets_written:
        console.print(indent(Text(f"created {path} (mode 0600)")))
    if result.initrd_host_key_fingerprint:
        console.print(indent(Text(f"initrd SSH host key: {result.initrd_host_key_fingerprint}")))
    if result.age_public_key:
        console.print(indent(Text(f"sops age public key: {result.age_public_key}")))
    if result.hardware_configuration_missing:
        console.print()
        console.print(
            Text(
                "hardware-configuration.nix is missing: run "
                "'nixos-generate-config --root /mnt --no-filesystems' (the file systems are "
                "defined in configuration.nix).",
                style="yellow",
            )
        )
