"""Decryption with credstash's KeyService: digests, context, per-item failure, the cache."""

from __future__ import annotations

import base64
import codecs

import botocore.exceptions
import credstash
import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from renderer import metrics
from renderer.decrypt import Decryptor
from renderer.settings import Settings
from renderer.source import CredstashTable


@pytest.fixture
def settings(credstash_table):
    return Settings(ddb_table=credstash_table.table, table_region=credstash_table.region)


@pytest.fixture
def kms_calls(aws):
    """A boto3 session that counts KMS Decrypt requests, and the list of calls."""
    session = aws.session()
    calls: list[str] = []
    session.events.register("before-call.kms.Decrypt", lambda **kwargs: calls.append("Decrypt"))
    return session, calls


def scan(settings):
    return CredstashTable(settings).scan().items


@pytest.mark.parametrize("digest", sorted(credstash.HASHING_ALGORITHMS))
def test_every_credstash_digest_decrypts(credstash_table, settings, digest):
    credstash_table.put("test/app/KEY", f"value for {digest}", digest=digest)

    results, stats = Decryptor(settings).decrypt_many(scan(settings).values())

    assert results["test/app/KEY"].plaintext == f"value for {digest}"
    assert stats.failed == 0


def test_encryption_context_is_sent(credstash_table, settings):
    credstash_table.put("test/app/KEY", "with context", context={"app": "web"})

    decryptor = Decryptor(settings.replace(credstash_context={"app": "web"}))
    results, _ = decryptor.decrypt_many(scan(settings).values())

    assert results["test/app/KEY"].plaintext == "with context"


def test_wrong_context_fails_only_that_key(credstash_table, settings):
    credstash_table.put("test/app/KEY", "with context", context={"app": "web"})
    credstash_table.put("test/app/OTHER", "plain")

    results, stats = Decryptor(settings).decrypt_many(scan(settings).values())

    assert results["test/app/KEY"].plaintext is None
    assert "KMS decrypt failed" in results["test/app/KEY"].error
    assert results["test/app/OTHER"].plaintext == "plain"
    assert stats.failed == 1


def test_hmac_mismatch_fails_only_that_key(credstash_table, settings):
    credstash_table.put("test/app/KEY", "original")
    credstash_table.put("test/app/OTHER", "fine")
    credstash_table.tamper("test/app/KEY")

    results, _ = Decryptor(settings).decrypt_many(scan(settings).values())

    assert results["test/app/KEY"].plaintext is None
    assert "HMAC mismatch" in results["test/app/KEY"].error
    assert results["test/app/OTHER"].plaintext == "fine"


def test_invalid_utf8_fails_only_that_key(credstash_table, settings):
    data_key = credstash_table.kms.generate_data_key(
        KeyId="alias/credstash", NumberOfBytes=64, EncryptionContext={}
    )
    key = data_key["Plaintext"]
    encryptor = Cipher(algorithms.AES(key[:32]), modes.CTR(credstash.LEGACY_NONCE)).encryptor()
    ciphertext = encryptor.update(b"\xff\xfe\xfd") + encryptor.finalize()
    hmac = credstash._get_hmac(key[32:], ciphertext, "SHA256")
    credstash_table.put_raw(
        {
            "name": {"S": "test/app/BINARY"},
            "version": {"S": credstash.paddedInt(1)},
            "key": {"S": base64.b64encode(data_key["CiphertextBlob"]).decode()},
            "contents": {"S": base64.b64encode(ciphertext).decode()},
            "hmac": {"B": codecs.encode(hmac, "hex_codec")},
            "digest": {"S": "SHA256"},
        }
    )
    credstash_table.put("test/app/OTHER", "fine")

    results, _ = Decryptor(settings).decrypt_many(scan(settings).values())

    assert results["test/app/BINARY"].error == "the decrypted value is not valid UTF-8"
    assert results["test/app/OTHER"].plaintext == "fine"


def test_item_without_key_attribute_fails(credstash_table, settings):
    credstash_table.put_raw({"name": {"S": "test/app/EMPTY"}, "version": {"S": "1"}})

    results, _ = Decryptor(settings).decrypt_many(scan(settings).values())

    assert "has no key, hmac attribute" in results["test/app/EMPTY"].error


def test_empty_value_decrypts_to_empty_text(credstash_table, settings):
    credstash_table.put("test/app/EMPTY", "")

    results, _ = Decryptor(settings).decrypt_many(scan(settings).values())

    assert not results["test/app/EMPTY"].error
    assert results["test/app/EMPTY"].plaintext == ""


def test_old_string_hmac_still_decrypts(credstash_table, settings):
    credstash_table.put("test/app/KEY", "old format")
    item = credstash_table.client.get_item(
        TableName=credstash_table.table,
        Key={"name": {"S": "test/app/KEY"}, "version": {"S": credstash.paddedInt(1)}},
    )["Item"]
    item["hmac"] = {"S": item["hmac"]["B"].decode()}
    credstash_table.put_raw(item)

    results, _ = Decryptor(settings).decrypt_many(scan(settings).values())

    assert results["test/app/KEY"].plaintext == "old format"


def test_unchanged_item_is_never_sent_to_kms_twice(credstash_table, settings, kms_calls):
    session, calls = kms_calls
    credstash_table.put("test/app/A", "a")
    credstash_table.put("test/app/B", "b")
    decryptor = Decryptor(settings, session)
    hits_before = metrics.decrypt_cache_hits_total._value.get()

    decryptor.decrypt_many(scan(settings).values())
    first = len(calls)
    results, stats = decryptor.decrypt_many(scan(settings).values())

    assert first == 2
    assert len(calls) == 2
    assert stats.cache_hits == 2
    assert results["test/app/A"].plaintext == "a"
    assert metrics.decrypt_cache_hits_total._value.get() - hits_before == 2


def test_new_version_is_decrypted_again(credstash_table, settings, kms_calls):
    session, calls = kms_calls
    credstash_table.put("test/app/A", "a")
    decryptor = Decryptor(settings, session)
    decryptor.decrypt_many(scan(settings).values())

    credstash_table.put("test/app/A", "a2")
    results, _ = decryptor.decrypt_many(scan(settings).values())

    assert len(calls) == 2
    assert results["test/app/A"].plaintext == "a2"


def test_hmac_failure_is_remembered(credstash_table, settings, kms_calls):
    session, calls = kms_calls
    credstash_table.put("test/app/KEY", "original")
    credstash_table.tamper("test/app/KEY")
    decryptor = Decryptor(settings, session)

    decryptor.decrypt_many(scan(settings).values())
    results, _ = decryptor.decrypt_many(scan(settings).values())

    assert len(calls) == 1
    assert "HMAC mismatch" in results["test/app/KEY"].error


def test_kms_failure_is_retried_next_time(credstash_table, settings, aws):
    session = aws.session()
    throttled = {"left": 1}

    def throttle(**kwargs):
        if throttled["left"]:
            throttled["left"] -= 1
            error = {"Error": {"Code": "AccessDeniedException", "Message": "denied for test"}}
            raise botocore.exceptions.ClientError(error, "Decrypt")

    session.events.register("before-call.kms.Decrypt", throttle)
    credstash_table.put("test/app/KEY", "value")
    decryptor = Decryptor(settings, session)

    failed, _ = decryptor.decrypt_many(scan(settings).values())
    recovered, _ = decryptor.decrypt_many(scan(settings).values())

    assert failed["test/app/KEY"].plaintext is None
    assert "denied for test" in failed["test/app/KEY"].error
    assert recovered["test/app/KEY"].plaintext == "value"


def test_failure_reason_never_contains_value(credstash_table, settings):
    credstash_table.put("test/app/KEY", "s3cr3t-value", context={"app": "web"})
    credstash_table.put("test/app/TAMPERED", "an0ther-value")
    credstash_table.tamper("test/app/TAMPERED")

    results, _ = Decryptor(settings).decrypt_many(scan(settings).values())

    for outcome in results.values():
        assert "s3cr3t-value" not in outcome.error
        assert "an0ther-value" not in outcome.error
        assert "s3cr3t-value" not in repr(outcome)


def test_retain_drops_versions_that_left(credstash_table, settings, kms_calls):
    session, calls = kms_calls
    credstash_table.put("test/app/A", "a")
    decryptor = Decryptor(settings, session)
    items = scan(settings).values()
    decryptor.decrypt_many(items)

    decryptor.retain([])
    decryptor.decrypt_many(items)

    assert len(calls) == 2
