"""Running the real Nix parser and evaluator on generated files (imported as ``nixeval``)."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest

HARNESS = Path(__file__).resolve().parent / "nix"
#: The configuration's harness is the package's own (advisor.nixeval), which check uses.
CONFIG_HARNESS = Path(__file__).resolve().parent.parent / "advisor" / "eval-config.nix"


def nix_instantiate() -> str:
    found = shutil.which("nix-instantiate")
    if found is None:
        pytest.fail("nix-instantiate is required (Debian: apt-get install nix-bin; .ci/run does)")
    return found


def _run(*args: str) -> str:
    completed = subprocess.run(
        [nix_instantiate(), *args], capture_output=True, text=True, timeout=120, check=False
    )
    if completed.returncode != 0:
        raise AssertionError(f"nix-instantiate {' '.join(args)} failed:\n{completed.stderr}")
    return completed.stdout


def parse(path: Path) -> None:
    """Fail unless ``path`` parses as Nix."""
    _run("--parse", str(path))


def eval_file(harness: str | Path, path: Path) -> Any:
    """``path`` evaluated by ``harness`` (a file name in tests/nix, or a path)."""
    where = harness if isinstance(harness, Path) else HARNESS / harness
    return json.loads(_run("--eval", "--strict", "--json", "--arg", "file", str(path), str(where)))


def eval_config(path: Path) -> Any:
    """A generated configuration.nix evaluated against stand-in module arguments."""
    return eval_file(CONFIG_HARNESS, path)


def eval_flake(path: Path) -> Any:
    """A generated flake.nix's description, inputs and (stubbed) outputs."""
    return eval_file("eval-flake.nix", path)


def eval_disko(path: Path) -> Any:
    """A disko configuration (a module setting ``disko.devices``) evaluated with disko's own
    types from tests/vendor: ``{"tree": <the device tree's options>, "create": <disko's
    create script>, "mount": <its mount script>}``. A type error fails with disko's message.
    """
    return eval_file("eval-disko.nix", path)


def eval_expression(source: str) -> Any:
    """Evaluate a Nix expression given as text."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "expr.nix"
        path.write_text(source, encoding="utf-8")
        return json.loads(_run("--eval", "--strict", "--json", str(path)))
