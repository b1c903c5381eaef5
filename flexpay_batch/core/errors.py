"""Every exception flexpay-batch raises, arranged by what the caller should do about it.

::

    FlexPayBatchError                  base; ``exit_code`` and ``hint`` live on each class
    ├── UsageError              (2)    bad flags, configuration or input file: fix and re-run
    │   ├── ConfigError                a setting is missing or invalid
    │   ├── InputFileError             the input file cannot be read at all (not one bad row)
    │   ├── ResumeRefused              the run directory does not match this invocation
    │   └── LimiterStoreUnreachable    --limiter-url names a Redis that does not answer
    ├── RunAborted              (3)    stop the whole run now; nothing is retried
    │   ├── AuthenticationFailed       401: token missing, malformed, expired or revoked
    │   ├── PermissionDenied           403: token lacks a scope (``required_scope``)
    │   ├── TlsVerificationFailed      the server's certificate does not verify
    │   └── UnexpectedResponse         a redirect or a reply that is not the API's
    ├── ServiceUnhealthy        (4)    the server keeps failing; the run stops, resumable
    ├── LocalFileError          (5)    a local file cannot be written: disk full, read-only,
    │                                  no permission, a symlink where an output goes
    ├── InternalError          (70)    a bug, reported from elsewhere (a queue worker's job)
    ├── RunInterrupted        (130)    SIGINT/SIGTERM: in-flight rows settled, resumable
    └── ApiError                       one request got a structured error from the API
        ├── RetryableError             try the same request again (same idempotency key)
        │   ├── RateLimited            429
        │   ├── ServerError            500, 502, 503, 504
        │   ├── KeyInProgress          409 idempotency_in_progress: our first try still runs
        │   └── TransportError         no usable response: connect failure, reset, timeout
        ├── UnusableReply              a reply without a usable id (or too large): the row
        │   └── ResponseTooLarge       fails "unverified"; resume looks it up first
        └── RowRejected                4xx other than 401/403/429: reject this row, go on
            ├── ValidationFailed       422 (``field`` names the culprit)
            ├── Conflict               409 (``employee_exists``, ``idempotency_*``, state)
            └── NotFound               404

``ApiError`` subclasses carry ``status``, ``code``, ``message`` and ``request_id`` so every
report line can point the operator (and FlexPay support) at the exact request. Messages never
contain the bearer token or a row's personal values.
"""

from __future__ import annotations

import errno
import sqlite3
from typing import ClassVar


class FlexPayBatchError(Exception):
    """Base of every error flexpay-batch raises on purpose."""

    exit_code: ClassVar[int] = 1
    hint: ClassVar[str] = ""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if hint is not None:
            self.hint = hint  # type: ignore[misc]  # per-instance refinement of the class hint

    def __str__(self) -> str:
        return self.message


class UsageError(FlexPayBatchError):
    """The command, its configuration or its input is wrong; fix it and run again."""

    exit_code = 2


class ConfigError(UsageError):
    """A setting (flag, environment variable or TOML key) is missing or invalid."""


class InputFileError(UsageError):
    """The input file as a whole cannot be read (missing, wrong encoding, no header)."""


class LimiterStoreUnreachable(UsageError):
    """The shared rate-limit store (``--limiter-url``) cannot be used at the start of a run,
    or refuses the credentials mid-run (waiting would not fix them)."""

    hint = "Start Redis there, or fix --limiter-url / FLEXPAY_LIMITER_URL (or run without it)."


class ResumeRefused(UsageError):
    """The run directory belongs to another job or the input changed since the run began."""

    hint = "Pass --restart to begin a new job in this run directory."


class RunAborted(FlexPayBatchError):
    """A fault that makes every further request pointless: the run stops at once."""

    exit_code = 3


class ServiceUnhealthy(FlexPayBatchError):
    """The API failed too often (the run's retry budget ran out); the run stops, resumable."""

    exit_code = 4
    hint = "Check FlexPay's status, then continue with `flexpay-batch resume RUN_DIR`."


class LocalFileError(FlexPayBatchError):
    """This machine refused a write (disk full, read-only file system, permission, a symlink
    planted where an output goes): nothing is wrong with the input or the server."""

    exit_code = 5


_RESUME = "then continue with `flexpay-batch resume RUN_DIR` (what was journaled is kept)"


def local_fault(exc: OSError | sqlite3.Error, *, where: str | None = None) -> LocalFileError:
    """``exc`` as one sentence naming the path and what to do (``where`` if it names none)."""
    path = (exc.filename if isinstance(exc, OSError) else None) or where or "the run directory"
    number = exc.errno if isinstance(exc, OSError) else _sqlite_errno(exc)
    if number in {errno.ENOSPC, errno.EDQUOT}:
        return LocalFileError(
            f"cannot write {path}: the disk is full", hint=f"Free some disk space, {_RESUME}."
        )
    if number == errno.EROFS:
        return LocalFileError(
            f"cannot write {path}: it is on a read-only file system",
            hint="Choose a writable run directory with --run-dir.",
        )
    if number in {errno.EACCES, errno.EPERM}:
        return LocalFileError(
            f"cannot write {path}: permission denied",
            hint="Choose a run directory you can write to (--run-dir), or fix its permissions.",
        )
    if number == errno.ELOOP:
        return LocalFileError(
            f"{path} is a symbolic link; flexpay-batch never writes through one",
            hint=f"Remove the link (or choose another --run-dir), {_RESUME}.",
        )
    reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    return LocalFileError(
        f"cannot write {path}: {reason}", hint=f"Fix the cause named here, {_RESUME}."
    )


#: errnos that mean "this machine refused a write", whatever the file.
_LOCAL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM})


def is_local_fault(exc: BaseException) -> bool:
    """Whether ``exc`` is a local write refused (``local_fault`` can say what to do), rather
    than a bug: a file error naming its path, or one of the errnos of a full or read-only
    disk, or SQLite saying the same. A bare ``ConnectionResetError`` is not one."""
    if isinstance(exc, OSError):
        return exc.filename is not None or exc.errno in _LOCAL_ERRNOS | {errno.ELOOP}
    if isinstance(exc, sqlite3.Error):
        return _sqlite_errno(exc) is not None
    return False


def _sqlite_errno(exc: sqlite3.Error) -> int | None:
    """The errno a SQLite error stands for, from its result code (``sqlite_errorcode``)."""
    code = getattr(exc, "sqlite_errorcode", None)
    primary = code & 0xFF if isinstance(code, int) else None
    return (
        {
            sqlite3.SQLITE_FULL: errno.ENOSPC,
            sqlite3.SQLITE_READONLY: errno.EROFS,
            sqlite3.SQLITE_CANTOPEN: errno.EACCES,
            sqlite3.SQLITE_PERM: errno.EACCES,
            sqlite3.SQLITE_IOERR: errno.EIO,
        }.get(primary)
        if primary is not None
        else None
    )


class InternalError(FlexPayBatchError):
    """A bug stopped a job elsewhere (a bureau queue's worker), reported here; the command
    line's own bugs are exit 70 too, from ``cli.app.main``."""

    exit_code = 70
    hint = "See that worker's log (its --debug traceback) and report it."


class RunInterrupted(FlexPayBatchError):
    """The operator asked the run to stop; in-flight rows were settled and it can resume."""

    exit_code = 130
    hint = "Continue with `flexpay-batch resume RUN_DIR`."


class ApiError(FlexPayBatchError):
    """One request ended in an error response (or no response at all)."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        error_type: str | None = None,
        request_id: str | None = None,
        field: str | None = None,
        details: dict[str, object] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.error_type = error_type
        self.request_id = request_id
        self.field = field
        self.details: dict[str, object] = dict(details or {})

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(status={self.status!r}, code={self.code!r}, "
            f"request_id={self.request_id!r}, message={self.message!r})"
        )


class RetryableError(ApiError):
    """The same request may succeed later; retry it with the same idempotency key."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: object) -> None:
        super().__init__(message, **kw)  # type: ignore[arg-type]
        self.retry_after = retry_after


class RateLimited(RetryableError):
    """429: the server refused the request for rate; ``retry_after`` in seconds if it said."""


class ServerError(RetryableError):
    """500, 502, 503 or 504 from the server."""


class TransportError(RetryableError):
    """No usable response arrived.

    ``indeterminate`` is True when the request may have reached the server (a reset or a
    timeout after sending): the write's effect is unknown, so only a retry with the same
    idempotency key, or a look-up, may settle it. Never re-send such a write under a new key.
    """

    def __init__(self, message: str, *, indeterminate: bool, timeout: bool = False) -> None:
        super().__init__(message, code="timeout" if timeout else "transport_error")
        self.indeterminate = indeterminate
        self.timeout = timeout


class KeyInProgress(RetryableError):
    """409 ``idempotency_in_progress``: an earlier attempt with this key is still running."""


class RowRejected(ApiError):
    """The server refused this row for a reason retrying cannot fix; reject it and go on."""


class ValidationFailed(RowRejected):
    """422: a field of the request is missing or malformed (``field`` says which)."""


class Conflict(RowRejected):
    """409: the row clashes with server state (existing employee, key in use, run state)."""


class NotFound(RowRejected):
    """404: the referenced object does not exist for this organisation."""


class AuthenticationFailed(RunAborted, ApiError):
    """401: the token is missing, malformed, expired or revoked."""

    hint = (
        "Check FLEXPAY_TOKEN (or --token-file): the server rejected the token itself. Nothing "
        "else went wrong and the run can continue: with the same token once it is valid again "
        "(`flexpay-batch resume RUN_DIR`), or with a new token of the same organisation "
        "(`flexpay-batch resume RUN_DIR --allow-token-change`)."
    )


class PermissionDenied(RunAborted, ApiError):
    """403: the token is valid but lacks the scope this job needs."""

    hint = "Use a token with the scope named above (see the README's scope table)."


class TlsVerificationFailed(RunAborted):
    """The server's TLS certificate did not verify; verification is never switched off."""

    hint = (
        "If this is a test server, pass its CA bundle with FLEXPAY_CA_BUNDLE or --ca-bundle; "
        "flexpay-batch never turns certificate checks off."
    )


class UnexpectedResponse(RunAborted, ApiError):
    """A redirect, or a response that is not the API's; nothing is retried or followed."""

    hint = "Check the base URL (FLEXPAY_BASE_URL): it should end in /v1/."


class UnusableReply(ApiError):
    """A reply arrived but cannot be trusted as the row's outcome (no usable id, too large).

    Not retried: the write may well have been applied, and the same request would most
    likely earn the same reply. The row is recorded as failed with code ``unverified``
    (``core.states.UNVERIFIED``) and the request id; ``resume`` looks the row up on the
    server before sending it again.
    """


class ResponseTooLarge(UnusableReply):
    """One reply's body exceeded the size cap (``--max-response-bytes``)."""
