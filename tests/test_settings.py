"""Settings: every invalid value is rejected with the variable, the value and a fix."""

from __future__ import annotations

import argparse
import re

import pytest

from renderer.settings import OPTIONS, RateLimit, SettingError, Settings, add_flags, flags_from_args

BOOLEANS = ["STREAM_ENABLED", "VERBOSE", "DRY_RUN", "PRUNE", "LEADER_ELECTION"]
# A fix is an instruction: each message must tell the reader what to write instead.
FIX_WORDS = re.compile(r"\b(use|write|leave|separate|must|set)\b", re.IGNORECASE)

BAD_VALUES = [
    ("DDB_TABLE", "ab"),
    ("DDB_TABLE", "my table"),
    ("TABLE_REGION", "mars"),
    ("STREAM_ARN", "arn:aws:dynamodb:eu-west-1:123:table/x"),
    ("NAMESPACE_EXCLUDE_FILTER", "kube-system|Kube_System"),
    ("WAIT_TIME", "-1"),
    ("WAIT_TIME", "soon"),
    ("WAIT_TIME", "inf"),
    ("WAIT_TIME", "nan"),
    ("CRON_HOURS", "1e308"),
    ("HTTP_TIMEOUT", "nan"),
    ("CREDSTASH_CONTEXT", "app=web,app=api"),
    ("CRON_HOURS", "0"),
    ("CRON_HOURS", "three"),
    ("HTTP_TIMEOUT", "0"),
    ("CREDSTASH_SYNC_TIMEOUT_SECS", "0.5"),
    ("RENDER_RATE_LIMIT", "often"),
    ("RENDER_RATE_LIMIT", "0 per minute"),
    ("MAX_DELETE_RATIO", "1.5"),
    ("MAX_DELETE_RATIO", "half"),
    ("CREDSTASH_CONTEXT", "app=web,novalue"),
    ("LOG_FORMAT", "xml"),
    ("PORT", "70000"),
    ("PORT", "http"),
    ("DECRYPT_WORKERS", "0"),
    ("DECRYPT_WORKERS", "1.5"),
    ("APPLY_WORKERS", "0"),
    ("SCAN_SEGMENTS", "-1"),
    *[(name, "maybe") for name in BOOLEANS],
    *[(name, "") for name in BOOLEANS],
]


@pytest.mark.parametrize(("variable", "value"), BAD_VALUES)
def test_bad_value_names_variable_value_and_fix(variable, value):
    with pytest.raises(SettingError) as error:
        Settings.load({variable: value})

    message = str(error.value)
    assert variable in message
    bad_part = value.split(",")[-1].split("|")[-1]
    assert repr(bad_part) in message or repr(value) in message
    assert FIX_WORDS.search(message), message


def test_every_validated_option_has_a_bad_value_case():
    free_text = {
        "ENV",
        "CLUSTER_NAME",
        "KUBESTASH_API_KEY",
        "WEBHOOK_TOKEN",
        "LEASE_NAME",
        "POD_NAMESPACE",
        "POD_NAME",
    }
    covered = {variable for variable, _ in BAD_VALUES}

    assert {option.variable for option in OPTIONS} - free_text <= covered


@pytest.mark.parametrize("variable", BOOLEANS)
@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("true", True),
        ("True", True),
        ("1", True),
        ("yes", True),
        ("YES", True),
        (" true ", True),
        ("false", False),
        ("False", False),
        ("0", False),
        ("no", False),
    ],
)
def test_boolean_spellings(variable, raw, expected):
    settings = Settings.load({variable: raw})
    attribute = next(o.attribute for o in OPTIONS if o.variable == variable)

    assert getattr(settings, attribute) is expected


@pytest.mark.parametrize("raw", ["on", "off", "y", "n", "2", "truee", "false!"])
def test_boolean_rejects_other_words(raw):
    with pytest.raises(SettingError):
        Settings.load({"DRY_RUN": raw})


def test_defaults_match_the_design():
    settings = Settings.load({})

    assert settings.ddb_table == "credential-store"
    assert settings.table_region == "ap-south-1"
    assert settings.namespace_exclude == {"kube-system", "kubestash-v2", "kubestash"}
    assert settings.wait_time == 120
    assert settings.cron_hours == 3
    assert settings.dry_run is True
    assert settings.prune is False
    assert settings.max_delete_ratio == 0.5
    assert settings.http_timeout == 15
    assert settings.sync_timeout == 300
    assert settings.render_rate_limit == RateLimit(1, 600)
    assert settings.log_format == "text"
    assert settings.port == 8080
    assert settings.credstash_context == {}


def test_wait_time_zero_is_allowed():
    assert Settings.load({"WAIT_TIME": "0"}).wait_time == 0


def test_context_pairs():
    settings = Settings.load({"CREDSTASH_CONTEXT": "app=web, env = prod"})

    assert settings.credstash_context == {"app": "web", "env": "prod"}


def test_exclude_filter_splits_on_bar():
    settings = Settings.load({"NAMESPACE_EXCLUDE_FILTER": "a|b||c"})

    assert settings.namespace_exclude == {"a", "b", "c"}


def test_flag_wins_over_environment():
    parser = argparse.ArgumentParser()
    add_flags(parser)
    args = parser.parse_args(["--dry-run", "false", "--ddb-table", "from-flag"])

    settings = Settings.load({"DRY_RUN": "true", "DDB_TABLE": "from-env"}, flags_from_args(args))

    assert settings.dry_run is False
    assert settings.ddb_table == "from-flag"


def test_old_api_key_variable_still_works():
    settings = Settings.load({"FLASK_API_KEY": "old-key"})

    assert settings.api_key == "old-key"


def test_redacted_hides_secret_settings():
    settings = Settings.load({"KUBESTASH_API_KEY": "k3y-value", "WEBHOOK_TOKEN": "t0ken-value"})
    shown = settings.redacted()

    assert shown["KUBESTASH_API_KEY"] == "<set>"
    assert shown["WEBHOOK_TOKEN"] == "<set>"
    assert "k3y-value" not in repr(settings)
    assert "t0ken-value" not in repr(settings)
    assert "k3y-value" not in str(shown)
