"""The sweeper: what keeps tasks moving when jobs are lost or workers die.

Run by every worker process every SWEEP_SECONDS. Each action is a conditional update, so any
number of workers may sweep at once.
"""

import logging
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from gallery import pipeline, webhooks
from gallery.models import GenerationTask, LeaseLost, WorkerHeartbeat

log = logging.getLogger(__name__)
BATCH = 500


def sweep():
    return {
        "requeued_tasks": requeue_overdue_tasks(),
        "deadlines": end_expired_tasks(),
        "requeued_jobs": requeue_orphaned_jobs(),
        "requeued_callbacks": webhooks.requeue_overdue(),
    }


def requeue_overdue_tasks():
    """Tasks whose check (or tidying) is long overdue and that no worker holds: their job was lost."""
    now = timezone.now()
    grace = timedelta(seconds=settings.SWEEP_GRACE_SECONDS)
    overdue = (
        GenerationTask.objects.needing_work()
        .lease_free(now)
        .filter(next_check_at__lt=now - grace)
        .values_list("pk", "next_check_at")[:BATCH]
    )
    count = 0
    for pk, next_check_at in overdue:
        # Claim the nudge so a second sweeper (or the next sweep) does not enqueue it again.
        if GenerationTask.objects.filter(pk=pk, next_check_at=next_check_at).update(next_check_at=now):
            pipeline.enqueue(pk)
            count += 1
    return count


def end_expired_tasks():
    """Tasks past their deadline end now, even if their job keeps crashing."""
    count = 0
    now = timezone.now()
    for task in GenerationTask.objects.unfinished().lease_free(now).filter(deadline_at__lt=now)[:BATCH]:
        if task.take_lease():
            try:
                task.reload()
                if not task.is_final:
                    pipeline.finish_at_deadline(task)
                    count += 1
            except LeaseLost:
                pass  # another worker has the task; it sees the deadline itself
            finally:
                task.release_lease()
    return count


def requeue_orphaned_jobs():
    """Puts back jobs left RUNNING by a worker that stopped beating (django-tasks-db has no
    lease of its own: a killed worker's job would stay RUNNING forever)."""
    if "django_tasks_db" not in settings.TASKS["default"]["BACKEND"]:
        return 0
    from django_tasks_db.models import DBTaskResult

    alive_since = timezone.now() - timedelta(seconds=3 * settings.WORKER_HEARTBEAT_SECONDS)
    alive = set(WorkerHeartbeat.objects.filter(last_seen__gte=alive_since).values_list("worker_id", flat=True))
    count = 0
    for job in DBTaskResult.objects.running().only("id", "worker_ids", "started_at")[:BATCH]:
        if job.worker_ids and job.worker_ids[-1] in alive:
            continue
        if job.started_at and job.started_at > alive_since:
            continue  # claimed moments ago by a worker whose first beat may still be coming
        count += DBTaskResult.objects.filter(pk=job.pk, status="RUNNING").update(status="READY", started_at=None)
    if count:
        log.warning("Put back %s job(s) left running by a dead worker", count)
    return count
