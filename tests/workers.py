"""Worker processes for tests: `manage.py worker` as a real process on the test database, with
timings short enough for a test, started in a session of its own so SIGKILL takes its children
(RQ's scheduler) too."""

import os
import subprocess
import sys
import time
from pathlib import Path

from django.db import connection

ROOT = Path(__file__).resolve().parents[1]


def database_url():
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    user = db["USER"] or "postgres"
    auth = f"{user}:{db['PASSWORD']}@" if db["PASSWORD"] else f"{user}@"
    return f"postgres://{auth}{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def worker_env(media_root, **extra):
    return {
        **os.environ,
        "DATABASE_URL": database_url(),
        "MEDIA_ROOT": str(media_root),
        "SANDBOX_QUEUE_SECONDS": "0",
        "SANDBOX_RUN_SECONDS": "0.3",
        "TASK_FIRST_CHECK_SECONDS": "0",
        "TASK_CHECK_SECONDS": "0.2",
        "TASK_LEASE_SECONDS": "2",
        "SWEEP_SECONDS": "0.5",
        "SWEEP_GRACE_SECONDS": "1",
        "WORKER_HEARTBEAT_SECONDS": "0.3",
        "PYTHONUNBUFFERED": "1",
        # The fake upstreams serve results from 127.0.0.1 over http.
        "ALLOW_HTTP_URLS": "true",
        "ALLOW_LOOPBACK_URLS": "true",
        **{name: str(value) for name, value in extra.items()},
    }


def s3_env(bucket):
    """The S3_* variables that make a worker process store in this bucket of the local S3 server."""
    from tests.s3.server import ACCESS_KEY, SECRET_KEY

    return {
        "S3_BUCKET": bucket.name,
        "S3_ENDPOINT_URL": bucket.server.endpoint_url,
        "S3_ACCESS_KEY_ID": ACCESS_KEY,
        "S3_SECRET_ACCESS_KEY": SECRET_KEY,
    }


def start_worker(env, log):
    return subprocess.Popen(
        [sys.executable, "manage.py", "worker", "--interval", "0.05"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )


def kill(worker):
    """SIGKILL to the worker's whole process group; waits for it."""
    import signal

    try:
        os.killpg(worker.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    worker.wait()


def wait_until(condition, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.25)
    return condition()
