"""Keep the API token (and any other registered secret) out of every log line and traceback.

::

    redactor = install_redaction(settings.token)   # once, after logging is configured
    logging.getLogger(__name__).error("request failed: %r", exc)   # token → [REDACTED]
    sys.stderr.write(format_exception_redacted(exc))                # for --debug

Three layers, because a leak needs only one hole: known secrets are replaced wherever they
appear; ``Authorization``-style header values are replaced whatever they hold; and anything
after ``Bearer`` is replaced. The logging wiring applies this to the fully formatted message
(arguments included: aiohttp's ``ClientResponseError`` repr carries the request headers), to
exception text with its whole chain, and to stack info.

Logging is process-global, so ``install_redaction`` is too: it records what it installed so
``format_exception_redacted`` and ``uninstall_redaction`` can find it.
"""

from __future__ import annotations

import logging
import re
import sys
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, TextIO
from urllib.parse import quote

__all__ = [
    "PLACEHOLDER",
    "RedactingFilter",
    "Redactor",
    "format_exception_redacted",
    "install_redaction",
    "redact_text",
    "uninstall_redaction",
]

PLACEHOLDER = "[REDACTED]"
SECRET_HEADERS = ("authorization", "proxy-authorization", "x-sim-admin", "x-api-key", "cookie")
_MIN_SECRET_LENGTH = 4
_NOT_YET_REDACTED = rf"(?!{re.escape(PLACEHOLDER)})"

# `Authorization: Bearer x`, `'Authorization': 'Bearer x'`, `"authorization": "Basic x"`,
# `b'Authorization': b'Bearer x'`: the header name, its separator, then the value up to the end
# of the quoted string or line. The separator is an atomic group: were the engine allowed to
# backtrack into it, an already redacted value could be matched again from its opening quote.
_HEADER_VALUE = re.compile(
    r"(?i)(?<![\w-])(" + "|".join(re.escape(h) for h in SECRET_HEADERS) + r")"
    r"((?>[\"']?\s*[:=]\s*(?:b?[\"'])?))" + _NOT_YET_REDACTED + r"([^\"'\r\n,}]+)"
)
# Whatever follows "Bearer " up to a delimiter a token cannot contain.
_BEARER = re.compile(r"(?i)\b(bearer)(\s+)" + _NOT_YET_REDACTED + r"([^\s'\"\\,;<>()\[\]{}]+)")

ExceptHook = Callable[[type[BaseException], BaseException, TracebackType | None], Any]


class Redactor:
    """Replaces registered secrets, secret header values and bearer tokens with ``[REDACTED]``.

    ``redact`` is idempotent and never raises. A secret must be at least four characters long
    and must not occur inside ``[REDACTED]`` itself (``ValueError`` otherwise): either would
    make redaction wipe or reintroduce ordinary text.
    """

    __slots__ = ("_pattern", "_secrets")

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        for secret in secrets:
            self.add(secret)

    def add(self, secret: str) -> None:
        """Register ``secret`` (and its URL-encoded form) for redaction from now on."""
        if len(secret) < _MIN_SECRET_LENGTH or secret in PLACEHOLDER:
            raise ValueError("a secret to redact must be at least 4 characters of its own")
        self._secrets.update({secret, quote(secret, safe="")})
        # Longest first, so a secret that contains another is replaced whole.
        ordered = sorted(self._secrets, key=len, reverse=True)
        self._pattern = re.compile("|".join(re.escape(s) for s in ordered))

    def redact(self, text: str) -> str:
        """``text`` with every known secret, secret header value and bearer token replaced."""
        if self._pattern is not None:
            text = self._pattern.sub(PLACEHOLDER, text)
        text = _HEADER_VALUE.sub(lambda m: m.group(1) + m.group(2) + PLACEHOLDER, text)
        return _BEARER.sub(lambda m: m.group(1) + m.group(2) + PLACEHOLDER, text)


def redact_text(text: str, redactor: Redactor | None = None) -> str:
    """Redact ``text`` with ``redactor``, or with the installed one (patterns only if none)."""
    return (redactor or _current_redactor()).redact(text)


def format_exception_redacted(exc: BaseException, redactor: Redactor | None = None) -> str:
    """The full traceback of ``exc`` (causes, contexts, notes, groups) as text, redacted.

    Uses ``redactor``, or the one ``install_redaction`` installed, or the patterns alone.
    """
    text = "".join(traceback.format_exception(exc))
    return redact_text(text, redactor)


class RedactingFilter(logging.Filter):
    """A logging filter that rewrites each record redacted; it never drops a record.

    The message is formatted here (``msg % args``) and stored back with ``args`` cleared, so no
    argument's repr reaches a handler unredacted. Exception info is rendered to ``exc_text`` and
    removed, so handlers that would render the traceback themselves (rich's, for one) cannot
    bypass the redaction.
    """

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        redact_record(record, self.redactor)
        return True


def redact_record(record: logging.LogRecord, redactor: Redactor) -> None:
    """Rewrite ``record`` in place: message, exception text and stack info redacted."""
    record.msg = redactor.redact(_formatted_message(record))
    record.args = None
    if record.exc_info and record.exc_info[1] is not None:
        record.exc_text = "".join(traceback.format_exception(record.exc_info[1])).rstrip("\n")
        record.exc_info = None
    if record.exc_text:
        record.exc_text = redactor.redact(record.exc_text)
    if record.stack_info:
        record.stack_info = redactor.redact(record.stack_info)
    for name, value in list(vars(record).items()):
        if name not in _STANDARD_RECORD_FIELDS and isinstance(value, str):
            setattr(record, name, redactor.redact(value))  # `extra=` fields a formatter may show


_STANDARD_RECORD_FIELDS = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


def _formatted_message(record: logging.LogRecord) -> str:
    try:
        return record.getMessage()
    except Exception:  # a bad format string; logging's own error report would print the args
        return f"{record.msg!s} (unformattable arguments: {record.args!r})"


@dataclass(slots=True)
class _Installation:
    redactor: Redactor
    filter: RedactingFilter
    previous_factory: Callable[..., logging.LogRecord]
    previous_excepthook: ExceptHook
    loggers: list[logging.Logger] = field(default_factory=list)
    handlers: list[logging.Handler] = field(default_factory=list)


_installation: _Installation | None = None


def _current_redactor() -> Redactor:
    return _installation.redactor if _installation is not None else Redactor()


def install_redaction(token: str | None, *secrets: str, stream: TextIO | None = None) -> Redactor:
    """Redact ``token`` and ``secrets`` from all logging and uncaught-exception output.

    Wires one ``RedactingFilter`` into the log-record factory (so every record of every logger
    is redacted when it is created), onto the root logger, its handlers and logging's last-resort
    handler (these also catch ``extra=`` fields, which logging adds after the factory ran); and
    replaces ``sys.excepthook`` with one that prints the redacted traceback to ``stream``
    (default ``sys.stderr``). Calling it again registers more secrets and covers handlers added
    since: call it after logging is configured. ``token`` may be ``None`` (``validate`` has
    none): the patterns still apply. Returns the redactor, e.g. for
    ``make_reporter(redact=redactor.redact)``.
    """
    global _installation
    if _installation is None:
        redactor = Redactor()
        _installation = _Installation(
            redactor=redactor,
            filter=RedactingFilter(redactor),
            previous_factory=logging.getLogRecordFactory(),
            previous_excepthook=sys.excepthook,
        )
        _wire_factory(_installation)
        sys.excepthook = _make_excepthook(redactor, stream)
    for secret in (token, *secrets):
        if secret:
            _installation.redactor.add(secret)
    _attach_filters(_installation)
    return _installation.redactor


def _wire_factory(installation: _Installation) -> None:
    previous = installation.previous_factory

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        redact_record(record, installation.redactor)
        return record

    logging.setLogRecordFactory(factory)


def _attach_filters(installation: _Installation) -> None:
    # Records from child loggers skip the root logger's filters on their way to its handlers,
    # so the handlers need the filter themselves.
    root = logging.getLogger()
    handlers = [*root.handlers, *([logging.lastResort] if logging.lastResort else [])]
    if root not in installation.loggers:
        root.addFilter(installation.filter)
        installation.loggers.append(root)
    for handler in handlers:
        if handler not in installation.handlers:
            handler.addFilter(installation.filter)
            installation.handlers.append(handler)


def _make_excepthook(redactor: Redactor, stream: TextIO | None) -> ExceptHook:
    def excepthook(
        exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None
    ) -> None:
        (stream or sys.stderr).write(format_exception_redacted(exc.with_traceback(tb), redactor))

    return excepthook


def uninstall_redaction() -> None:
    """Undo ``install_redaction``: filters removed, record factory and excepthook restored."""
    global _installation
    installation, _installation = _installation, None
    if installation is None:
        return
    for logger in installation.loggers:
        logger.removeFilter(installation.filter)
    for handler in installation.handlers:
        handler.removeFilter(installation.filter)
    logging.setLogRecordFactory(installation.previous_factory)
    sys.excepthook = installation.previous_excepthook
