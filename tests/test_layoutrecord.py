"""The layout record (advisor.json): written with the configuration, read back exactly."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from test_configuration import VARIANTS

from advisor.errors import UsageError
from advisor.layoutrecord import RECORD_FILE, find_record, load_record, read_record, record_text


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_the_record_gives_back_the_layout(name: str, tmp_path: Path) -> None:
    layout = VARIANTS[name]
    path = tmp_path / RECORD_FILE
    path.write_text(record_text(layout))
    derived = {"hashed_password": "", "remote_unlock": None, "unlock_options": ()}
    assert read_record(path) == replace(layout, **derived)  # type: ignore[arg-type]
    assert "$y$" not in path.read_text()  # no password hash


def test_found_on_the_target_then_on_persist(tmp_path: Path) -> None:
    layout = VARIANTS["luks-systemd"]
    persisted = tmp_path / "persist" / "etc" / "nixos" / RECORD_FILE
    persisted.parent.mkdir(parents=True)
    persisted.write_text(record_text(layout))
    assert find_record(tmp_path) == persisted
    target = tmp_path / "etc" / "nixos" / RECORD_FILE
    target.parent.mkdir(parents=True)
    target.write_text(record_text(layout))
    assert load_record(tmp_path) == (
        replace(layout, hashed_password="", remote_unlock=None),
        target,
    )


def test_no_record_says_where_it_looked(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"persist/etc/nixos/advisor\.json"):
        find_record(tmp_path)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{", "not a layout record"),
        ("[]", "not a layout record"),
        ('{"version": 99}', "version 99"),
        ('{"version": 1, "backend": "luks", "settings": {}, "members": []}', "members"),
        (
            '{"version": 1, "backend": "luks", "settings": {"host_id": 5}, '
            '"members": [{"number": 1, "data_device": "/dev/x", "esp_device": "/dev/y"}]}',
            "host_id",
        ),
    ],
)
def test_a_bad_record_is_a_usage_error(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / RECORD_FILE
    path.write_text(text)
    with pytest.raises(UsageError, match=message):
        read_record(path)


def test_an_unknown_field_is_refused(tmp_path: Path) -> None:
    data = json.loads(record_text(VARIANTS["luks-systemd"]))
    data["members"][0]["colour"] = "blue"
    path = tmp_path / RECORD_FILE
    path.write_text(json.dumps(data))
    with pytest.raises(UsageError, match="colour"):
        read_record(path)
