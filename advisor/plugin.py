"""Everything a plugin author imports: ``from advisor.plugin import hookimpl, Backend, ...``.

See ``docs/plugins.md`` for a complete example.
"""

from __future__ import annotations

import pluggy

from advisor.errors import PluginRefusal
from advisor.hookspecs import PROJECT_NAME
from advisor.models import (
    PLUGIN_API_VERSION,
    REKEY_SECRETS,
    Answers,
    AttrPath,
    Axis,
    Backend,
    Capability,
    Choice,
    InstallSpec,
    Layout,
    LayoutMember,
    Member,
    NixFragment,
    Note,
    Question,
    Rating,
    RekeySpec,
    RemoteUnlock,
    Settings,
    Step,
    SystemFacts,
    UnlockMethod,
)
from advisor.nix import Apply, Raw

#: Marks a function as a hook implementation. Functions named ``advisor_*`` are taken as
#: hook implementations even without it. Its ordering and wrapping options (``tryfirst``,
#: ``trylast``, ``wrapper``, ``hookwrapper``) are refused: the core calls each plugin's
#: implementation on its own, in load order, so a failure is pinned on its plugin, and a
#: plugin that asks for another order is reported broken rather than silently ignored.
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)

__all__ = [
    "PLUGIN_API_VERSION",
    "REKEY_SECRETS",
    "Answers",
    "Apply",
    "AttrPath",
    "Axis",
    "Backend",
    "Capability",
    "Choice",
    "InstallSpec",
    "Layout",
    "LayoutMember",
    "Member",
    "NixFragment",
    "Note",
    "PluginRefusal",
    "Question",
    "Rating",
    "Raw",
    "RekeySpec",
    "RemoteUnlock",
    "Settings",
    "Step",
    "SystemFacts",
    "UnlockMethod",
    "hookimpl",
]
