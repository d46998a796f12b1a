"""``advisor fleet`` for a fleet of many hosts: wall time of the whole command.

Run it with the Python of the environment the advisor is installed in:

    .venv/bin/python benchmarks/fleet.py [--hosts 10,100,300] [--check]

For each size it writes an inventory of that many hosts (half luks on one disk, half
zfs-native on a mirror of two, a quarter of them with remote unlock, every fourth chosen
by an assessment profile instead of a backend, a password hash in the defaults) and runs
the real command, ``advisor fleet --inventory FILE --out DIR`` in a child process: the
CLI, the inventory's checks, each host's spec (checked by the install's
``validate_spec``), its disko configuration, its NixOS configuration and layout record,
the flake, and the files written. Then again on the folder it wrote (every host's ids
and partition GUIDs read back and kept, nothing to write), and again with a host added
(``--force``: the flake and the manifest written anew).

``--check`` exits 1 if the first run of 100 hosts takes 2 s or more.

Results on the development machine, 2026-12-05: 2 cores shared with four other jobs
(load average 4.7 during the run, so wall time is about twice the CPU time the command
used; the rest is the fsync of each file written), Python 3.11.7:

     hosts run         seconds  cpu s
        10 first          0.57   0.26
        10 again          0.33   0.24
        11 one more       0.35   0.24
       100 first          1.06   0.53
       100 again          0.74   0.44
       101 one more       0.54   0.40
       300 first          2.51   1.05
       300 again          2.19   0.82
       301 one more       1.87   0.80

Where the time goes (cProfile, 100 hosts): each host's configuration generated and
merged (about half), its disko configuration, the export's check that its unlock method
adds no install step (two plans built), and one fsync per file written (each folder's
entries flushed once, not once per file).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GOAL_SECONDS = 2.0
GOAL_HOSTS = 100
HASH = "$y$j9T$F5Jx5fExrKuJdjBcWv4jc/$9b1e9Ow3SGGCtwGv1ToiSSL3uDyNXPkGrTtXySWbKC8"
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl admin"


def host(number: int) -> str:
    """The ``[[hosts]]`` table of host ``number``."""
    name = f"host{number:04d}"
    disk = f"/dev/disk/by-id/nvme-Samsung_SSD_980_1TB_S64DNX0R{number:06d}"
    lines = [
        "[[hosts]]",
        f'name = "{name}"',
        f'target = "root@10.{number // 65536}.{number // 256 % 256}.{number % 256}"',
    ]
    if number % 2:
        lines += [f'disks = ["{disk}A", "{disk}B"]', 'backend = "zfs-native"']
    else:
        lines.append(f'disks = ["{disk}"]')
    if number % 4 == 0:
        lines.append('profile = "homelab"')
    if number % 4 == 2:
        lines.append('remote_unlock_keys = "admins.pub"')
    return "\n".join(lines) + "\n"


def inventory(folder: Path, count: int) -> Path:
    (folder / "admins.pub").write_text(KEY + "\n", encoding="utf-8")
    defaults = (
        "[defaults]\n"
        'backend = "luks"\n'
        'user = "admin"\n'
        f'password_hash = "{HASH}"\n'
        'authorized_keys = "admins.pub"\n'
        'passphrase_command = ["pass", "show", "disks/{host}"]\n\n'
    )
    path = folder / "fleet.toml"
    path.write_text(defaults + "\n".join(host(n) for n in range(count)), encoding="utf-8")
    return path


def measure(path: Path, out: Path, *options: str) -> tuple[float, float]:
    """Wall seconds and CPU seconds (user and system) of one ``advisor fleet`` child."""
    argv = [sys.executable, "-m", "advisor", "fleet", "--inventory", str(path), "--out", str(out)]
    start = time.perf_counter()
    child = subprocess.Popen([*argv, *options], stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - start
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        sys.exit(f"advisor fleet {' '.join(options)} exited with {code}")
    return seconds, usage.ru_utime + usage.ru_stime


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--hosts", default="10,100,300")
    parser.add_argument("--check", action="store_true", help="exit 1 if the goal is missed")
    args = parser.parse_args()
    sizes = [int(size) for size in args.hosts.split(",")]
    if args.check and GOAL_HOSTS not in sizes:
        sizes.append(GOAL_HOSTS)

    failures = []
    print(f"{'hosts':>6} {'run':<10} {'seconds':>8} {'cpu s':>6}")
    for size in sizes:
        with tempfile.TemporaryDirectory() as name:
            folder = Path(name)
            path = inventory(folder, size)
            out = folder / "fleet"
            runs = {"first": (), "again": ()}
            for run, options in runs.items():
                seconds, cpu = measure(path, out, *options)
                print(f"{size:>6} {run:<10} {seconds:>8.2f} {cpu:>6.2f}")
                if run == "first" and size == GOAL_HOSTS and seconds >= GOAL_SECONDS:
                    failures.append(f"{size} hosts: {seconds:.2f} s")
            with path.open("a", encoding="utf-8") as text:
                text.write("\n" + host(size))
            seconds, cpu = measure(path, out, "--force")
            print(f"{size + 1:>6} {'one more':<10} {seconds:>8.2f} {cpu:>6.2f}")
    for failure in failures:
        print(f"goal missed ({GOAL_SECONDS:g} s): {failure}")
    return 1 if args.check and failures else 0


if __name__ == "__main__":
    sys.exit(main())
