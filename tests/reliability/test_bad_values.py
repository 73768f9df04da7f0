"""Bad credstash values: odd and empty strings, plaintext that is not UTF-8, Secrets at and
just over the 1 MiB limit, and thousands of keys in one Secret.

A value either reaches its key byte for byte or the key fails with a reason. A Secret over
the limit fails as a whole, and the API server never receives part of it.
"""

from __future__ import annotations

import logging

from .awsfaults import Sealer
from .conftest import Rig
from .support import expected_secrets, sample, token

# Kubernetes counts a Secret's size as its keys plus the decoded values (k8s.io/api
# core/v1 validation: MaxSecretSize = 1 MiB).
MAX_SECRET_BYTES = 1024 * 1024
PARTS = [f"PART_{number}" for number in range(4)]

ODD_VALUES = {
    "SPACE": " ",
    "NUL": "\x00",
    "NUL_INSIDE": "before\x00after",
    "NEWLINES": "line one\nline two\r\nline three\r",
    "CONTROL": "".join(chr(code) for code in range(32)) + "\x7f",
    "LATIN": "pässwörd-ÄÖÜß",
    "CJK": "密码和钥匙",
    "EMOJI": "🔑🗝️👩‍💻",
    "BIDI": "\u202eevil\u202c and \u200bzero\u200dwidth",
    "COMBINING": "e\u0301e\u0301",
    "BOM": "\ufeffwith a byte order mark",
    "NONCHARACTER": "\uffff\U0010ffff",
    "YAML": "- key: value\n---\n!!python/object:os.system ''",
    "JSON": '{"data": {"KEY": "x"}, "kind": "Secret"}',
    "TEMPLATE": "${HOME} $(reboot) {{ .Values }} %s %d %n",
    "QUOTES": "'\"`\\",
    "BASE64": "c2VjcmV0Cg==",
    "NUMBERS": "0x1F 1e309 -0 NaN",
    "LONG_LINE": "x" * 200_000,
}


def seal_values(rig: Rig, values: dict[str, str | bytes], version: int = 1) -> None:
    for value in values.values():
        if isinstance(value, str):
            rig.values.add(value)
    Sealer(rig.store).write(values, version)


def test_odd_values_arrive_byte_for_byte(rig: Rig) -> None:
    values = {f"team/odd/{key}": value for key, value in ODD_VALUES.items()}
    seal_values(rig, values)

    result = rig.syncer().full_sync(trigger="test")

    assert result.result == "success"
    assert rig.cluster.data("team", "odd") == ODD_VALUES
    rig.assert_no_leak(result)


def test_empty_value_is_an_empty_key(rig: Rig) -> None:
    rig.put("team/app/EMPTY", "")
    other = rig.put("team/app/OTHER")

    result = rig.syncer().full_sync(trigger="test")

    assert rig.store.get("team/app/EMPTY") == ""
    assert result.result == "success"
    assert rig.cluster.data("team", "app") == {"EMPTY": "", "OTHER": other}


def test_plaintext_not_utf8_fails_its_key(rig: Rig) -> None:
    good = {"team/app/KEPT": token("kept"), "team/app/OTHER": token("other")}
    seal_values(rig, good)
    syncer = rig.syncer()
    syncer.full_sync(trigger="test")

    seal_values(rig, {"team/app/KEPT": b"\xff\xfe\x00\x80 not text"}, version=2)
    seal_values(rig, {"team/app/NEW": b"\xc3\x28"})
    result = syncer.full_sync(trigger="test")

    assert result.result == "partial"
    assert rig.cluster.data("team", "app") == {
        "KEPT": good["team/app/KEPT"],
        "OTHER": good["team/app/OTHER"],
    }
    outcome = result.secrets[0]
    assert outcome.keys_failed["KEPT"] == "the decrypted value is not valid UTF-8"
    assert outcome.keys_failed["NEW"] == "the decrypted value is not valid UTF-8"
    assert rig.logged(logging.WARNING, "'team/app/NEW'", "not valid UTF-8")
    assert sample("kubestash_key_synced_failed_status", namespace="team", secret="app", key="NEW")
    rig.assert_no_leak(result)


def parts_of_size(total: int) -> dict[str, str]:
    """Four keys whose names and values add up to `total` bytes."""
    room = total - sum(len(part) for part in PARTS)
    sizes = [room // 4] * 3 + [room - 3 * (room // 4)]
    return {
        f"team/big/{part}": token(part)[:size].ljust(size, "v")
        for part, size in zip(PARTS, sizes, strict=True)
    }


def test_secret_of_exactly_1_mib_is_written(rig: Rig) -> None:
    values = parts_of_size(MAX_SECRET_BYTES)
    seal_values(rig, values)

    result = rig.syncer().full_sync(trigger="test")

    assert result.result == "success"
    assert rig.cluster.data("team", "big") == expected_secrets(values)[("team", "big")]
    rig.assert_no_leak(result)


def test_secret_one_byte_over_1_mib_fails_whole(rig: Rig) -> None:
    values = parts_of_size(MAX_SECRET_BYTES)
    seal_values(rig, {**values, "team/small/KEY": token("small")})
    syncer = rig.syncer()
    syncer.full_sync(trigger="test")
    before = rig.cluster.snapshot()[("team", "big")]

    grown = parts_of_size(MAX_SECRET_BYTES + 1)
    seal_values(rig, grown, version=2)
    rig.kubeapi.clear_requests()
    result = syncer.full_sync(trigger="test")

    outcome = next(s for s in result.secrets if s.name == "big")
    assert outcome.status == "failed"
    assert f"{MAX_SECRET_BYTES + 1} bytes" in outcome.error
    assert result.exit_code == 1
    assert rig.writes_to("team", "big") == []
    assert rig.cluster.snapshot()[("team", "big")] == before
    assert rig.logged(logging.WARNING, "Secret team/big skipped", "1 MiB")
    assert sample(
        "kubestash_key_synced_failed_status", namespace="team", secret="big", key="PART_0"
    )
    rig.assert_no_leak(result)

    seal_values(rig, values, version=3)
    assert syncer.full_sync(trigger="test").result == "success"
    assert rig.cluster.data("team", "big") == expected_secrets(values)[("team", "big")]


def test_thousand_keys_in_one_secret(rig: Rig) -> None:
    # moto served about 300 KMS Decrypt calls per second on a 2-core machine, so a larger
    # Secret would slow every run. The soak has 2,000 keys in one Secret among its 10,000.
    values = {f"team/many/KEY_{number:05d}": token("many") for number in range(1000)}
    seal_values(rig, values)
    syncer = rig.syncer(rig.settings(decrypt_workers=16))

    result = syncer.full_sync(trigger="test")
    rig.kubeapi.clear_requests()
    decrypts_before = sample("kubestash_kms_decrypt_total", result="success")
    again = syncer.full_sync(trigger="test")

    assert result.result == "success"
    assert rig.cluster.data("team", "many") == expected_secrets(values)[("team", "many")]
    assert again.counts["keys_changed"] == 0
    assert rig.secret_requests() == []
    assert sample("kubestash_kms_decrypt_total", result="success") == decrypts_before
    rig.assert_no_leak(result, again)
