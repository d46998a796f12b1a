"""The one place the advisor runs other programs.

Commands are argv lists, never shell strings. A secret (passphrase, password) is passed
on stdin and nowhere else: not in argv, not in the environment, not in an exception
message. Output is captured; the locale is fixed so messages can be matched. A command
that needs the person (a PIN prompt, a touch of a security key) runs at the terminal
instead (``terminal=True``): with this process's stdin, stdout and stderr, uncaptured.
A command whose output is too long to hold (``zfs diff`` of a busy root) is read line by
line as it writes (:func:`stream_lines`); one that runs long and is read later
(nixos-anywhere, for each host of a fleet) writes to a log file (:func:`run_logged`).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

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
    timeout: float | None = 600,
    env: Mapping[str, str] | None = None,
    start_new_session: bool = False,
    terminal: bool = False,
) -> Result:
    """Run ``argv``; ``secret`` (if any) is written to its stdin, which is otherwise empty.

    Raises :class:`CommandError` when the program is missing, times out (``timeout``
    seconds; ``None``: no limit), or (with ``check``) exits non-zero; the error carries
    the tail of stderr. ``env`` is added to this process's environment (after
    ``LC_ALL=C``). ``start_new_session`` keeps the terminal's Ctrl-C from reaching the
    child, so the caller can let a step finish before it stops.

    ``terminal`` runs the command at the person's terminal: it inherits this process's
    stdin, stdout and stderr and stays in its session, so it can prompt, read what is
    typed and open ``/dev/tty``. Nothing is captured (the result's output is empty), so
    it takes no secret and no new session.
    """
    if terminal and (secret is not None or start_new_session):
        raise ValueError("a command at the terminal takes no secret and no new session")
    child_env = {**os.environ, "LC_ALL": "C", **(env or {})}
    try:
        if terminal:
            returncode, stdout, stderr = _run_at_terminal(argv, child_env, timeout), "", ""
        else:
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
            returncode, stdout, stderr = completed.returncode, completed.stdout, completed.stderr
    except FileNotFoundError:
        raise CommandError(argv, f"{argv[0]}: command not found") from None
    except subprocess.TimeoutExpired:
        raise CommandError(argv, f"{argv[0]} did not finish within {timeout:g} s") from None
    result = Result(tuple(argv), returncode, stdout, stderr)
    if check and returncode != 0:
        tail = "\n".join(stderr.strip().splitlines()[-10:])
        if secret:
            # A program that echoes its input must not carry the secret into our errors.
            tail = tail.replace(secret, "<redacted>")
        raise CommandError(argv, f"{argv[0]} exited with status {returncode}: {tail}", tail)
    return result


def _run_at_terminal(argv: Sequence[str], env: Mapping[str, str], timeout: float | None) -> int:
    """Run ``argv`` on this process's own stdin, stdout and stderr (nothing captured);
    its exit status."""
    # What this process printed must reach the terminal before the command's prompt.
    sys.stdout.flush()
    sys.stderr.flush()
    completed = subprocess.run(list(argv), env=env, timeout=timeout, check=False, close_fds=True)
    return completed.returncode


def stream_lines(
    argv: Sequence[str], *, env: Mapping[str, str] | None = None
) -> Generator[str, None, None]:
    """The lines ``argv`` writes on stdout (each with its newline), as it writes them:
    none is held once the caller has taken it, so memory stays flat however long the
    output. Its stdin is empty; stderr goes to a temporary file, so a child that writes
    much of it cannot block. After the last line, a non-zero exit is a
    :class:`CommandError` with the tail of stderr (as :func:`run`'s ``check``); a
    program that is missing is one before the first. Closing the iterator early (or an
    exception in the caller) kills the child. ``env`` is added after ``LC_ALL=C``.
    """
    child_env = {**os.environ, "LC_ALL": "C", **(env or {})}
    with tempfile.TemporaryFile() as errors:
        try:
            child = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=errors,
                text=True,
                encoding="utf-8",
                errors="replace",
                env=child_env,
                close_fds=True,
            )
        except FileNotFoundError:
            raise CommandError(argv, f"{argv[0]}: command not found") from None
        stdout = child.stdout
        if stdout is None:  # pragma: no cover (stdout=PIPE always gives one)
            raise CommandError(argv, f"{argv[0]}: no output pipe")
        finished = False
        try:
            yield from stdout
            finished = True
        finally:
            if not finished:
                child.kill()
            stdout.close()
            child.wait()
        if child.returncode != 0:
            errors.seek(0)
            text = errors.read().decode("utf-8", "replace")
            tail = "\n".join(text.strip().splitlines()[-10:])
            raise CommandError(
                argv, f"{argv[0]} exited with status {child.returncode}: {tail}", tail
            )


def run_logged(
    argv: Sequence[str],
    log: Path,
    *,
    env: Mapping[str, str] | None = None,
    timeout: float | None = None,
) -> int:
    """Run ``argv`` with its stdout and stderr appended to the file ``log`` (created
    0600) as it writes them, its stdin empty; its exit status. Nothing is held in memory
    however long it runs, and several can run at once (one per thread). Takes no secret:
    a secret goes to the command in a file it names (nixos-anywhere's
    ``--disk-encryption-keys``) or on stdin (:func:`run`). Raises :class:`CommandError`
    when the program is missing or outlasts ``timeout`` seconds (it is killed then).
    ``env`` is added after ``LC_ALL=C``."""
    child_env = {**os.environ, "LC_ALL": "C", **(env or {})}
    descriptor = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(descriptor, "ab") as output:
        try:
            child = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                env=child_env,
                close_fds=True,
            )
        except FileNotFoundError:
            raise CommandError(argv, f"{argv[0]}: command not found") from None
        except PermissionError:
            raise CommandError(argv, f"{argv[0]}: not executable") from None
        try:
            return child.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
            raise CommandError(argv, f"{argv[0]} did not finish within {timeout:g} s") from None
        finally:
            if child.returncode is None:  # interrupted while waiting: do not leave it behind
                child.kill()
                child.wait()


def run_pipeline(
    producer: Sequence[str],
    consumer: Sequence[str],
    *,
    timeout: float | None = None,
    env: Mapping[str, str] | None = None,
) -> Result:
    """Run ``producer | consumer`` without a shell (``zfs send ... | zfs receive ...``):
    the producer's stdout is the consumer's stdin, both stderrs are captured, and both
    exit statuses are checked, so a failed send is never taken for a finished receive.

    Takes no secret (nothing here needs one; a secret would go to a single :func:`run`).
    Raises :class:`CommandError` naming the command that failed (the producer's failure
    first, unless the consumer's exit killed it), or that is missing, or
    that outlasted ``timeout`` seconds (both are killed then). The result's ``argv`` is
    both commands joined by ``|``, its stdout the consumer's, its stderr both.
    """
    child_env = {**os.environ, "LC_ALL": "C", **(env or {})}
    argv = (*producer, "|", *consumer)
    with tempfile.TemporaryFile() as first_err, tempfile.TemporaryFile() as second_err:
        try:
            first = subprocess.Popen(
                list(producer),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=first_err,
                env=child_env,
                close_fds=True,
            )
        except FileNotFoundError:
            raise CommandError(producer, f"{producer[0]}: command not found") from None
        try:
            second = subprocess.Popen(
                list(consumer),
                stdin=first.stdout,
                stdout=subprocess.PIPE,
                stderr=second_err,
                env=child_env,
                close_fds=True,
            )
        except FileNotFoundError:
            first.kill()
            first.wait()
            raise CommandError(consumer, f"{consumer[0]}: command not found") from None
        finally:
            # Only the consumer reads the pipe now: if it exits early, the producer gets
            # EPIPE instead of blocking forever.
            if first.stdout is not None:
                first.stdout.close()
        try:
            stdout, _ = second.communicate(timeout=timeout)
            first.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            for process in (first, second):
                process.kill()
                process.wait()
            raise CommandError(
                argv, f"{producer[0]} | {consumer[0]} did not finish within {timeout:g} s"
            ) from None
        errors = []
        for err in (first_err, second_err):
            err.seek(0)
            errors.append(err.read().decode("utf-8", errors="replace"))
    out = stdout.decode("utf-8", errors="replace")
    result = Result(argv, second.returncode, out, "".join(errors))
    # The producer's failure first (a receive of a broken stream fails because of it),
    # unless it died of the consumer's exit (SIGPIPE): then the consumer's says why.
    order = [(first, producer, errors[0]), (second, consumer, errors[1])]
    if first.returncode == -signal.SIGPIPE:
        order.reverse()
    for process, command, text in order:
        if process.returncode != 0:
            tail = "\n".join(text.strip().splitlines()[-10:])
            raise CommandError(
                command, f"{command[0]} exited with status {process.returncode}: {tail}", tail
            )
    return result
