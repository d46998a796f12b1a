"""Time ``advisor install`` against the same commands run as a plain shell script.

Both run in one VM boot (so boot time is not counted), on two identical disks, alternating:
script, advisor, script, advisor. The shell script is ``advisor plan``'s output for the
same options, so the commands are identical; the difference is the advisor's own work
(disk discovery, the identity check, journal, log, progress). Goal: within 1.10x.

    .venv/bin/python benchmarks/install_vm.py [--backend luks] [--rounds 2]

Needs the VM prerequisites (scripts/install-vm-deps) and root.
"""

from __future__ import annotations

import argparse
import shlex
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "vm"))

from harness import create_disk, run_in_vm

GOAL = 1.10


def options(backend: str, disk: str, rw: Path, state: str) -> str:
    args = [
        "--backend", backend, "--disk", disk, "--yes-wipe", disk,
        "--passphrase-file", f"{rw}/passphrase", "--password-file", f"{rw}/password",
        "--state-dir", f"{rw}/{state}", "--root", "/mnt", "--allow-bios",
        "--insecure-fast-kdf", "--hostname", "bench", "--user", "alice",
        "--host-id", "8f2a91c4",
    ]  # fmt: skip
    return shlex.join(args)


TEARDOWN = "umount -R /mnt; zpool export rpool; cryptsetup close cryptroot 2>/dev/null || true"


def script(backend: str, rw: Path, rounds: int) -> str:
    lines = [
        "export ADVISOR_PASSPHRASE=$(head -n1 passphrase) ADVISOR_PASSWORD=$(head -n1 password)",
        "$PYTHON -m advisor --version > /dev/null",  # warm the page cache
    ]
    for n in range(rounds):
        shell_state, advisor_state = f"plan{n}", f"state{n}"
        lines += [
            f"$PYTHON -m advisor plan {options(backend, 'virtio-shell', rw, shell_state)}"
            f" > plan{n}.sh",
            "start=$(date +%s%N)",
            f"sh plan{n}.sh > shell{n}.out 2>&1",
            f'result shell_{n} "$(( ($(date +%s%N) - start) / 1000000 ))"',
            TEARDOWN,
            "start=$(date +%s%N)",
            f"$PYTHON -m advisor install {options(backend, 'virtio-advisor', rw, advisor_state)}"
            f" > advisor{n}.out 2>&1",
            f'result advisor_{n} "$(( ($(date +%s%N) - start) / 1000000 ))"',
            TEARDOWN,
        ]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="luks")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="advisor-bench-") as folder:
        rw = Path(folder) / "rw"
        rw.mkdir()
        (rw / "passphrase").write_text("benchmark-passphrase\n")
        (rw / "password").write_text("benchmark-password\n")
        disks = [
            create_disk(Path(folder) / "shell.img", "8G", serial="shell"),
            create_disk(Path(folder) / "advisor.img", "8G", serial="advisor"),
        ]
        result = run_in_vm(script(args.backend, rw, args.rounds), disks, rwdir=rw, timeout=3600)
        if result.returncode != 0:
            print(result.describe())
            return 1
        shell = [int(result.results[f"shell_{n}"]) / 1000 for n in range(args.rounds)]
        advisor = [int(result.results[f"advisor_{n}"]) / 1000 for n in range(args.rounds)]
    ratio = statistics.median(advisor) / statistics.median(shell)
    print(f"backend {args.backend}, {args.rounds} rounds in one VM boot (QEMU TCG)")
    print(f"shell script   : {', '.join(f'{s:.1f}' for s in shell)} s")
    print(f"advisor install: {', '.join(f'{s:.1f}' for s in advisor)} s")
    verdict = "ok" if ratio <= GOAL else "MISSED"
    print(f"ratio (medians): {ratio:.2f}x (goal {GOAL:.2f}x) {verdict}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
