"""Scanning a credstash table in moto_server, filled with the credstash library."""

from __future__ import annotations

import botocore.exceptions
import pytest

from renderer.settings import Settings
from renderer.source import CredstashTable, item_from_image


@pytest.fixture
def settings(credstash_table):
    return Settings(ddb_table=credstash_table.table, table_region=credstash_table.region)


def test_scan_keeps_latest_version(credstash_table, settings):
    for value in ("one", "two", "three"):
        credstash_table.put("test/app/KEY", value)
    credstash_table.put("test/app/OTHER", "x")

    result = CredstashTable(settings).scan()

    assert set(result.items) == {"test/app/KEY", "test/app/OTHER"}
    assert result.items["test/app/KEY"].version == "0000000000000000003"
    assert result.rows == 4


def test_scan_version_order_is_string_order(credstash_table, settings):
    credstash_table.put("test/app/KEY", "nine", version=9)
    credstash_table.put("test/app/KEY", "ten", version=10)

    result = CredstashTable(settings).scan()

    assert result.items["test/app/KEY"].version == "0000000000000000010"


def test_scan_reads_every_page(credstash_table, settings):
    names = [f"test/app/KEY_{number}" for number in range(25)]
    for name in names:
        credstash_table.put(name, "v")

    result = CredstashTable(settings, page_size=4).scan()

    assert sorted(result.items) == sorted(names)


def test_parallel_segments_find_every_name(credstash_table, settings):
    names = [f"test/app{number % 3}/KEY_{number}" for number in range(30)]
    for name in names:
        credstash_table.put(name, "v")
    credstash_table.put(names[0], "v2")

    table = CredstashTable(settings.replace(scan_segments=4), page_size=3)
    result = table.scan()

    assert result.segments == 4
    assert sorted(result.items) == sorted(names)
    assert result.items[names[0]].version == "0000000000000000002"


def test_latest_version_after_deleting_newest(credstash_table, settings):
    credstash_table.put("test/app/KEY", "one")
    credstash_table.put("test/app/KEY", "two")
    table = CredstashTable(settings)

    credstash_table.delete("test/app/KEY", version=2)

    assert table.latest_version("test/app/KEY").version == "0000000000000000001"


def test_latest_version_of_deleted_name_is_none(credstash_table, settings):
    credstash_table.put("test/app/KEY", "one")
    credstash_table.delete("test/app/KEY")

    assert CredstashTable(settings).latest_version("test/app/KEY") is None


def test_missing_table_raises(credstash_table, settings):
    table = CredstashTable(settings.replace(ddb_table="no-such-table"))

    with pytest.raises(botocore.exceptions.ClientError):
        table.scan()


def test_item_from_stream_image_with_binary_hmac():
    image = {
        "name": {"S": "test/app/KEY"},
        "version": {"S": "0000000000000000002"},
        "key": {"S": "a2V5"},
        "contents": {"S": "Y29udGVudHM="},
        "hmac": {"B": b"abcd"},
        "digest": {"S": "SHA512"},
    }

    item = item_from_image(image)

    assert item.name == "test/app/KEY"
    assert item.version == "0000000000000000002"
    assert item.hmac == b"abcd"
    assert item.digest == "SHA512"


def test_item_from_old_image_defaults_digest():
    image = {
        "name": {"S": "test/app/KEY"},
        "version": {"S": "0000000000000000001"},
        "key": {"S": "a2V5"},
        "contents": {"S": "Y29udGVudHM="},
        "hmac": {"S": "abcd"},
    }

    item = item_from_image(image)

    assert item.hmac == "abcd"
    assert item.digest == "SHA256"


def test_fingerprint_changes_with_material():
    base = {
        "name": {"S": "n"},
        "version": {"S": "1"},
        "key": {"S": "k"},
        "contents": {"S": "c"},
        "hmac": {"S": "h"},
    }
    changed = {**base, "contents": {"S": "d"}}

    assert item_from_image(base).fingerprint == item_from_image(dict(base)).fingerprint
    assert item_from_image(base).fingerprint != item_from_image(changed).fingerprint
