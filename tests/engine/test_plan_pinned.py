"""Pinned outputs of planning: the same input gives the very same keys and bytes in every version.

A resumed run (possibly by a newer version of the tool) must derive the idempotency key an
earlier run sent a row under, and the journal compares body hashes across runs: so the row keys,
body bytes, body hashes and idempotency keys below are frozen. If one of these tests fails, the
change broke resume across versions; do not update the pinned values to make it pass.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

from flexpay_batch.core.keys import encode_body, idempotency_key, keyed_hash
from flexpay_batch.engine.plan import plan_tasks
from flexpay_batch.engine.request import FileTotals, RunRequest
from flexpay_batch.input.columns import ONBOARDING_COLUMNS
from flexpay_batch.jobs.onboarding import OnboardingJob
from flexpay_batch.journal.store import Journal

SECRET = bytes(range(32))
SAMPLES = Path(__file__).resolve().parents[2] / "samples"

#: Rows that are valid but not in their cleanest form (padding, case, Unicode, fewer decimals,
#: blank optional cells), so the pinned bytes cover the normalisation too.
MESSY_ROWS = [
    ["E-1", "Zoë", "O'Brien", "zoe@example.com", "2025-02-28", "pg_weekly", "full_time",
     "salary", "50000", "USD", "", "", ""],
    ["  E-2 ", " Ann\u00a0Marie ", "Lee\u200b", " ann.lee@example.com ", " 2024-02-29 ",
     "pg_monthly", "part_time", " Hourly ", " 20.5 ", " usd ", "123-45-6789", "036282766",
     "00012345"],
    ["E-3", 'Quote "Q"', "Back\\slash", "q@example.co.uk", "2026-12-31", "pg_biweekly",
     "contractor", "SALARY", "999999999.99", "eur", "", "052183001", "1234"],
    ["E\u00a04", "Ünïcödé", "名前", "u@example.com", "2025-01-01", "pg_semimonthly",
     "full_time", "hourly", "0", "GBP", "98765", "", ""],
]  # fmt: skip


def _messy_csv(path: Path) -> Path:
    lines = [",".join(ONBOARDING_COLUMNS)]
    for cells in MESSY_ROWS:
        lines.append(",".join('"' + cell.replace('"', '""') + '"' for cell in cells))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _plan_digest(path: Path) -> tuple[int, str]:
    """How many tasks ``plan_tasks`` gives for ``path``, and a digest of all their fields."""
    job = OnboardingJob()
    job._pay_groups = frozenset({"pg_weekly", "pg_biweekly", "pg_semimonthly", "pg_monthly"})
    job._employment_types = frozenset({"full_time", "part_time", "contractor"})
    journal = cast(Journal, SimpleNamespace(job=SimpleNamespace(secret=SECRET)))
    request = cast(RunRequest, SimpleNamespace(input_path=path, encoding=None, kind="onboarding"))
    digest = hashlib.sha256()
    count = 0
    for task in plan_tasks(
        request, job, journal, skip=set(), look_up_first=False, totals=FileTotals()
    ):
        count += 1
        if task.rejection is None:
            # The bytes sent are the canonical JSON of the task's body, whatever builds either.
            assert encode_body(dict(task.body)) == (task.wire_body, task.body_hash)
            assert dict(task.body) == task.body
        fields: list[Any] = [
            task.row,
            task.line,
            task.identity,
            task.row_key,
            task.body_hash,
            task.idempotency_key,
            task.wire_body,
            task.rejection,
        ]
        digest.update(repr(fields).encode("utf-8"))
    return count, digest.hexdigest()


def test_keyed_hash_and_idempotency_key_are_pinned() -> None:
    """The two HMAC-derived values for a known secret, identity and body."""
    body = {"external_id": "E10001", "compensation": {"amount": "10.50", "currency": "USD"}}
    wire, body_hash = encode_body(body)
    assert wire == b'{"compensation":{"amount":"10.50","currency":"USD"},"external_id":"E10001"}'
    assert body_hash == "3873e124c3caa492ca0cc2045c286b077239fad71cda2ba96f111d4e8b7ccf70"
    assert keyed_hash(SECRET, "E10001") == "c4d6bb878e9c32778c9a22af0ef37b9a"
    assert (
        idempotency_key(SECRET, "onboarding", "E10001", body_hash)
        == "fpb_f16d522f7b2513565046ded38cd286f78e6ed495bdde8b15"
    )
    assert (
        idempotency_key(SECRET, "payroll", "ext:É 1", body_hash)
        == "fpb_68d1ba5bb637dcab18303588b4f8e77f47f8604a4654f9b6"
    )


def test_planned_onboarding_sample_is_pinned() -> None:
    """Every task planned from samples/onboarding.csv: keys, body bytes and hashes."""
    assert _plan_digest(SAMPLES / "onboarding.csv") == (
        500,
        "23805c120a04712b97ab007c9c7891441e2beba12c75fcfdcfaa11ab92656b8b",
    )


def test_planned_onboarding_jsonl_sample_is_pinned() -> None:
    """The same for samples/onboarding.jsonl (nested and flat objects)."""
    assert _plan_digest(SAMPLES / "onboarding.jsonl") == (
        50,
        "37481fc7d7a30ec6b9507efa6eed52d5b75ebdba6dac92c93c5f70f9c52170be",
    )


def test_planned_messy_rows_are_pinned(tmp_path: Path) -> None:
    """Valid rows written untidily plan to the same bytes as ever."""
    assert _plan_digest(_messy_csv(tmp_path / "messy.csv")) == (
        4,
        "a9d90d53d433dbda1275ee3813bdb783e034706dd1e02a338cce960dbc14571d",
    )
