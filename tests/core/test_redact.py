"""The token must not reach any log line, exception text or traceback."""

from __future__ import annotations

import io
import logging
import sys
from collections.abc import Iterator

import aiohttp
import pytest
from hypothesis import given
from hypothesis import strategies as st
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from flexpay_batch.core.redact import (
    PLACEHOLDER,
    Redactor,
    format_exception_redacted,
    install_redaction,
    redact_text,
    uninstall_redaction,
)

TOKEN = "fp_live_4f9c2e7d1a8b6c3e5f0a9d2b"
TOKEN_ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.~+/="


class Carrier:
    """An object whose repr leaks the token, like a careless client class."""

    def __repr__(self) -> str:
        return f"Carrier(token={TOKEN!r})"


def aiohttp_error() -> aiohttp.ClientResponseError:
    headers = CIMultiDictProxy(
        CIMultiDict({"Host": "api.flexpay.dev", "Authorization": f"Bearer {TOKEN}"})
    )
    url = URL("https://api.flexpay.dev/v1/employees")
    info = aiohttp.RequestInfo(url, "POST", headers, url)
    return aiohttp.ClientResponseError(info, (), status=503, message="Service Unavailable")


@pytest.fixture
def installed() -> Iterator[Redactor]:
    """Install redaction for TOKEN and remove it afterwards."""
    redactor = install_redaction(TOKEN)
    try:
        yield redactor
    finally:
        uninstall_redaction()


@pytest.fixture
def log_output() -> Iterator[io.StringIO]:
    """A handler on the root logger (added before redaction is installed) writing to a buffer."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"token {TOKEN} here", f"token {PLACEHOLDER} here"),
        ("Authorization: Bearer abc.def\r\nHost: x", f"Authorization: {PLACEHOLDER}\r\nHost: x"),
        ("'Authorization': 'Basic dXNlcjpwdw=='", f"'Authorization': '{PLACEHOLDER}'"),
        ('{"authorization": "Bearer zzz"}', f'{{"authorization": "{PLACEHOLDER}"}}'),
        ("b'Authorization': b'Bearer zzz'", f"b'Authorization': b'{PLACEHOLDER}'"),
        ("X-Sim-Admin: s3cr3t-admin", f"X-Sim-Admin: {PLACEHOLDER}"),
        ("sent bearer other-token-123 then", f"sent bearer {PLACEHOLDER} then"),
        ("(Bearer xyz)", f"(Bearer {PLACEHOLDER})"),
        ("nothing secret here", "nothing secret here"),
        ("the bearer", "the bearer"),
    ],
)
def test_redactor_table(text: str, expected: str) -> None:
    """Known secrets, secret header values and bearer tokens are replaced; other text is not."""
    assert Redactor([TOKEN]).redact(text) == expected


def test_redactor_catches_url_encoded_secret() -> None:
    """A secret is also caught in its URL-encoded form."""
    secret = "ab+cd/ef=="
    assert Redactor([secret]).redact("q=ab%2Bcd%2Fef%3D%3D") == f"q={PLACEHOLDER}"


@pytest.mark.parametrize("secret", ["", "abc", "REDACTED", "EDACT"])
def test_redactor_refuses_secrets_that_would_wipe_text(secret: str) -> None:
    """Too short secrets, or ones inside the placeholder, are refused."""
    with pytest.raises(ValueError, match="at least 4"):
        Redactor([secret])


@given(
    secret=st.text(TOKEN_ALPHABET, min_size=4, max_size=40),
    before=st.text(max_size=30),
    after=st.text(max_size=30),
)
def test_redacted_text_never_contains_secret(secret: str, before: str, after: str) -> None:
    """Whatever surrounds a registered token-like secret, the output does not contain it."""
    redactor = Redactor([secret])
    once = redactor.redact(before + secret + after + secret)
    assert secret not in once
    assert redactor.redact(once) == once


HEADERISH = st.sampled_from(
    ["Authorization", "X-Sim-Admin", ": ", "=", "'", '"', "b'", "Bearer ", " ", "\r\n", ",", "}"]
)


@given(st.lists(st.one_of(st.text(max_size=8), HEADERISH, st.just(PLACEHOLDER))).map("".join))
def test_redaction_is_idempotent(text: str) -> None:
    """Redacting already redacted text changes nothing, however the header fragments combine."""
    redactor = Redactor([TOKEN])
    once = redactor.redact(text)
    assert redactor.redact(once) == once


def test_redact_text_without_installation_uses_patterns() -> None:
    """With nothing installed, redact_text still removes bearer tokens."""
    assert redact_text("Authorization: Bearer abcdef") == f"Authorization: {PLACEHOLDER}"


@pytest.mark.usefixtures("installed")
def test_token_in_log_args_is_redacted(log_output: io.StringIO) -> None:
    """The token passed as %s, %r, in an object's repr or a dict never reaches the handler."""
    log = logging.getLogger("flexpay_batch.api.client")
    log.info("token %s", TOKEN)
    log.warning("client %r", Carrier())
    log.debug("headers %s", {"Authorization": f"Bearer {TOKEN}"})
    log.error("%(who)s used %(tok)s", {"who": "me", "tok": TOKEN})
    output = log_output.getvalue()
    assert TOKEN not in output
    assert output.count(PLACEHOLDER) == 4


@pytest.mark.usefixtures("installed")
def test_bad_format_arguments_do_not_leak(
    log_output: io.StringIO, capsys: pytest.CaptureFixture[str]
) -> None:
    """A broken format string does not make logging print its raw arguments to stderr."""
    logging.getLogger("x").info("%d items", TOKEN)
    assert TOKEN not in log_output.getvalue()
    assert TOKEN not in capsys.readouterr().err


@pytest.mark.usefixtures("installed")
def test_token_in_exception_message_is_redacted(log_output: io.StringIO) -> None:
    """log.exception redacts the exception message and the traceback text."""
    log = logging.getLogger("flexpay_batch.api.retry.loop")
    try:
        raise RuntimeError(f"request with {TOKEN} failed")
    except RuntimeError:
        log.exception("send failed")
    output = log_output.getvalue()
    assert "RuntimeError: request with [REDACTED] failed" in output
    assert TOKEN not in output


@pytest.mark.usefixtures("installed")
def test_aiohttp_error_repr_is_redacted(log_output: io.StringIO) -> None:
    """aiohttp's ClientResponseError repr carries request headers; they come out redacted."""
    error = aiohttp_error()
    assert TOKEN in repr(error)
    log = logging.getLogger("aiohttp.client")
    log.error("failed: %r", error)
    try:
        raise error
    except aiohttp.ClientResponseError:
        log.exception("failed again: %r", error.request_info)
    output = log_output.getvalue()
    assert TOKEN not in output
    assert "'Authorization': '[REDACTED]'" in output


def chained_failure() -> None:
    try:
        raise ValueError(f"inner {TOKEN}")
    except ValueError as inner:
        try:
            raise KeyError(f"middle Bearer {TOKEN}") from inner
        except KeyError:
            error = RuntimeError("outer")
            error.add_note(f"note with {TOKEN}")
            raise error  # noqa: B904  # the implicit __context__ chain is what we test


@pytest.mark.usefixtures("installed")
def test_chained_exception_is_redacted(log_output: io.StringIO) -> None:
    """Causes, contexts and notes of a logged exception are all redacted."""
    try:
        chained_failure()
    except RuntimeError:
        logging.getLogger("flexpay_batch").exception("run failed")
    output = log_output.getvalue()
    assert "ValueError: inner [REDACTED]" in output
    assert "The above exception was the direct cause" in output
    assert "During handling of the above exception" in output
    assert "note with [REDACTED]" in output
    assert TOKEN not in output


def test_format_exception_redacted_covers_chain_and_groups(installed: Redactor) -> None:
    """The --debug traceback text is redacted through chains and exception groups."""
    try:
        chained_failure()
    except RuntimeError as exc:
        group = ExceptionGroup("batch", [exc, aiohttp_error()])
    text = format_exception_redacted(group)
    assert "ValueError: inner [REDACTED]" in text
    assert "ClientResponseError" in text
    assert TOKEN not in text
    assert TOKEN not in format_exception_redacted(group, Redactor([TOKEN]))


@pytest.mark.usefixtures("installed")
def test_handler_added_after_install_is_covered(log_output: io.StringIO) -> None:
    """Records are redacted when created, so a handler added later sees no token either."""
    late = io.StringIO()
    handler = logging.StreamHandler(late)
    logger = logging.getLogger("late.module")
    logger.addHandler(handler)
    try:
        logger.warning("token=%s", TOKEN, stack_info=True)
    finally:
        logger.removeHandler(handler)
    assert "token=[REDACTED]" in late.getvalue()
    assert TOKEN not in late.getvalue() + log_output.getvalue()


def test_extra_fields_are_redacted(installed: Redactor) -> None:
    """A string passed through ``extra=`` is redacted by the filter on a root handler."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(message)s auth=%(auth)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        install_redaction(None)  # covers handlers added since the first install
        logging.getLogger("extra.module").warning("sending", extra={"auth": f"Bearer {TOKEN}"})
    finally:
        root.removeHandler(handler)
    assert stream.getvalue() == "sending auth=Bearer [REDACTED]\n"


@pytest.mark.usefixtures("installed")
def test_manual_records_are_redacted_by_handler_filter(log_output: io.StringIO) -> None:
    """A record that bypassed the factory (e.g. from a queue) is redacted by the handler filter."""
    record = logging.makeLogRecord({"msg": "token %s", "args": (TOKEN,), "levelno": 20})
    for handler in logging.getLogger().handlers:
        handler.handle(record)
    assert TOKEN not in log_output.getvalue()


def test_install_twice_adds_secrets_and_uninstall_restores() -> None:
    """A second install registers more secrets; uninstall restores factory and excepthook."""
    factory, hook = logging.getLogRecordFactory(), sys.excepthook
    first = install_redaction(TOKEN)
    try:
        second = install_redaction(None, "admin-secret-1")
        assert second is first
        assert first.redact(f"{TOKEN} admin-secret-1") == f"{PLACEHOLDER} {PLACEHOLDER}"
    finally:
        uninstall_redaction()
    assert logging.getLogRecordFactory() is factory
    assert sys.excepthook is hook
    uninstall_redaction()


def test_excepthook_prints_redacted_traceback() -> None:
    """An uncaught exception's traceback goes through the redactor."""
    stream = io.StringIO()
    install_redaction(TOKEN, stream=stream)
    try:
        try:
            chained_failure()
        except RuntimeError as exc:
            sys.excepthook(type(exc), exc, exc.__traceback__)
    finally:
        uninstall_redaction()
    assert "RuntimeError: outer" in stream.getvalue()
    assert TOKEN not in stream.getvalue()
