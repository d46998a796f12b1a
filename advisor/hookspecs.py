"""Hook specifications: what a plugin can contribute and when the core asks for it.

A plugin is a module (or object) registered under the ``advisor`` entry-point group. It
implements hooks by defining functions with these names, marked with
:data:`advisor.plugin.hookimpl`. Every hook is called with keyword arguments; an
implementation may accept any subset of the arguments a spec lists, so new arguments can
be added to a spec without breaking existing plugins.

All hooks are called once per command, after every plugin is loaded. Each plugin's
implementation is called on its own, so a failure is pinned on the plugin that raised it.
"""

from __future__ import annotations

from collections.abc import Sequence

import pluggy

from advisor.models import Axis, Backend, Question

PROJECT_NAME = "advisor"
HOOK_PREFIX = "advisor_"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)


@hookspec
def advisor_axes() -> Sequence[Axis]:
    """Declare threat axes that questions weight and backends are rated on.

    Called when the questionnaire is assembled, before questions and backends are
    validated against the known axes.

    :return: the axes this plugin introduces. An id that another plugin already
        declared is a conflict: the later plugin is reported as broken.
    """
    return ()  # pragma: no cover - pluggy never runs a spec body


@hookspec
def advisor_questions() -> Sequence[Question]:
    """Contribute questions to the threat-model questionnaire.

    Called by ``advisor assess`` and ``advisor questions``. Each choice's ``weights``
    may only name declared axes (see :func:`advisor_axes`).

    :return: the questions, in the order they should be asked. A question id that
        another plugin already uses is a conflict: the later plugin is reported as broken.
    """
    return ()  # pragma: no cover - pluggy never runs a spec body


@hookspec
def advisor_backends() -> Sequence[Backend]:
    """Register encryption backends.

    Called whenever backends are listed, ranked or used. Each returned object must be an
    instance of :class:`advisor.plugin.Backend` with a unique kebab-case ``name`` and an
    ``api_version`` the core supports; capabilities may only name declared axes.

    :return: backend instances. An incompatible ``api_version`` marks the plugin
        ``incompatible``; any other invalid backend marks it ``broken``.
    """
    return ()  # pragma: no cover - pluggy never runs a spec body
