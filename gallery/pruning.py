"""Rows (and the upstream copies of references) that grow with use, and how long each is kept. Run by every worker every PRUNE_SECONDS
and by `manage.py prune`; each rule is a plain delete, so any number of workers may run it."""

import logging
from datetime import UTC, timedelta

from axes.models import AccessAttempt, AccessLog
from django.conf import settings
from django.contrib.sessions.models import Session
from django.utils import timezone

from gallery import orphans, ratelimit
from gallery.api import idempotency
from gallery.models import ProviderCall, SandboxRun, WorkerHeartbeat

log = logging.getLogger(__name__)

DAY = timedelta(days=1)


def prune():
    """Deletes what no page or worker needs any more; returns {what: rows deleted}."""
    now = timezone.now()
    done = {
        # The sandbox's simulated upstream tasks: needed while their task is followed and stored,
        # which ends within the task deadline; kept a day, as upstream links last a day.
        "sandbox_runs": SandboxRun.objects.filter(created_at__lt=now - DAY).delete()[0],
        # The breaker reads the last few calls and the providers page the last 24 hours.
        "provider_calls": ProviderCall.objects.filter(at__lt=now - 2 * DAY).delete()[0],
        "heartbeats": WorkerHeartbeat.objects.filter(last_seen__lt=now - DAY).delete()[0],
        "finished_jobs": prune_finished_jobs(now - DAY),
        "rate_limit_windows": ratelimit.prune(),
        "idempotency_records": idempotency.prune(now),  # a retried POST is answered for 24 hours
        "expired_sessions": Session.objects.filter(expire_date__lt=now).delete()[0],
        # Failed-login counters outlive their lockout by a day; successful-login records a quarter.
        "login_attempts": AccessAttempt.objects.filter(attempt_time__lt=now - settings.AXES_COOLOFF_TIME - DAY).delete()[0],
        "login_records": AccessLog.objects.filter(attempt_time__lt=now - 90 * DAY).delete()[0],
        "upstream_copies": orphans.expire_upstream_copies(now - orphans.UPSTREAM_COPY_LIFETIME),
    }
    if any(done.values()):
        log.info("Pruned %s", {what: count for what, count in done.items() if count})
    return done


def prune_finished_jobs(before):
    backend = settings.TASKS["default"]["BACKEND"]
    if "django_tasks_rq" in backend:
        return prune_failed_rq_jobs(before)
    if "django_tasks_db" not in backend:
        return 0
    from django_tasks_db.models import DBTaskResult

    return DBTaskResult.objects.finished().filter(finished_at__lt=before).delete()[0]


def prune_failed_rq_jobs(before, batch=1000):
    """RQ forgets finished jobs by itself (their results expire), but keeps failed ones a year:
    with us, those are the jobs of killed workers ("abandoned"), whose tasks the sweeper already
    put back. Kept a day, as database-queue jobs are."""
    import django_rq
    from rq.registry import FailedJobRegistry

    queue = django_rq.get_queue("default")
    registry = FailedJobRegistry(queue=queue)
    count = 0
    for job_id in registry.get_job_ids(0, batch - 1):
        job = queue.fetch_job(job_id)
        ended = job and (job.ended_at or job.enqueued_at)
        if job is None or (ended and ended.replace(tzinfo=ended.tzinfo or UTC) < before):
            registry.remove(job_id, delete_job=True)
            count += 1
    return count
