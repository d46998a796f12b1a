"""Hand the secret on stdin to a program that reads it only from a file:
``python -m advisor.install.keyfile -- COMMAND...``.

COMMAND runs with the secret readable at ``/dev/fd/3``: an anonymous in-memory file
(``memfd_create(2)``, mode 0600) that exists only while it runs, is never on a disk, and is
named in argv only by its descriptor. Its stdin is empty.

Why: ``systemd-cryptenroll --unlock-key-file=PATH`` is the only way to give it the current
passphrase without a terminal or an environment variable, and systemd before 256 seeks in
that file, which a pipe refuses ("Reading keyfile /dev/stdin failed: Illegal seek";
systemd PR 31185). The install's runner feeds every secret on stdin, so a step runs this
wrapper, which turns stdin into a file that can be sought in.
"""

from __future__ import annotations

import os
import sys

USAGE = "usage: printf '%s' SECRET | python -m advisor.install.keyfile -- COMMAND...\n"
#: The descriptor COMMAND finds the secret at: ``/dev/fd/3``.
SECRET_FD = 3


def main(argv: list[str]) -> int:
    """Run ``argv`` (``-- COMMAND...``) with stdin as ``/dev/fd/3``; its exit status
    (this process becomes COMMAND), or 2 for a wrong call or no secret."""
    if len(argv) < 2 or argv[0] != "--":
        sys.stderr.write(USAGE)
        return 2
    secret = sys.stdin.buffer.read()
    if not secret:
        sys.stderr.write("advisor.install.keyfile: no secret on stdin\n" + USAGE)
        return 2
    memory = os.memfd_create("advisor-secret", 0)  # no MFD_CLOEXEC: COMMAND inherits it
    os.fchmod(memory, 0o600)
    written = 0
    while written < len(secret):
        written += os.write(memory, secret[written:])
    os.lseek(memory, 0, os.SEEK_SET)
    if memory != SECRET_FD:
        os.dup2(memory, SECRET_FD, inheritable=True)
        os.close(memory)
    os.set_inheritable(SECRET_FD, True)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    try:
        os.execvp(argv[1], argv[1:])  # noqa: S606 - the step's own command, as planned
    except OSError as error:
        sys.stderr.write(f"advisor.install.keyfile: cannot run {argv[1]}: {error.strerror}\n")
        return 127


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
