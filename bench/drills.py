"""(d) Fault drills: tasks against a misbehaving upstream while workers are killed.

K tasks (100; 20 with --quick) go to the fake EvoLink of tests/fakes (on 127.0.0.1), which answers
a share of requests with a fault: 500/503/429 or a dropped connection when a task is created or
a reference uploaded, the same plus answers slower than the call's deadline when a task is read,
and for result downloads 503s, slow answers and redirect chains. Two `manage.py worker` processes
run the jobs; one of them is killed with SIGKILL at a random moment, again and again (50 times;
10 with --quick), and started again. Meanwhile storage refuses every write for a while (a full
disk, or S3 answering 500), and PostgreSQL is restarted once (full form only; never in the test
suite). Then the faults stop and the drill waits for every task to finish.

Afterwards it checks: every task final and tidied, none stuck, 0 images lost (results the
upstream produced that a task did not keep), 0 stored twice, 0 orphan files (and no row without
its file), and at most one duplicate upstream submission per kill that fell while a create call
was in flight (each duplicate recorded on its task as an uncertain create).

Runs on PostgreSQL (a fresh database `seedream_drill`, dropped at the end), the queue chosen by
--queue (database, or redis: a private redis-server), storage on local disk or --s3 (the test
suite's s3rver). The test suite runs a short form (tests/gallery/test_drills.py).
"""

import json
import os
import random
import shutil
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass
from datetime import timedelta
from pathlib import Path

from bench import common


def pg_restart_command():
    """The local cluster's restart, as CI starts it (`pg_ctlcluster … 15 main restart` here)."""
    versions = sorted(os.listdir("/etc/postgresql"), key=lambda v: [int(p) for p in v.split(".") if p.isdigit()])
    return ["pg_ctlcluster", "--skip-systemctl-redirect", versions[-1], "main", "restart"]


@dataclass
class Plan:
    tasks: int = 100
    kills: int = 50
    workers: int = 2
    restart_postgres: bool = False
    storage_fault_seconds: float = 5.0
    fault_rate: float = 0.15  # share of upstream requests answered with a fault while the drill runs
    kill_gap: tuple = (0.3, 1.2)  # seconds between kills, uniformly drawn
    finish_timeout: float = 300.0
    seed: int = 16


# The fake upstream's faults -------------------------------------------------------------------

# Faults that an upstream answers before it accepts anything: retrying them never pays twice.
BEFORE_ACCEPTING = [500, 503, 429, "drop"]
FAULTS = {
    "create": BEFORE_ACCEPTING,
    "upload": BEFORE_ACCEPTING,
    "get": [500, 503, 429, "drop", "slow"],
    "result": [503, "slow", "redirect", "redirect"],
}


def chaos_upstream():
    """A FakeEvoLink that answers a share of requests with a random fault while `chaos` is on,
    and counts the tasks it accepted per prompt (a second one is a duplicate submission)."""
    from tests.fakes.evolink import FakeEvoLink

    class ChaosEvoLink(FakeEvoLink):
        def __init__(self, rate, seed):
            super().__init__()
            self.rate, self.rng, self.chaos = rate, random.Random(seed), False
            self.injected, self.accepted = Counter(), Counter()
            self.local = threading.local()
            self.slow_seconds = 6.0  # longer than a call's deadline in the drill: a timeout
            self.record = False  # memory stays flat; what the drill needs is counted below
            self.httpd.handle_error = lambda request, address: None  # dropped connections are the point

        def take_fault(self, route):
            fault = super().take_fault(route)
            if fault is None and self.chaos and route in FAULTS:
                with self.lock:
                    if self.rng.random() < self.rate:
                        fault = {"action": self.rng.choice(FAULTS[route]), "retry_after": "1"}
                        self.injected[f"{route} {fault['action']}"] += 1
            return fault

        def create(self, handler, request):
            body = request.json
            self.local.prompt = body.get("prompt") if isinstance(body, dict) else None
            try:
                super().create(handler, request)
            finally:
                self.local.prompt = None

        def send_json(self, handler, status, data, headers=None):
            if status == 200 and getattr(self.local, "prompt", None) and data.get("object") == "image.generation.task":
                with self.lock:
                    self.accepted[self.local.prompt] += 1
            super().send_json(handler, status, data, headers)

    return ChaosEvoLink


# The drill ------------------------------------------------------------------------------------


def drill(team, user, plan, workdir, env):
    """Runs one drill in this process's Django (its database and default storage are the ones the
    workers share); `env` is the workers' environment (database, storage, queue). Returns the
    figures; asserts nothing."""
    from django.test import override_settings

    from tests.workers import kill, start_worker

    workdir = Path(workdir)
    rng = random.Random(plan.seed)
    fault_file = workdir / "storage-fault"
    fault_file.unlink(missing_ok=True)
    with chaos_upstream()(plan.fault_rate, plan.seed) as fake:
        upstream = {
            "EVOLINK_API_KEY": fake.api_key, "EVOLINK_BASE_URL": fake.url, "EVOLINK_FILES_URL": fake.url,
        }
        env = {
            **env, **upstream,
            "DJANGO_SETTINGS_MODULE": "bench.drill_settings",
            "DRILL_STORAGE_FAULT_FILE": str(fault_file),
            "TASK_LEASE_SECONDS": "8",  # calls end within 5 s (gallery.outbound.within_lease)
            "BREAKER_COOLDOWN_SECONDS": "1",
            "ALLOW_HTTP_URLS": "true",
            "ALLOW_LOOPBACK_URLS": "true",
        }
        with override_settings(**upstream, ALLOW_HTTP_URLS=True, ALLOW_LOOPBACK_URLS=True):
            task_ids = submit(team, user, plan.tasks, rng)
        logs = [open(workdir / f"drill-worker-{i}.log", "ab") for i in range(plan.workers)]  # noqa: SIM115
        workers = [start_worker(env, log) for log in logs]
        figures = Counter({"postgres_restarts": 0, "workers_exited_by_themselves": 0})
        figures["storage_fault_seconds"] = plan.storage_fault_seconds
        started = time.monotonic()
        try:
            fake.chaos = True
            storage_fault_at = plan.kills // 3
            restart_at = plan.kills // 2 if plan.restart_postgres else None
            fault_until = None
            for k in range(plan.kills):
                victim = rng.randrange(plan.workers)
                # A random moment of its work: after it started (its first heartbeat), not during
                # start-up, which a kill would only prolong.
                wait_started(workers[victim])
                time.sleep(rng.uniform(*plan.kill_gap))
                if k == storage_fault_at:
                    fault_file.touch()
                    fault_until = time.monotonic() + plan.storage_fault_seconds
                if fault_until and time.monotonic() > fault_until:
                    fault_file.unlink(missing_ok=True)
                    fault_until = None
                if k == restart_at:
                    restarted = subprocess.run(pg_restart_command(), check=False, capture_output=True, text=True, timeout=120)
                    figures["postgres_restarts"] += restarted.returncode == 0
                kill(workers[victim])
                figures["kills"] += 1
                figures["kills_while_unfinished"] += bool(retrying(unfinished_count))
                # A create call in flight (queued, create started): the kill may leave a task the
                # upstream accepted and the studio never heard of. Counted once per kill, for any
                # worker, so this is an upper bound of the kills that fell in a submit window.
                figures["kills_in_submit_window"] += bool(retrying(creates_in_flight))
                workers[victim] = start_worker(env, logs[victim])
                for i, worker in enumerate(workers):  # a worker that died by itself (the database went away)
                    if worker.poll() is not None:
                        figures["workers_exited_by_themselves"] += 1
                        workers[i] = start_worker(env, logs[i])
            while fault_until and time.monotonic() < fault_until:
                time.sleep(0.1)
            fault_file.unlink(missing_ok=True)
            fake.chaos = False
            figures["kill_phase_seconds"] = round(time.monotonic() - started, 1)
            deadline = time.monotonic() + plan.finish_timeout
            while retrying(needing_work_count) and time.monotonic() < deadline:
                for i, worker in enumerate(workers):
                    if worker.poll() is not None:
                        figures["workers_exited_by_themselves"] += 1
                        workers[i] = start_worker(env, logs[i])
                time.sleep(0.25)
            figures["seconds"] = round(time.monotonic() - started, 1)
        finally:
            fault_file.unlink(missing_ok=True)
            for worker in workers:
                kill(worker)
            for log in logs:
                log.close()
        return {**figures, **outcome(task_ids, fake), "injected_faults": dict(fake.injected)}


def submit(team, user, count, rng):
    from gallery import pipeline
    from tests.factories import make_reference

    ids = []
    for i in range(count):
        task = pipeline.submit(team, user, {
            "prompt": f"Drill task {i}: a lighthouse in a storm",
            "ask_for_n": True, "size": "1:1", "quality": "1K", "custom_size": None,
            "n": rng.choice([1, 2, 3]), "priority": "standard",
            "references": [make_reference(colour="teal")] if i % 4 == 0 else [],
        })
        ids.append(task.pk)
    return ids


def retrying(query, seconds=120):
    """Runs a query, riding out a database restart (reconnecting until it answers)."""
    from django.db import InterfaceError, OperationalError, connection

    deadline = time.monotonic() + seconds
    while True:
        try:
            return query()
        except (OperationalError, InterfaceError):
            connection.close()
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def wait_started(worker, seconds=120):
    from gallery.models import WorkerHeartbeat

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and worker.poll() is None:
        if retrying(lambda: WorkerHeartbeat.objects.filter(pid=worker.pid).exists()):
            return
        time.sleep(0.05)


def unfinished_count():
    from gallery.models import GenerationTask

    return GenerationTask.objects.unfinished().count()


def needing_work_count():
    from gallery.models import GenerationTask

    return GenerationTask.objects.needing_work().count()


def creates_in_flight():
    from gallery.models import GenerationTask, Status

    return GenerationTask.objects.filter(status=Status.QUEUED, create_started_at__isnull=False).count()


def outcome(task_ids, fake):
    """What the drill left: states, lost and doubled images, orphans, duplicate submissions."""
    from django.core.files.storage import default_storage

    from gallery import orphans
    from gallery.models import GalleryImage, GenerationTask, Status
    from gallery.orphans import walk

    tasks = list(GenerationTask.objects.filter(pk__in=task_ids))
    statuses = Counter(task.status for task in tasks)
    lost = 0
    for task in tasks:
        upstream = fake.tasks.get(task.upstream_id) if task.upstream_id else None
        produced = len(upstream["results"] or []) if upstream else 0
        kept = task.images.count()
        if task.status != Status.CANCELLED:
            lost += max(0, produced - kept)
    images = GalleryImage.objects.filter(task_id__in=task_ids)
    result_files = [name for name, _, _ in walk(default_storage, "results")]
    found = orphans.find(grace=timedelta(0))
    duplicates = {prompt: count - 1 for prompt, count in fake.accepted.items() if count > 1}
    recorded = {task.sent_prompt: task.uncertain_creates for task in tasks}  # the upstream counts what it was sent
    return {
        "tasks": len(tasks),
        "statuses": dict(statuses),
        "providers": dict(Counter(task.provider for task in tasks)),
        "upstream_tasks_accepted": sum(fake.accepted.values()),
        "not_final": sum(not task.is_final for task in tasks),
        "not_tidied": sum(task.tidy_pending for task in tasks),
        "failures": dict(Counter(task.error_code for task in tasks if task.status == Status.FAILED)),
        "images": images.count(),
        "images_lost": lost,
        # Each image is one original and one thumbnail; more files, or two rows of one image, is doubling.
        "stored_twice": max(0, len(result_files) - 2 * images.count())
        + (images.count() - len(set(images.values_list("task_id", "index")))),
        "orphan_files": len(found.orphans),
        "rows_without_files": len(found.missing),
        "duplicate_submissions": sum(duplicates.values()),
        "duplicates_not_recorded": sum(max(0, extra - recorded.get(prompt, 0)) for prompt, extra in duplicates.items()),
        "uncertain_creates_recorded": sum(recorded.values()),
        "upstream_reference_files_left": sum(not f["deleted"] for f in fake.files.values()),
    }


def check(result):
    """The drill's promises, as (promise, held?) pairs."""
    return [
        ("every task final and tidied", result["not_final"] == 0 and result["not_tidied"] == 0),
        ("0 images lost", result["images_lost"] == 0),
        ("0 stored twice", result["stored_twice"] == 0),
        ("0 orphan files, 0 rows without files", result["orphan_files"] == 0 and result["rows_without_files"] == 0),
        ("≤ 1 duplicate submission per kill in a submit window",
         result["duplicate_submissions"] <= result["kills_in_submit_window"]),
        ("every duplicate submission recorded on its task", result["duplicates_not_recorded"] == 0),
    ]


# The benchmark's command line -----------------------------------------------------------------


def main(argv=None):
    def extra(parser):
        parser.add_argument("--queue", choices=("database", "redis"), default="redis")
        parser.add_argument("--s3", action="store_true", help="store in the test suite's local S3 server")
        parser.add_argument("--no-restart", action="store_true",
                            help="leave PostgreSQL alone (other people's tests use the same server)")

    args = common.arguments(__doc__.splitlines()[0], argv, extra)
    if args.child:
        return child(json.loads(args.spec))
    common.exit_cleanly_on_sigterm()
    restart = can_restart_postgres() and not args.no_restart
    plan = Plan(tasks=20, kills=10) if args.quick else Plan(restart_postgres=restart)
    common.heading(f"fault drill: {plan.tasks} tasks, {plan.kills} kills, queue {args.queue}, "
                   f"storage {'S3 (s3rver)' if args.s3 else 'local disk'}, "
                   f"PostgreSQL restart {'yes' if plan.restart_postgres else 'no'}")
    with common.temp_dir("seedream-bench-drill-") as tmp, services(args, tmp) as extra_env:
        try:
            with common.named_database("PostgreSQL", tmp, "seedream_drill", "drill.sqlite3") as url:
                env = common.process_env(url, tmp / "media", tmp, LOG_LEVEL="WARNING", **extra_env)
                result = common.run_child("drills", "run", {"tmp": str(tmp), "plan": asdict(plan)}, env, timeout=1800)
        except common.PostgresUnavailable as e:
            common.note(f"PostgreSQL not reachable ({e}); the drill needs it")
            return 1
    report(result)
    return 0 if all(held for _, held in check(result)) else 1


def can_restart_postgres():
    return shutil.which("pg_ctlcluster") is not None and os.geteuid() == 0 and os.path.isdir("/etc/postgresql")


class services:
    """The private Redis (and the local S3 server) the drill's processes share."""

    def __init__(self, args, tmp):
        self.args, self.tmp, self.stops = args, tmp, []

    def __enter__(self):
        env = {"SANDBOX_QUEUE_SECONDS": 0, "SANDBOX_RUN_SECONDS": 0, "TASK_FIRST_CHECK_SECONDS": 0,
               "TASK_CHECK_SECONDS": 0.2, "SWEEP_SECONDS": 0.5, "SWEEP_GRACE_SECONDS": 1,
               "WORKER_HEARTBEAT_SECONDS": 0.3}
        if self.args.queue == "redis":
            from tests.redis_server import LocalRedis

            server = LocalRedis(self.tmp)
            self.stops.append(server.stop)
            env["TASKS_BACKEND"] = server.url
        if self.args.s3:
            from tests.s3 import server as s3
            from tests.workers import s3_env

            if reason := s3.unavailable():
                raise SystemExit(reason)
            local = s3.LocalS3(self.tmp / "s3")
            self.stops.append(local.stop)
            env.update(s3_env(local.new_bucket()))
        return env

    def __exit__(self, *exc):
        for stop in reversed(self.stops):
            stop()


def child(spec):
    common.exit_cleanly_on_sigterm()
    common.setup_django()
    from tests.workers import worker_env

    team, user = common.migrate_and_owner()
    plan = Plan(**{**spec["plan"], "kill_gap": tuple(spec["plan"]["kill_gap"])})
    from django.conf import settings

    env = worker_env(settings.MEDIA_ROOT)
    result = drill(team, user, plan, spec["tmp"], env)
    common.answer(spec, {**result, "plan": spec["plan"]})


def report(result):
    rows = [[key.replace("_", " "), str(value)] for key, value in result.items()
            if key != "plan" and not isinstance(value, dict)]
    common.table(["figure", "value"], rows)
    for key, value in result.items():
        if key != "plan" and isinstance(value, dict):
            print(f"  {key.replace('_', ' ')}: " + ", ".join(f"{k} {v}" for k, v in sorted(value.items())))
    print()
    for promise, held in check(result):
        print(f"  {'ok  ' if held else 'FAIL'} {promise}", flush=True)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
