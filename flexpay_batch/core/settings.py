"""Settings from flags, the environment and a TOML file, in that order of precedence.

Usage::

    settings = load_settings(flags={"workers": 4}, env=os.environ, toml_path=None)

Every setting has one name, used three ways: the flag ``--write-limit``, the environment
variable ``FLEXPAY_WRITE_LIMIT`` and the TOML key ``write_limit`` (top level or under a
``[flexpay]`` table). The token is deliberately not a setting: it comes only from
``FLEXPAY_TOKEN`` or a token file (``load_token``), never from a command-line value, because
argv is visible to every user of the machine in ``ps`` and ``/proc/*/cmdline``.

A run stores its settings in the journal with ``settings_to_journal`` and ``resume`` rebuilds
them with ``settings_from_journal``: one pair, so every field survives the round trip.
"""

from __future__ import annotations

import os
import stat
import sys
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Final, TypeAlias, TypeVar
from urllib.parse import urlsplit, urlunsplit

from flexpay_batch.core.errors import ConfigError
from flexpay_batch.core.limitspec import DEFAULT_LIMITS, ClassLimits, LimitSettings, Rate
from flexpay_batch.core.policies import RetryPolicy, Timeouts

DEFAULT_BASE_URL = "https://api.flexpay.dev/v1/"
DEFAULT_CONFIG_FILE = "flexpay-batch.toml"
ENV_PREFIX = "FLEXPAY_"

JSON: TypeAlias = "bool | int | float | str | list[JSON] | dict[str, JSON] | None"


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything a run needs except the token. Safe to print and to store in the journal."""

    base_url: str = DEFAULT_BASE_URL
    ca_bundle: Path | None = None
    run_dir: Path | None = None
    workers: int = 8
    limits: LimitSettings = DEFAULT_LIMITS
    timeouts: Timeouts = field(default_factory=Timeouts)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    key_ttl: float = 24 * 3600.0
    token_file: Path | None = None
    #: ``redis://HOST:PORT/DB`` (or ``rediss://``) shared by every process on one token;
    #: ``None``: the in-process limiter. May hold a password (from the environment or TOML
    #: only): ``settings_to_journal`` leaves it out, messages show ``limiter_address``.
    limiter_url: str | None = None


#: Marks the layout ``settings_to_journal`` writes; journals without it hold the older summary
#: (``read_limit`` strings, ``max_attempts``, ``key_ttl_seconds``, no row deadline).
_JOURNAL_FORMAT = 2


def settings_to_journal(settings: Settings) -> dict[str, JSON]:
    """``settings`` as JSON for the journal; ``settings_from_journal`` gives them back equal.

    No secret is in it: the token is never part of ``Settings`` (``token_file`` is a path).
    """
    return {
        "settings_format": _JOURNAL_FORMAT,
        "base_url": settings.base_url,
        "ca_bundle": _path_text(settings.ca_bundle),
        "run_dir": _path_text(settings.run_dir),
        "token_file": _path_text(settings.token_file),
        "workers": settings.workers,
        "limits": {
            "read": _class_limits_to_json(settings.limits.read),
            "write": _class_limits_to_json(settings.limits.write),
        },
        "timeouts": asdict(settings.timeouts),
        "retry": asdict(settings.retry),
        "key_ttl": settings.key_ttl,
        "limiter_url": _without_password(settings.limiter_url),
    }


def settings_from_journal(data: Mapping[str, Any]) -> Settings:
    """The ``Settings`` a journal's configuration holds (keys it does not know are ignored).

    Also reads journals written before ``settings_to_journal`` existed: their rates are
    strings, ``key_ttl`` is ``key_ttl_seconds``, and what they lack (row deadline, backoff,
    total timeout, paths) takes its default.
    """
    if data.get("settings_format") != _JOURNAL_FORMAT:
        return _settings_from_summary(data)
    limits = data["limits"]
    return Settings(
        base_url=data["base_url"],
        ca_bundle=_stored_path(data["ca_bundle"]),
        run_dir=_stored_path(data["run_dir"]),
        token_file=_stored_path(data["token_file"]),
        workers=data["workers"],
        limits=LimitSettings(
            read=_class_limits_from_json(limits["read"]),
            write=_class_limits_from_json(limits["write"]),
        ),
        timeouts=Timeouts(**data["timeouts"]),
        retry=RetryPolicy(**data["retry"]),
        key_ttl=data["key_ttl"],
        limiter_url=data.get("limiter_url"),
    )


def _settings_from_summary(data: Mapping[str, Any]) -> Settings:
    """Settings from the summary older versions stored (``Settings.describe()``)."""
    base = Settings()

    def class_limits(name: str, default: ClassLimits) -> ClassLimits:
        rate = data.get(f"{name}_limit")
        return ClassLimits(
            Rate.parse(rate) if rate is not None else default.rate,
            data.get(f"{name}_burst", default.burst),
        )

    return Settings(
        base_url=data.get("base_url", base.base_url),
        ca_bundle=_stored_path(data.get("ca_bundle")),
        workers=data.get("workers", base.workers),
        limits=LimitSettings(
            read=class_limits("read", base.limits.read),
            write=class_limits("write", base.limits.write),
        ),
        timeouts=Timeouts(**data.get("timeouts", {})),
        retry=replace(base.retry, max_attempts=data.get("max_attempts", base.retry.max_attempts)),
        key_ttl=data.get("key_ttl_seconds", base.key_ttl),
    )


def _path_text(path: Path | None) -> str | None:
    return None if path is None else str(path)


def _stored_path(text: str | None) -> Path | None:
    return None if text is None else Path(text)  # already expanded when it was loaded


def _without_password(url: str | None) -> str | None:
    """``url`` minus its password: the journal is no place for a credential (a resume takes
    it from ``FLEXPAY_LIMITER_URL`` or the TOML file again)."""
    if url is None:
        return None
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{user}@{host}" if user else host))


def _limiter_url(value: object) -> str:
    text = str(value).strip()
    parts = urlsplit(text)
    if parts.scheme not in ("redis", "rediss") or not parts.hostname:
        # Never echo the value: it may hold a password.
        raise ConfigError("limiter_url must look like redis://HOST:PORT/DB or rediss://...")
    try:
        parts.port  # noqa: B018  # raises for a port that is not a number
    except ValueError:
        raise ConfigError("limiter_url has a port that is not a number") from None
    return text


def _class_limits_to_json(limits: ClassLimits) -> dict[str, JSON]:
    # Numbers, not "100/min": a rate's text rounds periods it has no unit for.
    return {"count": limits.rate.count, "period": limits.rate.period, "burst": limits.burst}


def _class_limits_from_json(data: Mapping[str, Any]) -> ClassLimits:
    return ClassLimits(Rate(data["count"], data["period"]), data["burst"])


#: A setting that is a number (a count or seconds).
_N = TypeVar("_N", int, float)


def _bounded(
    name: str, convert: Callable[[str], _N], what: str, problem: Callable[[_N], str | None]
) -> Callable[[object], _N]:
    """A parser that converts a value, then checks its bound; either failure names ``name``."""

    def parse(value: object) -> _N:
        try:
            number = convert(str(value))
        except ValueError:
            raise ConfigError(f"{name} must be {what}, not {value!r}") from None
        wrong = problem(number)
        if wrong is not None:
            raise ConfigError(f"{name} must be {wrong}")
        return number

    return parse


def _positive_int(name: str) -> Callable[[object], int]:
    return _bounded(
        name, int, "a whole number", lambda n: None if n >= 1 else f"at least 1, not {n}"
    )


def _positive_float(name: str) -> Callable[[object], float]:
    # "not x > 0", not "x <= 0": NaN must be refused too.
    return _bounded(
        name, float, "a number of seconds", lambda x: None if x > 0 else "more than 0 seconds"
    )


def _rate(name: str) -> Callable[[object], Rate]:
    def parse(value: object) -> Rate:
        try:
            return Rate.parse(str(value))
        except ValueError as exc:
            raise ConfigError(f"{name}: {exc}") from None

    return parse


def _path(value: object) -> Path:
    return Path(str(value)).expanduser()


_PARSERS: dict[str, Callable[[object], Any]] = {
    "base_url": str,
    "ca_bundle": _path,
    "run_dir": _path,
    "token_file": _path,
    "workers": _positive_int("workers"),
    "read_limit": _rate("read_limit"),
    "read_burst": _positive_int("read_burst"),
    "write_limit": _rate("write_limit"),
    "write_burst": _positive_int("write_burst"),
    "connect_timeout": _positive_float("connect_timeout"),
    "read_timeout": _positive_float("read_timeout"),
    "max_attempts": _positive_int("max_attempts"),
    "row_deadline": _positive_float("row_deadline"),
    "max_server_pause": _positive_float("max_server_pause"),
    "key_ttl": _positive_float("key_ttl"),
    "limiter_url": _limiter_url,
}


#: The names a setting has as a flag (``--write-limit`` → ``write_limit``) and a TOML key.
SETTING_NAMES = frozenset(_PARSERS)


def load_settings(
    *,
    flags: Mapping[str, object | None],
    env: Mapping[str, str],
    toml_path: Path | None = None,
) -> Settings:
    """Merge defaults < TOML < environment < flags (``None`` flags are unset) into Settings."""
    merged: dict[str, Any] = {}
    for source in (_from_toml(toml_path, env), _from_env(env), _from_flags(flags)):
        merged.update(source)
    return _build(merged)


def _from_flags(flags: Mapping[str, object | None]) -> dict[str, Any]:
    url = flags.get("limiter_url")
    if url is not None and urlsplit(str(url)).password is not None:
        raise ConfigError(
            "--limiter-url must not hold a password (it would show in ps)",
            hint="Put the URL with its password in FLEXPAY_LIMITER_URL or the TOML file.",
        )
    return {k: _parse(k, v, "--" + k.replace("_", "-")) for k, v in flags.items() if v is not None}


def _from_env(env: Mapping[str, str]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for key in _PARSERS:
        value = env.get(ENV_PREFIX + key.upper())
        if value not in (None, ""):
            found[key] = _parse(key, value, ENV_PREFIX + key.upper())
    return found


def _from_toml(toml_path: Path | None, env: Mapping[str, str]) -> dict[str, Any]:
    path = toml_path or _path_or_none(env.get(ENV_PREFIX + "CONFIG"))
    if path is None:
        default = Path(DEFAULT_CONFIG_FILE)
        if not default.is_file():
            return {}
        path = default
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"configuration file {path} does not exist") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"configuration file {path} is not valid TOML: {exc}") from None
    table = data.get("flexpay", data)
    if not isinstance(table, dict):
        raise ConfigError(f"configuration file {path}: [flexpay] must be a table")
    if "token" in table:
        raise ConfigError(
            f"configuration file {path} contains a token",
            hint="Keep the token out of configuration files: use FLEXPAY_TOKEN or token_file.",
        )
    unknown = sorted(set(table) - set(_PARSERS) - {"flexpay"})
    if unknown:
        raise ConfigError(f"configuration file {path}: unknown setting(s) {', '.join(unknown)}")
    return {k: _parse(k, v, f"{path}: {k}") for k, v in table.items() if k in _PARSERS}


def _path_or_none(value: str | None) -> Path | None:
    return Path(value).expanduser() if value else None


def _parse(key: str, value: object, where: str) -> Any:
    parser = _PARSERS.get(key)
    if parser is None:
        raise ConfigError(f"unknown setting {where}")
    try:
        return parser(value)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc.message}") from None


def _limits(values: Mapping[str, Any], base: LimitSettings) -> LimitSettings:
    """``base`` with the rates and bursts ``values`` sets (parsed, by setting name)."""
    return LimitSettings(
        read=ClassLimits(
            values.get("read_limit", base.read.rate), values.get("read_burst", base.read.burst)
        ),
        write=ClassLimits(
            values.get("write_limit", base.write.rate), values.get("write_burst", base.write.burst)
        ),
    )


def _build(values: Mapping[str, Any]) -> Settings:
    base = Settings()
    limits = _limits(values, base.limits)
    timeouts = replace(
        base.timeouts,
        connect=values.get("connect_timeout", base.timeouts.connect),
        read=values.get("read_timeout", base.timeouts.read),
    )
    retry = replace(
        base.retry,
        max_attempts=values.get("max_attempts", base.retry.max_attempts),
        deadline=values.get("row_deadline", base.retry.deadline),
        max_retry_after=values.get("max_server_pause", base.retry.max_retry_after),
    )
    return Settings(
        base_url=values.get("base_url", base.base_url),
        ca_bundle=values.get("ca_bundle"),
        run_dir=values.get("run_dir"),
        workers=values.get("workers", base.workers),
        limits=limits,
        timeouts=timeouts,
        retry=retry,
        key_ttl=values.get("key_ttl", base.key_ttl),
        token_file=values.get("token_file"),
        limiter_url=values.get("limiter_url"),
    )


#: Settings a resume may change (for that invocation): none changes what a row sends.
RESUME_SETTINGS: Final = frozenset(
    {"workers", "read_limit", "read_burst", "write_limit", "write_burst"}
)


def override_settings(settings: Settings, flags: Mapping[str, object | None]) -> Settings:
    """``settings`` (say, a journal's) with the set (non-None) ``flags`` of
    ``RESUME_SETTINGS`` applied, parsed and checked as the same flags of a fresh run are."""
    given = _from_flags({k: v for k, v in flags.items() if k in RESUME_SETTINGS})
    if not given:
        return settings
    return replace(
        settings,
        workers=given.get("workers", settings.workers),
        limits=_limits(given, settings.limits),
    )


def load_token(token_file: Path | None, env: Mapping[str, str]) -> str:
    """The API token from ``token_file`` (``-`` is standard input) or ``FLEXPAY_TOKEN``.

    Raises ``ConfigError`` (never echoing the value) when there is none or it looks wrong.
    A token file readable by group or others is refused: it would be a leaked token.
    """
    if token_file is not None:
        token = _read_token_file(token_file)
        source = f"token file {token_file}"
    else:
        token = env.get(ENV_PREFIX + "TOKEN", "").strip()
        source = "FLEXPAY_TOKEN"
        if not token:
            raise ConfigError(
                "no API token: set FLEXPAY_TOKEN or pass --token-file",
                hint="Tokens are never taken from a command-line value (they would show in ps).",
            )
    if any(ch.isspace() for ch in token) or not token.isprintable():
        raise ConfigError(f"the token in {source} contains white space or control characters")
    if len(token) < MIN_TOKEN_LENGTH:
        # Not only implausible: a 1-3 character secret cannot be redacted from output without
        # mangling ordinary text (core.redact refuses it), so it is refused here, clearly.
        raise ConfigError(
            f"the token in {source} is shorter than {MIN_TOKEN_LENGTH} characters",
            hint="It should hold the whole API token, as FlexPay issued it.",
        )
    return token


#: The shortest token accepted (and the shortest secret ``core.redact`` can scrub safely).
MIN_TOKEN_LENGTH = 4


def _read_token_file(token_file: Path) -> str:
    if str(token_file) == "-":
        return sys.stdin.readline().strip()
    try:
        info = token_file.stat()
        if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise ConfigError(
                f"token file {token_file} can be read by other users",
                hint=f"Restrict it first: chmod 600 {token_file}",
            )
        text = token_file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"token file {token_file} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"token file {token_file} cannot be read: {type(exc).__name__}") from None
    token = text.strip()
    if not token or "\n" in token:
        raise ConfigError(f"token file {token_file} must hold the token alone on one line")
    return token


def environment() -> Mapping[str, str]:
    """The process environment (a seam for tests)."""
    return os.environ
