"""Row bodies are encoded once, in the reader thread, and those very bytes go on the wire.

The idempotency key derives from the body's hash; sending the hashed bytes (rather than
re-serialising the mapping on the event loop) makes "the key names exactly this body" literal
and spares the event loop a second JSON encoding per row (issue 16).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from aioresponses import aioresponses
from yarl import URL

from benchmarks.data import onboarding_row, request_body
from flexpay_batch.api.client import ApiResponse, FlexPayClient
from flexpay_batch.api.ratelimit.limiter import LimiterSet
from flexpay_batch.core.keys import body_sha256, encode_body
from flexpay_batch.input.columns import ONBOARDING_COLUMNS
from flexpay_batch.jobs.base import RowTask
from flexpay_batch.jobs.onboarding import OnboardingJob
from flexpay_batch.sim import Simulator
from tests.fake_api import EMPLOYEES

BODY: dict[str, object] = {"b": "Zoë", "a": {"y": "10.50", "x": 1}}


def test_encode_body_returns_canonical_bytes_and_their_hash() -> None:
    data, digest = encode_body(BODY)
    assert data == '{"a":{"x":1,"y":"10.50"},"b":"Zoë"}'.encode()
    assert digest == hashlib.sha256(data).hexdigest() == body_sha256(BODY)
    assert json.loads(data) == BODY


class _RecordingClient:
    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    async def request(self, method: str, path: str, **kwargs: Any) -> ApiResponse:
        self.calls.append({"method": method, "path": path, **kwargs})
        return ApiResponse(status=201, body={"employee_id": "emp_1"}, request_id=None)


async def test_onboarding_sends_the_encoded_bytes_not_the_mapping() -> None:
    wire, digest = encode_body(BODY)
    task = RowTask(
        row=1,
        line=2,
        identity="E1",
        row_key="rk",
        body=BODY,
        body_hash=digest,
        idempotency_key="fpb_k",
        wire_body=wire,
    )
    client = _RecordingClient()
    await OnboardingJob().send(client, task)  # type: ignore[arg-type]
    (call,) = client.calls
    assert call["body"] is wire
    assert "json_body" not in call
    assert call["idempotency_key"] == "fpb_k"


async def test_encoded_body_is_accepted_by_the_simulator(simulator: Simulator) -> None:
    """Over real HTTPS: pre-encoded bytes arrive as JSON (Content-Type set) and create the row;
    the same bytes again under the same key replay it."""
    body = request_body(dict(zip(ONBOARDING_COLUMNS, onboarding_row(7), strict=True)))
    wire, _ = encode_body(body)
    limiters = LimiterSet(simulator.config.limits)
    async with FlexPayClient(
        simulator.base_url,
        simulator.tokens["admin"],
        ca_bundle=simulator.ca_path,
        limiters=limiters,
    ) as client:
        first = await client.request("POST", "employees", body=wire, idempotency_key="fpb_w1")
        again = await client.request("POST", "employees", body=wire, idempotency_key="fpb_w1")
    assert first.status == 201
    assert first.body["external_id"] == body["external_id"]
    assert again.replayed
    assert again.body["employee_id"] == first.body["employee_id"]


async def test_encoded_body_goes_out_as_is_labelled_json(
    client: FlexPayClient, mocked: aioresponses
) -> None:
    """The bytes are sent unchanged as ``data`` with ``Content-Type: application/json`` (the
    simulator would accept them unlabelled; a real gateway may not)."""
    wire, _ = encode_body(BODY)
    mocked.post(EMPLOYEES, status=201, payload={"employee_id": "emp_1"})
    await client.request("POST", "employees", body=wire, idempotency_key="fpb_k")
    (call,) = mocked.requests[("POST", URL(EMPLOYEES))]
    assert call.kwargs["data"] is wire
    assert call.kwargs.get("json") is None
    assert call.kwargs["headers"]["Content-Type"] == "application/json"
    assert call.kwargs["headers"]["Idempotency-Key"] == "fpb_k"
