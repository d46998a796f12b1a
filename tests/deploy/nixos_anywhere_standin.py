#!/usr/bin/env python3
"""A stand-in for nixos-anywhere in the fleet tests: records how it was called, then
sleeps and exits 0, or 1 for a host named in STANDIN_FAIL.

Each call writes ``$STANDIN_RECORDS/<host>.<pid>.json``: its argv, the wall-clock start and
end (so a test measures how many ran at once from the records, not from its own
timing), and what the file ``--disk-encryption-keys`` names held: its mode, its SHA-256
and whether it ends with a newline (the passphrase itself is never recorded). With
``--generate-hardware-config`` it writes a hardware configuration there, as nixos-anywhere
does; with ``--extra-files`` it records the tree's files and modes.
"""

import hashlib
import json
import os
import sys
import time
from pathlib import Path


def main(argv: list[str]) -> int:
    start = time.time()
    flake = argv[argv.index("--flake") + 1]
    host = flake.rpartition("#")[2]
    at = argv.index("--disk-encryption-keys")
    key = Path(argv[at + 2])
    data = key.read_bytes()
    record = {
        "argv": argv,
        "host": host,
        "start": start,
        "key_mode": oct(key.stat().st_mode & 0o777),
        "key_sha256": hashlib.sha256(data).hexdigest(),
        "key_newline": data.endswith(b"\n"),
    }
    if "--extra-files" in argv:
        root = Path(argv[argv.index("--extra-files") + 1])
        record["extra_files"] = {
            str(p.relative_to(root)): oct(p.stat().st_mode & 0o777)
            for p in sorted([root, *root.rglob("*")])
        }
    if "--generate-hardware-config" in argv:
        at = argv.index("--generate-hardware-config")
        Path(argv[at + 2]).write_text("{ ... }: { }\n", encoding="utf-8")
    print(f"### stand-in installing {host} ###", flush=True)
    print("a line on stderr", file=sys.stderr, flush=True)
    time.sleep(float(os.environ.get("STANDIN_SLEEP", "0")))
    record["end"] = time.time()
    records = Path(os.environ["STANDIN_RECORDS"])
    (records / f"{host}.{os.getpid()}.json").write_text(json.dumps(record), encoding="utf-8")
    failing = os.environ.get("STANDIN_FAIL", "").split(",")
    if host in failing:
        print(f"aborted: {host} is set to fail", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
