"""(c) Tasks per second through the whole pipeline, zero-latency sandbox, 1 vs 2 workers.

K tasks (100; 20 with --quick) of quality 1K, n = 1, no references, submitted with
`gallery.pipeline.submit`, with the sandbox's queue and run times and the pipeline's check
intervals all 0, so what is left is the pipeline's own work (two steps a task: create, then
follow + store a 1024 × 1024 PNG with its thumbnail) and the queue's.

Floor: the same K tasks driven in this process by calling `gallery.pipeline.advance(task_id)` in a
loop, without a worker (the pipeline's own cost without queue polling and claiming).
Measured: real `manage.py worker --interval 0.05` processes (1, then 2, three times over, the
median run of each shown) on the submitted queue,
timed from the first job claimed to the last task final (worker start-up, ~1 s, is shown apart).
On SQLite (a temp file) and on PostgreSQL (a fresh database `seedream_bench`, dropped at the end;
skipped with a note if PostgreSQL is not reachable), with the database queue; and on PostgreSQL
with the jobs on Redis (RQ, TASKS_BACKEND=redis://…, a private redis-server; skipped with a note
without one), timed from the first task submitted upstream (RQ keeps no claim time; the first
create call takes milliseconds) to the last final. Goal for two workers on PostgreSQL: ≥ 1.7×
one worker's rate.
"""

import contextlib
import json
import os
import subprocess
import sys
import time

from bench import common

ZERO_LATENCY = {
    "SANDBOX_QUEUE_SECONDS": 0,
    "SANDBOX_RUN_SECONDS": 0,
    "TASK_FIRST_CHECK_SECONDS": 0,
    "TASK_CHECK_SECONDS": 0,
}
WORKER_COUNTS = (1, 2)
TIMEOUT = 120  # seconds for one phase; far above what it takes (K=100 takes ~15 s)


def main(argv=None):
    args = common.arguments(__doc__.splitlines()[0], argv)
    if args.child:
        return child(json.loads(args.spec))
    common.exit_cleanly_on_sigterm()
    k = 20 if args.quick else 100
    repeats = 1 if args.quick else 3
    common.heading(f"throughput: {k} tasks (1K, n=1) through the pipeline, zero-latency sandbox")
    results, failed = {}, []
    with common.temp_dir("seedream-bench-throughput-") as tmp:
        for name in ("SQLite", "PostgreSQL", "PostgreSQL + RQ"):
            try:
                with common.named_database(name.split(" +")[0], tmp, "seedream_bench", "throughput.sqlite3") as url, \
                        queue_for(name, tmp) as queue:
                    env = common.process_env(url, tmp / "media", tmp, TASKS_BACKEND=queue, **ZERO_LATENCY)
                    results[name] = common.run_child("throughput", "run",
                                                     {"tmp": str(tmp), "k": k, "repeats": repeats}, env, timeout=1800)
            except common.PostgresUnavailable as e:
                common.note(f"{name} skipped: PostgreSQL not reachable ({e})")
            except QueueUnavailable as e:
                common.note(f"{name} skipped: {e}")
            except RuntimeError as e:  # the child printed why; the other database still runs
                common.note(f"{name} failed: {e}")
                failed.append(name)
    report(k, results)
    return 1 if failed else 0


class QueueUnavailable(Exception):
    pass


@contextlib.contextmanager
def queue_for(name, tmp):
    """TASKS_BACKEND for a run: the database queue, or a private Redis for "+ RQ"."""
    if not name.endswith("RQ"):
        yield "database"
        return
    from tests.redis_server import LocalRedis

    server = LocalRedis(tmp)
    try:
        if reason := server.unavailable():
            raise QueueUnavailable(reason)
        yield server.url
    finally:
        server.stop()


def report(k, results):
    if not results:
        return
    rows = []
    for name, r in results.items():
        rows.append([name, "in-process floor", f"{r['floor']['seconds']:.2f}", "-", f"{k / r['floor']['seconds']:.1f}",
                     "-", "-"])
        for w in WORKER_COUNTS:
            p = r[f"{w}w"]
            rows.append([name, f"{w} worker{'s' if w > 1 else ''}", f"{p['busy']:.2f}", f"{p['startup']:.2f}",
                         f"{k / p['busy']:.1f}", f"{p['worker_cpu'] * 1000 / k:.0f}",
                         f"{p['worker_cpu'] / (w * (p['busy'] + p['startup'])):.0%}"])
    common.table(["database", "run", "first claim → last final s", "start-up s", "tasks/s",
                  "worker CPU ms/task", "worker busy"], rows)
    for name, r in results.items():
        for w in WORKER_COUNTS:
            rates = ", ".join(f"{k / run['busy']:.1f}" for run in r["runs"][f"{w}w"])
            common.note(f"{name}, {w} worker{'s' if w > 1 else ''}: tasks/s of each run {rates} (the median is shown)")
    common.note("worker CPU: user + system time of the worker processes, start-up included; busy: that CPU "
                "time over the workers' wall time (launch to last final)")
    print()
    for name, r in results.items():
        floor_rate = k / r["floor"]["seconds"]
        for w in WORKER_COUNTS:
            rate = k / r[f"{w}w"]["busy"]
            common.figure(f"throughput {name} {w} worker{'s' if w > 1 else ''}", rate, floor_rate,
                          unit="tasks/s", digits=1, higher_is_better=True)
        one, two = k / r["1w"]["busy"], k / r["2w"]["busy"]
        goal = " (goal ≥ 1.7×)" if name.startswith("PostgreSQL") else ""
        print(f"throughput {name} 2 workers vs 1: {two:.1f} vs {one:.1f} tasks/s → {two / one:.2f}× speed-up "
              f"(at most 2× on {os.cpu_count()} cores){goal}", flush=True)


# The child: one database, all phases ----------------------------------------------------------


def child(spec):
    common.exit_cleanly_on_sigterm()
    common.setup_django()
    team, user = common.migrate_and_owner()
    k, tmp = spec["k"], spec["tmp"]
    out = {"floor": in_process(team, user, k), "runs": {f"{w}w": [] for w in WORKER_COUNTS}}
    for _ in range(spec["repeats"]):  # 1 worker, 2 workers, 1 worker, … so drift hits both alike
        for workers in WORKER_COUNTS:
            out["runs"][f"{workers}w"].append(with_workers(team, user, k, workers, tmp))
    for key, runs in out["runs"].items():  # the median run by rate
        out[key] = sorted(runs, key=lambda run: run["busy"])[len(runs) // 2]
    common.answer(spec, out)


def on_rq():
    from django.conf import settings

    return settings.TASKS["default"]["BACKEND"].startswith("django_tasks_rq")


def drop_queued_jobs():
    from django_tasks_db.models import DBTaskResult

    DBTaskResult.objects.all().delete()
    if on_rq():
        import django_rq

        django_rq.get_connection("default").flushdb()


def reset():
    from django.conf import settings

    from gallery.models import GenerationTask, SandboxRun, WorkerHeartbeat

    GenerationTask.objects.all().delete()
    drop_queued_jobs()
    SandboxRun.objects.all().delete()
    WorkerHeartbeat.objects.all().delete()
    common.empty_dir(settings.MEDIA_ROOT)


def submit_all(team, user, k):
    from gallery import pipeline

    for i in range(k):
        pipeline.submit(team, user, {
            "prompt": f"Bench task {i}: a lighthouse at dusk, waves on the rocks",
            "ask_for_n": True,
            "size": "1:1",
            "quality": "1K",
            "custom_size": None,
            "n": 1,
            "priority": "standard",
            "references": [],
        })


def check_all_done(k, phase):
    from gallery.models import GalleryImage, GenerationTask, Status

    completed = GenerationTask.objects.filter(status=Status.COMPLETED).count()
    images = GalleryImage.objects.count()
    if completed != k or images != k:
        raise SystemExit(f"{phase}: {completed} of {k} tasks completed with {images} images")


def in_process(team, user, k):

    from gallery import pipeline
    from gallery.models import GenerationTask

    reset()
    submit_all(team, user, k)
    drop_queued_jobs()  # no worker runs these; advance() below does their work
    pending = list(GenerationTask.objects.unfinished().values_list("pk", flat=True))
    started = time.perf_counter()
    while pending:
        for pk in pending:
            pipeline.advance(pk)
        pending = list(GenerationTask.objects.unfinished().values_list("pk", flat=True))
    seconds = time.perf_counter() - started
    check_all_done(k, "in-process")
    return {"seconds": seconds}


def with_workers(team, user, k, count, tmp):
    from django.db.models import Max, Min
    from django.utils import timezone
    from django_tasks_db.models import DBTaskResult

    from gallery.models import GenerationTask

    reset()
    submit_all(team, user, k)
    logs = [open(os.path.join(tmp, f"worker-{count}-{i}.log"), "wb") for i in range(count)]
    workers = []
    try:
        launched = timezone.now()
        started = time.perf_counter()
        for log in logs:
            workers.append(subprocess.Popen(
                [sys.executable, "manage.py", "worker", "--interval", "0.05"],
                cwd=common.ROOT, env=os.environ, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            ))
        while GenerationTask.objects.unfinished().exists():
            if time.perf_counter() - started > TIMEOUT:
                raise RuntimeError(f"{count} worker(s): tasks still unfinished after {TIMEOUT} s")
            if exited := [w for w in workers if w.poll() is not None]:
                raise RuntimeError(f"a worker exited early with code {exited[0].returncode}")
            time.sleep(0.25)  # the clock is the tasks' own timestamps: polling less leaves the CPUs to the workers
        wall = time.perf_counter() - started
        worker_cpu = sum(cpu_seconds(w.pid) for w in workers)
    except Exception:  # a failure, not an interruption: show what the workers said
        for log in logs:
            log.flush()
            with open(log.name, errors="replace") as f:
                sys.stderr.write(f"--- {os.path.basename(log.name)} (end) ---\n{f.read()[-3000:]}\n")
        raise
    finally:
        for worker in workers:
            common.stop_process_group(worker)
        for log in logs:
            log.close()
    check_all_done(k, f"{count} worker(s)")
    if on_rq():
        first_claim = GenerationTask.objects.aggregate(t=Min("submitted_at"))["t"]
    else:
        first_claim = DBTaskResult.objects.aggregate(t=Min("started_at"))["t"]
    last_final = GenerationTask.objects.aggregate(t=Max("finished_at"))["t"]
    return {
        "wall": wall,
        "busy": (last_final - first_claim).total_seconds(),
        "startup": (first_claim - launched).total_seconds(),
        "jobs": DBTaskResult.objects.count(),
        "worker_cpu": worker_cpu,
    }


def cpu_seconds(pid):
    """CPU time (user + system) a process has used so far, from /proc (0 where there is none)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:  # Ctrl+C: the clean-up has run; exit without a traceback
        sys.exit(130)
