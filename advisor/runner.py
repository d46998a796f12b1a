"""The one place the advisor runs other programs.

Commands are argv lists, never shell strings. A secret (passphrase, password) is passed
on stdin and nowhere else: not in argv, not in the environment, not in an exception
message. Output is captured; the locale is fixed so messages can be matched.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from advisor.errors import AdvisorError


class CommandError(AdvisorError):
    """A command failed or could not be started. The message never contains the secret."""

    def __init__(self, argv: Sequence[str], message: str, stderr: str = "") -> None:
        super().__init__(message)
        self.argv = list(argv)
        self.stderr = stderr


@dataclass(frozen=True)
class Result:
    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str


def which(program: str) -> str | None:
    """The absolute path of ``program`` on PATH, or None."""
    return shutil.which(program)


def run(
    argv: Sequence[str],
    *,
    secret: str | None = None,
    check: bool = True,
    timeout: float = 600,
    env: Mapping[str, str] | None = None,
    start_new_session: bool = False,
) -> Result:
    """Run ``argv``; ``secret`` (if any) is written to its stdin, which is otherwise empty.

    Raises :class:`CommandError` when the program is missing, times out, or (with
    ``check``) exits non-zero; the error carries the tail of stderr.
    ``start_new_session`` keeps the terminal's Ctrl-C from reaching the child, so the
    caller can let a step finish before it stops.
    """
    child_env = {**os.environ, "LC_ALL": "C", **(env or {})}
    try:
        completed = subprocess.run(
            list(argv),
            input=secret if secret is not None else "",
            capture_output=True,
            text=True,
            encoding="utf-8",
            errors="replace",
            env=child_env,
            timeout=timeout,
            check=False,
            close_fds=True,
            start_new_session=start_new_session,
        )
    except FileNotFoundError:
        raise CommandError(argv, f"{argv[0]}: command not found") from None
    except subprocess.TimeoutExpired:
        raise CommandError(argv, f"{argv[0]} did not finish within {timeout:g} s") from None
    result = Result(tuple(argv), completed.returncode, completed.stdout, completed.stderr)
    if check and completed.returncode != 0:
        tail = "\n".join(completed.stderr.strip().splitlines()[-10:])
        if secret:
            # A program that echoes its input must not carry the secret into our errors.
            tail = tail.replace(secret, "<redacted>")
        raise CommandError(
            argv, f"{argv[0]} exited with status {completed.returncode}: {tail}", tail
        )
    return result
