"""Start-up time of the CLI, as whole processes, against the interpreter's own floor.

Run it with the Python of the environment the advisor is installed in:

    .venv/bin/python benchmarks/startup.py [--runs N] [--check]

It times ``python -c pass`` (the floor), ``advisor --help`` and
``advisor assess --profile journalist --json``, prints medians and ratios to the floor,
and with ``--check`` exits 1 if a ratio misses its goal (6x for --help, 12x for assess).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

GOALS = {"advisor --help": 6.0, "advisor assess --profile journalist --json": 12.0}


def advisor_script() -> str:
    script = Path(sys.executable).parent / "advisor"
    if not script.exists():
        sys.exit(f"no advisor script next to {sys.executable}: install the package first")
    return str(script)


def median_seconds(argv: list[str], runs: int) -> float:
    for _ in range(2):  # warm the page cache
        subprocess.run(argv, stdout=subprocess.DEVNULL, check=True)
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(argv, stdout=subprocess.DEVNULL, check=True)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--check", action="store_true", help="exit 1 if a goal is missed")
    args = parser.parse_args()

    advisor = advisor_script()
    commands = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "advisor --help": [advisor, "--help"],
        "advisor assess --profile journalist --json": [
            advisor,
            "assess",
            "--profile",
            "journalist",
            "--json",
        ],
    }
    medians = {name: median_seconds(argv, args.runs) for name, argv in commands.items()}
    floor = medians["python -c pass"]
    missed = False
    print(f"{'command':<46} {'median':>9} {'ratio':>7} {'goal':>6}")
    for name, seconds in medians.items():
        ratio = seconds / floor
        goal = GOALS.get(name)
        verdict = ""
        if goal is not None:
            verdict = "ok" if ratio <= goal else "MISSED"
            missed |= ratio > goal
        goal_text = f"{goal:g}x" if goal else "-"
        print(f"{name:<46} {seconds * 1000:7.1f}ms {ratio:6.2f}x {goal_text:>6} {verdict}")
    print(f"({args.runs} runs each, {sys.executable})")
    return 1 if args.check and missed else 0


if __name__ == "__main__":
    raise SystemExit(main())
