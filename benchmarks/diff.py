"""``advisor diff`` on a root with many changed files: wall time and peak memory.

Run it with the Python of the environment the advisor is installed in:

    .venv/bin/python benchmarks/diff.py [--sizes 10000,100000,300000] [--check]

For each size it writes that many lines of ``zfs diff -H -F`` output as libzfs prints
them for a root mounted at /mnt, and runs the whole command, ``advisor diff --root ROOT
--json`` (and the table), in a child process: the CLI, the layout record, the streaming
runner (a stand-in ``zfs`` on PATH prints the lines with ``cat``), the parser, the
classification and the report. Only where the dataset is mounted is given (a mountinfo
file), since nothing is mounted here. Peak memory is the child's maximum resident set
(``wait4``). Two shapes of root:

- ``realistic``: paths spread as on a used system: program state below /var/lib (a few
  hundred programs, deep trees), caches, /etc files and NixOS's links, /tmp, names with
  spaces and non-ASCII bytes (escaped), directories' own lines;
- ``flat``: every path a file directly in /, so each is an entry of its own: the case
  that bounds the tally by its cap on groups (advisor.diff.tally.MAX_GROUPS).

``--check`` exits 1 if 100,000 realistic lines take 5 s or more, or if peak memory at
the largest size is more than 1.5 times that at the smallest (memory must not grow with
the number of paths).

Results on the development machine, 2026-12-05: 2 cores shared with four other jobs
(load average 7.6 during the run, so wall time is about three times the CPU time the
command used), Python 3.11.7. Peak memory is the same at every size: 31 MiB, 40 MiB for
JSON of 10,000 entries (the flat shape hits the cap on groups at every size shown).

    shape      output    lines  seconds  cpu s  peak MiB
    realistic  json      10000     0.52   0.17      30.6
    realistic  table     10000     0.41   0.22      30.6
    realistic  json     100000     1.92   0.68      30.6
    realistic  table    100000     2.76   0.76      30.7
    realistic  json     300000     5.80   1.78      30.7
    realistic  table    300000     5.68   1.84      30.7
    flat       json      10000     0.47   0.26      40.3
    flat       table     10000     0.73   0.24      30.7
    flat       json     100000     2.36   0.62      40.5
    flat       table    100000     1.79   0.64      30.7
    flat       json     300000     4.44   1.47      40.3
    flat       table    300000     4.22   1.43      30.7
"""

from __future__ import annotations

import argparse
import os
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GOAL_SECONDS = 5.0
GOAL_MEMORY_RATIO = 1.5

# The child: the real CLI, with only the mountinfo file pointed elsewhere.
DRIVER = """
import sys
from pathlib import Path
from advisor.diff import command
from advisor.cli import main
command.MOUNTINFO = Path(sys.argv[1])
sys.exit(main(sys.argv[2:]))
"""


def realistic(count: int) -> Iterator[str]:
    """``count`` lines of a used root mounted at /mnt."""
    yield "M\t/\t/mnt/\n"
    for n in range(count - 1):
        kind = n % 20
        if kind < 12:  # program state: /var/lib/app<k>/<d>/<file>
            app, sub = n % 300, (n // 300) % 40
            if n % 97 == 0:
                yield f"+\t/\t/mnt/var/lib/app{app}/d{sub}\n"
            else:
                yield f"+\tF\t/mnt/var/lib/app{app}/d{sub}/f{n}.dat\n"
        elif kind < 14:  # caches
            yield f"+\tF\t/mnt/var/cache/c{n % 50}/obj{n}\n"
        elif kind < 15:
            yield f"+\tF\t/mnt/root/.cache/nix/e{n}\n"
        elif kind < 16:
            yield f"+\tF\t/mnt/tmp/t{n}\n"
        elif kind < 17:  # /etc: NixOS's links and some state
            if n % 3:
                yield f"+\t@\t/mnt/etc/link{n % 400}\n"
            else:
                yield f"+\tF\t/mnt/etc/conf.d/s{n % 200}\n"
        elif kind < 18:  # names libzfs escapes: a space, UTF-8 (é)
            yield f"+\tF\t/mnt/srv/site{n % 20}/my\\0040page\\0303\\0251{n}.html\n"
        elif kind < 19:
            yield f"M\tF\t/mnt/var/lib/app{n % 300}/d0/f{n}.dat\t(+1)\n"
        else:
            yield f"+\tF\t/mnt/var/log/journal/j{n}\n"


def flat(count: int) -> Iterator[str]:
    """``count`` lines, each a file directly in /: an entry each."""
    for n in range(count):
        yield f"+\tF\t/mnt/file{n}\n"


SHAPES = {"realistic": realistic, "flat": flat}


def prepare(folder: Path) -> Path:
    """A root with a layout record, a stand-in zfs and a mountinfo file under ``folder``;
    the root's path."""
    sys.path.insert(0, str(ROOT / "tests"))
    from test_configuration import VARIANTS  # the layouts the unit tests use

    from advisor.layoutrecord import RECORD_FILE, record_text

    root = folder / "root"
    (root / "etc" / "nixos").mkdir(parents=True)
    (root / "etc" / "nixos" / RECORD_FILE).write_text(record_text(VARIANTS["zfs-native-systemd"]))
    bin_dir = folder / "bin"
    bin_dir.mkdir()
    zfs = bin_dir / "zfs"
    zfs.write_text(f'#!/bin/sh\nexec cat "{folder}/diff.txt"\n')
    zfs.chmod(zfs.stat().st_mode | stat.S_IXUSR)
    (folder / "mountinfo").write_text("90 1 0:50 / /mnt rw - zfs rpool/local/root rw\n")
    return root


def measure(folder: Path, root: Path, *options: str) -> tuple[float, float, int]:
    """Wall seconds, CPU seconds (user and system) and peak resident KiB of one
    ``advisor diff`` child (its ``cat`` child not included)."""
    env = {**os.environ, "PATH": f"{folder / 'bin'}:{os.environ['PATH']}"}
    argv = [sys.executable, "-c", DRIVER, str(folder / "mountinfo"), "diff", "--root", str(root)]
    start = time.perf_counter()
    child = subprocess.Popen([*argv, *options], stdout=subprocess.DEVNULL, env=env)
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - start
    child.returncode = code = os.waitstatus_to_exitcode(status)
    if code != 0:
        sys.exit(f"advisor diff {' '.join(options)} exited with {code}")
    return seconds, usage.ru_utime + usage.ru_stime, usage.ru_maxrss


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000,300000")
    parser.add_argument("--check", action="store_true", help="exit 1 if a goal is missed")
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]

    failures = []
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        root = prepare(folder)
        print(
            f"{'shape':<10} {'output':<6} {'lines':>8} {'seconds':>8} {'cpu s':>6} {'peak MiB':>9}"
        )
        for shape, lines in SHAPES.items():
            peaks: dict[str, list[int]] = {}
            for size in sizes:
                with (folder / "diff.txt").open("w") as out:
                    out.writelines(lines(size))
                outputs = {"json": ["--json"], "table": []}
                for output, options in outputs.items():
                    seconds, cpu, peak = measure(folder, root, *options)
                    peaks.setdefault(output, []).append(peak)
                    print(
                        f"{shape:<10} {output:<6} {size:>8} {seconds:>8.2f} {cpu:>6.2f}"
                        f" {peak / 1024:>9.1f}"
                    )
                    if shape == "realistic" and size == 100_000 and seconds >= GOAL_SECONDS:
                        failures.append(f"{shape} {output} {size}: {seconds:.2f} s")
            for output, values in peaks.items():
                if values[-1] > GOAL_MEMORY_RATIO * values[0]:
                    failures.append(f"{shape} {output}: memory grew {values[-1] / values[0]:.2f}x")
    for failure in failures:
        print(f"goal missed: {failure}")
    return 1 if args.check and failures else 0


if __name__ == "__main__":
    sys.exit(main())
