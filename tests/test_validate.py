"""The checks of names and paths, and fresh identifiers: host ids and partition GUIDs."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable

import pytest

from advisor import validate
from advisor.errors import UsageError


@pytest.mark.parametrize(
    ("check", "value"),
    [
        (validate.hostname, "box"),
        (validate.username, "alice"),
        (validate.pool_name, "rpool"),
        (validate.host_id, "8f2a91c4"),
        (lambda v: validate.device_path(v, "--data-device"), "/dev/disk/by-id/ata-X-part2"),
        (validate.header_path, "/root/header.img"),
        (validate.nixos_release, "26.05"),
    ],
)
def test_a_trailing_newline_is_refused(check: Callable[[str], str], value: str) -> None:
    assert check(value) == value
    with pytest.raises(UsageError):
        check(value + "\n")


def test_new_guid_is_a_version_4_uuid_in_canonical_form() -> None:
    for _ in range(200):
        text = validate.new_guid()
        parsed = uuid.UUID(text)
        assert str(parsed) == text
        assert parsed.version == 4
        assert parsed.variant == uuid.RFC_4122


def test_new_guids_differ() -> None:
    assert len({validate.new_guid() for _ in range(1000)}) == 1000


def test_new_host_id_is_accepted_and_never_all_zero() -> None:
    for _ in range(200):
        value = validate.new_host_id()
        assert re.fullmatch(r"[0-9a-f]{8}", value)
        assert value != "00000000"
        assert validate.host_id(value) == value


def test_guids_are_checked() -> None:
    value = validate.new_guid()
    assert validate.guid(value, "the GUID") == value
    for bad in ("1:EF00", value.upper(), value + "0", "--new=3:0:0"):
        with pytest.raises(UsageError, match="is not a GUID"):
            validate.guid(bad, "the GUID")


@pytest.mark.parametrize(
    "options",
    [
        {"ashift": "13"},
        {"compression": "zstd-19"},
        {"com.example:note": "a/b"},
        {"feature@x": "enabled"},
    ],
)
def test_zfs_property_overrides_are_accepted(options: dict[str, str]) -> None:
    assert validate.zfs_properties(options, "--fs-option") == options


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"-f": "x"}, "expected a ZFS property name"),
        ({"compression": "-f"}, "not starting with '-'"),
        ({"compression": "zstd lz4"}, "expected a ZFS property name"),
        ({"Ashift": "12"}, "expected a ZFS property name"),
        ({"compression": "zstd\n"}, "expected a ZFS property name"),
    ],
)
def test_zfs_property_overrides_of_odd_characters_are_refused(
    options: dict[str, str], message: str
) -> None:
    with pytest.raises(UsageError, match=re.escape(message)):
        validate.zfs_properties(options, "--fs-option")
