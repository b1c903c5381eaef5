"""How many requests per second the simulator answers with its limits off.

    python -m benchmarks.sim_throughput [N_REQUESTS] [CONCURRENCY]

The simulator runs in its own process (``python -m flexpay_batch.sim --no-limits``), so the
figure is the server's, not the server's and the load generator's sharing one interpreter.
The server's CPU time is read from ``/proc`` so the report can say whether the load generator
or the simulator was the bottleneck. The load is ``concurrency`` aiohttp workers on keep-alive
HTTPS connections: 80% reads (``GET /employees/{id}``), 20% onboarding writes with an
Idempotency-Key. ``run()`` returns the numbers as a dict for smoke tests.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import signal
import ssl
import subprocess
import sys
import time
from collections import Counter
from typing import Any

import aiohttp

from flexpay_batch.sim.testing import employee_body


def _start_server() -> tuple[subprocess.Popen[str], dict[str, Any]]:
    command = [sys.executable, "-m", "flexpay_batch.sim", "--port", "0", "--no-limits", "--json"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line:
        process.kill()
        raise RuntimeError("the simulator exited before printing its address")
    return process, json.loads(line)


def _cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of a process (Linux ``/proc``); None elsewhere."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def _stop_server(process: subprocess.Popen[str]) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    if process.stdout is not None:
        process.stdout.close()


async def _load(info: dict[str, Any], n_requests: int, concurrency: int) -> dict[str, Any]:
    context = ssl.create_default_context(cafile=info["ca_path"])
    base = info["base_url"]
    headers = {"Authorization": f"Bearer {info['tokens']['admin']}"}
    connector = aiohttp.TCPConnector(ssl=context, limit=concurrency)
    statuses: Counter[int] = Counter()
    counter = itertools.count()
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:
        async with session.post(base + "employees", json=employee_body("bench-0")) as resp:
            employee_id = (await resp.json())["employee_id"]

        async def worker() -> None:
            while (n := next(counter)) < n_requests:
                if n % 5 == 0:
                    body = employee_body(f"bench-{n + 1}")
                    request = session.post(
                        base + "employees", json=body, headers={"Idempotency-Key": f"k{n}"}
                    )
                else:
                    request = session.get(f"{base}employees/{employee_id}")
                async with request as resp:
                    await resp.read()
                    statuses[resp.status] += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        seconds = time.perf_counter() - started
    return {
        "requests": n_requests,
        "concurrency": concurrency,
        "seconds": round(seconds, 3),
        "requests_per_second": round(n_requests / seconds, 1),
        "by_status": dict(statuses),
    }


def run(n_requests: int = 20_000, concurrency: int = 64) -> dict[str, Any]:
    """Start a simulator process, send ``n_requests``, stop it; return the measurement."""
    process, info = _start_server()
    try:
        cpu_before = _cpu_seconds(process.pid)
        result = asyncio.run(_load(info, n_requests, concurrency))
        cpu_after = _cpu_seconds(process.pid)
    finally:
        _stop_server(process)
    if cpu_before is not None and cpu_after is not None and cpu_after > cpu_before:
        # The load generator may be the tighter bottleneck; requests per server CPU second
        # says what the simulator could answer with a faster client.
        server_cpu = cpu_after - cpu_before
        result["server_cpu_share"] = round(server_cpu / result["seconds"], 2)
        result["requests_per_server_cpu_second"] = round(n_requests / server_cpu, 1)
    return result


def main() -> None:
    """Command-line entry: optional N_REQUESTS and CONCURRENCY, prints the result."""
    n_requests = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
    concurrency = int(sys.argv[2]) if len(sys.argv) > 2 else 64
    result = run(n_requests, concurrency)
    print(
        f"simulator: {result['requests_per_second']:.0f} requests/s "
        f"({result['requests']} requests, {result['concurrency']} connections, "
        f"{result['seconds']:.2f} s, statuses {result['by_status']})"
    )
    if "server_cpu_share" in result:
        print(
            f"server process busy {result['server_cpu_share']:.0%} of the time: "
            f"{result['requests_per_server_cpu_second']:.0f} requests per server CPU second"
        )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
