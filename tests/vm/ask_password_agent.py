"""A systemd password agent for the real-kernel tests: answers the first question with
the passphrase (or the first questions with the answers given, in order), cancels every
later one, and writes each question it sees to a log.

systemd's agent protocol (docs/PASSWORD_AGENTS.md): a program that needs a password
and has no terminal writes ``/run/systemd/ask-password/ask.*``, an ini file whose
``[Ask]`` section names a datagram ``Socket=``; an agent answers with ``+PASSWORD`` (or
``-`` to cancel) sent to that socket as root. ``systemd-cryptsetup`` asks this way, after
looking in the kernel keyring for a passphrase cached by an earlier unlock: a second
question means the cache was not used.

Usage: ``ask_password_agent.py PASSPHRASE-FILE LOG STOP-FILE [ANSWER-FILE...]`` (runs
until STOP-FILE exists): question 1 gets PASSPHRASE-FILE's content, question 2 the first
ANSWER-FILE's, and so on; an answer file named ``-`` cancels that question. Run as root, in
the background.

A TPM2 PIN is asked this way too. systemd-cryptsetup 252 asks, in order, ``Please enter
LUKS2 token PIN:`` (libcryptsetup's token plugin), ``Please enter TPM2 PIN:`` (its own TPM2
code), then ``Please enter passphrase for disk NAME:``; the PINs are cached in root's user
keyring (AcceptCached=1) and a cached wrong PIN is tried first: ``keyctl purge user``
between attaches.
"""

from __future__ import annotations

import configparser
import socket
import sys
import time
from pathlib import Path

ASK_DIR = Path("/run/systemd/ask-password")


def main(passphrase_file: str, log_file: str, stop_file: str, *answer_files: str) -> int:
    # None: cancel (an answer file named "-").
    answers = [
        None if name == "-" else Path(name).read_bytes().rstrip(b"\n")
        for name in (passphrase_file, *answer_files)
    ]
    ASK_DIR.mkdir(parents=True, exist_ok=True)
    seen: set[str] = set()
    with Path(log_file).open("a", encoding="utf-8") as log:
        while not Path(stop_file).exists():
            # systemd writes each question to a temporary file and renames it: whole.
            for ask in sorted(ASK_DIR.glob("ask.*")):
                if ask.name in seen:
                    continue
                seen.add(ask.name)
                parser = configparser.ConfigParser(interpolation=None)
                parser.read(ask)
                target = parser["Ask"]["Socket"]
                log.write(f"asked: {parser['Ask'].get('Message', '?')}\n")
                log.flush()
                answer = answers[len(seen) - 1] if len(seen) <= len(answers) else None
                reply = b"-" if answer is None else b"+" + answer
                with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                    sock.sendto(reply, target)
            time.sleep(0.05)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(*sys.argv[1:]))
