"""Shared fixtures: plugin distributions made on the fly, and running the real CLI."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from helpers import MakePluginDist, PluginDist, Result, RunCli

from advisor.pluginmanager import ENTRY_POINT_GROUP

_counter = itertools.count()


@pytest.fixture
def make_plugin_dist(tmp_path: Path) -> Iterator[MakePluginDist]:
    """Write a module and a ``*.dist-info`` with an ``advisor`` entry point for it.

    This is what pip leaves in site-packages, so ``importlib.metadata`` discovers it the
    way it discovers any installed plugin. Module names are unique per call, so Python's
    import cache never hands one test another test's module.
    """
    made: list[str] = []

    def make(source: str, *, name: str = "example", dist: str = "advisor-example") -> PluginDist:
        module = f"advisor_testplugin_{next(_counter)}"
        folder = tmp_path / f"site-{module}"
        folder.mkdir()
        (folder / f"{module}.py").write_text(textwrap.dedent(source), encoding="utf-8")
        info = folder / f"{dist.replace('-', '_')}-1.2.3.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.2.3\n", encoding="utf-8"
        )
        (info / "entry_points.txt").write_text(
            f"[{ENTRY_POINT_GROUP}]\n{name} = {module}\n", encoding="utf-8"
        )
        made.append(module)
        return PluginDist(folder, module, name)

    yield make
    for module in made:
        sys.modules.pop(module, None)


@pytest.fixture
def plugin_on_path(monkeypatch: pytest.MonkeyPatch) -> Callable[[PluginDist], None]:
    """Make a written plugin importable in this process."""

    def install(plugin: PluginDist) -> None:
        monkeypatch.syspath_prepend(str(plugin.path))

    return install


@pytest.fixture
def run_cli() -> RunCli:
    """Run the installed ``advisor`` command in a child process, stdin not a terminal."""

    def run(
        *args: str,
        env: dict[str, str] | None = None,
        extra_path: list[Path] | None = None,
        cwd: Path | None = None,
    ) -> Result:
        child_env = {k: v for k, v in os.environ.items() if not k.startswith("ADVISOR_")}
        child_env.update(env or {})
        if extra_path:
            existing = child_env.get("PYTHONPATH", "")
            child_env["PYTHONPATH"] = os.pathsep.join(
                [str(p) for p in extra_path] + ([existing] if existing else [])
            )
        completed = subprocess.run(
            [sys.executable, "-m", "advisor", *args],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            env=child_env,
            cwd=cwd,
            timeout=60,
            check=False,
        )
        return Result(completed.returncode, completed.stdout, completed.stderr)

    return run
