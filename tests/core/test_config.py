"""Settings precedence (flags > environment > TOML > defaults), where the token may come from,
and the settings' round trip through the journal."""

from __future__ import annotations

import dataclasses
import io
import json
import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flexpay_batch.core import settings as config
from flexpay_batch.core.errors import ConfigError
from flexpay_batch.core.limitspec import DEFAULT_LIMITS, ClassLimits, LimitSettings, Rate
from flexpay_batch.core.policies import RetryPolicy, Timeouts
from flexpay_batch.core.settings import (
    DEFAULT_BASE_URL,
    Settings,
    load_settings,
    load_token,
    override_settings,
    settings_from_journal,
    settings_to_journal,
)

TOKEN = "fp_test_4f1c9e2a7b"


def _toml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "settings.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_are_the_contracts() -> None:
    """With nothing configured: the public base URL, 300/min reads and 100/min writes."""
    settings = load_settings(flags={}, env={}, toml_path=None)
    assert settings.base_url == DEFAULT_BASE_URL
    assert settings.limits == DEFAULT_LIMITS
    assert settings.workers == 8


def test_flags_beat_environment_beat_toml(tmp_path: Path) -> None:
    """Each layer overrides the one below it, key by key."""
    toml = _toml(
        tmp_path,
        '[flexpay]\nworkers = 3\nwrite_limit = "50/min"\nread_burst = 7\n'
        'base_url = "https://toml.example/v1/"\n',
    )
    env = {"FLEXPAY_WORKERS": "5", "FLEXPAY_WRITE_LIMIT": "60/min"}
    settings = load_settings(flags={"workers": 9, "write_limit": None}, env=env, toml_path=toml)
    assert settings.workers == 9  # flag
    assert settings.limits.write.rate == Rate(60, 60.0)  # environment (the flag was unset)
    assert settings.limits.read.burst == 7  # TOML
    assert settings.base_url == "https://toml.example/v1/"  # TOML
    assert settings.limits.write.burst == DEFAULT_LIMITS.write.burst  # default


def test_config_file_named_by_environment_and_top_level_keys(tmp_path: Path) -> None:
    """FLEXPAY_CONFIG names the file; keys may sit at the top level instead of [flexpay]."""
    toml = _toml(tmp_path, 'write_limit = "100/s"\nwrite_burst = 20\n')
    settings = load_settings(flags={}, env={"FLEXPAY_CONFIG": str(toml)}, toml_path=None)
    assert settings.limits.write.rate.per_second == 100


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('token = "abc123"\n', "contains a token"),
        ("colour = 1\n", "unknown setting"),
        ("workers = 0\n", "at least 1"),
        ('write_limit = "fast"\n', "COUNT/UNIT"),
        ("workers = [\n", "not valid TOML"),
    ],
)
def test_bad_config_files_are_refused_clearly(tmp_path: Path, text: str, message: str) -> None:
    """A token, an unknown key, a bad value or broken TOML in the file is a ConfigError."""
    with pytest.raises(ConfigError, match=message):
        load_settings(flags={}, env={}, toml_path=_toml(tmp_path, text))


def test_bad_environment_value_names_the_variable() -> None:
    """A malformed environment value is reported under the variable's own name."""
    with pytest.raises(ConfigError, match="FLEXPAY_READ_BURST"):
        load_settings(flags={}, env={"FLEXPAY_READ_BURST": "many"}, toml_path=None)


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        ({"workers": "x"}, "workers must be a whole number, not 'x'"),
        ({"workers": "2.5"}, "workers must be a whole number, not '2.5'"),
        ({"write_burst": "0"}, "write_burst must be at least 1, not 0"),
        ({"key_ttl": "soon"}, "key_ttl must be a number of seconds, not 'soon'"),
        ({"row_deadline": "0"}, "row_deadline must be more than 0 seconds"),
        ({"read_timeout": "nan"}, "read_timeout must be more than 0 seconds"),
    ],
)
def test_bad_numbers_say_what_they_must_be(flags: dict[str, object], message: str) -> None:
    """A count must be a whole number of at least 1, a time a positive number of seconds."""
    with pytest.raises(ConfigError) as caught:
        load_settings(flags=flags, env={}, toml_path=None)
    assert caught.value.message.endswith(message)


def test_resume_overrides_only_the_given_rates_and_bursts() -> None:
    """A resume's flags replace the journal's workers and limits one by one; unset ones stay."""
    journal = load_settings(
        flags={"workers": 3, "read_limit": "10/s", "write_burst": 7}, env={}, toml_path=None
    )
    resumed = override_settings(journal, {"write_limit": "5/s", "read_burst": "9", "workers": None})
    assert resumed.workers == 3
    assert resumed.limits == LimitSettings(
        read=ClassLimits(Rate.parse("10/s"), 9), write=ClassLimits(Rate.parse("5/s"), 7)
    )
    assert resumed.timeouts == journal.timeouts
    assert override_settings(journal, {"workers": None}) is journal
    with pytest.raises(ConfigError, match="read_burst must be at least 1"):
        override_settings(journal, {"read_burst": "0"})


def test_token_from_environment() -> None:
    """FLEXPAY_TOKEN is read and stripped."""
    assert load_token(None, {"FLEXPAY_TOKEN": f"  {TOKEN}\n"}) == TOKEN


def test_missing_token_never_suggests_a_flag_value() -> None:
    """No token: the error says where tokens come from and never echoes anything."""
    with pytest.raises(ConfigError, match="FLEXPAY_TOKEN") as caught:
        load_token(None, {})
    assert "never taken from a command-line value" in caught.value.hint


def test_token_file_must_be_private(tmp_path: Path) -> None:
    """A token file readable by others is refused without showing its content."""
    path = tmp_path / "token"
    path.write_text(TOKEN + "\n", encoding="utf-8")
    os.chmod(path, 0o644)
    with pytest.raises(ConfigError, match="can be read by other users") as caught:
        load_token(path, {})
    assert TOKEN not in str(caught.value)
    os.chmod(path, 0o600)
    assert load_token(path, {}) == TOKEN


def test_token_file_dash_reads_stdin(monkeypatch: pytest.MonkeyPatch) -> None:
    """``--token-file -`` takes the token from standard input."""
    monkeypatch.setattr(config.sys, "stdin", io.StringIO(TOKEN + "\n"))
    assert load_token(Path("-"), {}) == TOKEN


@pytest.mark.parametrize("bad", ["two words", "tab\there", "bell\x07"])
def test_token_with_white_space_or_controls_is_refused(bad: str) -> None:
    """A token with white space or control characters is refused without being echoed."""
    with pytest.raises(ConfigError) as caught:
        load_token(None, {"FLEXPAY_TOKEN": bad})
    assert bad not in str(caught.value)


# ── to and from the journal ──────────────────────────────────────────────────────────────

_seconds = st.floats(min_value=0.001, max_value=1e6, allow_nan=False, allow_infinity=False)
_paths = st.none() | st.text(
    st.characters(codec="utf-8", exclude_characters="\x00"), min_size=1, max_size=20
).map(Path)

#: One strategy per field. Adding a field to one of these classes without a strategy here
#: fails ``test_every_settings_field_has_a_strategy``; with one, the round trip below fails
#: until ``settings_to_journal``/``settings_from_journal`` carry it.
FIELD_STRATEGIES: dict[type, dict[str, st.SearchStrategy[Any]]] = {
    Rate: {"count": _seconds, "period": _seconds},
    Timeouts: {"connect": _seconds, "read": _seconds, "total": _seconds},
    RetryPolicy: {
        "max_attempts": st.integers(1, 100),
        "base_delay": _seconds,
        "max_delay": _seconds,
        "deadline": _seconds,
        "max_retry_after": _seconds,
    },
    Settings: {
        "base_url": st.text(max_size=40),
        "ca_bundle": _paths,
        "run_dir": _paths,
        "token_file": _paths,
        "workers": st.integers(1, 512),
        "key_ttl": _seconds,
        # Without a password: the journal drops it (``test_limiter_url_password_...``).
        "limiter_url": st.none()
        | st.builds(
            "{}://{}:{}/{}".format,
            st.sampled_from(["redis", "rediss"]),
            st.from_regex(r"[a-z][a-z0-9.-]{0,20}", fullmatch=True),
            st.integers(1, 65535),
            st.integers(0, 15),
        ),
    },
}
FIELD_STRATEGIES[ClassLimits] = {
    "rate": st.builds(Rate, **FIELD_STRATEGIES[Rate]),
    "burst": st.integers(1, 10_000),
}
_class_limits = st.builds(ClassLimits, **FIELD_STRATEGIES[ClassLimits])
FIELD_STRATEGIES[LimitSettings] = {"read": _class_limits, "write": _class_limits}
FIELD_STRATEGIES[Settings] |= {
    "limits": st.builds(LimitSettings, **FIELD_STRATEGIES[LimitSettings]),
    "timeouts": st.builds(Timeouts, **FIELD_STRATEGIES[Timeouts]),
    "retry": st.builds(RetryPolicy, **FIELD_STRATEGIES[RetryPolicy]),
}


@pytest.mark.parametrize("cls", list(FIELD_STRATEGIES))
def test_every_settings_field_has_a_strategy(cls: type) -> None:
    """The round-trip property below generates every field of Settings and of the values it
    holds; a new field must be added to it (and so to the journal functions)."""
    assert set(FIELD_STRATEGIES[cls]) == {f.name for f in dataclasses.fields(cls)}


@given(st.builds(Settings, **FIELD_STRATEGIES[Settings]))
def test_every_setting_survives_the_journal(settings: Settings) -> None:
    """``settings_from_journal(settings_to_journal(s)) == s`` through JSON, for every field."""
    stored = json.loads(json.dumps(settings_to_journal(settings)))
    assert settings_from_journal(stored) == settings


def test_limiter_url_from_flag_environment_and_toml(tmp_path: Path) -> None:
    """--limiter-url, FLEXPAY_LIMITER_URL and TOML limiter_url, flags first; unset: None."""
    assert load_settings(flags={}, env={}).limiter_url is None
    toml = tmp_path / "c.toml"
    toml.write_text('limiter_url = "redis://toml:1/0"\n', encoding="utf-8")
    env = {"FLEXPAY_LIMITER_URL": "rediss://env:2/1"}
    assert load_settings(flags={}, env={}, toml_path=toml).limiter_url == "redis://toml:1/0"
    assert load_settings(flags={}, env=env, toml_path=toml).limiter_url == "rediss://env:2/1"
    flags = {"limiter_url": "redis://flag:3/2"}
    assert load_settings(flags=flags, env=env).limiter_url == "redis://flag:3/2"


@pytest.mark.parametrize("url", ["http://h:1/0", "redis:///0", "redis://h:port/0", "h:6379"])
def test_limiter_url_must_be_a_redis_url_and_is_never_echoed(url: str) -> None:
    """A malformed limiter URL is a ConfigError whose message does not quote the value."""
    with pytest.raises(ConfigError) as caught:
        load_settings(flags={}, env={"FLEXPAY_LIMITER_URL": url})
    assert url not in str(caught.value)


def test_limiter_url_password_stays_out_of_argv_and_the_journal() -> None:
    """A password is refused on the command line, accepted from the environment, and the
    journal keeps the URL without it."""
    secret_url = "redis://ops:s3cret-pw@cache:6380/3"
    with pytest.raises(ConfigError) as caught:
        load_settings(flags={"limiter_url": secret_url}, env={})
    assert "s3cret-pw" not in str(caught.value)
    settings = load_settings(flags={}, env={"FLEXPAY_LIMITER_URL": secret_url})
    assert settings.limiter_url == secret_url
    stored = json.dumps(settings_to_journal(settings))
    assert "s3cret-pw" not in stored
    assert settings_from_journal(json.loads(stored)).limiter_url == "redis://ops@cache:6380/3"


def test_the_journal_keys_are_stable_and_hold_no_token() -> None:
    """What the journal holds (and report.json shows), key by key; no token in it."""
    settings = load_settings(flags={"row_deadline": 90, "key_ttl": 3600}, env={})
    stored = settings_to_journal(settings)
    assert set(stored) == {
        "settings_format",
        "base_url",
        "ca_bundle",
        "run_dir",
        "token_file",
        "workers",
        "limits",
        "timeouts",
        "retry",
        "key_ttl",
        "limiter_url",
    }
    assert stored["key_ttl"] == 3600.0
    assert json.loads(json.dumps(stored))["retry"]["deadline"] == 90.0
    assert "token" not in json.dumps(stored).replace("token_file", "")


def test_journals_of_earlier_versions_still_resume() -> None:
    """A configuration stored by the former ``Settings.describe()`` (rates as text,
    ``key_ttl_seconds``, no row deadline) is read with defaults for what it lacks."""
    old = {
        "base_url": "https://api.example.test/v1/",
        "ca_bundle": "/etc/ca.pem",
        "workers": 3,
        "read_limit": "120/min",
        "read_burst": 10,
        "write_limit": "30/min",
        "write_burst": 5,
        "timeouts": {"connect": 2.0, "read": 7.0, "total": 20.0},
        "max_attempts": 4,
        "key_ttl_seconds": 7200.0,
        "encoding": None,
        "job": {},
    }
    settings = settings_from_journal(old)
    assert settings == Settings(
        base_url="https://api.example.test/v1/",
        ca_bundle=Path("/etc/ca.pem"),
        workers=3,
        limits=LimitSettings(
            read=ClassLimits(Rate(120, 60.0), 10), write=ClassLimits(Rate(30, 60.0), 5)
        ),
        timeouts=Timeouts(connect=2.0, read=7.0, total=20.0),
        retry=RetryPolicy(max_attempts=4),
        key_ttl=7200.0,
    )
