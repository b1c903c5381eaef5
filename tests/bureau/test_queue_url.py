"""``--queue URL`` and FLEXPAY_QUEUE_URL: a password never in argv, yet ``runs --queue`` reaches
a queue whose password lives in the environment (``cli.queue.queue_url``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import redis

from flexpay_batch.cli.queue import queue_url
from flexpay_batch.core import errors
from tests.harness import run_cli, write_onboarding
from tests.redisserver import RedisServer, free_port

SECRET_URL = "redis://:s3cret-pw@10.0.0.5:6379/0"


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("redis://10.0.0.5:6379/0", SECRET_URL),  # the same server and database
        ("redis://10.0.0.5/0", SECRET_URL),  # the default port spelled or not
        ("redis://10.0.0.5:6379", SECRET_URL),  # database 0 spelled or not
        ("redis://10.0.0.5:6379/1", "redis://10.0.0.5:6379/1"),  # another database
        ("redis://10.0.0.6:6379/0", "redis://10.0.0.6:6379/0"),  # another host
        ("redis://10.0.0.5:6380/0", "redis://10.0.0.5:6380/0"),  # another port
        ("rediss://10.0.0.5:6379/0", "rediss://10.0.0.5:6379/0"),  # TLS: another scheme
        ("redis://bob@10.0.0.5:6379/0", "redis://bob@10.0.0.5:6379/0"),  # another user
        (SECRET_URL, SECRET_URL),  # the variable's own value (enqueue and worker's default)
    ],
)
def test_the_environments_password_is_used_only_for_the_same_database(
    monkeypatch: pytest.MonkeyPatch, given: str, expected: str
) -> None:
    monkeypatch.setenv("FLEXPAY_QUEUE_URL", SECRET_URL)
    assert queue_url(given) == expected


def test_without_the_variable_the_url_is_used_as_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FLEXPAY_QUEUE_URL", raising=False)
    assert queue_url("redis://10.0.0.5:6379/0") == "redis://10.0.0.5:6379/0"


def test_a_password_on_the_command_line_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLEXPAY_QUEUE_URL", SECRET_URL)
    with pytest.raises(errors.ConfigError, match="must not hold a password"):
        queue_url("redis://:other-pw@10.0.0.5:6379/0")


def test_runs_lists_a_password_protected_queue_with_the_password_from_the_environment(
    redis_server: RedisServer,
) -> None:
    """A real redis-server with a password: `runs --queue ADDRESS` works with the password in
    FLEXPAY_QUEUE_URL, says what is wrong without it, and `runs` refuses it in argv."""
    admin = redis.Redis.from_url(redis_server.url)
    admin.config_set("requirepass", "queue-pw-31")
    admin.close()
    address = redis_server.url  # redis://127.0.0.1:PORT/0, no password
    with_password = address.replace("redis://", "redis://:queue-pw-31@")
    listed = run_cli(
        ["runs", "--queue", address, "--json"], env={"FLEXPAY_QUEUE_URL": with_password}
    )
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout) == []
    refused = run_cli(["runs", "--queue", with_password], env={})
    assert refused.returncode == 2
    assert "must not hold a password" in refused.stderr
    assert "queue-pw-31" not in refused.stderr
    unauthenticated = run_cli(["runs", "--queue", address], env={})
    assert unauthenticated.returncode == 2, unauthenticated.stderr
    assert "refused the credentials (AuthenticationError)" in unauthenticated.stderr
    assert "FLEXPAY_QUEUE_URL" in unauthenticated.stderr
    wrong = run_cli(
        ["runs", "--queue", address],
        env={"FLEXPAY_QUEUE_URL": with_password.replace("queue-pw-31", "wrong-pw")},
    )
    assert wrong.returncode == 2, wrong.stderr
    assert "refused the credentials" in wrong.stderr
    assert "wrong-pw" not in wrong.stderr


@pytest.mark.parametrize("command", ["runs", "enqueue", "worker"])
def test_a_queue_that_is_not_there_is_one_sentence_and_exit_2(command: str, tmp_path: Path) -> None:
    """No Redis at the address: exit 2 naming HOST:PORT, not an internal error (saq's close
    talks to Redis once more, and that failure must not replace the real one)."""
    source = tmp_path / "people.csv"
    write_onboarding(source, 2)
    manifest = tmp_path / "bureau.toml"
    manifest.write_text(
        f'[[jobs]]\norg = "acme"\nkind = "onboard"\nfile = "{source}"\ntoken_env = "T"\n',
        encoding="utf-8",
    )
    args = {"runs": [], "enqueue": [str(manifest)], "worker": []}[command]
    url = f"redis://127.0.0.1:{free_port()}/0"
    done = run_cli(
        [command, *args, "--queue", url], env={"T": "t" * 20, "FLEXPAY_KEY_SECRET": "k" * 40}
    )
    assert done.returncode == 2, done.stderr
    assert "does not answer (ConnectionError)" in done.stderr
    assert "internal error" not in done.stderr
