"""Checks for names and paths that end up in the NixOS configuration or on a command line.

Each check returns the value (normalised where that is harmless, such as lower-casing a
host id) or raises :class:`~advisor.errors.UsageError` naming the option and the rule.
The Nix renderer escapes everything anyway; these checks keep values that NixOS, ZFS or
crypttab would reject, or that would mean something else there, from getting that far.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

from advisor.errors import UsageError

# Each pattern is applied with fullmatch: "$" alone also matches before a final newline.
_HOSTNAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")
_USERNAME = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
_POOL = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")
_HOST_ID = re.compile(r"^[0-9a-f]{8}$")
_STABLE_DEVICE = re.compile(
    r"^/dev/disk/by-(id|partuuid|partlabel|uuid|path)/[A-Za-z0-9._:+@,=-]+$"
)
_FILE_PATH = re.compile(r"^/[A-Za-z0-9._/+@,=-]+$")
# A device-mapper name that is also one plain word in crypttab and a Nix attribute.
_MAPPER = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_RELEASE = re.compile(r"^[0-9]{2}\.(05|11)$")
_GUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
# ZFS property names: native ones, user ones (with ':') and pool features (feature@...).
_PROPERTY = re.compile(r"[a-z][a-z0-9_.:@-]{0,255}")
_PROPERTY_VALUE = re.compile(r"[A-Za-z0-9/_.:@%+,=][A-Za-z0-9/_.:@%+,=-]{0,1023}")
_KEY_TYPES = (
    "ssh-ed25519",
    "ssh-rsa",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
)
_KEY_BODY = re.compile(r"^[A-Za-z0-9+/]+={0,2}$")
# Pool names zpool reserves for vdev types.
_RESERVED_POOLS = {"mirror", "raidz", "raidz1", "raidz2", "raidz3", "draid", "spare", "log"}
# Directories of the running system that --root must never be: mounting the new root
# there would hide them (or, below /proc, /sys, /dev, /run or the store, fail or worse).
_SYSTEM_DIRECTORIES = frozenset(
    {"/bin", "/boot", "/efi", "/etc", "/home", "/iso", "/lib", "/lib64", "/nix", "/opt"}
    | {"/root", "/sbin", "/srv", "/tmp", "/usr", "/var"}  # noqa: S108 (refused, not used)
)
_SYSTEM_TREES = ("/proc", "/sys", "/dev", "/run", "/nix/store", "/nix/.ro-store")
_RESERVED_USERS = {"root", "nobody", "nixbld", "messagebus", "sshd", "systemd-network"}


def hostname(value: str) -> str:
    if not _HOSTNAME.fullmatch(value):
        raise UsageError(
            f"--hostname {value!r}: use letters, digits and hyphens, 1 to 63 characters, "
            "not starting or ending with a hyphen"
        )
    return value


def username(value: str) -> str:
    if not _USERNAME.fullmatch(value):
        raise UsageError(
            f"--user {value!r}: use lower-case letters, digits, '_' and '-', starting with a "
            "letter or '_', at most 32 characters"
        )
    if value in _RESERVED_USERS:
        raise UsageError(f"--user {value!r} is a system account; choose a personal user name")
    return value


def pool_name(value: str) -> str:
    if not _POOL.fullmatch(value):
        raise UsageError(
            f"--pool {value!r}: use letters, digits, '_' and '-', starting with a letter, "
            "at most 64 characters"
        )
    if value in _RESERVED_POOLS or re.match(r"^c[0-9]", value):
        raise UsageError(f"--pool {value!r} is reserved by ZFS")
    return value


def new_host_id() -> str:
    """A fresh host id that :func:`host_id` accepts: eight random hex digits, never the
    all-zero id ZFS reads as 'none'."""
    # os.urandom is what secrets.token_hex uses; importing secrets would also load hmac
    # (and base64) at every install's start for this one call.
    while (value := os.urandom(4).hex()) == "00000000":
        continue
    return value


def new_guid() -> str:
    """A random GUID (UUID version 4) in its usual text form, as ``str(uuid.uuid4())`` is.

    Written out because ``import uuid`` also imports ``platform``: about 10 ms of every
    install's start-up (a quarter of a second under emulation) for two identifiers.
    """
    octets = bytearray(os.urandom(16))
    octets[6] = octets[6] & 0x0F | 0x40  # version 4
    octets[8] = octets[8] & 0x3F | 0x80  # RFC 4122 variant
    digits = octets.hex()
    return f"{digits[:8]}-{digits[8:12]}-{digits[12:16]}-{digits[16:20]}-{digits[20:]}"


def host_id(value: str) -> str:
    normalised = value.lower()
    if not _HOST_ID.fullmatch(normalised):
        raise UsageError(f"--host-id {value!r}: must be exactly 8 hexadecimal digits")
    if normalised == "00000000":
        raise UsageError("--host-id 00000000 means 'no host id' to ZFS; choose another")
    return normalised


def device_path(value: str, option: str) -> str:
    """A partition path that stays the same across boots."""
    if _STABLE_DEVICE.fullmatch(value):
        return value
    if value.startswith("/dev/") and not value.startswith("/dev/disk/"):
        raise UsageError(
            f"{option} {value!r}: names like /dev/sda2 or /dev/vda2 can change between boots; "
            "give a /dev/disk/by-id/... or /dev/disk/by-partuuid/... path"
        )
    raise UsageError(
        f"{option} {value!r}: expected /dev/disk/by-id/, by-partuuid/, by-partlabel/, "
        "by-uuid/ or by-path/ followed by a link name (letters, digits and ._:+@,=-)"
    )


def header_path(value: str, option: str = "--header") -> str:
    """A detached LUKS header (or its backup, ``option``): a stable device path, or an
    absolute file path."""
    if value.startswith("/dev/"):
        return device_path(value, option)
    parts = value.split("/")
    if not _FILE_PATH.fullmatch(value) or ".." in parts or "." in parts:
        raise UsageError(
            f"{option} {value!r}: give a /dev/disk/by-* device, or an absolute file path of "
            "letters, digits and ._/+@,=- without '.' or '..' components"
        )
    return value


def root_path(value: str) -> str:
    """Where the new system is mounted (``--root``), normalised: an absolute path of
    letters, digits and ``._/+@,=-`` without ``..``, and not ``/`` or a directory of the
    running system. Whether something is mounted there now is :mod:`advisor.install.session`'s
    check."""
    if not _FILE_PATH.fullmatch(value) or ".." in value.split("/"):
        raise UsageError(
            f"--root {value!r}: give an absolute path of letters, digits and ._/+@,=- "
            "without '..' components, such as /mnt"
        )
    # normpath keeps a leading "//" (POSIX leaves its meaning open); the kernel does not.
    root = "/" + os.path.normpath(value).lstrip("/")
    is_system = root in _SYSTEM_DIRECTORIES or any(
        root == tree or root.startswith(tree + "/") for tree in _SYSTEM_TREES
    )
    if root == "/" or is_system:
        raise UsageError(
            f"--root {value!r} is, or is inside, a directory of the running system: the "
            "new system is mounted there; use an empty directory such as /mnt"
        )
    return root


#: A partition size as sgdisk reads it after ``+``: a whole number of KiB to TiB.
_PARTITION_SIZE = re.compile(r"[1-9][0-9]{0,5}[KMGT]")


def partition_size(value: str, option: str) -> str:
    """A partition's size for sgdisk (``16G``, ``512M``); ``option`` names the flag."""
    if not _PARTITION_SIZE.fullmatch(value):
        raise UsageError(
            f"{option} {value!r}: give a size as a whole number and a unit, K, M, G or T "
            "(such as 16G or 512M)"
        )
    return value


def guid(value: str, name: str) -> str:
    """A GUID in its lower-case text form (``name`` says which, in the message)."""
    if not _GUID.fullmatch(value):
        raise UsageError(f"{name} {value!r} is not a GUID such as {new_guid()}")
    return value


def zfs_properties(values: Mapping[str, str], option: str) -> dict[str, str]:
    """``PROPERTY=VALUE`` overrides for ``zpool create`` (``option`` is ``--pool-option``
    or ``--fs-option``): names and values of safe characters, a value not starting with
    ``-``. Which properties the layout keeps for itself is :mod:`advisor.install.plan`'s to say."""
    for name, value in values.items():
        if not _PROPERTY.fullmatch(name) or not _PROPERTY_VALUE.fullmatch(value):
            raise UsageError(
                f"{option} {name}={value}: expected a ZFS property name (lower-case letters, "
                "digits and _.:@-) and a value of letters, digits and /_.:@%+,=- not "
                "starting with '-'"
            )
    return dict(values)


def nixos_release(value: str) -> str:
    if not _RELEASE.fullmatch(value):
        raise UsageError(f"--nixos-release {value!r}: expected a release such as 26.05")
    return value


def mapper_name(value: str) -> str:
    """The name a LUKS container is opened as (``/dev/mapper/NAME``)."""
    if not _MAPPER.fullmatch(value):
        raise UsageError(
            f"--luks-name {value!r}: use letters, digits and _.-, starting with a letter or "
            "digit, at most 64 characters"
        )
    return value


def authorized_key(line: str, origin: str) -> str:
    """One OpenSSH public key line, without options (``from=``, ``command=``)."""
    fields = line.split(None, 2)
    if len(fields) < 2 or fields[0] not in _KEY_TYPES or not _KEY_BODY.fullmatch(fields[1]):
        raise UsageError(
            f"{origin}: {line[:40]!r}... is not an OpenSSH public key line "
            f"({' | '.join(_KEY_TYPES[:2])} ... BASE64 [comment]); options are not supported"
        )
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in line):
        raise UsageError(f"{origin}: a key line contains control characters")
    return " ".join(fields)


# A backup target: [user@]host:pool/path over SSH, or pool/path on a local pool. The
# user is an SSH login (POSIX portable names), the host a DNS name or an IPv4 address:
# both go to ssh(1) as one word, and the whole target into a Nix string and syncoid's
# command line.
_SSH_USER = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,31}")
_SSH_HOST = re.compile(
    r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*"
)
# An IPv6 address as ssh(1) takes it after "user@": hex digits and colons (two at least).
_IPV6 = re.compile(r"(?=(?:[^:]*:){2})[0-9A-Fa-f:]{2,39}")


def ssh_target(value: str, option: str) -> str:
    """An SSH destination, ``[user@]host`` (``host`` a DNS name, an IPv4 or IPv6 address),
    as nixos-anywhere hands it to ssh(1): one word that cannot be read as an option;
    ``option`` names the field in the message."""
    user, at, host = value.rpartition("@")
    if (at and not _SSH_USER.fullmatch(user)) or not (
        _SSH_HOST.fullmatch(host) or _IPV6.fullmatch(host)
    ):
        raise UsageError(
            f"{option} {value!r}: give [user@]host: a user of letters, digits and ._- and a "
            "host name, IPv4 or IPv6 address (the port is a field of its own)"
        )
    return value


# A dataset: a pool name, then parts of the characters ZFS allows (no @, # or %).
_DATASET_PART = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}")


def backup_target(value: str, option: str = "--backup-target") -> str:
    """A backup target, ``[user@]host:pool/path`` (SSH) or ``pool/path`` (a local pool);
    ``option`` names the flag in the message."""
    rule = (
        f"{option} {value!r}: give user@host:pool/path (a pool on another host, over SSH) "
        "or pool/path (a pool on this one); the user and host of letters, digits and ._-, "
        "the dataset's parts of letters, digits and _.:-"
    )
    login, sep, dataset = value.rpartition(":")
    if sep:
        user, at, host = login.rpartition("@")
        if (at and not _SSH_USER.fullmatch(user)) or not _SSH_HOST.fullmatch(host):
            raise UsageError(rule)
    pool, *parts = dataset.split("/")
    if not _POOL.fullmatch(pool) or not all(_DATASET_PART.fullmatch(part) for part in parts):
        raise UsageError(rule)
    if len(dataset) > 200:
        raise UsageError(f"{option} {value!r}: the dataset's name is too long for ZFS")
    return value


#: The PCRs systemd-cryptenroll can bind to: 0 to 23, joined by ``+``.
_PCRS = re.compile(r"(?:[0-9]|1[0-9]|2[0-3])(?:\+(?:[0-9]|1[0-9]|2[0-3]))*")


def tpm2_pcrs(value: str) -> str:
    """``value`` if it names TPM2 PCRs as systemd-cryptenroll's ``--tpm2-pcrs`` takes
    them (``7``, ``0+2+7``: numbers 0 to 23 joined by ``+``, each once); a
    :class:`UsageError` otherwise."""
    if not _PCRS.fullmatch(value) or len(set(value.split("+"))) != len(value.split("+")):
        raise UsageError(
            f"--tpm2-pcrs {value!r}: give PCR numbers from 0 to 23 joined by +, each once "
            "(such as 7, or 0+2+7)"
        )
    return value
