"""schemathesis drives the simulator from its own OpenAPI document and finds no server error."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

import flexpay_batch.sim
from flexpay_batch.sim import UNLIMITED, FaultConfig, SimConfig, SimulatorThread

OPENAPI = Path(flexpay_batch.sim.__file__).with_name("openapi.json")
schema = schemathesis.openapi.from_path(OPENAPI)


@pytest.fixture(scope="module")
def fuzz_target() -> Iterator[tuple[SimulatorThread, requests.Session]]:
    """One simulator for the whole module: no faults, limits off, a session trusting its CA."""
    config = SimConfig(limits=UNLIMITED, faults=FaultConfig())
    with SimulatorThread(config) as sim, requests.Session() as session:
        yield sim, session


@schema.parametrize()
@settings(
    max_examples=15,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)
def test_no_server_errors_and_responses_match_the_document(
    case: schemathesis.Case[Any], fuzz_target: tuple[SimulatorThread, requests.Session]
) -> None:
    """Every generated request gets a documented, schema-conforming answer below 500."""
    sim, session = fuzz_target
    case.call_and_validate(
        base_url=sim.base_url.rstrip("/"),
        session=session,
        headers={"Authorization": f"Bearer {sim.tokens['admin']}"},
        verify=str(sim.ca_path),
        timeout=5,
        checks=[
            not_a_server_error,
            status_code_conformance,
            content_type_conformance,
            response_schema_conformance,
        ],
    )
