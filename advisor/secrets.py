"""Secrets the user gives: reading them, hashing the password, writing 0600 files.

Two rules hold throughout: a secret never appears in an exception message, and a secret
never reaches a command line (it goes to a child process on stdin, through
:func:`advisor.runner.run`). Generated keys (initrd SSH host key, age key) are in
:mod:`advisor.nixos.keys`.
"""

from __future__ import annotations

import re
from pathlib import Path

from advisor import runner
from advisor.errors import AdvisorError, UsageError
from advisor.files import make_private_dirs, write_atomically

__all__ = ["MIN_PASSPHRASE", "hash_password", "read_secret", "write_secret_file"]

#: The shortest disk passphrase advisor takes: ZFS refuses shorter ones, and the same
#: floor applies to LUKS for consistency (``install`` and ``rekey``).
MIN_PASSPHRASE = 8

# --------------------------------------------------------------------------- passwords

# libxcrypt refuses passphrases of CRYPT_MAX_PASSPHRASE_SIZE (512) bytes or more; checking
# up front gives the user a clear message instead of mkpasswd's "Numerical result out of
# range".
_MAX_PASSWORD_BYTES = 511

#: A yescrypt hash as mkpasswd prints it: ``$y$`` cost ``$`` salt ``$`` hash.
_YESCRYPT = re.compile(r"\$y\$[./A-Za-z0-9]+\$[./A-Za-z0-9]+\$[./A-Za-z0-9]+")

_MKPASSWD_MISSING = (
    "no yescrypt implementation was found: install mkpasswd "
    "(Debian/Ubuntu package 'whois', NixOS package 'mkpasswd')"
)


def _check_password(password: str) -> None:
    """Raise UsageError for a password mkpasswd would hash wrongly. Never echoes it."""
    if not password:
        # mkpasswd happily hashes an empty stdin; an empty password is never intended.
        raise UsageError("the password is empty")
    # mkpasswd --stdin reads one line and cuts it at the first CR or LF, so anything after
    # one would be silently dropped from the hash; NUL cannot cross the C string boundary.
    if any(c in password for c in "\n\r\0"):
        raise UsageError("the password must not contain a line break or a NUL character")
    if len(password.encode("utf-8")) > _MAX_PASSWORD_BYTES:
        raise UsageError(f"the password is longer than {_MAX_PASSWORD_BYTES} bytes")


def hash_password(password: str, like: str | None = None) -> str:
    """Return a yescrypt hash of ``password`` (``$y$...``) as ``mkpasswd`` makes it:
    with a new salt, or with the setting (cost and salt) of ``like``, an earlier yescrypt
    hash, which it then equals if it is one of the same password (a file written again
    stays the same).

    The hash goes into ``users.users.<name>.hashedPassword``. The password is passed to
    mkpasswd on stdin only, and no exception raised here contains it.
    """
    _check_password(password)
    mkpasswd = runner.which("mkpasswd")
    if mkpasswd is None:
        raise UsageError(_MKPASSWD_MISSING)
    argv = [mkpasswd, "--method=yescrypt", "--stdin"]
    if like is not None and _YESCRYPT.fullmatch(like):
        # Everything before the last "$" is the setting: method, cost and salt.
        argv.insert(2, f"--salt={like.rsplit('$', 1)[0]}")
    try:
        result = runner.run(argv, secret=password)
    except runner.CommandError as exc:
        # The runner quotes the tool's stderr. mkpasswd does not echo its input, but if
        # some wrapper ever did, the quote would carry the password: drop it in that case.
        if password in str(exc) or password in exc.stderr:
            raise AdvisorError("mkpasswd failed (its error output was withheld)") from None
        raise
    hashed = result.stdout.strip()
    # Do not quote stdout in the message: whatever came back is not known to be harmless.
    if not hashed.startswith("$y$") or any(c.isspace() for c in hashed):
        raise AdvisorError("mkpasswd did not produce a yescrypt hash")
    return hashed


# ------------------------------------------------------------------------ writing files


def write_secret_file(path: Path, data: bytes) -> None:
    """Atomically write ``data`` to ``path`` with mode 0600, whatever the umask; parent
    directories it has to create get mode 0700."""
    make_private_dirs(path.parent)
    write_atomically(path, data, 0o600)


def read_secret(
    path: Path | None,
    what: str,
    *,
    option: str,
    interactive: bool,
    minimum: int = 1,
    confirm: bool = True,
) -> str:
    """A secret from the first line of the file ``option`` names, or asked twice, hidden,
    at a terminal (once without ``confirm``: a secret that is checked against the disk,
    such as the current passphrase). ``what`` names it in messages ("disk passphrase")."""
    if path is not None:
        try:
            # utf-8-sig: an editor's byte-order mark is not part of the secret.
            lines = path.read_text(encoding="utf-8-sig").splitlines()
        except (OSError, UnicodeDecodeError) as error:
            raise UsageError(f"{option} {str(path)!r} cannot be read: {error}") from None
        if not lines or not lines[0]:
            raise UsageError(f"{option} {str(path)!r} is empty")
        value = lines[0]
    elif interactive:
        import getpass

        value = getpass.getpass(f"{what.capitalize()}: ")
        if confirm and value != getpass.getpass(f"{what.capitalize()} again: "):
            raise UsageError(f"the two {what}s differ")
    else:
        raise UsageError(f"no terminal to ask the {what} on: give {option} FILE")
    if len(value) < minimum:
        raise UsageError(f"the {what} must have at least {minimum} characters")
    return value
