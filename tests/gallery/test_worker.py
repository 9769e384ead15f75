"""The worker as a real process: killed with SIGKILL at random moments, restarted, and still every
task ends final with exactly its images, and storage holds exactly the files the rows name."""

import os
import random
import signal
import time
from pathlib import Path

import pytest
from django.conf import settings as django_settings

from gallery.models import GalleryImage, GenerationTask, Status
from tests.factories import make_reference, make_task
from tests.workers import start_worker, wait_until, worker_env


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
