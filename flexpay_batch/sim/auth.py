"""Bearer tokens: who is calling, for which organisation, with which scopes.

``TokenRegistry.authenticate(header)`` returns the caller's ``TokenSpec`` or raises a 401
``ApiProblem`` (codes ``missing_token``, ``malformed_token``, ``invalid_token``,
``token_expired``, ``token_revoked``); ``require_scope`` raises 403 ``insufficient_scope``
with ``required_scope``. Expiry is compared with the wall clock (epoch seconds).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable

from flexpay_batch.sim.config import TokenSpec
from flexpay_batch.sim.problems import ApiProblem

# RFC 6750 b64token: the only characters a bearer token may contain.
_BEARER = re.compile(r"^Bearer ([A-Za-z0-9\-._~+/]+=*)$")
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="flexpay"'}


def _unauthorized(code: str, message: str) -> ApiProblem:
    return ApiProblem(401, code, message, headers=_CHALLENGE)


class TokenRegistry:
    """The tokens the simulator accepts, plus the ones revoked since start."""

    __slots__ = ("_revoked", "_tokens", "_wall_clock")

    def __init__(
        self, tokens: Iterable[TokenSpec], wall_clock: Callable[[], float] = time.time
    ) -> None:
        self._tokens = {spec.token: spec for spec in tokens}
        self._revoked: set[str] = set()
        self._wall_clock = wall_clock

    def add(self, spec: TokenSpec) -> None:
        """Accept one more token (or replace the spec of an existing one)."""
        self._tokens[spec.token] = spec

    def revoke(self, token: str) -> bool:
        """Refuse ``token`` from now on; False if the simulator never knew it."""
        if token not in self._tokens:
            return False
        self._revoked.add(token)
        return True

    def authenticate(self, header: str | None) -> TokenSpec:
        """The spec of the token in an ``Authorization`` header value, or a 401 problem."""
        if not header:
            raise _unauthorized("missing_token", "no Authorization header; send 'Bearer <token>'")
        match = _BEARER.match(header)
        if match is None:
            raise _unauthorized("malformed_token", "Authorization must be 'Bearer <token>'")
        token = match.group(1)
        spec = self._tokens.get(token)
        if spec is None:
            raise _unauthorized("invalid_token", "the token is not valid")
        if token in self._revoked:
            raise _unauthorized("token_revoked", "the token has been revoked")
        if spec.expires_at is not None and self._wall_clock() >= spec.expires_at:
            raise _unauthorized("token_expired", "the token has expired")
        return spec


def require_scope(spec: TokenSpec, scope: str) -> None:
    """403 with ``required_scope`` unless the token holds ``scope``."""
    if scope not in spec.scopes:
        raise ApiProblem(
            403,
            "insufficient_scope",
            f"this endpoint needs the {scope} scope",
            required_scope=scope,
        )
