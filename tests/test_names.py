"""Name parsing and collision rules, table-driven from tests/cases/*.tsv."""

from __future__ import annotations

import csv
import itertools
from pathlib import Path

import pytest

from renderer.names import Outcome, SecretRef, parse_name, resolve_collisions
from renderer.settings import Settings

CASES = Path(__file__).parent / "cases"
DEFAULT_EXCLUDED = Settings().namespace_exclude


def read_rows(filename: str) -> list[list[str]]:
    with open(CASES / filename, newline="", encoding="utf-8") as handle:
        rows = csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        return [row for row in rows if row and not row[0].startswith("#")]


KEY_ROWS = read_rows("keys.tsv")
COLLISION_ROWS = read_rows("collisions.tsv")


def test_case_files_are_complete():
    assert len(KEY_ROWS) >= 20
    assert len(COLLISION_ROWS) >= 3


@pytest.mark.parametrize("row", KEY_ROWS, ids=[row[0] for row in KEY_ROWS])
def test_key_case(row):
    name, outcome = row[0], row[1]
    parsed = parse_name(name, DEFAULT_EXCLUDED)

    assert parsed.outcome is Outcome(outcome), parsed.reason
    assert parsed.name == name
    if parsed.outcome is Outcome.OK:
        namespace, secret, key = row[2:5]
        assert parsed.namespace == namespace
        assert parsed.secret == secret
        assert parsed.key == key
        assert parsed.reason == ""
    else:
        assert parsed.reason


@pytest.mark.parametrize("row", COLLISION_ROWS, ids=[row[0] for row in COLLISION_ROWS])
def test_collision_case(row):
    names, winner, key = row[0].split(","), row[1], row[2]

    for order in itertools.permutations(names):
        parsed = [parse_name(name) for name in order]
        chosen, collisions = resolve_collisions(parsed)

        ref = parsed[0].ref
        assert chosen[(ref, key)].name == winner
        assert len(collisions) == 1
        assert collisions[0].winner == winner
        assert sorted(collisions[0].losers) == sorted(set(names) - {winner})


def test_collision_winner_stays_when_a_new_loser_arrives():
    first, _ = resolve_collisions([parse_name("test/s/a.b"), parse_name("test/s/a-b")])
    second, _ = resolve_collisions(
        [parse_name("test/s/a.b"), parse_name("test/s/a-b"), parse_name("test/s/a.B")]
    )

    assert first[(SecretRef("test", "s"), "A_B")].name == "test/s/a-b"
    assert second[(SecretRef("test", "s"), "A_B")].name == "test/s/a-b"


def test_same_key_in_two_secrets_is_no_collision():
    chosen, collisions = resolve_collisions(
        [parse_name("test/one/db.host"), parse_name("test/two/DB_HOST")]
    )

    assert collisions == []
    assert len(chosen) == 2


@pytest.mark.parametrize(
    "name",
    [
        "test/mysecret/\u017fecret",  # long s: upper() makes it an ASCII "S"
        "test/mysecret/\u0131d",  # dotless i: upper() makes it an ASCII "I"
        "test/mysecret/KEY\n",
        "test\n/mysecret/KEY",
        "test/mysecret\n/KEY",
        "test/my_secret/KEY",
        "test/mysecret./KEY",
        "test/.mysecret/KEY",
        "test/mysecret/ KEY",
    ],
)
def test_look_alike_names_are_invalid(name):
    assert parse_name(name).outcome is Outcome.INVALID


def test_length_limits():
    long_namespace = "n" * 64
    long_secret = ".".join(["s" * 63] * 4) + "x"
    long_key = "k" * 254

    assert parse_name(f"{'n' * 63}/s/K").outcome is Outcome.OK
    assert parse_name(f"{long_namespace}/s/K").outcome is Outcome.INVALID
    assert parse_name(f"ns/{long_secret}/K").outcome is Outcome.INVALID
    assert parse_name(f"ns/s/{'k' * 253}").outcome is Outcome.OK
    assert parse_name(f"ns/s/{long_key}").outcome is Outcome.INVALID


def test_custom_exclude_filter():
    excluded = frozenset({"team-a"})

    assert parse_name("team-a/s/KEY", excluded).outcome is Outcome.EXCLUDED
    assert parse_name("kube-system/s/KEY", excluded).outcome is Outcome.OK


def test_invalid_reason_names_the_bad_part():
    parsed = parse_name("test/MySecret/KEY")

    assert "MySecret" in parsed.reason
    assert "DNS-1123" in parsed.reason
