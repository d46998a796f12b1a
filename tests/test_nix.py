"""The Nix renderer: exact output for known values, and round trips through real Nix."""

from __future__ import annotations

import nixeval
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from advisor import nix

# Text that tries to break out of a string: quotes, interpolation, indented-string escapes,
# backslashes, newlines, control characters, non-ASCII.
HOSTILE = [
    "plain",
    'quote " inside',
    '${builtins.abort "pwned"}',
    "$${x}",
    "\\${x}",
    "''${x}",
    "'''",
    "a\nb\n",
    "  indented\n    more\n",
    "x\n  \ny\n",
    "end with quote'",
    "tab\tcr\r\n",
    'back\\slash\\"',
    "unicode ✓ é 中文 🚀",
    "\x01\x7f",
    "",
]


def test_scalars() -> None:
    assert nix.value(True) == "true"
    assert nix.value(False) == "false"
    assert nix.value(None) == "null"
    assert nix.value(42) == "42"
    assert nix.value(-1) == "(-1)"
    assert nix.value("x") == '"x"'
    assert nix.value(nix.Raw("pkgs.zfs")) == "pkgs.zfs"


def test_strings_are_escaped() -> None:
    assert nix.string('a"b') == '"a\\"b"'
    assert nix.string("${x}") == '"\\${x}"'
    assert nix.string("a\\b") == '"a\\\\b"'
    assert nix.string("a\nb\tc\rd") == '"a\\nb\\tc\\rd"'


def test_nul_cannot_be_rendered() -> None:
    with pytest.raises(nix.NixRenderError, match="NUL"):
        nix.value("a\0b")


def test_multiline_text_uses_an_indented_string() -> None:
    assert nix.value("zfs rollback -r a@b\necho ${done}\n", 1) == (
        "''\n    zfs rollback -r a@b\n    echo ''${done}\n  ''"
    )


def test_attribute_names_are_quoted_when_needed() -> None:
    assert nix.attr_name("boot") == "boot"
    assert nix.attr_name("systemd-boot") == "systemd-boot"
    assert nix.attr_name("/persist") == '"/persist"'
    assert nix.attr_name("10-uplink") == '"10-uplink"'
    assert nix.attr_name("in") == '"in"'  # a keyword
    assert nix.attr_name("${x}") == '"\\${x}"'
    assert nix.attr_name("boot\n") == '"boot\\n"'  # a plain identifier only if it is whole
    assert nix.attr_path(("fileSystems", "/", "device")) == 'fileSystems."/".device'


def test_sets_lists_and_single_key_chains() -> None:
    rendered = nix.value({"a": {"b": {"c": 1}}, "d": [1, "x"], "e": {}, "f": []})
    assert rendered == '{\n  a.b.c = 1;\n  d = [ 1 "x" ];\n  e = { };\n  f = [ ];\n}'


def test_long_lists_break_across_lines() -> None:
    rendered = nix.value(["/var/lib/nixos", "/var/lib/systemd/coredump", "/etc/nixos", "/x"])
    assert rendered.startswith("[\n  ")
    assert rendered.endswith("\n]")


def test_functions_and_applications() -> None:
    flake = nix.Function(("nixpkgs",), {"x": nix.Apply("f", {"a": 1})})
    assert nix.value(flake) == "{ nixpkgs, ... }: {\n  x = f {\n    a = 1;\n  };\n}"
    assert nix.value([nix.Apply("lib.mkAfter", "x")]) == '[ (lib.mkAfter "x") ]'


def test_unsupported_values_are_refused() -> None:
    with pytest.raises(nix.NixRenderError, match="float"):
        nix.value(1.5)
    with pytest.raises(nix.NixRenderError, match="at least one"):
        nix.attr_path(())


def test_rendering_is_deterministic() -> None:
    data = {"b": [1, 2], "a": {"z": "1", "y": "2"}}
    assert nix.value(data) == nix.value(dict(data))


def test_hostile_strings_evaluate_to_themselves() -> None:
    values = [text for text in HOSTILE if "\0" not in text]
    # As values, as attribute names, and nested, in one evaluation.
    source = nix.value(
        {"values": values, "names": dict.fromkeys(values, True), "nested": {"a": values}}
    )
    result = nixeval.eval_expression(source)
    assert result["values"] == values
    assert sorted(result["names"]) == sorted(values)
    assert result["nested"]["a"] == values


# Text without NUL, favouring the characters that matter to Nix strings.
nix_text = st.text(
    alphabet=st.one_of(
        st.sampled_from(list("$\\{}'\"\n\r\t ")),
        st.characters(exclude_categories=["Cs"], exclude_characters="\0"),
    ),
    max_size=40,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(nix_text, min_size=1, max_size=25))
def test_any_text_round_trips_through_nix(texts: list[str]) -> None:
    source = nix.value({"values": texts, "names": dict.fromkeys(texts, 1)})
    result = nixeval.eval_expression(source)
    assert result["values"] == texts
    assert set(result["names"]) == set(texts)
