"""The import rules the layout stands for, checked on the source (docs/architecture.md).

- A command family (``advisor/assess``, ``advisor/nixos``, ``advisor/install``,
  ``advisor/diff``) imports the top level (the contract and the shared pieces) and
  itself, never another family.
- The top level imports no family, except the edges that wire them: ``advisor/cli.py``,
  and ``advisor/plugincheck.py``, which runs a plugin through every command's code.
- One family composes others for other tools: ``advisor/deploy`` (disko,
  nixos-anywhere) imports ``install`` (the spec, its checks, the plan's declarations),
  ``nixos`` (the configuration) and ``assess`` (a fleet host's profile scored), and no
  other.
- A plugin in ``plugins/`` imports only ``advisor.plugin`` of the core (and, to build on
  one, another built-in backend's package, as a third party would).
- The core never decides by a built-in backend's name: none is a string of its own in
  ``advisor/`` (a name inside a sentence for the user is fine).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CORE = ROOT / "advisor"
FAMILIES = ("assess", "nixos", "install", "check", "diff", "backup", "deploy")
#: The families a family may import besides itself: deploy hands the install's layout
#: and its configuration to disko and nixos-anywhere, so it composes both.
#: A fleet's inventory may also name an assessment profile or answers file, scored by
#: the assessment's own code (advisor/deploy/inventory.py).
COMPOSES = {"deploy": {"install", "nixos", "assess"}}
EDGES = {"cli.py", "__main__.py", "plugincheck.py"}
BUILTIN_BACKENDS = {"luks", "zfs-native", "luks-detached"}


def _imports(path: Path) -> Iterator[tuple[int, str]]:
    """Every module ``path`` imports (``from advisor import x`` gives ``advisor.x``)."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.lineno, node.module
            if node.module == "advisor":
                for alias in node.names:
                    yield node.lineno, f"advisor.{alias.name}"


def _family(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "advisor" and parts[1] in FAMILIES else None


def _core_modules() -> list[Path]:
    return sorted(CORE.rglob("*.py"))


def _wrong_imports(relative: Path, path: Path) -> list[str]:
    """The imports of ``path`` (``relative`` to ``advisor/``) of a family it may not use."""
    own = relative.parts[0] if len(relative.parts) > 1 else None
    return [
        f"line {line}: {module}"
        for line, module in _imports(path)
        if (family := _family(module)) is not None
        and family != own
        and family not in COMPOSES.get(own or "", set())
        and not (own is None and relative.name in EDGES)
    ]


@pytest.mark.parametrize("path", _core_modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_a_core_module_imports_no_other_command_family(path: Path) -> None:
    relative = path.relative_to(CORE)
    wrong = _wrong_imports(relative, path)
    assert not wrong, f"{relative} imports another command family: {wrong}"


#: The built-in backends, and the example third-party plugins written from the docs.
PLUGIN_SOURCES = sorted((ROOT / "plugins").rglob("*.py")) + sorted(
    path for path in (ROOT / "tests" / "plugins").rglob("*.py") if "build" not in path.parts
)


@pytest.mark.parametrize("path", PLUGIN_SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_a_plugin_uses_only_the_public_api_of_the_core(path: Path) -> None:
    wrong = [
        f"line {line}: {module}"
        for line, module in _imports(path)
        if module.split(".")[0] == "advisor" and module != "advisor.plugin"
    ]
    assert not wrong, f"{path.relative_to(ROOT)} imports core modules: {wrong}"


def test_the_core_never_compares_with_a_builtin_backend_name() -> None:
    found = [
        f"{path.relative_to(ROOT)}:{node.lineno}: {node.value!r}"
        for path in _core_modules()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.Constant) and node.value in BUILTIN_BACKENDS
    ]
    assert not found, f"the core names built-in backends: {found}"


def test_the_rules_catch_what_they_forbid(tmp_path: Path) -> None:
    # The checks above look for something: here it is there.
    sample = tmp_path / "sample.py"
    sample.write_text(
        "from advisor.install import plan\nfrom advisor import nixos\nimport advisor.models\n"
        "if backend == 'zfs-native': pass\n",
        encoding="utf-8",
    )
    modules = [module for _, module in _imports(sample)]
    assert [_family(m) for m in modules] == ["install", None, "nixos", None]
    # deploy may compose install and nixos, and only those; no other family may.
    composing = tmp_path / "composing.py"
    composing.write_text(
        "from advisor.install.plan import build_plan\nfrom advisor.nixos import generate\n"
        "from advisor.check import checks\n",
        encoding="utf-8",
    )
    assert _wrong_imports(Path("deploy/x.py"), composing) == ["line 3: advisor.check"]
    assert len(_wrong_imports(Path("check/x.py"), composing)) == 2
    constants = [n for n in ast.walk(ast.parse(sample.read_text())) if isinstance(n, ast.Constant)]
    assert any(n.value in BUILTIN_BACKENDS for n in constants)
