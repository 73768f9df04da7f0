"""Bad credstash names: every character class, lengths at and over the limits, generated
names and collisions after normalisation.

Each name ends as the right key of the right Secret, or as a warning that names it. The
sync never crashes and never writes a key that the name rules forbid. The expected outcome
comes from `support.secret_key`, written from the design independently of renderer.names.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from renderer.sync import Syncer

from .awsfaults import Sealer
from .conftest import EXCLUDED, NAMESPACES, Rig
from .support import expected_secrets, sample, secret_key, token, wait_until

# One character of each class beyond ASCII: Latin-1, a letter whose upper case is ASCII
# ("ſ" -> "S"), the Kelvin sign, a Cyrillic look-alike, combining, zero-width, bidi
# override, CJK, an emoji outside the BMP, and a private-use character.
NON_ASCII = ["é", "ſ", "\u212a", "\u0435", "e\u0301", "\u200b", "\u202e", "密", "🔑", "\ue000"]
CHARACTERS = [chr(code) for code in range(128)] + NON_ASCII


def names_with(character: str) -> list[str]:
    return [
        f"team/app/KEY{character}X",
        f"team/app{character}x/KEY",
        f"te{character}am/app/KEY",
        f"{character}/app/KEY",
        f"team/app/{character}",
    ]


def in_existing_namespaces(secrets: dict) -> dict:
    return {ref: data for ref, data in secrets.items() if ref[0] in NAMESPACES}


def invalid_names(values: dict[str, str]) -> list[str]:
    """Three-part names outside excluded namespaces that the rules reject."""
    invalid = []
    for name in values:
        parts = name.split("/")
        if len(parts) == 3 and parts[0] not in EXCLUDED and secret_key(name, EXCLUDED) is None:
            invalid.append(name)
    return invalid


def seal(rig: Rig, names: list[str], sealer: Sealer | None = None) -> dict[str, str]:
    values = {name: rig.values.add(token("value")) for name in names}
    (sealer or Sealer(rig.store)).write(values)
    return values


def test_every_character_class_in_names(rig: Rig) -> None:
    names = sorted({name for character in CHARACTERS for name in names_with(character)})
    values = seal(rig, names)

    result = rig.syncer().full_sync(trigger="test")

    assert result.result == "success"
    assert result.error == ""
    assert rig.cluster.managed() == in_existing_namespaces(expected_secrets(values, EXCLUDED))
    invalid = invalid_names(values)
    assert sample("kubestash_invalid_keys") == len(invalid)
    warned = "\n".join(rig.logged(logging.WARNING, "skipped"))
    missing = [name for name in invalid if repr(name) not in warned]
    assert missing == []
    rig.assert_no_leak(result)


def test_names_at_and_over_length_limits(rig: Rig) -> None:
    namespace = "n" * 63
    rig.cluster.create_namespace(namespace)
    names = [
        f"{namespace}/app/KEY",
        f"{'n' * 64}/app/KEY",
        f"team/{'s' * 253}/KEY",
        f"team/{'s' * 254}/KEY",
        f"team/{'a' * 63}.{'b' * 63}.{'c' * 63}.{'d' * 61}/KEY",
        f"team/{'a' * 64}/KEY",
        f"team/app/{'K' * 253}",
        f"team/app/{'K' * 254}",
        f"team/app/{'k.' * 126}k",
    ]
    values = seal(rig, names)

    result = rig.syncer().full_sync(trigger="test")

    expected = {
        ref: data
        for ref, data in expected_secrets(values, EXCLUDED).items()
        if ref[0] in (*NAMESPACES, namespace)
    }
    # Kubernetes limits a Secret name to 253 characters in all, not 63 per dot-separated part.
    assert len(expected) == 5
    assert result.result == "success"
    assert rig.cluster.managed() == expected
    assert sample("kubestash_invalid_keys") == 3
    rig.assert_no_leak(result)


def test_invalid_names_become_events_without_values(rig: Rig) -> None:
    invalid = [
        "team/app/KEY WITH SPACE",
        "team/App/KEY",
        "team/app/" + "K" * 1500 + "!",
        "team/app/KEY\n",
        "kube-system/Bad/KEY",
        "Kube-System/app/KEY",
    ]
    seal(rig, invalid)
    rig.put("team/app/GOOD")
    running = rig.service()

    # Repeats are compressed into one Event per object and reason: one on the Secret
    # team/app, one on the namespace for the Secret name "App" that cannot exist.
    wait_until(lambda: len(rig.cluster.events_for("KeyInvalid")) >= 2)

    events = rig.cluster.events_for("KeyInvalid")
    objects = {(e["involvedObject"]["kind"], e["involvedObject"]["name"]) for e in events}
    assert objects == {("Secret", "app"), ("Namespace", "team")}
    assert all(event["type"] == "Warning" for event in events)
    assert all(len(event["message"].encode()) <= 1024 for event in events)
    assert [r for r in rig.requests() if r.namespace in EXCLUDED] == []
    rig.assert_no_leak(running.http.get("/status").text)


def test_collisions_resolve_the_same_every_sync(rig: Rig) -> None:
    names = [
        "team/app/db.password",
        "team/app/db-password",
        "team/app/DB_PASSWORD",
        "team/app/db&password",
        "team/app/Db.Password",
        "team/app/api.key",
        "team/app/api-key",
        "team/app/api&key",
    ]
    values = seal(rig, names)
    syncer = rig.syncer()

    first = syncer.full_sync(trigger="test")
    rig.kubeapi.clear_requests()
    second = syncer.full_sync(trigger="test")

    assert rig.cluster.data("team", "app") == {
        "DB_PASSWORD": values["team/app/DB_PASSWORD"],
        "API_KEY": values["team/app/api&key"],
    }
    assert first.counts["collisions"] == 2
    assert second.counts["keys_changed"] == 0
    assert rig.secret_requests() == []
    assert rig.logged(logging.WARNING, "'team/app/DB_PASSWORD'", "'team/app/db.password'")
    rig.assert_no_leak(first, second)


def test_failed_collision_winner_is_not_replaced(rig: Rig) -> None:
    values = seal(rig, ["team/app/api-key", "team/app/api.key", "team/app/OTHER"])
    rig.store.tamper("team/app/api-key")

    result = rig.syncer().full_sync(trigger="test")

    assert result.result == "partial"
    assert rig.cluster.data("team", "app") == {"OTHER": values["team/app/OTHER"]}
    rig.assert_no_leak(result)


PART = st.text(
    alphabet=st.characters(exclude_categories=("Cs",)),
    min_size=0,
    max_size=12,
)
NEAR_VALID = st.from_regex(r"[a-z0-9][a-z0-9.\-]{0,8}[a-z0-9]?", fullmatch=True)
RAW_KEY = st.from_regex(r"[A-Za-z0-9_.&\-]{1,10}", fullmatch=True)
NAME = st.one_of(
    st.builds(
        "/".join,
        st.tuples(
            st.sampled_from(NAMESPACES), st.one_of(NEAR_VALID, PART), st.one_of(RAW_KEY, PART)
        ),
    ),
    st.builds("/".join, st.lists(PART, min_size=1, max_size=5)),
).filter(bool)


@dataclass
class GrowingTable:
    """State kept across the examples of one hypothesis test: the table only grows."""

    rig: Rig
    syncer: Syncer
    sealer: Sealer
    values: dict[str, str] = field(default_factory=dict)


@pytest.fixture
def growing(rig: Rig) -> GrowingTable:
    return GrowingTable(rig, rig.syncer(), Sealer(rig.store))


@settings(
    max_examples=50,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(batch=st.lists(NAME, min_size=1, max_size=12, unique=True))
def test_generated_names_sync_as_the_rules_say(growing: GrowingTable, batch: list[str]) -> None:
    growing.values.update(seal(growing.rig, batch, growing.sealer))

    result = growing.syncer.full_sync(trigger="test")

    assert result.error == ""
    expected = in_existing_namespaces(expected_secrets(growing.values, EXCLUDED))
    assert growing.rig.cluster.managed() == expected
