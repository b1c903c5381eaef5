"""``python -m benchmarks.gatedcli ARGS``: the CLI, started on a signal (for the shared figure).

Imports the command line and what a run loads (the engine, aiohttp, redis), prints ``ready``,
waits for a line on stdin, then runs ``flexpay-batch ARGS`` as the console script would, its
own output sent to /dev/null. K processes started this way begin their runs together:
interpreter start-up (about a second of CPU each; seconds when eight start on two cores)
happens before the measurement, not inside it.
"""

from __future__ import annotations

import importlib
import os
import sys

#: What ``onboard`` imports on its way to the first request.
PRELOAD = (
    "flexpay_batch.cli.app",
    "flexpay_batch.engine.run",
    "flexpay_batch.engine.limiting",
    "flexpay_batch.api.client",
    "flexpay_batch.jobs.onboarding",
    "aiohttp",
    "redis.asyncio",
)


def main() -> None:
    for name in PRELOAD:
        importlib.import_module(name)
    from flexpay_batch.cli.app import main as cli_main

    sys.stdout.write("ready\n")
    sys.stdout.flush()
    sys.stdin.readline()
    quiet = os.open(os.devnull, os.O_WRONLY)
    os.dup2(quiet, 1)
    os.close(quiet)
    cli_main(sys.argv[1:])


if __name__ == "__main__":
    main()
