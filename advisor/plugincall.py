"""Calling plugin code: the one place that decides how its failures are reported.

The core calls plugins' hooks and :class:`~advisor.models.Backend` methods from several
commands. Wherever it does, a failure must read as the plugin's, never as a traceback
from the core: a :class:`~advisor.errors.PluginRefusal` refuses the user's input (exit
status 2), anything else the plugin raises or returns wrongly is a
:class:`~advisor.errors.PluginError` (exit status 1). Both messages start with who
failed (``plugin 'x'``, ``backend 'y'``) and name the hook or method.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, TypeVar

from advisor.errors import PluginError, PluginRefusal

if TYPE_CHECKING:
    from advisor.models import Backend, UnlockMethod

T = TypeVar("T")


def call(owner: str | None, what: str, function: Callable[..., T], *args: object) -> T:
    """``function(*args)``: a hook or method (``what``) of the plugin ``owner``.

    A :class:`PluginRefusal` is raised again with ``owner`` and ``what`` in front of its
    message; any other exception becomes a :class:`PluginError` saying what it raised.
    ``owner`` is ``None`` where the caller pins the failure itself (plugin discovery
    records it as the plugin's reason).
    """
    try:
        return function(*args)
    except PluginRefusal as refusal:
        raise PluginRefusal(blame(owner, f"{what} refused: {refusal}")) from None
    except Exception as error:  # any exception: a plugin's bug, reported as the plugin's
        detail = f"{what} raised {type(error).__name__}: {error}"
        raise PluginError(blame(owner, detail)) from error


def backend_owner(backend: Backend) -> str:
    """How a backend is named in its failures: ``backend 'luks'``."""
    return f"backend {backend.name!r}"


def call_backend(backend: Backend, method: str, *args: object) -> object:
    """``backend.method(*args)`` through :func:`call`, failures named as the backend's."""
    result: object = call(backend_owner(backend), method, getattr(backend, method), *args)
    return result


def method_owner(method: UnlockMethod) -> str:
    """How an unlock method is named in its failures: ``unlock method 'tpm2'``."""
    return f"unlock method {method.name!r}"


def call_method(method: UnlockMethod, name: str, *args: object) -> object:
    """``method.name(*args)`` through :func:`call`, failures named as the method's."""
    result: object = call(method_owner(method), name, getattr(method, name), *args)
    return result


def sequence(owner: str | None, what: str, result: object) -> list[object]:
    """``result`` as a list, if it is a sequence (any iterable but a string or a mapping,
    whose keys alone it would give); otherwise a :class:`PluginError` naming ``owner`` and
    ``what``."""
    if isinstance(result, str | bytes | Mapping) or not isinstance(result, Iterable):
        detail = f"{what} must return a sequence, not {type(result).__name__}"
        raise PluginError(blame(owner, detail))
    return list(result)


def sequence_of(owner: str | None, what: str, result: object, kind: type[T]) -> list[T]:
    """:func:`sequence`, each item checked to be a ``kind``."""
    items = sequence(owner, what, result)
    checked = []
    for item in items:
        if not isinstance(item, kind):
            detail = f"{what} returned {type(item).__name__}, not {kind.__name__}"
            raise PluginError(blame(owner, detail))
        checked.append(item)
    return checked


def blame(owner: str | None, detail: str) -> str:
    """``detail`` with ``owner`` in front, as every plugin failure is worded."""
    return detail if owner is None else f"{owner}: {detail}"
