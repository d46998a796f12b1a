"""Exceptions the CLI turns into a message and an exit status (never a traceback)."""

from __future__ import annotations


class AdvisorError(Exception):
    """Base class; ``exit_status`` is what the process exits with."""

    exit_status = 1


class UsageError(AdvisorError):
    """Bad input from the user: CLI arguments, answers files, names. Exit status 2."""

    exit_status = 2


class PluginError(AdvisorError):
    """A plugin failed to load or misbehaved while strict loading is on. Exit status 1."""

    exit_status = 1
