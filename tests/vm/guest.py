"""What the real-kernel tests share: the secrets, the live system's host id, the trace of
every command line, and readers of the plan script, the install log and the evaluated
configuration."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

PASSPHRASE = "canary-passphrase-93f1c"
PASSWORD = "canary-password-5d2e8"
TIMEOUT = 900
HOST_ID = "8f2a91c4"

# Every program the install starts is recorded with its full command line (strace follows
# the whole process tree): the secrets must never appear there (they go on stdin).
TRACE = "strace -f -qq -e trace=execve -s 4096 -o $RWDIR/execve.log"


def write_secrets(rwdir: Path) -> None:
    (rwdir / "passphrase").write_text(PASSPHRASE + "\n")
    (rwdir / "password").write_text(PASSWORD + "\n")


#: As on the NixOS installer, /etc/hostid is a link into a read-only store (the installer's
#: own id, 8425e349, in its little-endian bytes).
LIVE_HOSTID = """
mkdir -p /run/ro-store && mount -t tmpfs tmpfs /run/ro-store
printf '\\111\\343\\045\\204' > /run/ro-store/hostid
mount -o remount,ro /run/ro-store
ln -sfn /run/ro-store/hostid /etc/hostid
result live_hostid "$(hostid)"
"""


def rollback_command(cfg: dict[str, Any]) -> str:
    initrd = cfg["boot"]["initrd"]
    if initrd["systemd"]["enable"]:
        return str(initrd["systemd"]["services"]["rollback"]["script"])
    return str(initrd["postResumeCommands"]["content"])


def planned_commands(script: str) -> list[tuple[str, str]]:
    """(step id, command) of each step of a plan script, the secret's ``printf |`` removed."""
    lines = script.splitlines()
    steps = []
    for number, line in enumerate(lines):
        if match := re.match(r"# \[\d+/\d+\] ([\w-]+): ", line):
            command = re.sub(r"^printf '[^']*' \"\$ADVISOR_\w+\" \| ", "", lines[number + 1])
            steps.append((match[1], command))
    return steps


def logged_commands(log: str) -> list[tuple[str, str]]:
    """(step id, command) of each step the install log shows run, the stdin note removed."""
    pattern = re.compile(r"\S+ step \d+/\d+ ([\w-]+): (.*?)(?: \(stdin: <\w+>\))?$")
    return [(m[1], m[2]) for line in log.splitlines() if (m := pattern.match(line))]


def crypttab_options(device: dict[str, Any], header: str | None) -> str:
    """The options column luksroot.nix writes for a ``boot.initrd.luks.devices`` entry
    (its ``stage1Crypttab``), ``header`` being where the test finds the header."""
    options = list(device.get("crypttabExtraOpts", []))
    if device.get("allowDiscards"):
        options.append("discard")
    if device.get("bypassWorkqueues"):
        options += ["no-read-workqueue", "no-write-workqueue"]
    if header is not None:
        options.append(f"header={header}")
    return ",".join(options) or "-"
