"""Exceptions the CLI turns into a message and an exit status (never a traceback)."""

from __future__ import annotations


class AdvisorError(Exception):
    """Base class; ``exit_status`` is what the process exits with."""

    exit_status = 1


class UsageError(AdvisorError):
    """Bad input from the user: CLI arguments, answers files, names. Exit status 2."""

    exit_status = 2


class PluginError(AdvisorError):
    """A plugin failed to load while strict loading is on, or its code raised or returned
    something unusable while a command ran; the message names it. Exit status 1."""

    exit_status = 1


class PluginRefusal(UsageError):
    """Raise it from a :class:`~advisor.models.Backend` method or a hook to refuse the
    user's input, such as an option the backend does not support (``raise
    PluginRefusal("the scripted initrd cannot unlock a TPM2")``). The core shows the
    message with the plugin's or backend's name and exits with status 2; any other
    exception from plugin code marks the plugin broken (exit status 1)."""
