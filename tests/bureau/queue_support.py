"""A bureau on this machine for the queue tests: a real redis-server, the simulator serving
three organisations over HTTPS, real ``flexpay-batch worker`` processes and ``enqueue``.

    bureau = Bureau.start(redis_server, make_simulator_thread, tmp_path)
    manifest = bureau.manifest({"acme": 60, "globex": 60})        # org → onboarding rows
    bureau.cli(["enqueue", str(manifest), "--queue", bureau.url])
    worker = bureau.worker("w1", "--concurrency", "1")
    job = bureau.wait_for(lambda jobs: ..., timeout=30)           # jobs as saq stores them

Jobs are read straight from Redis (saq's JSON records), not through the code under test.
"""

from __future__ import annotations

import csv
import json
import random
import re
import secrets
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import redis

from flexpay_batch.sim import SimulatorThread, TokenSpec
from flexpay_batch.sim.config import ALL_SCOPES
from tests.forkcli import ForkedProcess
from tests.harness import cli_env, fast_limits, run_cli, start_cli, write_onboarding
from tests.redisserver import RedisServer

ORGS = ("acme", "globex", "initech")
#: Writes per second the simulator allows each organisation's token (and the jobs are told).
WRITES_PER_SECOND = 20.0
#: The simulator's limit for a test whose onboarding jobs only set the stage (its payroll is
#: what is timed): those jobs are told it, and use a second token of their organisation
#: (``setup_token``), whose limiter state in Redis is its own; the others still run at
#: ``WRITES_PER_SECOND`` (the client never goes above what it is told).
SETUP_WRITES_PER_SECOND = 100.0
WRITE_BURST = 5
JOB_PREFIX = "saq:job:flexpay-bureau:"
#: Short takeover settings for the tests (seconds): saq's heartbeat and the sweep interval.
HEARTBEAT = 3
SWEEP = 1

Jobs = dict[str, dict[str, Any]]


def token_var(org: str) -> str:
    return f"FLEXPAY_TOKEN_{org.upper()}"


def setup_token(org: str) -> str:
    """The name (in ``Bureau.tokens``) of an organisation's second token."""
    return f"{org}_setup"


@dataclass
class Bureau:
    """The machinery of one test; ``close`` kills the workers still running."""

    redis_server: RedisServer
    sim: SimulatorThread
    tmp: Path
    #: Each organisation's token by its name, and its second one by ``setup_token(org)``.
    tokens: dict[str, str]
    key_secret: str = field(default_factory=lambda: secrets.token_hex(24))
    workers: dict[str, ForkedProcess] = field(default_factory=dict)
    rows: dict[str, list[dict[str, str]]] = field(default_factory=dict)
    #: Each organisation's onboarding files, in manifest order.
    files: dict[str, list[Path]] = field(default_factory=dict)
    #: The control total of each organisation's payroll job.
    totals: dict[str, Decimal] = field(default_factory=dict)
    #: Every amount written to a file (and control totals), as the file spells it.
    amounts: list[str] = field(default_factory=list)

    @classmethod
    def start(
        cls,
        redis_server: RedisServer,
        make_simulator_thread: Callable[..., SimulatorThread],
        tmp: Path,
        *,
        writes_per_second: float = WRITES_PER_SECOND,
    ) -> Bureau:
        """The simulator enforces ``writes_per_second`` per token (jobs are told
        ``WRITES_PER_SECOND`` unless ``manifest(onboarding_writes=...)`` says otherwise)."""
        tokens = {org: f"fps_{org}_{secrets.token_hex(16)}" for org in ORGS}
        tokens |= {setup_token(org): f"fps_{org}_{secrets.token_hex(16)}" for org in ORGS}
        specs = tuple(
            TokenSpec(token, ALL_SCOPES, f"org_{name.removesuffix('_setup')}", name=name)
            for name, token in tokens.items()
        )
        limits = fast_limits(writes_per_second=writes_per_second, write_burst=WRITE_BURST)
        sim = make_simulator_thread(tokens=specs, limits=limits)
        return cls(redis_server, sim, tmp, tokens)

    @property
    def url(self) -> str:
        return self.redis_server.url

    def env(self, *, state: str = "state") -> dict[str, str]:
        """A worker's environment: the simulator, every token, the key secret, a state dir."""
        extra = {token_var(org): token for org, token in self.tokens.items()}
        extra |= {
            "FLEXPAY_KEY_SECRET": self.key_secret,
            "FLEXPAY_STATE_DIR": str(self.tmp / state),
        }
        env = cli_env(self.sim, extra=extra)
        del env["FLEXPAY_TOKEN"]
        return env

    def manifest(
        self,
        rows: Mapping[str, int] | Sequence[tuple[str, int]],
        *,
        payroll: Sequence[str] = (),
        name: str = "bureau.toml",
        onboarding_writes: float = WRITES_PER_SECOND,
    ) -> Path:
        """A manifest of onboarding jobs, one per (organisation, rows) pair in that order (an
        organisation's second job gets other employees), then for each organisation in
        ``payroll`` a payroll job paying its employees, with a control total. Onboarding
        jobs are told ``onboarding_writes`` per second, payroll jobs ``WRITES_PER_SECOND``."""
        tables = []
        pairs = list(rows.items()) if isinstance(rows, Mapping) else list(rows)
        for number, (org, count) in enumerate(pairs, start=1):
            path = self.tmp / f"{org}-{number}-new-hires.csv"
            written = write_onboarding(path, count, prefix=f"{org[:2].upper()}{number}")
            self.rows.setdefault(org, []).extend(written)
            self.amounts.extend(row["compensation_amount"] for row in written)
            self.files.setdefault(org, []).append(path)
            token = org if onboarding_writes == WRITES_PER_SECOND else setup_token(org)
            tables.append(_table(org, "onboard", path, token, writes=onboarding_writes))
        tables += [self._payroll_table(org) for org in payroll]
        path = self.tmp / name
        path.write_text("\n\n".join(tables) + "\n", encoding="utf-8")
        return path

    def _payroll_table(self, org: str) -> str:
        rng = random.Random(f"{org}-payroll")
        path = self.tmp / f"{org}-payroll.csv"
        total = Decimal(0)
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(["employee_external_id", "hours", "gross_amount", "currency", "memo"])
            for row in self.rows[org]:
                amount = Decimal(rng.randint(50_000, 400_000)) / 100
                total += amount
                self.amounts.append(f"{amount:.2f}")
                writer.writerow([row["external_id"], "40.00", f"{amount:.2f}", "USD", "Weekly"])
        self.amounts.append(f"{total:.2f}")
        self.totals[org] = total
        return _table(
            org,
            "payroll",
            path,
            None,
            'pay_group = "pg_weekly"',
            "period_start = 2026-03-02",
            "period_end = 2026-03-08",
            "pay_date = 2026-03-13",
            f"expected_total = {total:.2f}",
            f"expected_count = {len(self.rows[org])}",
        )

    def enqueue(self, manifest: Path, *args: str) -> list[str]:
        """``enqueue MANIFEST ARGS…``, which must succeed: the job ids it printed."""
        done = self.cli(["enqueue", str(manifest), "--queue", self.url, *args])
        assert done.returncode == 0, done.stderr
        return done.stdout.split()

    def cli(self, args: list[str], *, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        """Run a command to its end (``enqueue``, ``runs``) with a worker's environment."""
        return run_cli(args, env=self.env(), timeout=timeout)

    def start_cli(self, args: list[str]) -> ForkedProcess:
        return start_cli(args, env=self.env())

    def worker(self, name: str, *args: str, state: str | None = None) -> ForkedProcess:
        """Start ``flexpay-batch worker`` (its own state dir unless ``state`` names one)."""
        command = ["worker", "--queue", self.url, *args]
        process = start_cli(command, env=self.env(state=state or f"state-{name}"))
        self.workers[name] = process
        return process

    def wait_idle_workers(self, count: int, *, timeout: float = 60.0) -> None:
        """Return once ``count`` worker slots block on the queue (saq dequeues with BLMOVE)."""
        client = redis.Redis.from_url(self.url)
        deadline = time.monotonic() + timeout
        try:
            while sum(c.get("cmd") == "blmove" for c in client.client_list()) < count:
                if time.monotonic() > deadline:
                    raise AssertionError(f"{count} worker slots not up in {timeout} s")
                time.sleep(0.05)
        finally:
            client.close()

    def jobs(self) -> Jobs:
        """Every saq job record in Redis, by job key."""
        client = redis.Redis.from_url(self.url)
        try:
            keys = list(client.scan_iter(match=JOB_PREFIX + "*"))
            values = client.mget(keys) if keys else []
        finally:
            client.close()
        return {
            key.decode()[len(JOB_PREFIX) :]: json.loads(value)
            for key, value in zip(keys, values, strict=True)
            if value is not None
        }

    def rewrite_job(self, job_id: str, **fields: Any) -> None:
        """Change fields of a job's saq record in Redis (what another worker's takeover does)."""
        client = redis.Redis.from_url(self.url)
        try:
            record = json.loads(client.get(JOB_PREFIX + job_id) or b"{}")
            client.set(JOB_PREFIX + job_id, json.dumps({**record, **fields}))
        finally:
            client.close()

    def wait_for(self, condition: Callable[[Jobs], Any], *, timeout: float) -> Any:
        """Poll the jobs until ``condition`` returns something truthy; return it."""
        deadline = time.monotonic() + timeout
        while True:
            jobs = self.jobs()
            found = condition(jobs)
            if found:
                return found
            if time.monotonic() > deadline:
                raise AssertionError(f"not reached in {timeout} s; jobs: {_brief(jobs)}")
            time.sleep(0.1)

    def worker_of(self, job: Mapping[str, Any]) -> str | None:
        """Which of our workers (by name) the job record names."""
        pid = str(job.get("worker_id", "")).split("-")[-2:-1]
        for name, process in self.workers.items():
            if pid == [str(process.pid)]:
                return name
        return None

    def taken_over(self, job_id: str, by: str) -> Callable[[Jobs], bool]:
        """A ``wait_for`` condition: the job is active on the worker named ``by``."""

        def check(jobs: Jobs) -> bool:
            job = jobs.get(job_id, {})
            return job.get("status") == "active" and self.worker_of(job) == by

        return check

    def assert_each_row_once(self, orgs: list[str]) -> None:
        """The simulator created each of these organisations' employees once, and applied
        every idempotency key once."""
        effects = self.sim.effects()
        created = effects["employees"]["by_external_id"]
        expected = {row["external_id"] for org in orgs for row in self.rows[org]}
        assert set(created) == expected
        assert set(created.values()) == {1}
        assert all(count == 1 for count in effects["by_idempotency_key"].values())

    def assert_nothing_secret_in_redis(self) -> str:
        """No token, key secret, name, email, tax id, account number or amount in any key or
        value of the Redis; the text scanned, for further checks."""
        haystack = self.everything_in_redis()
        assert "flexpay-bureau" in haystack  # the scan saw the queue
        needles = [*self.tokens.values(), self.key_secret]
        for rows in self.rows.values():
            for row in rows:
                needles += [row["first_name"], row["last_name"], row["email"], row["tax_id"]]
                needles += [row["bank_account_number"]]
        found = sorted({needle for needle in needles if needle in haystack})
        assert not found, f"found in Redis: {found[:5]}"
        for amount in set(self.amounts):
            # Whole numbers only: "2150.00" inside a float such as 1796201452150.0012 is chance.
            pattern = rf"(?<![\d.]){re.escape(amount)}(?![\d])"
            assert not re.search(pattern, haystack), f"amount {amount} found in Redis"
        return haystack

    def everything_in_redis(self) -> str:
        """Every key and every value (of any type) in the Redis, one text."""
        client = redis.Redis.from_url(self.url)
        found: list[Any] = []
        try:
            for key in client.scan_iter(count=1000):
                found.append(key)
                kind = _text(client.type(key))
                if kind == "string":
                    found.append(client.get(key) or b"")
                elif kind == "list":
                    found.extend(client.lrange(key, 0, -1))
                elif kind == "set":
                    found.extend(client.smembers(key))
                elif kind == "zset":
                    found.extend(client.zrange(key, 0, -1))
                elif kind == "hash":
                    for name, value in client.hgetall(key).items():
                        found.extend((name, value))
                else:
                    found.append(client.dump(key) or b"")
        finally:
            client.close()
        return "\n".join(_text(item) for item in found)

    def close(self) -> dict[str, str]:
        """Kill the workers still running; their stderr by name (for failure messages)."""
        logs = {}
        for name, process in self.workers.items():
            if process.poll() is None:
                process.send_signal(signal.SIGKILL)
            try:
                logs[name] = process.communicate(timeout=10)[1]
            except (subprocess.TimeoutExpired, ValueError, RuntimeError):
                logs[name] = "?"
        return logs


def _table(
    org: str,
    kind: str,
    path: Path,
    token: str | None = None,
    *extra: str,
    writes: float = WRITES_PER_SECOND,
) -> str:
    """One ``[[jobs]]`` table at the simulator's scaled limits (``writes`` per second), with
    the token named ``token`` (default: the organisation's)."""
    lines = (
        "[[jobs]]",
        f'org = "{org}"',
        f'kind = "{kind}"',
        f'file = "{path}"',
        f'token_env = "{token_var(token or org)}"',
        f'write_limit = "{writes:g}/s"',
        f"write_burst = {WRITE_BURST}",
        'read_limit = "300/s"',
        "read_burst = 50",
        *extra,
    )
    return "\n".join(lines)


def _text(value: Any) -> str:
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else str(value)


def running(jobs: Jobs) -> list[dict[str, Any]]:
    return [job for job in jobs.values() if job.get("status") == "active"]


def finished(jobs: Jobs, count: int) -> bool:
    done = [job for job in jobs.values() if job.get("status") in ("complete", "failed")]
    return len(done) == count


def rows_done(job: Mapping[str, Any]) -> int:
    return int(job.get("meta", {}).get("rows_done", 0))


def _brief(jobs: Jobs) -> str:
    return ", ".join(
        f"{key}: {job.get('status')} {job.get('meta', {})} {job.get('worker_id')}"
        for key, job in jobs.items()
    )
