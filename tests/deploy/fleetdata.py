"""Inventories for the fleet tests (imported as ``fleetdata``): three hosts, their keys,
passwords and passphrase files, written into a test's folder."""

from __future__ import annotations

import textwrap
from pathlib import Path

#: A disk passphrase the tests look for in every argument, log and output: it must be
#: in none of them.
CANARY = "canary-passphrase-51f0c2"
#: A password likewise: only its hash may be written.
PASSWORD_CANARY = "canary-password-9d41e7"
HASH = "$y$j9T$F5Jx5fExrKuJdjBcWv4jc/$9b1e9Ow3SGGCtwGv1ToiSSL3uDyNXPkGrTtXySWbKC8"
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl admin"
NAMES = ("web1", "web2", "db1")


def disk(name: str, number: int = 1) -> str:
    return f"/dev/disk/by-id/nvme-Samsung_SSD_980_{name.upper()}{number}"


def write_inventory(folder: Path, body: str | None = None) -> Path:
    """``folder/fleet.toml`` with ``body`` (default: :func:`three_hosts`), and beside it
    the files it names: keys, the password and the passphrases."""
    (folder / "keys").mkdir(exist_ok=True)
    (folder / "keys" / "admins.pub").write_text(f"# the admins\n{KEY}\n", encoding="utf-8")
    (folder / "secrets").mkdir(exist_ok=True)
    (folder / "secrets" / "password").write_text(PASSWORD_CANARY + "\n", encoding="utf-8")
    for name in NAMES:
        text = f"{CANARY}-{name}\n"
        (folder / "secrets" / f"{name}.key").write_text(text, encoding="utf-8")
    path = folder / "fleet.toml"
    path.write_text(textwrap.dedent(body if body is not None else three_hosts()), encoding="utf-8")
    return path


def three_hosts() -> str:
    """Three hosts: two luks (one with remote unlock) and one zfs-native on a mirror."""
    return f"""
        [defaults]
        backend = "luks"
        user = "admin"
        password_hash = "{HASH}"
        authorized_keys = "keys/admins.pub"
        passphrase_file = "secrets/{{host}}.key"

        [[hosts]]
        name = "web1"
        target = "root@192.0.2.11"
        disks = ["{disk("web1")}"]
        host_id = "8425e349"
        remote_unlock_keys = "keys/admins.pub"

        [[hosts]]
        name = "web2"
        target = "root@192.0.2.12"
        ssh_port = 2222
        disks = ["{disk("web2")}"]

        [[hosts]]
        name = "db1"
        target = "root@db1.example.org"
        backend = "zfs-native"
        disks = ["{disk("db1", 1)}", "{disk("db1", 2)}"]
        topology = "mirror"
        password_file = "secrets/password"
        """
