"""Job secrets, keyed hashes and deterministic idempotency keys.

::

    secret = new_job_secret()                      # once per job, stored in the journal
    row_key = keyed_hash(secret, row.identity)     # what the journal calls the row
    key = idempotency_key(secret, "onboarding", row.identity, body_sha256(body))

Everything here is a pure function of its arguments (except ``new_job_secret``), so a resumed
run derives the very same idempotency key for a row that an earlier, killed run may already have
sent: the server then replays its first answer instead of acting twice. Every output is a hash,
so no personal value (name, tax id, account number, amount) can be read back from a key or a
journal row; the per-job secret stops anyone from confirming a guessed identity by hashing it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from collections.abc import Mapping
from datetime import date
from decimal import Decimal
from json.encoder import encode_basestring as _json_string
from pathlib import Path

__all__ = [
    "IDEMPOTENCY_KEY_PREFIX",
    "body_sha256",
    "canonical_json",
    "derive_job_secret",
    "encode_body",
    "encode_canonical",
    "file_sha256",
    "idempotency_key",
    "keyed_hash",
    "new_job_secret",
    "token_fingerprint",
]

IDEMPOTENCY_KEY_PREFIX = "fpb_"
SECRET_BYTES = 32
# 128 bits for row keys and 192 bits for idempotency keys: far beyond any collision risk for
# a batch of millions of rows, and the idempotency key stays well inside the 64 characters
# that the FlexPay contract (and Stripe, which it follows) allow.
_ROW_KEY_HEX = 32
_IDEMPOTENCY_HEX = 48
_FINGERPRINT_HEX = 12
_CHUNK_BYTES = 1 << 20
# Domain tags keep a row key and an idempotency key from ever being the same HMAC message.
_ROW_DOMAIN = b"fpb.row.v1\x00"
_KEY_DOMAIN = b"fpb.idempotency.v1\x00"
_JOB_SECRET_DOMAIN = b"fpb.job-secret.v1\x00"


def new_job_secret() -> bytes:
    """Return 32 fresh random bytes from the OS CSPRNG: the secret of one job."""
    return secrets.token_bytes(SECRET_BYTES)


def derive_job_secret(key_secret: bytes, identity: Mapping[str, object]) -> bytes:
    """Return the job secret of the job ``identity`` names, derived from a shared key secret.

    For jobs that any of several hosts may run (a bureau's job queue): every worker that holds
    ``key_secret`` derives the same 32 bytes for the same job, so a job taken over from a dead
    worker (whose disk, journal and random secret are gone) sends each row under the very key
    the first worker used, and the server replays instead of acting twice. ``identity`` is
    plain JSON (organisation, kind, file SHA-256, parameters); it never holds the key secret.
    """
    if len(key_secret) < 16:
        raise ValueError("a key secret must be at least 16 bytes")
    message = _JOB_SECRET_DOMAIN + canonical_json(identity).encode("utf-8")
    return hmac.new(key_secret, message, hashlib.sha256).digest()


def _hmac_hex(secret: bytes, message: bytes) -> str:
    if len(secret) < 16:
        # A short or empty secret would make keyed hashes guessable (and a bug elsewhere).
        raise ValueError("job secret must be at least 16 bytes")
    keyed = _KEYED.get(secret)
    if keyed is None:
        if len(_KEYED) >= _KEYED_MAX:
            _KEYED.clear()
        keyed = _KEYED[secret] = hmac.new(secret, digestmod=hashlib.sha256)
    # A copy of the HMAC already keyed with this secret: the same digest as
    # ``hmac.new(secret, message, sha256)`` without deriving the key pads again (two HMACs
    # per row, ~1.5 us each saved). The hmac module's own, not RFC 2104 written out again:
    # a hand-made MAC would save ~1 us more, not worth a second home for a primitive.
    mac = keyed.copy()
    mac.update(message)
    return mac.hexdigest()


#: An HMAC keyed with each recent secret (a run uses one; a bureau worker a few at a time).
_KEYED: dict[bytes, hmac.HMAC] = {}
_KEYED_MAX = 64


def keyed_hash(secret: bytes, value: str) -> str:
    """Return HMAC-SHA256(secret, value) as 32 lowercase hex characters (128 bits).

    Equal inputs give equal outputs; without the secret the value cannot be confirmed by
    guessing, which is what keeps a journal row from identifying a person.
    """
    return _hmac_hex(secret, _ROW_DOMAIN + value.encode("utf-8"))[:_ROW_KEY_HEX]


def _json_default(value: object) -> str:
    # Money travels as a decimal string, never a float; str() keeps the scale ("10.50").
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError("non-finite Decimal in a request body")
        return str(value)
    if isinstance(value, date):
        return value.isoformat()
    raise TypeError(f"cannot hash a value of type {type(value).__name__} in a request body")


#: ``canonical_json``'s encoder, built once: ``json.dumps`` with these arguments builds a new
#: ``JSONEncoder`` on every call, and this runs for every row.
_CANONICAL = json.JSONEncoder(
    sort_keys=True,
    separators=(",", ":"),
    ensure_ascii=False,
    allow_nan=False,
    default=_json_default,
)


def canonical_json(body: Mapping[str, object]) -> str:
    """Return ``body`` as canonical JSON: sorted keys, no whitespace, UTF-8 text.

    ``Decimal`` becomes its ``str()`` (so ``Decimal("10.50")`` and ``"10.50"`` agree), dates
    their ISO form; floats NaN/Infinity and unknown types raise ``ValueError``/``TypeError``.
    """
    return _CANONICAL.encode(body)


def body_sha256(body: Mapping[str, object]) -> str:
    """Return the SHA-256 hex digest of ``canonical_json(body)``.

    Unkeyed on purpose: it fingerprints a request body so a changed row can be detected,
    and only ever appears inside HMAC messages and the 0600 journal.
    """
    return encode_body(body)[1]


def encode_body(body: Mapping[str, object]) -> tuple[bytes, str]:
    """Return ``canonical_json(body)`` as UTF-8 bytes and their SHA-256 hex digest.

    The bytes are what the engine sends (``data=``): encoded once, in the reader thread, so
    the event loop does not serialise every body a second time, and the hash is the hash of
    exactly the bytes on the wire. The digest equals ``body_sha256(body)``.
    """
    return encode_canonical(canonical_json(body))


def encode_canonical(text: str) -> tuple[bytes, str]:
    """Return ``text`` (a ``canonical_json`` result) as UTF-8 bytes and their SHA-256 hex
    digest: ``encode_body`` for a caller that wrote the canonical JSON itself."""
    data = text.encode("utf-8")
    return data, hashlib.sha256(data).hexdigest()


def idempotency_key(secret: bytes, kind: str, identity: str, body_hash: str) -> str:
    """Return the deterministic idempotency key of one request: ``fpb_`` + 48 hex characters.

    The key is HMAC-SHA256(secret, kind, identity, body_hash) with the three parts encoded
    unambiguously (a JSON array), so ``("a|b", "c")`` and ``("a", "b|c")`` differ. It is
    52 characters long, URL-safe, and contains no personal data: only hex digits.
    """
    # Exactly ``json.dumps([kind, identity, body_hash], ensure_ascii=False)``, without building
    # an encoder per row.
    message = f"[{_json_string(kind)}, {_json_string(identity)}, {_json_string(body_hash)}]"
    return (
        IDEMPOTENCY_KEY_PREFIX
        + _hmac_hex(secret, _KEY_DOMAIN + message.encode("utf-8"))[:_IDEMPOTENCY_HEX]
    )


def token_fingerprint(token: str) -> str:
    """Return ``"sha256:"`` + the first 12 hex characters of SHA-256(token).

    Enough to tell two tokens apart when a run resumes, far too little to recover or
    confirm a high-entropy token. The token itself is never stored anywhere.
    """
    digest = hashlib.sha256(token.encode("utf-8")).hexdigest()
    return "sha256:" + digest[:_FINGERPRINT_HEX]


def file_sha256(path: str | os.PathLike[str]) -> str:
    """Return the SHA-256 hex digest of the file at ``path``, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as stream:
        while chunk := stream.read(_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()
