"""Plugin loading: built-ins through entry points, tolerance of broken plugins, strictness."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import replace
from importlib import metadata
from pathlib import Path

import pytest
from helpers import PLAN_SPEC, MakePluginDist, PluginDist

from advisor.errors import PluginError, UsageError
from advisor.install.plan import build_plan
from advisor.models import Rating, Settings
from advisor.nixos.write import ConfigRequest, build_layout
from advisor.pluginmanager import ENTRY_POINT_GROUP, LoadedPlugins, Status, load_plugins

BUILTIN_BACKENDS = {"luks", "zfs-native", "luks-detached"}

# A valid plugin body: an axis, an optional question and a backend that uses both.
GOOD_PLUGIN = """
    from advisor.plugin import (
        Axis, Backend, Capability, Choice, Question, Rating, hookimpl,
    )

    class Shiny(Backend):
        name = "shiny"
        summary = "a test backend"
        api_version = 3
        capabilities = {"sparkle": Capability(Rating.STRONG, "it sparkles", "tests")}

    @hookimpl
    def advisor_axes():
        return [Axis("sparkle", "Sparkle", "how much it sparkles")]

    @hookimpl
    def advisor_questions():
        return [Question("wants_sparkle", "Sparkle?", "", (
            Choice("no", "No"), Choice("yes", "Yes", {"sparkle": 10})), optional=True)]

    @hookimpl
    def advisor_backends():
        return [Shiny()]
"""


def installed() -> list[metadata.EntryPoint]:
    return list(metadata.entry_points(group=ENTRY_POINT_GROUP))


def record(plugins: LoadedPlugins, name: str):  # type: ignore[no-untyped-def]
    return next(r for r in plugins.records if r.name == name)


@pytest.fixture
def load_with(
    plugin_on_path: Callable[[PluginDist], None],
) -> Callable[..., LoadedPlugins]:
    """Put written plugins on sys.path, then load everything the way the CLI does."""

    def load(*plugins: PluginDist, env: dict[str, str] | None = None) -> LoadedPlugins:
        for plugin in plugins:
            plugin_on_path(plugin)
        return load_plugins(environ=env or {})

    return load


def test_builtin_backends_load_through_entry_points() -> None:
    names = {ep.name: ep.value for ep in installed()}
    assert names["luks"] == "advisor_luks"
    assert names["zfs-native"] == "advisor_zfs_native"
    assert names["luks-detached"] == "advisor_luks_detached"

    plugins = load_plugins(environ={})
    assert {b.name for b in plugins.backends} >= BUILTIN_BACKENDS
    for name in BUILTIN_BACKENDS:
        builtin = record(plugins, name)
        assert builtin.status is Status.ACTIVE
        assert builtin.distribution == "nixos-crypt-advisor"
        assert builtin.backends == [name]
        assert builtin.hooks == ["advisor_backends"]
    core = record(plugins, "core")
    assert core.questions[:2] == ["metadata_exposure", "adversary"]
    assert "metadata" in core.axes
    assert plugins.failures == []


def test_third_party_plugin_adds_axis_question_and_backend(
    make_plugin_dist: MakePluginDist, load_with: Callable[..., LoadedPlugins]
) -> None:
    plugins = load_with(make_plugin_dist(GOOD_PLUGIN, name="shiny"))
    shiny = record(plugins, "shiny")
    assert shiny.status is Status.ACTIVE, shiny.reason
    assert (shiny.distribution, shiny.version) == ("advisor-example", "1.2.3")
    assert shiny.axes == ["sparkle"]
    assert shiny.questions == ["wants_sparkle"]
    assert shiny.backends == ["shiny"]
    assert plugins.backend("shiny").summary == "a test backend"


def test_unknown_backend_lists_installed_ones() -> None:
    with pytest.raises(UsageError, match=r"unknown backend 'btrfs' \(installed: .*luks"):
        load_plugins(environ={}).backend("btrfs")


def test_import_error_is_recorded_and_others_keep_working(
    make_plugin_dist: MakePluginDist, load_with: Callable[..., LoadedPlugins]
) -> None:
    plugins = load_with(make_plugin_dist("import package_that_does_not_exist\n", name="bad"))
    bad = record(plugins, "bad")
    assert bad.status is Status.BROKEN
    assert "import failed: ModuleNotFoundError" in bad.reason
    assert "package_that_does_not_exist" in bad.reason
    assert {b.name for b in plugins.backends} >= BUILTIN_BACKENDS


def test_exception_other_than_import_error_at_import(
    make_plugin_dist: MakePluginDist, load_with: Callable[..., LoadedPlugins]
) -> None:
    plugins = load_with(make_plugin_dist("raise RuntimeError('boom at import')\n", name="boom"))
    assert record(plugins, "boom").status is Status.BROKEN
    assert "RuntimeError: boom at import" in record(plugins, "boom").reason


def test_bad_hook_signature_is_broken_and_fully_unregistered(
    make_plugin_dist: MakePluginDist, load_with: Callable[..., LoadedPlugins]
) -> None:
    # advisor_axes is valid and registered first; the bad advisor_backends must not leave
    # it behind (pluggy's partial-registration pitfall).
    source = GOOD_PLUGIN.replace("def advisor_backends():", "def advisor_backends(config):")
    plugins = load_with(make_plugin_dist(source, name="sig"))
    sig = record(plugins, "sig")
    assert sig.status is Status.BROKEN
    assert sig.reason.startswith("bad hook signature")
    assert "config" in sig.reason
    assert "sparkle" not in {axis.id for axis in plugins.axes}
    assert "shiny" not in {b.name for b in plugins.backends}


@pytest.mark.parametrize("marked", [True, False])
def test_unknown_hook_is_reported_with_a_suggestion(
    marked: bool, make_plugin_dist: MakePluginDist, load_with: Callable[..., LoadedPlugins]
) -> None:
    marker = "@hookimpl\n    " if marked else ""
    source = f"""
    from advisor.plugin import hookimpl

    {marker}def advisor_backend():
        return []
    """
    plugins = load_with(make_plugin_dist(source, name="typo"))
    typo = record(plugins, "typo")
    assert typo.status is Status.BROKEN
    assert typo.reason == "unknown hook advisor_backend (did you mean advisor_backends?)"


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("return 'luks'", "advisor_backends must return a sequence, not str"),
        ("return [object()]", "advisor_backends returned object, not a Backend"),
        ("raise ValueError('nope')", "advisor_backends raised ValueError: nope"),
    ],
)
def test_invalid_hook_results_are_broken(
    body: str,
    reason: str,
    make_plugin_dist: MakePluginDist,
    load_with: Callable[..., LoadedPlugins],
) -> None:
    source = f"""
    def advisor_backends():
        {body}
    """
    plugins = load_with(make_plugin_dist(source, name="odd"))
    assert record(plugins, "odd").status is Status.BROKEN
    assert record(plugins, "odd").reason == reason


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (('name = "shiny"', 'name = "Shiny Backend"'), "has no kebab-case name"),
        # "$" would also match before a final newline: names are matched whole.
        (('name = "shiny"', 'name = "shiny\\n"'), "has no kebab-case name"),
        (('Question("wants_sparkle"', 'Question("wants_sparkle\\n"'), "wants_sparkle"),
        (
            ('name = "shiny"', 'name = "luks"'),
            "backend 'luks' is already provided by plugin 'luks'",
        ),
        (('{"sparkle": Capability', '{"glitter": Capability'), "rates unknown axis 'glitter'"),
        (('{"sparkle": 10}', '{"glitter": 10}'), "weights unknown axis 'glitter'"),
        (('Question("wants_sparkle"', 'Question("metadata_exposure"'), "already provided"),
        (('Axis("sparkle"', 'Axis("metadata"'), "axis 'metadata' is already provided by"),
        (
            ("Capability(Rating.STRONG,", "(Rating.STRONG,"),
            "capability for 'sparkle' is not a Capability",
        ),
        (("Rating.STRONG", "4"), "rating must be Rating.NONE (0) to Rating.STRONG (3), not 4"),
        (
            ("Rating.STRONG", "True"),
            "rating must be Rating.NONE (0) to Rating.STRONG (3), not True",
        ),
    ],
)
def test_invalid_contributions_are_broken_and_dropped_whole(
    change: tuple[str, str],
    reason: str,
    make_plugin_dist: MakePluginDist,
    load_with: Callable[..., LoadedPlugins],
) -> None:
    source = GOOD_PLUGIN.replace(*change)
    assert source != GOOD_PLUGIN
    plugins = load_with(make_plugin_dist(source, name="shiny"))
    shiny = record(plugins, "shiny")
    assert shiny.status is Status.BROKEN
    assert reason in shiny.reason
    assert "wants_sparkle" not in {q.id for q in plugins.questions}
    assert "shiny" not in {b.name for b in plugins.backends}
    assert {b.name for b in plugins.backends} >= BUILTIN_BACKENDS


def test_a_rating_may_be_written_as_its_number(
    make_plugin_dist: MakePluginDist, load_with: Callable[..., LoadedPlugins]
) -> None:
    plugins = load_with(make_plugin_dist(GOOD_PLUGIN.replace("Rating.STRONG", "3"), name="shiny"))
    assert record(plugins, "shiny").status is Status.ACTIVE
    assert plugins.backend("shiny").capabilities["sparkle"].rating is Rating.STRONG


@pytest.mark.parametrize("version", ["1", "999", "None"])
def test_incompatible_api_version(
    version: str, make_plugin_dist: MakePluginDist, load_with: Callable[..., LoadedPlugins]
) -> None:
    source = GOOD_PLUGIN.replace("api_version = 3", f"api_version = {version}")
    plugins = load_with(make_plugin_dist(source, name="future"))
    future = record(plugins, "future")
    assert future.status is Status.INCOMPATIBLE
    assert f"written for plugin API {version}; this advisor supports 3" in future.reason
    assert "shiny" not in {b.name for b in plugins.backends}


def test_backend_without_api_version_is_incompatible(
    make_plugin_dist: MakePluginDist, load_with: Callable[..., LoadedPlugins]
) -> None:
    source = GOOD_PLUGIN.replace("api_version = 3", "")
    plugins = load_with(make_plugin_dist(source, name="old"))
    assert record(plugins, "old").status is Status.INCOMPATIBLE


def test_dependent_plugin_fails_when_the_axis_it_uses_goes(
    make_plugin_dist: MakePluginDist, load_with: Callable[..., LoadedPlugins]
) -> None:
    # "a" declares the axis but breaks later; "b" rates that axis. Dropping "a" must take
    # the axis with it, and "b" is then reported rather than silently scoring on it.
    provider = """
    from advisor.plugin import Axis

    def advisor_axes():
        return [Axis("sparkle", "Sparkle", "")]

    def advisor_backends():
        raise RuntimeError("late failure")
    """
    user = GOOD_PLUGIN.replace(
        'return [Axis("sparkle", "Sparkle", "how much it sparkles")]', "return []"
    )
    plugins = load_with(
        make_plugin_dist(provider, name="a", dist="advisor-a"),
        make_plugin_dist(user, name="b", dist="advisor-b"),
    )
    assert record(plugins, "a").status is Status.BROKEN
    assert record(plugins, "b").status is Status.BROKEN
    assert "unknown axis 'sparkle'" in record(plugins, "b").reason


def test_disabled_plugins_are_not_imported(
    make_plugin_dist: MakePluginDist, load_with: Callable[..., LoadedPlugins]
) -> None:
    # If it were imported, the import would fail and the status would say broken.
    bad = make_plugin_dist("raise SystemExit('imported!')\n", name="skipme")
    plugins = load_with(bad, env={"ADVISOR_DISABLE_PLUGINS": " skipme , zfs-native"})
    assert record(plugins, "skipme").status is Status.DISABLED
    assert record(plugins, "zfs-native").status is Status.DISABLED
    assert "zfs-native" not in {b.name for b in plugins.backends}
    assert bad.module not in __import__("sys").modules


def test_strict_mode_makes_a_broken_plugin_fatal(
    make_plugin_dist: MakePluginDist, load_with: Callable[..., LoadedPlugins]
) -> None:
    bad = make_plugin_dist("import package_that_does_not_exist\n", name="bad")
    with pytest.raises(PluginError, match=r"plugin 'bad' .* is broken: import failed"):
        load_with(bad, env={"ADVISOR_STRICT_PLUGINS": "1"})


def test_strict_mode_loads_good_plugins_normally(
    make_plugin_dist: MakePluginDist, load_with: Callable[..., LoadedPlugins]
) -> None:
    plugins = load_with(make_plugin_dist(GOOD_PLUGIN), env={"ADVISOR_STRICT_PLUGINS": "1"})
    assert plugins.failures == []
    assert "shiny" in {b.name for b in plugins.backends}


def test_duplicate_entry_point_name_is_a_conflict(
    make_plugin_dist: MakePluginDist, load_with: Callable[..., LoadedPlugins]
) -> None:
    plugins = load_with(make_plugin_dist(GOOD_PLUGIN, name="luks", dist="advisor-impostor"))
    impostor = next(r for r in plugins.records if r.distribution == "advisor-impostor")
    assert impostor.status is Status.BROKEN
    assert "already registered as 'luks'" in impostor.reason
    assert plugins.backend("luks").summary.startswith("ZFS on LUKS2")


def test_backend_that_only_assesses_is_refused_for_plan_and_config(
    make_plugin_dist: MakePluginDist, load_with: Callable[..., LoadedPlugins], tmp_path: Path
) -> None:
    # 'shiny' defines no provision_steps and no pool_encryption: installing it would
    # create an unencrypted pool, and its configuration would unlock nothing.
    plugins = load_with(make_plugin_dist(GOOD_PLUGIN, name="shiny"))
    shiny = plugins.backend("shiny")
    refusal = "shiny can be assessed but not installed"
    spec = replace(PLAN_SPEC, backend="shiny")
    with pytest.raises(UsageError, match=refusal):
        build_plan(spec, shiny, generate_hardware_config=False)
    request = ConfigRequest(
        backend="shiny",
        settings=Settings(host_id="8f2a91c4", user="alice"),
        out_dir=tmp_path / "out",
        data_devices=("/dev/disk/by-partuuid/6a3d2c1b-5e4f-4a8b-9c0d-1e2f3a4b5c6d",),
        esp_devices=("/dev/disk/by-partuuid/0b5e1f2c-3d4e-4f5a-8b6c-7d8e9f0a1b2c",),
        password="unused",
    )
    with pytest.raises(UsageError, match=refusal):
        build_layout(request, plugins, hashed_password="")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("option", ["tryfirst", "trylast", "wrapper", "hookwrapper"])
def test_pluggy_ordering_options_are_refused(
    option: str, make_plugin_dist: MakePluginDist, load_with: Callable[..., LoadedPlugins]
) -> None:
    # The core calls each implementation itself, in load order: the option would do
    # nothing, so the plugin is told rather than silently called in another order.
    source = f"""
    from advisor.plugin import hookimpl

    @hookimpl({option}=True)
    def advisor_axes():
        return []
    """
    plugins = load_with(make_plugin_dist(source, name="eager"))
    eager = record(plugins, "eager")
    assert eager.status is Status.BROKEN
    assert eager.reason == (
        f"hookimpl option {option} is not supported: advisor calls each plugin's "
        "advisor_axes on its own, in load order (see docs/plugins.md); remove the option"
    )
    assert eager.hooks == []


COUNTING_PLUGIN = """
    from advisor.plugin import Axis

    CALLS = []

    def advisor_axes():
        CALLS.append("advisor_axes")
        return [Axis("counted", "Counted", "")]

    def advisor_questions():
        CALLS.append("advisor_questions")
        return []

    def advisor_backends():
        CALLS.append("advisor_backends")
        return []
"""


def test_each_discovery_hook_runs_once_per_plugin(
    make_plugin_dist: MakePluginDist, load_with: Callable[..., LoadedPlugins]
) -> None:
    # "zz-late" fails after "counting" was asked everything: the contributions are
    # validated again without it, from the results already given.
    late = "def advisor_backends():\n    raise RuntimeError('late failure')\n"
    counting = make_plugin_dist(COUNTING_PLUGIN, name="counting", dist="advisor-counting")
    plugins = load_with(counting, make_plugin_dist(late, name="zz-late", dist="advisor-late"))
    assert record(plugins, "zz-late").status is Status.BROKEN
    assert record(plugins, "counting").axes == ["counted"]
    calls = sys.modules[counting.module].CALLS
    assert calls == ["advisor_axes", "advisor_questions", "advisor_backends"]


def test_plugins_load_and_contribute_in_the_documented_order(
    make_plugin_dist: MakePluginDist, load_with: Callable[..., LoadedPlugins]
) -> None:
    # Core, then the built-in distribution's entry points, then the others, each by name:
    # "beta" is written first, and is still called after "alpha".
    source = """
    from advisor.plugin import NixFragment

    def advisor_nix_fragments():
        return [NixFragment("Extra", {{("environment", "etc", "{name}", "text"): "{name}"}})]
    """
    plugins = load_with(
        make_plugin_dist(source.format(name="beta"), name="beta", dist="advisor-beta"),
        make_plugin_dist(source.format(name="alpha"), name="alpha", dist="advisor-alpha"),
    )
    names = [r.name for r in plugins.records]
    builtin_dist = ("nixos-crypt-advisor",)
    builtin = [r.name for r in plugins.records if r.distribution in builtin_dist]
    others = [r.name for r in plugins.records if r.distribution not in (None, *builtin_dist)]
    assert names == ["core", *sorted(builtin), *sorted(others)]
    assert {"alpha", "beta"} <= set(others)
    request = ConfigRequest(
        backend="luks",
        settings=Settings(host_id="8f2a91c4", user="alice"),
        out_dir=Path("unused"),
        data_devices=("/dev/disk/by-partuuid/6a3d2c1b-5e4f-4a8b-9c0d-1e2f3a4b5c6d",),
        esp_devices=("/dev/disk/by-partuuid/0b5e1f2c-3d4e-4f5a-8b6c-7d8e9f0a1b2c",),
        password="unused",
    )
    layout = build_layout(request, plugins, hashed_password="")
    fragments = plugins.nix_fragments(layout, plugins.backend("luks"))
    assert [name for name, _ in fragments] == ["alpha", "beta"]
