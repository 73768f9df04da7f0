"""Desired Secrets from the table index: grouping, failed keys, checksum and size."""

from __future__ import annotations

import base64

from renderer.decrypt import Decrypted
from renderer.desired import MAX_SECRET_BYTES, DesiredSecret, checksum, desired_secrets
from renderer.index import TableIndex
from renderer.names import SecretRef, parse_name
from renderer.source import Item


def item(name: str, version: int = 1) -> Item:
    return Item(name, f"{version:019d}", "k", "c", b"h", "SHA256")


def ok(name: str, value: str, version: int = 1) -> Decrypted:
    return Decrypted(item(name, version), value)


def failed(name: str, version: int = 1) -> Decrypted:
    return Decrypted(item(name, version), None, "HMAC mismatch")


def index_of(*results: Decrypted) -> TableIndex:
    index = TableIndex()
    parsed = [parse_name(result.item.name) for result in results]
    index.replace(parsed, {result.item.name: result for result in results}, since=0)
    return index


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def test_keys_group_into_secrets():
    index = index_of(
        ok("test/app/DB_HOST", "db"), ok("test/app/db.port", "5432"), ok("prod/web/KEY", "k")
    )

    secrets = desired_secrets(index.entries())

    assert set(secrets) == {SecretRef("test", "app"), SecretRef("prod", "web")}
    assert secrets[SecretRef("test", "app")].data == {"DB_HOST": b64("db"), "DB_PORT": b64("5432")}
    assert secrets[SecretRef("test", "app")].sources["DB_PORT"] == "test/app/db.port"


def test_only_requested_refs():
    index = index_of(ok("test/app/A", "a"), ok("test/other/B", "b"))

    secrets = desired_secrets(index.entries(), [SecretRef("test", "other")])

    assert list(secrets) == [SecretRef("test", "other")]


def test_failed_key_without_value_left_out():
    index = index_of(ok("test/app/A", "a"), failed("test/app/B"))

    secret = desired_secrets(index.entries())[SecretRef("test", "app")]

    assert secret.data == {"A": b64("a")}
    assert secret.failed == {"B": "HMAC mismatch"}
    assert secret.keys == {"A", "B"}


def test_failed_new_version_keeps_last_good_value():
    index = index_of(ok("test/app/A", "good", version=1))
    index.update("test/app/A", parse_name("test/app/A"), failed("test/app/A", version=2))

    secret = desired_secrets(index.entries())[SecretRef("test", "app")]

    assert secret.data == {"A": b64("good")}
    assert "A" in secret.failed


def test_last_good_value_survives_a_full_scan():
    index = index_of(ok("test/app/A", "good", version=1))
    since = index.generation()
    index.replace(
        [parse_name("test/app/A")], {"test/app/A": failed("test/app/A", version=2)}, since=since
    )

    secret = desired_secrets(index.entries())[SecretRef("test", "app")]

    assert secret.data == {"A": b64("good")}


def test_collision_uses_the_winner_value():
    index = index_of(ok("test/s/db.host", "loser"), ok("test/s/DB_HOST", "winner"))

    secret = desired_secrets(index.entries())[SecretRef("test", "s")]

    assert secret.data == {"DB_HOST": b64("winner")}
    assert len(secret.collisions) == 1


def test_stream_update_during_scan_is_not_undone():
    index = index_of(ok("test/app/A", "old", version=1))
    since = index.generation()

    index.update("test/app/A", parse_name("test/app/A"), ok("test/app/A", "new", version=2))
    index.update("test/app/B", parse_name("test/app/B"), ok("test/app/B", "added", version=1))
    index.replace(
        [parse_name("test/app/A")], {"test/app/A": ok("test/app/A", "old", version=1)}, since=since
    )

    secret = desired_secrets(index.entries())[SecretRef("test", "app")]
    assert secret.data == {"A": b64("new"), "B": b64("added")}


def test_stream_removal_during_scan_is_not_undone():
    index = index_of(ok("test/app/A", "a"), ok("test/app/B", "b"))
    since = index.generation()

    index.update("test/app/B", parse_name("test/app/B"), None)
    index.replace(
        [parse_name("test/app/A"), parse_name("test/app/B")],
        {"test/app/A": ok("test/app/A", "a"), "test/app/B": ok("test/app/B", "b")},
        since=since,
    )

    secret = desired_secrets(index.entries())[SecretRef("test", "app")]
    assert set(secret.data) == {"A"}


def test_scan_newer_than_stream_record_wins():
    index = index_of(ok("test/app/A", "v1", version=1))
    since = index.generation()

    index.update("test/app/A", parse_name("test/app/A"), ok("test/app/A", "v2", version=2))
    index.replace(
        [parse_name("test/app/A")], {"test/app/A": ok("test/app/A", "v3", version=3)}, since=since
    )

    secret = desired_secrets(index.entries())[SecretRef("test", "app")]
    assert secret.data == {"A": b64("v3")}


def test_older_updates_give_way_to_next_scan():
    index = index_of(ok("test/app/A", "old"))
    index.update("test/app/A", parse_name("test/app/A"), ok("test/app/A", "streamed", version=2))
    since = index.generation()

    index.replace(
        [parse_name("test/app/A")],
        {"test/app/A": ok("test/app/A", "scanned", version=3)},
        since=since,
    )

    secret = desired_secrets(index.entries())[SecretRef("test", "app")]
    assert secret.data == {"A": b64("scanned")}


def test_invalid_and_ignored_names_are_counted():
    index = TableIndex()
    names = ["test/app/A", "plainname", "test/Bad/A", "kube-system/x/A"]
    parsed = [parse_name(name, frozenset({"kube-system"})) for name in names]

    index.replace(parsed, {"test/app/A": ok("test/app/A", "a")}, since=0)

    assert index.counts.ok == 1
    assert index.counts.ignored == 1
    assert index.counts.invalid == 1
    assert index.counts.excluded == 1
    assert [p.name for p in index.invalid()] == ["test/Bad/A"]


def test_checksum_ignores_key_order():
    assert checksum({"A": "YQ==", "B": "Yg=="}) == checksum({"B": "Yg==", "A": "YQ=="})
    assert checksum({"A": "YQ=="}) != checksum({"A": "Yg=="})


def test_size_limit_counts_keys_and_decoded_values():
    value = "x" * (MAX_SECRET_BYTES - 2)
    fits = DesiredSecret(SecretRef("t", "s"), data={"AB": b64(value)})
    too_big = DesiredSecret(SecretRef("t", "s"), data={"ABC": b64(value)})

    assert fits.size == MAX_SECRET_BYTES
    assert fits.size_error == ""
    assert "1 MiB" in too_big.size_error


def test_repr_shows_no_value():
    index = index_of(ok("test/app/A", "pl4intext"))
    secret = desired_secrets(index.entries())[SecretRef("test", "app")]

    assert "pl4intext" not in repr(index.entries())
    assert b64("pl4intext") not in repr(secret)
