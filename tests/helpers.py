"""Types shared by the tests and their fixtures (imported as ``helpers``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from advisor.pluginmanager import ENTRY_POINT_GROUP


@dataclass(frozen=True)
class PluginDist:
    """A plugin distribution written to a folder: put ``path`` on sys.path to install it."""

    path: Path
    module: str
    entry_point: str

    def entry_points(self) -> list[metadata.EntryPoint]:
        return [
            ep
            for dist in metadata.distributions(path=[str(self.path)])
            for ep in dist.entry_points
            if ep.group == ENTRY_POINT_GROUP
        ]


@dataclass(frozen=True)
class Result:
    returncode: int
    stdout: str
    stderr: str


MakePluginDist = Callable[..., PluginDist]
RunCli = Callable[..., Result]
