"""Hook specifications: what a plugin can contribute and when the core asks for it.

A plugin is a module (or object) registered under the ``advisor`` entry-point group. It
implements hooks by defining functions with these names, marked with
:data:`advisor.plugin.hookimpl`. Every hook is called with keyword arguments; an
implementation may accept any subset of the arguments a spec lists, so new arguments can
be added to a spec without breaking existing plugins.

The core calls each plugin's implementation on its own, so a failure is pinned on the
plugin that caused it, in load order: the core's own plugin first, then the entry points
of the built-in distribution (``nixos-crypt-advisor``), then every other entry point,
each group by entry-point name. pluggy's ordering and wrapping options (``tryfirst``,
``trylast``, ``wrapper``, ``hookwrapper``) would have no effect, so a plugin that uses
them is refused as broken.

``advisor_axes``, ``advisor_questions``, ``advisor_backends`` and
``advisor_unlock_methods`` run once per plugin when
plugins are loaded (once per command), and their results are kept: when a broken plugin
is dropped and the rest validated again, no hook runs a second time.
``advisor_nix_fragments`` runs once per generated configuration (and, for
``advisor plugins --check``, once per sample layout).
"""

from __future__ import annotations

from collections.abc import Sequence

import pluggy

from advisor.models import Axis, Backend, Layout, NixFragment, Question, UnlockMethod

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

    A backend is ranked with its ratings alone. It can be installed (and configured)
    only if it says it encrypts (``installable = True``), with ``provision_steps`` before
    the pool or ``pool_encryption`` of the pool; the steps it returns must have
    unique kebab-case ids, one-line titles, argv of strings and a known secret name, or
    ``advisor plan`` and ``install`` stop with an error naming it.

    :return: backend instances. An incompatible ``api_version`` marks the plugin
        ``incompatible``; any other invalid backend marks it ``broken``.
    """
    return ()  # pragma: no cover - pluggy never runs a spec body


@hookspec
def advisor_unlock_methods() -> Sequence[UnlockMethod]:
    """Register ways to unlock the disks at boot (a passphrase, a TPM2, a FIDO2 token).

    Called whenever unlock methods are listed, ranked or used. Each returned object must
    be an instance of :class:`advisor.plugin.UnlockMethod` with a unique name (lower-case
    words joined by ``-`` or ``+``), an ``api_version`` the core supports, and
    capabilities that only name declared axes. A method is offered with a backend only
    when its ``carrier`` is ``None`` or one of the backend's ``unlock_carriers``.

    ``advisor install --unlock NAME`` runs the method's ``enroll_steps`` for each disk
    after the backend's ``provision_steps`` (and its ``retire_passphrase_steps`` at the
    end when the passphrase is not kept); ``advisor config`` writes its
    ``crypttab_options`` into each container's options and merges its ``nix_fragments``.

    :return: method instances. An incompatible ``api_version`` marks the plugin
        ``incompatible``; any other invalid method marks it ``broken``.
    """
    return ()  # pragma: no cover - pluggy never runs a spec body


@hookspec
def advisor_nix_fragments(layout: Layout, backend: Backend) -> Sequence[NixFragment]:
    """Add settings to the generated ``configuration.nix``, whatever the backend.

    Called once per generated configuration, after the core's and the backend's own
    fragments (:meth:`Backend.nix_fragments`) are known. Use it for cross-cutting
    additions (monitoring, extra persisted paths); a backend's own settings belong in
    its ``nix_fragments`` method.

    :param layout: the validated layout being configured.
    :param backend: the backend that encrypts it.
    :return: fragments to merge. Unlike discovery, generation is strict: a plugin that
        raises, returns something else, or sets an option another contributor set to a
        different value stops the command with an error naming it (exit status 1). To
        refuse a layout it cannot serve, raise :class:`advisor.plugin.PluginRefusal`
        (exit status 2).
    """
    return ()  # pragma: no cover - pluggy never runs a spec body
