"""``flexpay-batch enqueue`` and ``flexpay-batch worker``: a bureau's jobs on a Redis job queue.

::

    flexpay-batch worker --queue redis://10.0.0.5:6379/0            # on every host, any number
    flexpay-batch enqueue week-49.toml --queue redis://10.0.0.5:6379/0 --wait
    flexpay-batch runs --queue redis://10.0.0.5:6379/0               # where every job stands

The design (saq, heartbeat and takeover, per-token leases, what travels through Redis) is in
docs/bureau.md; the code in ``bureau.queue`` and ``bureau.worker``. The heavy imports (saq,
redis, the engine) happen inside the commands, so ``--help`` stays cheap.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated
from urllib.parse import urlsplit

import typer

from flexpay_batch.cli.common import command_group
from flexpay_batch.core import errors
from flexpay_batch.core.settings import environment

if TYPE_CHECKING:
    from saq.queue.redis import RedisQueue

    from flexpay_batch.bureau.queue import JobView
    from flexpay_batch.cli.queue_wait import WaitDisplay

QUEUE_ENV = "FLEXPAY_QUEUE_URL"
QUEUE_HELP = (
    "The job queue: a Redis URL, e.g. redis://10.0.0.5:6379/0 (one with a password only via "
    "FLEXPAY_QUEUE_URL: argv shows in `ps`) [env FLEXPAY_QUEUE_URL]."
)
#: Why ``enqueue`` did not add a job, by ``bureau.queue.enqueue_jobs``'s answer.
_NOT_ADDED = {
    "queued": "already queued or running; not added again",
    "done": "done already (runs --queue shows it); not run again",
}
#: Seconds between two looks at the jobs' states while ``enqueue --wait`` waits.
POLL_SECONDS = 1.0

QueueUrl = Annotated[str, typer.Option("--queue", help=QUEUE_HELP, metavar="URL", envvar=QUEUE_ENV)]


commands = command_group()


@commands.command(epilog="Tokens are not needed here: the workers read them.")
def enqueue(
    manifest: Annotated[
        Path, typer.Argument(help="The bureau's manifest (TOML).", metavar="MANIFEST")
    ],
    queue: QueueUrl,
    wait: Annotated[
        bool,
        typer.Option(
            "--wait",
            help="Show the jobs as the workers run them (a live table on a terminal) and exit "
            "like a single run when done.",
        ),
    ] = False,
    heartbeat: Annotated[
        int,
        typer.Option(
            help="Seconds a running job may go without a heartbeat before another worker "
            "takes it over.",
            metavar="S",
            min=1,
            hidden=True,
        ),
    ] = 30,  # bureau.queue.DEFAULT_HEARTBEAT (not imported: --help stays light)
    debug: Annotated[bool, typer.Option("--debug", help="Show (redacted) tracebacks.")] = False,
) -> int:
    """Check MANIFEST and its files, put every job on the queue, print the jobs' ids.

    Jobs already queued or running (the same organisation, kind, file and parameters) are
    not added twice, nor jobs done already; failed and skipped ones are added again. Exit
    codes with --wait, as `run MANIFEST`: 0 every job done · 1 rows rejected or failed · else
    the gravest code a job stopped with (3 aborted, 2 its file changed, 4 API unavailable, …).
    """
    import anyio

    from flexpay_batch.api.ratelimit.redis_store import store_address
    from flexpay_batch.bureau.queue import enqueue_jobs, jobs_from_manifest, open_queue

    queue = queue_url(queue)
    jobs = jobs_from_manifest(manifest)

    waiting = False

    async def put_and_wait() -> int:
        nonlocal waiting
        # One connection for both: between an enqueue and a second connect Redis may go
        # away, and a queue that stops answering while we wait is waited out (``_watch``).
        async with open_queue(queue) as opened:
            added = await enqueue_jobs(opened, jobs, heartbeat=heartbeat)
            for job_id, what in added:
                print(job_id, flush=True)
                if what != "added":
                    print(f"{job_id}: {_NOT_ADDED[what]}", file=sys.stderr, flush=True)
            if not wait:
                return 0
            waiting = True
            return await _wait(opened, store_address(queue), [job_id for job_id, _ in added])

    try:
        return anyio.run(put_and_wait)
    except KeyboardInterrupt:
        if not waiting:  # Ctrl-C while enqueuing: the plain interruption, as before
            raise
        raise errors.RunInterrupted(
            "stopped waiting; the jobs go on on the workers",
            hint="Watch them with `flexpay-batch runs --queue URL`.",
        ) from None


@commands.command(epilog="Needs FLEXPAY_KEY_SECRET and every organisation's token variable.")
def worker(
    queue: QueueUrl,
    concurrency: Annotated[
        int, typer.Option(help="Jobs this worker runs at once.", metavar="N", min=1)
    ] = 4,
    limiter_url: Annotated[
        str | None,
        typer.Option(
            help="Share each token's rate limit through this Redis [env FLEXPAY_LIMITER_URL; "
            "default: the queue's].",
            metavar="URL",
        ),
    ] = None,
    sweep_interval: Annotated[
        int,
        typer.Option(
            help="Seconds between two looks for jobs whose worker stopped answering.",
            metavar="S",
            min=1,
            hidden=True,
        ),
    ] = 10,  # bureau.queue.DEFAULT_SWEEP
    debug: Annotated[bool, typer.Option("--debug", help="Show (redacted) tracebacks.")] = False,
) -> int:
    """Run the queue's jobs until SIGTERM or Ctrl-C (then checkpoint and hand them back).

    A second SIGTERM or Ctrl-C cancels the requests in flight and hands the jobs back at once
    (exit 130); a third exits there and then. Reads FLEXPAY_BASE_URL, FLEXPAY_CA_BUNDLE,
    FLEXPAY_STATE_DIR and the organisations' token variables from this host's environment.
    """
    import anyio

    from flexpay_batch.bureau.job import key_secret, state_root
    from flexpay_batch.bureau.worker import WorkerConfig, serve

    queue = queue_url(queue)
    _no_password_in_argv(limiter_url, "--limiter-url", "FLEXPAY_LIMITER_URL")
    env = environment()
    config = WorkerConfig(
        env=env,
        state_dir=state_root(env),
        key_secret=key_secret(env, required=True),
        concurrency=concurrency,
        sweep_interval=sweep_interval,
    )
    limiter = limiter_url or env.get("FLEXPAY_LIMITER_URL") or None
    anyio.run(lambda: serve(queue, limiter_url=limiter, config=config, say=_log))
    return 0


def _log(text: str) -> None:
    stamp = datetime.now().strftime("%H:%M:%S")
    print(f"{stamp} {text}", file=sys.stderr, flush=True)


def queue_url(given: str) -> str:
    """The queue URL to open for ``--queue given``: ``given`` itself, or FLEXPAY_QUEUE_URL
    when that names the same server and database with the password ``given`` may not carry.

    So ``runs --queue redis://10.0.0.5:6379/0`` (an address anyone may see in ``ps``) reaches a
    queue whose password lives only in the environment, as ``enqueue`` and ``worker`` do
    without any --queue at all.
    """
    _no_password_in_argv(given, "--queue", QUEUE_ENV)
    from_env = environment().get(QUEUE_ENV)
    if from_env and _same_database(given, from_env):
        return from_env
    return given


def _same_database(given: str, other: str) -> bool:
    """Whether two Redis URLs name the same server and database (the password aside; a user
    named in ``given`` must be the one named in ``other``)."""
    a, b = urlsplit(given), urlsplit(other)
    try:
        ports = (a.port or 6379, b.port or 6379)
    except ValueError:  # a port that is not a number: not comparable, so not the same
        return False
    return (
        a.scheme == b.scheme
        and a.hostname == b.hostname
        and ports[0] == ports[1]
        and (a.path.strip("/") or "0") == (b.path.strip("/") or "0")
        and (a.username is None or a.username == b.username)
    )


def _no_password_in_argv(url: str | None, flag: str, variable: str) -> None:
    """Refuse a URL with a password given as ``flag`` (argv shows in `ps`), as
    ``--limiter-url`` does; the same URL from ``variable`` is fine."""
    if url is None or url == environment().get(variable):
        return
    if urlsplit(url).password is not None:
        raise errors.ConfigError(
            f"{flag} must not hold a password (it would show in ps)",
            hint=f"Put the URL with its password in {variable}.",
        )


async def _wait(queue: RedisQueue, address: str, ids: Sequence[str]) -> int:
    """Poll the jobs until each is done or failed, showing them (``cli.queue_wait``)."""
    from flexpay_batch.cli.queue_wait import make_wait_display

    display = make_wait_display(ids)
    try:
        views = await _watch(queue, address, ids, display)
    finally:
        display.close()
    return _exit_code(ids, views)


async def _watch(
    queue: RedisQueue, address: str, ids: Sequence[str], display: WaitDisplay
) -> list[JobView | None]:
    """The jobs' last views, once every one is done, failed or gone from the queue."""
    import anyio
    from redis.exceptions import RedisError

    from flexpay_batch.bureau.queue import job_views

    lost = False
    while True:
        try:
            views = await job_views(queue, ids)
        except (RedisError, OSError) as exc:
            # The jobs go on on the workers: wait for the queue, and say so once.
            if not lost:
                display.say(
                    f"the job queue at {address} does not answer ({type(exc).__name__}); "
                    "waiting for it (the workers go on with their jobs; Ctrl-C stops waiting)"
                )
                lost = True
            await anyio.sleep(POLL_SECONDS)
            continue
        if lost:
            display.say("the job queue answers again")
            lost = False
        ended = all(view is None or view.state in ("done", "failed") for view in views)
        display.show(views, ended=ended)
        if ended:
            return views
        await anyio.sleep(POLL_SECONDS)


def _exit_code(ids: Sequence[str], views: Sequence[JobView | None]) -> int:
    """One line per job, then the exit code ``run MANIFEST`` would give: 0 every job done,
    1 rows rejected or failed (or a job skipped), else raises the error of the first job
    that stopped with the gravest code (``bureau.outcome.SEVERITY``)."""
    from flexpay_batch.bureau.outcome import SEVERITY

    for job_id, view in zip(ids, views, strict=True):
        print(_outcome_line(job_id, view), file=sys.stderr)
    errors_by_code: dict[int, errors.FlexPayBatchError] = {}
    codes = {0}
    for job_id, view in zip(ids, views, strict=True):
        error = _job_error(job_id, view)
        if error is not None:
            errors_by_code.setdefault(error.exit_code, error)
            codes.add(error.exit_code)
        elif view is not None and view.exit_code:
            codes.add(1)
    code = next(code for code in SEVERITY if code in codes)
    if code in errors_by_code:
        raise errors_by_code[code]
    return code


def _job_error(job_id: str, view: JobView | None) -> errors.FlexPayBatchError | None:
    """The error ``view``'s job stopped with; None if it ran to its end (or was skipped)."""
    from flexpay_batch.bureau.queue import SKIPPED

    if view is None:
        return errors.ServiceUnhealthy(
            f"{job_id}: the queue no longer holds this job (did its Redis restart without "
            "its data?)",
            hint="Enqueue the manifest again; finished rows replay, they are not repeated.",
        )
    if view.state != "failed" or view.stopped == SKIPPED:
        return None
    return _stop_error(view)


def _outcome_line(job_id: str, view: JobView | None) -> str:
    if view is None:
        return f"{job_id}: gone from the queue"
    rows = f"{view.rows_done}/{'?' if view.rows_total is None else view.rows_total} rows"
    line = f"{job_id} ({view.org}, {view.kind}): {view.state}, {rows}"
    line += f", rejected {view.rejected}, failed {view.failed}"
    return line + (f": {view.message}" if view.state == "failed" else "")


def _stop_error(view: JobView) -> errors.FlexPayBatchError:
    """The error the failed job stopped with, of its own class (so its exit code)."""
    message = f"{view.id} ({view.org}, {view.kind}) failed: {view.message}"
    cls = getattr(errors, view.stopped or "", None)
    if isinstance(cls, type) and issubclass(cls, errors.FlexPayBatchError):
        try:
            # The worker's message already holds the job's own hint.
            error = cls(message)
        except TypeError:  # a class that needs more than a message (``TransportError``)
            pass
        else:
            error.hint = ""  # type: ignore[misc]  # per-instance, as FlexPayBatchError does
            return error
    return errors.ServiceUnhealthy(
        message, hint="See the worker's log; enqueue the manifest again to resume the job."
    )


__all__ = ["commands", "enqueue", "worker"]
