"""Finding, loading and validating plugins; the typed view of what they contribute.

Loading is tolerant: a plugin that fails to import, has a hook with a wrong signature or
a pluggy ordering option the core cannot honour, implements an ``advisor_*`` hook that has
no spec, or returns invalid data is recorded with the reason and left out, and every other
plugin keeps working. ``ADVISOR_STRICT_PLUGINS=1``
turns any such failure into an error; ``ADVISOR_DISABLE_PLUGINS=a,b`` skips the named entry
points before they are imported.

The core never calls ``pm.hook`` directly: :class:`LoadedPlugins` holds validated, typed
results, each attributed to the plugin that provided it.
"""

from __future__ import annotations

import difflib
import enum
import inspect
import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import metadata
from types import ModuleType
from typing import Any

import pluggy

from advisor import hookspecs, questionnaire
from advisor.errors import AdvisorError, PluginError, UsageError
from advisor.models import (
    SUPPORTED_PLUGIN_API_VERSIONS,
    Axis,
    Backend,
    Capability,
    Layout,
    NixFragment,
    Question,
    Rating,
    UnlockMethod,
    carries,
)
from advisor.plugincall import call, sequence, sequence_of

ENTRY_POINT_GROUP = "advisor"
DISABLE_ENV = "ADVISOR_DISABLE_PLUGINS"
STRICT_ENV = "ADVISOR_STRICT_PLUGINS"
#: The distribution the core and the built-in backends ship in (see pyproject.toml).
BUILTIN_DISTRIBUTION = "nixos-crypt-advisor"

#: Plugins that are part of the core itself: always registered, never disabled.
CORE_PLUGINS: tuple[tuple[str, ModuleType], ...] = (("core", questionnaire),)

_SNAKE_ID = re.compile(r"^[a-z][a-z0-9_]*$")
_KEBAB_NAME = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")
#: An unlock method's name: kebab-case words, also joined by ``+`` (``tpm2+pin``).
_METHOD_NAME = re.compile(r"^[a-z][a-z0-9]*([-+][a-z0-9]+)*$")


class Status(enum.StrEnum):
    ACTIVE = "active"
    DISABLED = "disabled"
    BROKEN = "broken"
    INCOMPATIBLE = "incompatible"


@dataclass
class PluginRecord:
    """What ``advisor plugins`` reports about one plugin."""

    name: str
    module: str
    distribution: str | None
    version: str | None
    status: Status = Status.ACTIVE
    reason: str = ""
    hooks: list[str] = field(default_factory=list)
    axes: list[str] = field(default_factory=list)
    questions: list[str] = field(default_factory=list)
    backends: list[str] = field(default_factory=list)
    unlock_methods: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "module": self.module,
            "distribution": self.distribution,
            "version": self.version,
            "status": str(self.status),
            "reason": self.reason,
            "hooks": self.hooks,
            "axes": self.axes,
            "questions": self.questions,
            "backends": self.backends,
            "unlock_methods": self.unlock_methods,
        }


class _Rejected(Exception):
    """A plugin's contribution is invalid; ``status`` says how to record it."""

    def __init__(self, reason: str, status: Status = Status.BROKEN) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


class _AdvisorPluginManager(pluggy.PluginManager):
    """Takes any ``advisor_*`` function as a hook implementation, marked or not.

    Without this, a plugin that forgot the marker, or misspelled a hook, would be silently
    ignored; with it, the misspelling is reported as an unknown hook (pytest does the same
    for ``pytest_*``).
    """

    def parse_hookimpl_opts(self, plugin: object, name: str) -> pluggy.HookimplOpts | None:
        opts = super().parse_hookimpl_opts(plugin, name)
        if (
            opts is None
            and name.startswith(hookspecs.HOOK_PREFIX)
            and inspect.isroutine(getattr(plugin, name, None))
        ):
            return pluggy.HookimplOpts(
                wrapper=False,
                hookwrapper=False,
                optionalhook=False,
                tryfirst=False,
                trylast=False,
                specname=None,
            )
        return opts


@dataclass(frozen=True)
class LoadedPlugins:
    """The validated contributions of every active plugin, and a record of every plugin."""

    records: tuple[PluginRecord, ...]
    axes: tuple[Axis, ...]
    questions: tuple[Question, ...]
    backends: tuple[Backend, ...]
    manager: pluggy.PluginManager = field(repr=False, compare=False)
    unlock_methods: tuple[UnlockMethod, ...] = ()

    def nix_fragments(
        self, layout: Layout, backend: Backend, *, plugin: str | None = None
    ) -> list[tuple[str, NixFragment]]:
        """Every active plugin's ``advisor_nix_fragments``, as (plugin name, fragment), in
        load order; only the one called ``plugin``, if given (``advisor plugins --check``).

        Strict, unlike discovery: this output ends up on a disk, so a failing plugin is
        an error (:class:`PluginError`, or the :class:`PluginRefusal` it raised) naming it.
        """
        kwargs = {"layout": layout, "backend": backend}
        hook = "advisor_nix_fragments"
        fragments = []
        for record in self.records:
            impl = _impl(self.manager, hook, record.name)
            if (
                record.status is not Status.ACTIVE
                or impl is None
                or plugin not in (None, record.name)
            ):
                continue
            owner = f"plugin {record.name!r}"
            results = call(owner, hook, impl.function, *(kwargs[a] for a in impl.argnames))
            results = [] if results is None else results
            for fragment in sequence_of(owner, hook, results, NixFragment):
                fragments.append((record.name, fragment))
        return fragments

    def backend(self, name: str) -> Backend:
        """The active backend called ``name``; a :class:`UsageError` names the others."""
        for backend in self.backends:
            if backend.name == name:
                return backend
        known = ", ".join(b.name for b in self.backends) or "none"
        raise UsageError(f"unknown backend {name!r} (installed: {known})")

    def unlock_method(self, name: str) -> UnlockMethod:
        """The active unlock method called ``name``; a :class:`UsageError` names the others."""
        for method in self.unlock_methods:
            if method.name == name:
                return method
        known = ", ".join(m.name for m in self.unlock_methods) or "none"
        raise UsageError(f"--unlock {name!r}: no such unlock method (installed: {known})")

    def unlock_methods_for(self, backend: Backend) -> tuple[UnlockMethod, ...]:
        """The methods ``backend`` can carry: those needing no carrier, and those whose
        carrier is one of its ``unlock_carriers``."""
        return tuple(m for m in self.unlock_methods if carries(backend, m))

    @property
    def failures(self) -> list[PluginRecord]:
        return [r for r in self.records if r.status in (Status.BROKEN, Status.INCOMPATIBLE)]


def load_plugins(
    environ: Mapping[str, str] | None = None,
    entry_points: Iterable[metadata.EntryPoint] | None = None,
) -> LoadedPlugins:
    """Load the core plugin and every entry point in the ``advisor`` group, and validate them.

    ``environ`` defaults to ``os.environ``; ``entry_points`` to the installed ones (tests
    pass their own to load plugins from a temporary distribution).
    """
    env = os.environ if environ is None else environ
    strict = env.get(STRICT_ENV, "").strip().lower() in ("1", "true", "yes", "on")
    disabled = {name.strip() for name in env.get(DISABLE_ENV, "").split(",") if name.strip()}
    if entry_points is None:
        entry_points = metadata.entry_points(group=ENTRY_POINT_GROUP)

    pm = _AdvisorPluginManager(hookspecs.PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    records: list[PluginRecord] = []

    def fail(record: PluginRecord, reason: str, status: Status) -> None:
        # Callers unregister what they registered; here the name may belong to another
        # plugin (a duplicate entry-point name), which must stay.
        record.status = status
        record.reason = reason
        if strict:
            raise PluginError(f"plugin {record.name!r} ({record.module}) is {status}: {reason}")

    for name, module in CORE_PLUGINS:
        pm.register(module, name=name)
        records.append(
            PluginRecord(name=name, module=module.__name__, distribution=None, version=None)
        )

    for ep, distribution, version in _ordered(entry_points):
        record = PluginRecord(
            name=ep.name, module=ep.value, distribution=distribution, version=version
        )
        records.append(record)
        if ep.name in disabled:
            record.status = Status.DISABLED
            record.reason = f"disabled by {DISABLE_ENV}"
            continue
        if pm.has_plugin(ep.name) or pm.is_blocked(ep.name):
            fail(record, f"another plugin is already registered as {ep.name!r}", Status.BROKEN)
            continue
        _register(pm, ep, record, fail)

    axes, questions, backends, methods = _collect(pm, records, fail)
    for record in records:
        if record.status is Status.ACTIVE and pm.has_plugin(record.name):
            plugin = pm.get_plugin(record.name)
            record.hooks = sorted(caller.name for caller in pm.get_hookcallers(plugin) or ())
    return LoadedPlugins(tuple(records), axes, questions, backends, pm, methods)


_Fail = Callable[[PluginRecord, str, Status], None]


def _ordered(
    entry_points: Iterable[metadata.EntryPoint],
) -> list[tuple[metadata.EntryPoint, str | None, str | None]]:
    """Each entry point with its distribution's name and version: built-in backends first
    (they ship with the core), then the rest by name."""
    read: dict[object, tuple[str | None, str | None]] = {}
    declared = [(ep, *_distribution(ep, read)) for ep in entry_points]
    return sorted(declared, key=lambda item: (item[1] != BUILTIN_DISTRIBUTION, item[0].name))


def _distribution(
    ep: metadata.EntryPoint, read: dict[object, tuple[str | None, str | None]]
) -> tuple[str | None, str | None]:
    """Name and version of the distribution declaring ``ep``, from one read of its
    metadata (``Distribution.name`` and ``.version`` each parse the whole file again),
    once per distribution: ``read`` holds those read already, by the folder of their
    metadata (the built-in one declares several entry points, each parse costs ~1 ms)."""
    if ep.dist is None:
        return None, None
    key: object = getattr(ep.dist, "_path", None) or id(ep.dist)
    if key not in read:
        fields = ep.dist.metadata
        read[key] = (fields["Name"], fields["Version"])
    return read[key]


def _register(
    pm: pluggy.PluginManager, ep: metadata.EntryPoint, record: PluginRecord, fail: _Fail
) -> None:
    try:
        plugin = ep.load()
    except Exception as error:  # any exception: a plugin must not take the CLI down
        fail(record, f"import failed: {type(error).__name__}: {error}", Status.BROKEN)
        return
    try:
        refused = _refused_option(pm, plugin)
    except Exception as error:  # pluggy reads every attribute; a property may raise
        fail(record, f"registration failed: {type(error).__name__}: {error}", Status.BROKEN)
        return
    if refused is not None:
        fail(record, refused, Status.BROKEN)
        return
    try:
        pm.register(plugin, name=ep.name)
    except pluggy.PluginValidationError as error:
        # pluggy keeps the hooks it attached before the bad one: remove them all.
        if pm.has_plugin(ep.name):
            pm.unregister(name=ep.name)
        fail(record, f"bad hook signature: {_one_line(str(error))}", Status.BROKEN)
        return
    except ValueError as error:  # pluggy: the same object registered under another name
        fail(record, str(error), Status.BROKEN)
        return
    unknown = [c.name for c in pm.get_hookcallers(plugin) or () if not c.has_spec()]
    if unknown:
        pm.unregister(name=ep.name)
        reason = "; ".join(_unknown_hook_message(name) for name in sorted(unknown))
        fail(record, reason, Status.BROKEN)


def _unknown_hook_message(name: str) -> str:
    specs = [n for n in dir(hookspecs) if n.startswith(hookspecs.HOOK_PREFIX)]
    close = difflib.get_close_matches(name, specs, n=1)
    hint = f" (did you mean {close[0]}?)" if close else ""
    return f"unknown hook {name}{hint}"


def _one_line(message: str) -> str:
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    return " ".join(lines)


#: pluggy's ordering and wrapping options. The core calls each plugin's implementation on
#: its own (so a failure is pinned on that plugin), in load order: pluggy's hook calling,
#: which these options steer, never runs, so a plugin that relies on them is refused
#: rather than silently called in another order.
_ORDERING_OPTIONS = ("tryfirst", "trylast", "wrapper", "hookwrapper")


def _refused_option(pm: pluggy.PluginManager, plugin: object) -> str | None:
    """Why ``plugin`` cannot be registered as written, or ``None``: a hook implementation
    of it asks for one of :data:`_ORDERING_OPTIONS`. Checked before pluggy registers it,
    which would otherwise report a wrapper that is no generator as a bad signature."""
    for name in dir(plugin):
        opts = pm.parse_hookimpl_opts(plugin, name)
        for option in _ORDERING_OPTIONS:
            if opts is not None and opts.get(option):
                return (
                    f"hookimpl option {option} is not supported: advisor calls each "
                    f"plugin's {name} on its own, in load order (see docs/plugins.md); "
                    "remove the option"
                )
    return None


def _impl(pm: pluggy.PluginManager, hook_name: str, plugin_name: str) -> pluggy.HookImpl | None:
    """The implementation of ``hook_name`` registered as ``plugin_name``, if there is one."""
    caller: pluggy.HookCaller = getattr(pm.hook, hook_name)
    for impl in caller.get_hookimpls():
        if impl.plugin_name == plugin_name:
            return impl
    return None


#: Raw results of the no-argument hooks, by (plugin name, hook name): each hook runs once
#: per plugin per load, however often :func:`_collect` starts over.
_Results = dict[tuple[str, str], list[Any]]


def _call(
    pm: pluggy.PluginManager, hook_name: str, plugin_name: str, results: _Results
) -> list[Any]:
    """One plugin's result of a no-argument hook (``[]`` if it has none), from
    ``results`` when it was called before; :class:`_Rejected` if it fails."""
    key = (plugin_name, hook_name)
    if key not in results:
        impl = _impl(pm, hook_name, plugin_name)
        try:
            result = None if impl is None else call(None, hook_name, impl.function)
            results[key] = [] if result is None else sequence(None, hook_name, result)
        except AdvisorError as error:  # a refusal too: no user input to refuse here
            raise _Rejected(str(error)) from error
    return results[key]


class _PluginFailed(Exception):
    def __init__(self, record: PluginRecord, rejected: _Rejected) -> None:
        super().__init__(rejected.reason)
        self.record = record
        self.rejected = rejected


@contextmanager
def _blame(record: PluginRecord) -> Iterator[None]:
    """Pin a rejected contribution on the plugin that made it."""
    try:
        yield
    except _Rejected as rejected:
        raise _PluginFailed(record, rejected) from rejected


#: What the active plugins contribute: axes, questions, backends, unlock methods.
_Contributions = tuple[
    tuple[Axis, ...], tuple[Question, ...], tuple[Backend, ...], tuple[UnlockMethod, ...]
]


def _collect(pm: pluggy.PluginManager, records: list[PluginRecord], fail: _Fail) -> _Contributions:
    """Gather and validate contributions, leaving out every failing plugin entirely.

    Each failure drops one plugin and starts over: the plugin may have declared axes that
    others rely on, so what remains must be validated again to be consistent. The hooks
    are not called again for that: their first results are kept.
    """
    results: _Results = {}
    while True:
        try:
            active = [r for r in records if r.status is Status.ACTIVE]
            return _collect_once(pm, active, results)
        except _PluginFailed as failure:
            pm.unregister(name=failure.record.name)
            fail(failure.record, failure.rejected.reason, failure.rejected.status)


def _collect_once(
    pm: pluggy.PluginManager, active: list[PluginRecord], results: _Results
) -> _Contributions:
    axes: dict[str, Axis] = {}
    questions: dict[str, Question] = {}
    backends: dict[str, Backend] = {}
    methods: dict[str, UnlockMethod] = {}
    owners: dict[str, str] = {}
    # Axes first: any plugin's question or backend may use any plugin's axis.
    for record in active:
        with _blame(record):
            for axis in _call(pm, "advisor_axes", record.name, results):
                axis = _check_axis(axis, axes, owners)
                axes[axis.id] = axis
                owners[f"axis:{axis.id}"] = record.name
    for record in active:
        with _blame(record):
            for question in _call(pm, "advisor_questions", record.name, results):
                question = _check_question(question, axes, questions, owners)
                questions[question.id] = question
                owners[f"question:{question.id}"] = record.name
            for backend in _call(pm, "advisor_backends", record.name, results):
                backend = _check_backend(backend, axes, backends, owners)
                backends[backend.name] = backend
                owners[f"backend:{backend.name}"] = record.name
            for method in _call(pm, "advisor_unlock_methods", record.name, results):
                method = _check_unlock_method(method, axes, methods, owners)
                methods[method.name] = method
                owners[f"unlock:{method.name}"] = record.name
    for record in active:
        record.axes = _owned(owners, "axis", record)
        record.questions = _owned(owners, "question", record)
        record.backends = _owned(owners, "backend", record)
        record.unlock_methods = _owned(owners, "unlock", record)
    return (
        tuple(axes.values()),
        tuple(questions.values()),
        tuple(backends.values()),
        tuple(methods.values()),
    )


def _owned(owners: Mapping[str, str], kind: str, record: PluginRecord) -> list[str]:
    prefix = f"{kind}:"
    return [
        key.removeprefix(prefix)
        for key, owner in owners.items()
        if key.startswith(prefix) and owner == record.name
    ]


def _taken(kind: str, key: str, owners: Mapping[str, str]) -> str:
    return f"{kind} {key!r} is already provided by plugin {owners[f'{kind}:{key}']!r}"


def _check_axis(axis: object, axes: Mapping[str, Axis], owners: Mapping[str, str]) -> Axis:
    if not isinstance(axis, Axis):
        raise _Rejected(f"advisor_axes returned {type(axis).__name__}, not Axis")
    if not _SNAKE_ID.fullmatch(axis.id):
        raise _Rejected(f"axis id {axis.id!r} is not snake_case")
    if axis.id in axes:
        raise _Rejected(_taken("axis", axis.id, owners))
    return axis


def _check_question(
    question: object,
    axes: Mapping[str, Axis],
    questions: Mapping[str, Question],
    owners: Mapping[str, str],
) -> Question:
    if not isinstance(question, Question):
        raise _Rejected(f"advisor_questions returned {type(question).__name__}, not Question")
    if not isinstance(question.id, str) or not _SNAKE_ID.fullmatch(question.id):
        raise _Rejected(f"question id {question.id!r} is not snake_case")
    if question.id in questions:
        raise _Rejected(_taken("question", question.id, owners))
    values = question.values
    if len(values) < 2 or len(set(values)) != len(values):
        raise _Rejected(f"question {question.id!r} needs two or more distinct choices")
    if question.default is not None and question.default not in values:
        raise _Rejected(f"question {question.id!r}: default {question.default!r} is no choice")
    for choice in question.choices:
        if not _SNAKE_ID.fullmatch(choice.value):
            raise _Rejected(f"question {question.id!r}: value {choice.value!r} is not snake_case")
        for axis_id in choice.weights:
            if axis_id not in axes:
                raise _Rejected(f"question {question.id!r} weights unknown axis {axis_id!r}")
    return question


def _check_backend(
    backend: object,
    axes: Mapping[str, Axis],
    backends: Mapping[str, Backend],
    owners: Mapping[str, str],
) -> Backend:
    if not isinstance(backend, Backend):
        raise _Rejected(f"advisor_backends returned {type(backend).__name__}, not a Backend")
    name = _check_rated("backend", backend, _KEBAB_NAME, "kebab-case name", axes)
    if name in backends:
        raise _Rejected(_taken("backend", name, owners))
    carriers: object = backend.unlock_carriers
    if not isinstance(carriers, frozenset) or not all(isinstance(c, str) for c in carriers):
        raise _Rejected(f"backend {name!r}: unlock_carriers must be a frozenset of names")
    return backend


def _check_unlock_method(
    method: object,
    axes: Mapping[str, Axis],
    methods: Mapping[str, UnlockMethod],
    owners: Mapping[str, str],
) -> UnlockMethod:
    if not isinstance(method, UnlockMethod):
        raise _Rejected(
            f"advisor_unlock_methods returned {type(method).__name__}, not an UnlockMethod"
        )
    name = _check_rated(
        "unlock method", method, _METHOD_NAME, "name of words joined by - or +", axes
    )
    if name in methods:
        raise _Rejected(_taken("unlock", name, owners))
    carrier = getattr(method, "carrier", None)
    if carrier is not None and not isinstance(carrier, str):
        raise _Rejected(f"unlock method {name!r}: carrier must be a name or None")
    if not isinstance(getattr(method, "recovery_key", False), bool):
        raise _Rejected(f"unlock method {name!r}: recovery_key must be True or False")
    return method


def _check_rated(
    kind: str, contribution: object, pattern: re.Pattern[str], shape: str, axes: Mapping[str, Axis]
) -> str:
    """The name of a backend or unlock method (``kind``) once its api_version, name,
    summary and capabilities are checked; :class:`_Rejected` for the first that is wrong."""
    label = type(contribution).__name__
    version = getattr(contribution, "api_version", None)
    if version not in SUPPORTED_PLUGIN_API_VERSIONS:
        supported = ", ".join(str(v) for v in sorted(SUPPORTED_PLUGIN_API_VERSIONS))
        raise _Rejected(
            f"{kind} {label} is written for plugin API {version!r}; this advisor supports "
            f"{supported}",
            Status.INCOMPATIBLE,
        )
    name = getattr(contribution, "name", None)
    if not isinstance(name, str) or not pattern.fullmatch(name):
        raise _Rejected(f"{kind} {label} has no {shape} (got {name!r})")
    if not isinstance(getattr(contribution, "summary", None), str):
        raise _Rejected(f"{kind} {name!r} has no summary")
    capabilities = getattr(contribution, "capabilities", None)
    if not isinstance(capabilities, Mapping):
        raise _Rejected(f"{kind} {name!r} has no capabilities mapping")
    for axis_id, capability in capabilities.items():
        if axis_id not in axes:
            raise _Rejected(f"{kind} {name!r} rates unknown axis {axis_id!r}")
        if not isinstance(capability, Capability):
            raise _Rejected(f"{kind} {name!r}: capability for {axis_id!r} is not a Capability")
        if not isinstance(capability.rating, Rating):  # a Capability changed after it was made
            raise _Rejected(
                f"{kind} {name!r}: capability for {axis_id!r} is rated {capability.rating!r}, "
                "not Rating.NONE (0) to Rating.STRONG (3)"
            )
    return name
