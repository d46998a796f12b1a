"""Keys the installer generates: the initrd's SSH host key and the sops-nix age key.

Keys are generated in-process with ``cryptography`` rather than by shelling out to
``ssh-keygen``/``age-keygen``, so the installer does not depend on those tools being
present; the tests use the real tools to check the output is what they would produce.
A secret key never appears in an exception message. This module is imported only by the
commands that make keys (``advisor config``), so ``advisor install`` does not load
``cryptography``.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from advisor.errors import UsageError

__all__ = [
    "AGE_PUBLIC_HRP",
    "AGE_SECRET_HRP",
    "AgeKey",
    "SshHostKey",
    "age_key_file",
    "bech32_decode",
    "bech32_encode",
    "generate_age_key",
    "generate_ssh_host_key",
    "load_age_key",
    "load_ssh_host_key",
    "ssh_fingerprint",
]

# ------------------------------------------------------------------------ SSH host keys


@dataclass(frozen=True)
class SshHostKey:
    """An Ed25519 host key for the initrd's SSH server (used to unlock remotely)."""

    private_openssh: bytes  # "-----BEGIN OPENSSH PRIVATE KEY-----" file, unencrypted
    public_line: str  # "ssh-ed25519 AAAA... comment", as in a .pub file
    fingerprint: str  # "SHA256:...", as ``ssh-keygen -l`` prints it


def ssh_fingerprint(public_line: str) -> str:
    """The SHA256 fingerprint of an OpenSSH public key line, as ``ssh-keygen -l`` shows.

    That is the unpadded base64 of the SHA-256 of the key blob (the line's second field).
    """
    fields = public_line.split()
    if len(fields) < 2:
        raise UsageError("not an OpenSSH public key line")
    try:
        blob = base64.b64decode(fields[1], validate=True)
    except ValueError:
        raise UsageError("not an OpenSSH public key line") from None
    digest = base64.b64encode(hashlib.sha256(blob).digest()).decode("ascii")
    return "SHA256:" + digest.rstrip("=")


def _check_comment(comment: str) -> None:
    # The comment ends up on one line of a .pub file and in generated Nix; a line break
    # would split the key line.
    if any(not c.isprintable() for c in comment):
        raise UsageError("an SSH key comment must be printable text on one line")


def _host_key(key: Ed25519PrivateKey, private_openssh: bytes, comment: str) -> SshHostKey:
    public = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    public_line = public.decode("ascii") + (f" {comment}" if comment else "")
    return SshHostKey(private_openssh, public_line, ssh_fingerprint(public_line))


def generate_ssh_host_key(comment: str = "initrd") -> SshHostKey:
    """Generate a fresh Ed25519 host key.

    The private key is unencrypted: the initrd's sshd has to read it at boot, before
    anything could supply a passphrase.
    """
    _check_comment(comment)
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    )
    return _host_key(key, private, comment)


def load_ssh_host_key(private_openssh: bytes, comment: str = "initrd") -> SshHostKey:
    """Rebuild an :class:`SshHostKey` from an existing OpenSSH private key file's bytes.

    Re-running the advisor reuses the key so clients' known_hosts stay valid. The bytes
    are kept as given: OpenSSH serialization includes a random check value, so
    re-serializing would rewrite an unchanged key with different bytes.
    """
    _check_comment(comment)
    try:
        key = serialization.load_ssh_private_key(private_openssh, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        # TypeError is what cryptography raises for a passphrase-protected key.
        raise UsageError("not an unencrypted OpenSSH private key") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise UsageError("the SSH host key is not an ed25519 key")
    return _host_key(key, private_openssh, comment)


# --------------------------------------------------------------------------- bech32

# BIP-173 bech32 (not bech32m). age uses it without the 90-character length limit.
_BECH32_CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
_BECH32_GENERATORS = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)


def _bech32_polymod(values: list[int]) -> int:
    """The BCH checksum polynomial of BIP-173 over 5-bit ``values``."""
    chk = 1
    for value in values:
        top = chk >> 25
        chk = (chk & 0x1FFFFFF) << 5 ^ value
        for i, generator in enumerate(_BECH32_GENERATORS):
            if (top >> i) & 1:
                chk ^= generator
    return chk


def _bech32_hrp_expand(hrp: str) -> list[int]:
    """The human-readable part as the checksum sees it: high bits, 0, low bits."""
    return [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp]


def _bech32_checksum(hrp: str, data: list[int]) -> list[int]:
    polymod = _bech32_polymod([*_bech32_hrp_expand(hrp), *data, 0, 0, 0, 0, 0, 0]) ^ 1
    return [(polymod >> 5 * (5 - i)) & 31 for i in range(6)]


def _convertbits(data: bytes | list[int], frombits: int, tobits: int, pad: bool) -> list[int]:
    """Regroup ``data`` from ``frombits``-bit to ``tobits``-bit values (BIP-173).

    Without ``pad``, leftover bits must be fewer than ``frombits`` and all zero, which is
    what makes the 5-to-8 direction reject non-canonical encodings.
    """
    acc = 0
    bits = 0
    out: list[int] = []
    maxv = (1 << tobits) - 1
    for value in data:
        if value < 0 or value >> frombits:
            raise ValueError("value out of range")
        acc = (acc << frombits) | value
        bits += frombits
        while bits >= tobits:
            bits -= tobits
            out.append((acc >> bits) & maxv)
    if pad:
        if bits:
            out.append((acc << (tobits - bits)) & maxv)
    elif bits >= frombits or (acc << (tobits - bits)) & maxv:
        raise ValueError("invalid padding")
    return out


def bech32_encode(hrp: str, payload: bytes) -> str:
    """Encode ``payload`` bytes as lowercase bech32 with human-readable part ``hrp``."""
    data = _convertbits(payload, 8, 5, pad=True)
    combined = data + _bech32_checksum(hrp.lower(), data)
    return hrp.lower() + "1" + "".join(_BECH32_CHARSET[d] for d in combined)


def bech32_decode(text: str) -> tuple[str, bytes]:
    """Decode a bech32 string into (hrp, payload bytes), verifying the checksum.

    The hrp is returned in the case it was written in (age tells secret keys by their
    uppercase hrp). Raises ValueError (without quoting ``text``, which may be a secret).
    """
    if text != text.lower() and text != text.upper():
        raise ValueError("bech32 string mixes upper and lower case")
    if any(not 33 <= ord(c) <= 126 for c in text):
        raise ValueError("bech32 string contains a character outside US-ASCII 33..126")
    pos = text.rfind("1")
    if pos < 1 or pos + 7 > len(text):
        raise ValueError("bech32 string has no separator or too short a checksum")
    hrp = text[:pos]
    lower = text.lower()
    try:
        data = [_BECH32_CHARSET.index(c) for c in lower[pos + 1 :]]
    except ValueError:
        raise ValueError("bech32 string contains a character outside its alphabet") from None
    if _bech32_polymod(_bech32_hrp_expand(hrp.lower()) + data) != 1:
        raise ValueError("bech32 checksum mismatch")
    return hrp, bytes(_convertbits(data[:-6], 5, 8, pad=False))


# --------------------------------------------------------------------------- age keys

AGE_SECRET_HRP = "AGE-SECRET-KEY-"  # noqa: S105 - a format prefix, not a secret
AGE_PUBLIC_HRP = "age"


@dataclass(frozen=True)
class AgeKey:
    """An age X25519 identity, the key sops-nix decrypts secrets with on the machine."""

    secret: str  # "AGE-SECRET-KEY-1..."
    public: str  # "age1..." (the recipient, for .sops.yaml)


def _age_key(private: X25519PrivateKey) -> AgeKey:
    secret = bech32_encode(AGE_SECRET_HRP, private.private_bytes_raw()).upper()
    public = bech32_encode(AGE_PUBLIC_HRP, private.public_key().public_bytes_raw())
    return AgeKey(secret=secret, public=public)


def generate_age_key() -> AgeKey:
    """Generate a fresh age identity, as ``age-keygen`` would."""
    return _age_key(X25519PrivateKey.generate())


def age_key_file(key: AgeKey, created: datetime) -> str:
    """The text of an age identity file, in the layout ``age-keygen -o`` writes.

    ``created`` must be timezone-aware; it is written in UTC (``...Z``) so the file does
    not depend on the installer's local zone.
    """
    if created.tzinfo is None:
        raise ValueError("created must be a timezone-aware datetime")
    stamp = created.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return f"# created: {stamp}\n# public key: {key.public}\n{key.secret}\n"


def load_age_key(text: str) -> AgeKey:
    """Parse an age identity file holding exactly one X25519 secret key.

    Comment and blank lines are skipped, as age does. A ``# public key:`` comment, if
    present, must match the key. Raises UsageError, never quoting the secret.
    """
    secret_lines: list[str] = []
    stated_public: str | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("# public key:"):
            stated_public = line.removeprefix("# public key:").strip()
        elif line and not line.startswith("#"):
            secret_lines.append(line)
    if len(secret_lines) != 1:
        raise UsageError(
            f"an age key file must hold exactly one secret key line, found {len(secret_lines)}"
        )
    try:
        hrp, payload = bech32_decode(secret_lines[0])
    except ValueError as exc:
        raise UsageError(f"malformed age secret key: {exc}") from None
    # age accepts only the uppercase form; matching that keeps us from accepting a file
    # that sops-nix would then reject on the installed machine.
    if hrp != AGE_SECRET_HRP:
        raise UsageError("malformed age secret key: it does not start with AGE-SECRET-KEY-1")
    if len(payload) != 32:
        raise UsageError("malformed age secret key: wrong length")
    key = _age_key(X25519PrivateKey.from_private_bytes(payload))
    if stated_public is not None and stated_public != key.public:
        raise UsageError("the age key file's '# public key:' comment does not match its key")
    return key
