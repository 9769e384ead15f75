"""The worker as a real process: killed with SIGKILL at random moments, restarted, and still every
task ends final with exactly its images, and storage holds exactly the files the rows name."""

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.db import connection

from gallery.models import GalleryImage, GenerationTask, Status
from tests.factories import make_reference, make_task

ROOT = Path(__file__).resolve().parents[2]


def database_url():
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    user = db["USER"] or "postgres"
    auth = f"{user}:{db['PASSWORD']}@" if db["PASSWORD"] else f"{user}@"
    return f"postgres://{auth}{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def worker_env(media_root):
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
    }


def start_worker(env, log):
    return subprocess.Popen(
        [sys.executable, "manage.py", "worker", "--interval", "0.05"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )


def wait_until(condition, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.25)
    return condition()


def files_in(root):
    return {str(p.relative_to(root)) for p in (Path(root) / "results").rglob("*") if p.is_file()}


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_tasks_survive_a_worker_killed_at_random_moments(team, alice, tmp_path):
    media_root = django_settings.MEDIA_ROOT
    rng = random.Random(4)
    tasks = [
        make_task(
            team, alice, prompt=f"Crash test {i}", n=rng.randint(1, 4),
            references=[make_reference(colour="purple")] if i % 3 == 0 else [],
        )
        for i in range(20)
    ]
    env = worker_env(media_root)
    kills = 0
    with open(tmp_path / "worker.log", "wb") as log:
        worker = start_worker(env, log)
        try:
            while kills < 12:
                time.sleep(rng.uniform(0.3, 1.5))
                os.killpg(worker.pid, signal.SIGKILL)
                worker.wait()
                kills += 1
                worker = start_worker(env, log)
            finished = wait_until(lambda: not GenerationTask.objects.unfinished().exists(), timeout=120)
        finally:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait()
    log_text = (tmp_path / "worker.log").read_text(errors="replace")[-3000:]
    assert finished, f"unfinished: {list(GenerationTask.objects.unfinished().values('status', 'retries'))}\n{log_text}"
    assert kills >= 10

    for task in GenerationTask.objects.filter(pk__in=[t.pk for t in tasks]):
        assert task.is_final
        if task.status == Status.COMPLETED:
            assert task.images.count() == task.n, task
    assert GenerationTask.objects.filter(status=Status.COMPLETED).count() >= 18

    named = set()
    for image in GalleryImage.objects.all():
        named |= {image.file.name, image.thumbnail.name}
    assert files_in(media_root) == named  # no file without a row, no row without a file


def test_pruning_forgets_old_sandbox_runs_calls_jobs_sessions_and_rate_windows(team, alice):
    from datetime import timedelta

    from django.contrib.sessions.backends.db import SessionStore
    from django.utils import timezone

    from gallery import pruning, ratelimit
    from gallery.models import ProviderCall, SandboxRun, Throttle
    from tests.factories import make_task, run_until_final

    run_until_final(make_task(team, alice))
    fresh_run = SandboxRun.objects.get()
    old = timezone.now() - timedelta(days=3)
    SandboxRun.objects.create(id="sandbox-old", client_ref="x", params={}, created_at=old)
    recent_calls = ProviderCall.objects.count()
    ProviderCall.objects.create(provider="sandbox", ok=True, at=old)
    ratelimit.hit("someone", 3, 60)
    Throttle.objects.create(key="long-ago", period=60, window=1, hits=1)
    expired = SessionStore()
    expired.set_expiry(-10)
    expired.create()

    done = pruning.prune()

    assert list(SandboxRun.objects.all()) == [fresh_run]
    assert ProviderCall.objects.count() == recent_calls
    assert list(Throttle.objects.values_list("key", flat=True)) == ["someone"]
    assert done["sandbox_runs"] == 1 and done["provider_calls"] == 1 and done["rate_limit_windows"] == 1
    assert done["expired_sessions"] >= 1


def test_the_prune_command_reports_what_it_deleted(db):
    from io import StringIO

    from django.core.management import call_command

    out = StringIO()
    call_command("prune", stdout=out)
    assert "sandbox runs: 0 deleted" in out.getvalue()
