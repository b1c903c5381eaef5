"""The client and one row's worker against a hostile server (tests/stub_server.py, real HTTPS).

Each test pins one defect of issue 12: bodies read short, oversized or endless bodies, 2xx
replies without a usable id, the token echoed in a success, a base URL with a query.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from aiohttp import web

from flexpay_batch.api.client import FlexPayClient, validate_base_url
from flexpay_batch.core import errors
from flexpay_batch.core.policies import Timeouts
from flexpay_batch.core.settings import load_token
from tests.fake_api import TOKEN
from tests.stub_server import StubServer, send_in_pieces


async def _post(client: FlexPayClient) -> object:
    async with client:
        return await client.request(
            "POST", "employees", json_body={"external_id": "E1"}, idempotency_key="k1"
        )


async def test_large_body_arriving_in_pieces_is_read_whole(tmp_path: Path) -> None:
    """A valid 300 KB 201 body sent in 16 KB pieces is read whole, not cut at the first piece."""
    body = json.dumps({"employee_id": "emp_1", "notes": "x" * 300_000}).encode()

    async def handler(request: web.Request) -> web.StreamResponse:
        return await send_in_pieces(request, body)

    async with StubServer(handler, tmp_path) as stub:
        reply = await _post(stub.client())
    assert reply.body["employee_id"] == "emp_1"  # type: ignore[attr-defined]
    assert len(reply.body["notes"]) == 300_000  # type: ignore[attr-defined]


async def test_body_over_the_cap_is_a_per_request_error(tmp_path: Path) -> None:
    """A chunked body past the configured cap ends in ResponseTooLarge (an UnusableReply)."""

    async def handler(request: web.Request) -> web.StreamResponse:
        return await send_in_pieces(request, b"[" + b"1," * 50_000 + b"1]", pause=0)

    async with StubServer(handler, tmp_path) as stub:
        with pytest.raises(errors.ResponseTooLarge) as caught:
            await _post(stub.client(max_response_bytes=10_000))
    assert "10000 bytes" in str(caught.value)
    assert isinstance(caught.value, errors.UnusableReply)


async def test_endless_body_ends_in_a_timeout_not_a_hang(tmp_path: Path) -> None:
    """A reply that starts and then never ends is a TransportError after the read timeout."""
    release = asyncio.Event()

    async def handler(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(status=201)
        response.enable_chunked_encoding()
        await response.prepare(request)
        await response.write(b'{"employee_id": ')
        await release.wait()
        return response

    async with StubServer(handler, tmp_path) as stub:
        timeouts = Timeouts(connect=5.0, read=0.3, total=1.0)
        with pytest.raises(errors.TransportError) as caught:
            await _post(stub.client(timeouts=timeouts))
        release.set()
    assert caught.value.indeterminate


async def test_token_echoed_in_a_success_body_is_scrubbed(tmp_path: Path) -> None:
    """A 201 whose id is the bearer token reaches the caller with the token scrubbed."""

    async def handler(request: web.Request) -> web.StreamResponse:
        return web.json_response({"employee_id": TOKEN, "echo": f"Bearer {TOKEN}"}, status=201)

    async with StubServer(handler, tmp_path) as stub:
        reply = await _post(stub.client())
    assert TOKEN not in repr(reply.body)  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "url", ["https://api.example.test/v1/?token=abc", "https://api.example.test/v1/#x"]
)
def test_base_url_with_query_or_fragment_is_refused(url: str) -> None:
    """A base URL with a query string or fragment is a ConfigError, not silently used."""
    with pytest.raises(errors.ConfigError, match="query string"):
        validate_base_url(url)


@pytest.mark.parametrize("token", ["a", "abc", "[RE"])
def test_token_shorter_than_four_characters_is_a_config_error(token: str) -> None:
    """A 1-3 character token is a clear ConfigError (exit 2), not ValueError (exit 70)."""
    with pytest.raises(errors.ConfigError, match="shorter than 4"):
        FlexPayClient("https://api.example.test/v1/", token)


@pytest.mark.parametrize("token", ["a", "abc"])
def test_short_token_from_the_environment_is_a_config_error(token: str) -> None:
    """load_token refuses a 1-3 character FLEXPAY_TOKEN with a ConfigError naming the source."""
    with pytest.raises(errors.ConfigError, match="FLEXPAY_TOKEN is shorter than 4"):
        load_token(None, {"FLEXPAY_TOKEN": token})
