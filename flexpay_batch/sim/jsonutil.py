"""Compact JSON encoding for response bodies (bytes, UTF-8, no spaces)."""

from __future__ import annotations

import json

_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


def dumps(value: object) -> bytes:
    """Encode ``value`` (dicts, lists, str, int, bool, None) as compact UTF-8 JSON."""
    return _ENCODER.encode(value).encode()
