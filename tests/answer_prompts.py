"""Run a command on a pseudo-terminal and answer its prompts, as a person at a keyboard would.

    python answer_prompts.py TRANSCRIPT ANSWERS.json -- COMMAND...

ANSWERS.json is a list of ``[prompt, reply]`` pairs: when the output shows ``prompt`` (after
what the previous reply matched), ``reply`` and Enter are typed. Everything the terminal
showed is written to TRANSCRIPT, and the command's exit status becomes this script's. Used
by the host tests and in the VM, where ``advisor install`` runs for real; standard library only.
"""

from __future__ import annotations

import json
import os
import pty
import select
import sys
import termios
import time
from pathlib import Path

TIMEOUT = 600.0  # seconds for the whole command: an install under emulation is slow
#: How long a reply waits for the terminal to stop echoing: a program that asks for a
#: secret turns echo off, some (systemd's) only after the prompt shows. A prompt that
#: keeps echo on (a disk id to confirm) gets its reply once this has passed.
ECHO_WAIT = 2.0


def wait_for_no_echo(fd: int) -> None:
    """Wait (up to :data:`ECHO_WAIT`) until the terminal no longer echoes what is typed,
    as a person would only type a secret once the prompt is ready for it. The master
    side of a pseudo-terminal reads the slave's settings."""
    until = time.monotonic() + ECHO_WAIT
    while time.monotonic() < until:
        if not termios.tcgetattr(fd)[3] & termios.ECHO:
            return
        time.sleep(0.02)


def main(transcript_path: str, answers_path: str, command: list[str]) -> int:
    pairs = json.loads(Path(answers_path).read_text(encoding="utf-8"))
    answers: list[tuple[str, str]] = [(str(prompt), str(reply)) for prompt, reply in pairs]
    pid, fd = pty.fork()
    if pid == 0:
        os.execvp(command[0], command)  # noqa: S606 - the command given, as given
    seen = b""
    searched_from = 0  # each prompt is looked for after the previous one
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 1.0)
        if not ready:
            continue
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # EIO: the command closed the terminal
            break
        if not chunk:
            break
        seen += chunk
        while answers and (found := seen.find(answers[0][0].encode(), searched_from)) >= 0:
            # Only once the prompt shows: getpass flushes what was typed before it asked.
            prompt, reply = answers.pop(0)
            wait_for_no_echo(fd)
            os.write(fd, reply.encode() + b"\r")
            searched_from = found + len(prompt)
    else:
        os.kill(pid, 9)
    _, status = os.waitpid(pid, 0)
    Path(transcript_path).write_bytes(seen)
    if answers:
        print(f"prompts never shown: {[p for p, _ in answers]}", file=sys.stderr)
    return os.waitstatus_to_exitcode(status)


if __name__ == "__main__":
    separator = sys.argv.index("--")
    transcript, answers_file = sys.argv[1:separator]
    sys.exit(main(transcript, answers_file, sys.argv[separator + 1 :]))
