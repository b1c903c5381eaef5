"""Idempotency keys: the first response for a key is kept and replayed, never re-applied.

    outcome = store.begin(scope, key, fingerprint)   # None: reserved, go and do the work
    ...; store.finish(scope, key, response)          # or store.abandon(scope, key) on failure

Keys are scoped per organisation (``scope``), like a payment API's per-account keys, so a
token rotated in the middle of a job still replays. An entry lives ``ttl`` seconds from its
first request, measured on the injected monotonic clock. For a key already known:

- a different request fingerprint (method, path, canonical body) → 422 ``idempotency_key_reused``;
- the first request still in flight → 409 ``idempotency_in_progress``;
- otherwise the stored response is returned for replay (header ``Idempotent-Replayed: true``).

Only answers the handler produced are stored (status < 500); 401/403/429 and injected faults
happen before a key is reserved and never stick to it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from flexpay_batch.sim.problems import ApiProblem, validation

_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")


@dataclass(frozen=True, slots=True)
class StoredResponse:
    """The part of a response that a replay repeats: status and JSON body bytes."""

    status: int
    body: bytes


@dataclass(slots=True)
class _Entry:
    fingerprint: bytes
    created: float
    response: StoredResponse | None  # None while the first request is in flight


def check_key(key: str) -> str:
    """The key if it is 1-255 visible ASCII characters, else 422 naming the header."""
    if not _KEY.match(key):
        raise validation(
            "Idempotency-Key", "Idempotency-Key must be 1-255 visible ASCII characters"
        )
    return key


class IdempotencyStore:
    """Key → (fingerprint, response) with a TTL; see the module docstring."""

    __slots__ = ("_clock", "_entries", "ttl")

    def __init__(self, ttl: float, clock: Callable[[], float]) -> None:
        self.ttl = ttl
        self._clock = clock
        # Insertion order is creation order, so expired entries are always at the front.
        self._entries: dict[tuple[str, str], _Entry] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def begin(self, scope: str, key: str, fingerprint: bytes) -> StoredResponse | None:
        """Reserve ``key`` (returns None) or return the stored response to replay."""
        now = self._clock()
        self._expire(now)
        entry = self._entries.get((scope, key))
        if entry is not None and entry.response is not None and now - entry.created >= self.ttl:
            del self._entries[(scope, key)]
            entry = None
        if entry is None:
            self._entries[(scope, key)] = _Entry(fingerprint, now, None)
            return None
        if entry.fingerprint != fingerprint:
            raise ApiProblem(
                422,
                "idempotency_key_reused",
                "this Idempotency-Key was used with a different request",
                error_type="idempotency_error",
            )
        if entry.response is None:
            raise ApiProblem(
                409,
                "idempotency_in_progress",
                "a request with this Idempotency-Key is still being processed",
                error_type="idempotency_error",
            )
        return entry.response

    def finish(self, scope: str, key: str, response: StoredResponse) -> None:
        """Store the first request's response for replay."""
        entry = self._entries.get((scope, key))
        if entry is not None:
            entry.response = response

    def abandon(self, scope: str, key: str) -> None:
        """Release a reservation whose request produced no storable answer."""
        entry = self._entries.get((scope, key))
        if entry is not None and entry.response is None:
            del self._entries[(scope, key)]

    def _expire(self, now: float) -> None:
        # Amortised O(1): only entries at the front can be expired; stop at the first live one.
        while self._entries:
            first_key = next(iter(self._entries))
            entry = self._entries[first_key]
            if entry.response is None or now - entry.created < self.ttl:
                return
            del self._entries[first_key]
