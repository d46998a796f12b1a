"""Types shared by the tests and their fixtures (imported as ``helpers``)."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from advisor import runner
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


def yescrypt_verifies(password: str, hashed: str) -> bool:
    """Whether ``hashed`` is a yescrypt hash of ``password``, checked by another route."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            import crypt  # deprecated since 3.11, gone in 3.13
    except ImportError:
        # mkpasswd re-hashes with the same setting (everything before the last "$").
        setting = hashed.rsplit("$", 1)[0]
        argv = ["mkpasswd", "--method=yescrypt", f"--salt={setting}", "--stdin"]
        return runner.run(argv, secret=password).stdout.strip() == hashed
    return bool(crypt.crypt(password, hashed) == hashed)
