import logging
import os
import socket
import threading
import time

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import close_old_connections, connection
from django.utils import timezone
from django.utils.crypto import get_random_string
from django_tasks_db.management.commands.db_worker import Worker

from gallery import pruning, routing, sweeper
from gallery.models import WorkerHeartbeat

log = logging.getLogger("gallery")


class Command(BaseCommand):
    help = (
        "Runs the background worker: the queue's job loop (django-tasks-db's, or an RQ worker when "
        "TASKS_BACKEND is a Redis URL) plus heartbeat and sweeper."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--interval", type=float, default=0.5, help="Seconds between queue polls when idle (database queue)."
        )

    def handle(self, *args, interval, **options):
        worker_id = get_random_string(32)
        beat(worker_id)
        thread = threading.Thread(target=housekeeping, args=(worker_id,), daemon=True, name="sweeper")
        thread.start()
        backend = settings.TASKS["default"]["BACKEND"]
        # A log line, not print: with LOG_FORMAT=json every line a worker writes is JSON.
        log.info("Worker %s started (pid %s, queue %s)", worker_id, os.getpid(), backend.split(".")[0])
        if backend.startswith("django_tasks_rq"):
            run_rq_worker(worker_id)
            return
        worker = Worker(
            queue_names=["default"],
            interval=interval,
            batch=False,
            backend_name="default",
            startup_delay=False,
            max_tasks=None,
            worker_id=worker_id,
            excluded_queue_names=[],
        )
        worker.configure_signals()
        worker.run()


def run_rq_worker(worker_id):
    """RQ's loop on the "default" queue, jobs run in this process (no fork per job: the pipeline
    keeps its database connection, and a job costs milliseconds, not a fork). It also runs RQ's
    scheduler, which moves jobs enqueued with run_after to the queue when they are due; one
    worker holds that role at a time, and the others take it over when its lock lapses. A job lost
    with a killed worker is not retried by RQ: the sweeper re-enqueues its task, as with the
    database queue."""
    import django_rq
    from django_tasks_rq import Job
    from rq import SimpleWorker

    class DjangoWorker(SimpleWorker):
        def execute_job(self, job, queue):
            close_old_connections()  # a restarted database left this connection broken
            try:
                super().execute_job(job, queue)
            finally:
                close_old_connections()

    queue = django_rq.get_queue("default", job_class=Job)
    worker = DjangoWorker(
        [queue],
        connection=queue.connection,
        job_class=Job,
        name=worker_id,
        # Registry clean-up and taking over the scheduler of a dead worker happen this often.
        maintenance_interval=max(1, int(settings.SWEEP_SECONDS)),
    )
    worker.work(with_scheduler=True, logging_level=settings.LOG_LEVEL)


def beat(worker_id):
    WorkerHeartbeat.objects.update_or_create(
        worker_id=worker_id,
        defaults={"hostname": socket.gethostname()[:255], "pid": os.getpid(), "last_seen": timezone.now()},
    )


def housekeeping(worker_id):
    """Beats every WORKER_HEARTBEAT_SECONDS, sweeps every SWEEP_SECONDS, reads provider balances
    every BALANCE_SECONDS and prunes every PRUNE_SECONDS, forever. Each chore is timed on its
    own, so one that fails (an upstream down) never holds back the others."""
    chores = [
        (settings.SWEEP_SECONDS, sweep),
        (settings.BALANCE_SECONDS, routing.read_balances),
        (settings.PRUNE_SECONDS, pruning.prune),
    ]
    due = [0.0] * len(chores)
    while True:
        try:
            close_old_connections()
            beat(worker_id)
            for index, (every, chore) in enumerate(chores):
                if time.monotonic() >= due[index]:
                    due[index] = time.monotonic() + every
                    try:
                        chore()
                    except Exception:
                        log.exception("Housekeeping: %s failed; trying again later", chore.__name__)
        except Exception:
            log.exception("Housekeeping failed; trying again")
        finally:
            connection.close()
        time.sleep(min(settings.WORKER_HEARTBEAT_SECONDS, settings.SWEEP_SECONDS))


def sweep():
    done = sweeper.sweep()
    if any(done.values()):
        log.info("Sweep: %s", done)
