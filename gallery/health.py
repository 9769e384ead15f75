"""What `/healthz` reports: can this machine reach its database and its storage, how long is the
queue and how long has its oldest job waited, and when did a worker last beat. Each check is one
or two cheap reads (no write, no scan): a load balancer may ask every few seconds."""

import logging
import os
import shutil
import time
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.core.files.storage import FileSystemStorage, default_storage
from django.db.models import Max
from django.utils import timezone

from gallery.models import WorkerHeartbeat

log = logging.getLogger(__name__)

PROBE_NAME = "healthz/probe"  # never written: asking whether it exists proves the storage answers


def report(now=None):
    """{check: {"ok": bool, …}}; a check that raised says so in "error" (its class only: the
    endpoint is public, and an exception text may name hosts or keys)."""
    now = now or timezone.now()
    return {
        "database": _timed(_database),
        "storage": _timed(_storage),
        "queue": _timed(lambda: _queue(now)),
        "workers": _timed(lambda: _workers(now)),
    }


def _timed(check):
    started = time.perf_counter()
    try:
        result = {"ok": True, **check()}
    except Exception as e:
        log.warning("Health check failed", exc_info=True)
        result = {"ok": False, "error": e.__class__.__name__}
    result["ms"] = round((time.perf_counter() - started) * 1000, 1)
    return result


def _database():
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return {}


def _storage():
    if isinstance(default_storage, FileSystemStorage):
        # Files are written under MEDIA_ROOT (created on first write): it, or the folder it will
        # be made in, must be writable, and a full disk is worth knowing about.
        path = os.path.abspath(default_storage.location)
        while not os.path.exists(path):
            path = os.path.dirname(path)
        if not os.access(path, os.W_OK):
            raise PermissionError("media folder not writable")
        return {"free_bytes": shutil.disk_usage(path).free}
    default_storage.exists(PROBE_NAME)  # object storage: one HEAD request, signed with our keys
    return {}


def _queue(now):
    backend = settings.TASKS["default"]["BACKEND"]
    if backend.startswith("django_tasks_db"):
        depth, oldest = _database_queue(now)
        name = "database"
    elif backend.startswith("django_tasks_rq"):
        depth, oldest = _redis_queue(now)
        name = "redis"
    else:
        return {"backend": backend.rsplit(".", 1)[-1], "depth": 0, "oldest_wait_seconds": None}
    return {"backend": name, "depth": depth, "oldest_wait_seconds": _seconds(now, oldest)}


def _database_queue(now):
    """Jobs ready to run now, and since when the oldest has been waiting (its run_after, or its
    enqueue time when it had none). Both read the queue's own partial index of ready jobs."""
    from django_tasks_db.models import DBTaskResult, get_date_max

    ready = DBTaskResult.objects.ready()
    depth = ready.count()
    oldest = None
    if depth:
        due = ready.exclude(run_after=get_date_max()).order_by("run_after").values_list("run_after", flat=True).first()
        plain = ready.filter(run_after=get_date_max()).order_by("enqueued_at").values_list("enqueued_at", flat=True).first()
        oldest = min(t for t in (due, plain) if t is not None)
    return depth, oldest


def _redis_queue(now):
    """Jobs in the queue plus scheduled jobs already due (RQ's scheduler moves those; a backlog
    of them means no worker runs the scheduler), and the oldest wait among both."""
    import django_rq
    from django_tasks_rq import Job
    from rq.exceptions import NoSuchJobError
    from rq.registry import ScheduledJobRegistry

    queue = django_rq.get_queue("default", job_class=Job)
    registry = ScheduledJobRegistry(queue=queue)
    due = queue.connection.zrangebyscore(registry.key, 0, now.timestamp(), start=0, num=1, withscores=True)
    due_count = queue.connection.zcount(registry.key, 0, now.timestamp())
    waiting = [datetime.fromtimestamp(score, tz=UTC) for _, score in due]
    if first := queue.get_job_ids(0, 1):
        try:
            job = Job.fetch(first[0], connection=queue.connection)
        except NoSuchJobError:  # taken and finished between the two reads
            job = None
        if job and job.enqueued_at:
            enqueued = job.enqueued_at
            waiting.append(enqueued if enqueued.tzinfo else enqueued.replace(tzinfo=UTC))
    return queue.count + due_count, min(waiting) if waiting else None


def _workers(now):
    alive_since = now - timedelta(seconds=3 * settings.WORKER_HEARTBEAT_SECONDS)
    last = WorkerHeartbeat.objects.aggregate(last=Max("last_seen"))["last"]
    alive = WorkerHeartbeat.objects.filter(last_seen__gte=alive_since).count() if last else 0
    return {"alive": alive, "last_heartbeat_seconds": _seconds(now, last)}


def _seconds(now, then):
    return None if then is None else round(max(0.0, (now - then).total_seconds()), 1)
