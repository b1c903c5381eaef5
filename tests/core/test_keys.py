"""Tests for flexpay_batch.core.keys: deterministic, secret-dependent keys free of personal data."""

from __future__ import annotations

import hashlib
import re
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flexpay_batch.core.keys import (
    body_sha256,
    file_sha256,
    idempotency_key,
    keyed_hash,
    new_job_secret,
    token_fingerprint,
)

SECRET = bytes(range(32))
OTHER_SECRET = bytes(range(1, 33))
BODY_HASH = body_sha256({"external_id": "E1", "amount": Decimal("10.50")})
KEY_PATTERN = re.compile(r"fpb_[0-9a-f]{48}")


def test_new_job_secret_is_32_fresh_bytes() -> None:
    """Each job secret is 32 bytes and two secrets differ."""
    first, second = new_job_secret(), new_job_secret()
    assert len(first) == len(second) == 32
    assert first != second


def test_keyed_hash_is_deterministic_128_bit_hex() -> None:
    """The same secret and value give the same 32 hex characters."""
    assert keyed_hash(SECRET, "E10001") == keyed_hash(SECRET, "E10001")
    assert re.fullmatch(r"[0-9a-f]{32}", keyed_hash(SECRET, "E10001"))


def test_keyed_hash_depends_on_secret_and_value() -> None:
    """Another secret or another value gives another hash."""
    base = keyed_hash(SECRET, "E10001")
    assert keyed_hash(OTHER_SECRET, "E10001") != base
    assert keyed_hash(SECRET, "E10002") != base


def test_short_secret_is_refused() -> None:
    """A secret shorter than 16 bytes is a bug and raises instead of hashing weakly."""
    with pytest.raises(ValueError, match="at least 16 bytes"):
        keyed_hash(b"short", "E1")


def test_body_hash_ignores_key_order() -> None:
    """Two bodies with the same fields in another order hash alike."""
    assert body_sha256({"a": 1, "b": {"x": 1, "y": 2}}) == body_sha256(
        {"b": {"y": 2, "x": 1}, "a": 1}
    )


def test_body_hash_treats_decimal_as_its_string() -> None:
    """Decimal money hashes like the decimal string the API receives, scale included."""
    assert body_sha256({"amount": Decimal("10.50")}) == body_sha256({"amount": "10.50"})
    assert body_sha256({"amount": Decimal("10.50")}) != body_sha256({"amount": "10.5"})


def test_body_hash_writes_dates_in_iso_form() -> None:
    """A date hashes like its ISO string."""
    assert body_sha256({"d": date(2026, 3, 13)}) == body_sha256({"d": "2026-03-13"})


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ({"amount": float("nan")}, ValueError),
        ({"amount": Decimal("NaN")}, ValueError),
        ({"blob": object()}, TypeError),
    ],
)
def test_body_hash_refuses_unhashable_values(body: dict[str, object], error: type) -> None:
    """NaN and unknown types raise rather than hash to something the API never sees."""
    with pytest.raises(error):
        body_sha256(body)


def test_idempotency_key_is_deterministic_and_well_formed() -> None:
    """The key is stable, url-safe, 52 characters, and starts with fpb_."""
    key = idempotency_key(SECRET, "onboarding", "E10001", BODY_HASH)
    assert key == idempotency_key(SECRET, "onboarding", "E10001", BODY_HASH)
    assert KEY_PATTERN.fullmatch(key)
    assert len(key) <= 64


@pytest.mark.parametrize(
    ("secret", "kind", "identity", "body_hash"),
    [
        (OTHER_SECRET, "onboarding", "E10001", BODY_HASH),
        (SECRET, "payroll", "E10001", BODY_HASH),
        (SECRET, "onboarding", "E10002", BODY_HASH),
        (SECRET, "onboarding", "E10001", body_sha256({"external_id": "E1"})),
    ],
)
def test_idempotency_key_differs_by_each_input(
    secret: bytes, kind: str, identity: str, body_hash: str
) -> None:
    """Changing the secret, the kind, the identity or the body changes the key."""
    base = idempotency_key(SECRET, "onboarding", "E10001", BODY_HASH)
    assert idempotency_key(secret, kind, identity, body_hash) != base


def test_idempotency_key_parts_cannot_run_together() -> None:
    """Moving a separator between kind and identity gives another key."""
    assert idempotency_key(SECRET, "a|b", "c", BODY_HASH) != idempotency_key(
        SECRET, "a", "b|c", BODY_HASH
    )


def test_row_key_and_idempotency_key_are_separate_domains() -> None:
    """A row key never equals the hex part of an idempotency key for the same identity."""
    key = idempotency_key(SECRET, "", "E1", "")
    assert keyed_hash(SECRET, "E1") not in key


@given(identity=st.text(min_size=8, max_size=64), kind=st.sampled_from(["onboarding", "payroll"]))
def test_idempotency_key_never_contains_the_identity(identity: str, kind: str) -> None:
    """Whatever the identity, the key is hex only and does not contain it."""
    key = idempotency_key(SECRET, kind, identity, BODY_HASH)
    assert KEY_PATTERN.fullmatch(key)
    assert identity not in key


@given(value=st.text(min_size=8, max_size=64))
def test_keyed_hash_never_contains_the_value(value: str) -> None:
    """A row key is hex only and does not contain the value it hashes."""
    hashed = keyed_hash(SECRET, value)
    assert re.fullmatch(r"[0-9a-f]{32}", hashed)
    assert value not in hashed


def test_token_fingerprint_tells_tokens_apart_without_the_token() -> None:
    """The fingerprint is stable, short, differs per token and contains no part of it."""
    token = "fp_live_0123456789abcdefABCDEF"
    fingerprint = token_fingerprint(token)
    assert fingerprint == token_fingerprint(token)
    assert re.fullmatch(r"sha256:[0-9a-f]{12}", fingerprint)
    assert fingerprint != token_fingerprint(token + "x")
    assert token not in fingerprint
    assert token[-8:] not in fingerprint


def test_file_sha256_streams_large_files(tmp_path: Path) -> None:
    """The digest of a file over one chunk long equals hashlib's over its bytes."""
    data = bytes(range(256)) * 9000  # 2.3 MB: three chunks
    path = tmp_path / "input.csv"
    path.write_bytes(data)
    assert file_sha256(path) == hashlib.sha256(data).hexdigest()


@given(secret=st.binary(min_size=16, max_size=200), message=st.binary(max_size=300))
def test_keyed_hashes_are_standard_hmac_sha256(secret: bytes, message: bytes) -> None:
    """The cached, copied HMAC is ``hmac.new(secret, message, sha256)`` for any secret length
    (shorter than, equal to and longer than SHA-256's 64-byte block)."""
    import hmac

    from flexpay_batch.core.keys import _hmac_hex

    expected = hmac.new(secret, message, hashlib.sha256).hexdigest()
    assert _hmac_hex(secret, message) == expected
    assert _hmac_hex(secret, message) == expected  # again, from the cached copy
    for length in (64, 65):
        key = (secret * 5)[:length]
        assert _hmac_hex(key, message) == hmac.new(key, message, hashlib.sha256).hexdigest()
