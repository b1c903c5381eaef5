"""Settings precedence (flags > environment > TOML > defaults) and where the token may come from."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from flexpay_batch.core import settings as config
from flexpay_batch.core.errors import ConfigError
from flexpay_batch.core.limitspec import DEFAULT_LIMITS, Rate
from flexpay_batch.core.settings import DEFAULT_BASE_URL, load_settings, load_token

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
