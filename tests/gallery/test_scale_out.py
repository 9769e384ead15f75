"""Scale by configuration, proved with separate processes: the suite's database (PostgreSQL in
CI's second run), the local S3 server, and the jobs on the database queue or on Redis (RQ), with
two `manage.py worker` processes, as two machines would run them. Each worker only gets
DATABASE_URL, the S3 variables and TASKS_BACKEND.

Skipped, saying why, only when there is no Redis (tests/redis_server.py) or no Node.js for s3rver."""

import hashlib
import io
import random
import time

import httpx
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone
from PIL import Image

from gallery import orphans
from gallery.models import GalleryImage, GenerationTask, ReferenceImage, Status, WorkerHeartbeat
from tests.factories import make_reference, make_task, png_bytes
from tests.workers import kill, s3_env, start_worker, wait_until, worker_env

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

FORM = {"size": "1:1", "quality": "1K", "custom_size": "", "ask_for_n": "on", "priority": "standard"}


@pytest.fixture(params=["database", "redis"])
def queue(request):
    """TASKS_BACKEND for the workers; the test process enqueues on the same queue."""
    if request.param == "redis":
        return request.getfixturevalue("rq_queue").url
    return "database"


def start_workers(count, env, tmp_path):
    logs = [open(tmp_path / f"worker-{i}.log", "ab") for i in range(count)]
    return [start_worker(env, log) for log in logs], logs


def stop_workers(workers, logs):
    for worker in workers:
        kill(worker)
    for log in logs:
        log.close()


def log_tail(tmp_path, count=3000):
    return "\n".join(
        f"--- {path.name} ---\n{path.read_text(errors='replace')[-count:]}" for path in sorted(tmp_path.glob("worker-*.log"))
    )


def stored_names():
    names = set()
    for image in GalleryImage.objects.all():
        names |= {image.file.name, image.thumbnail.name}
    return names | set(ReferenceImage.objects.values_list("file", flat=True))


def test_the_whole_pipeline_runs_on_two_worker_processes_with_object_storage(
    queue, s3_storage, client_alice, team, settings, tmp_path
):
    env = worker_env(settings.MEDIA_ROOT, TASKS_BACKEND=queue, LOG_LEVEL="INFO", **s3_env(s3_storage))
    workers, logs = start_workers(2, env, tmp_path)
    try:
        # Both are up before the work arrives, so both get some of it.
        assert wait_until(lambda: WorkerHeartbeat.objects.count() == 2, timeout=60), log_tail(tmp_path)
        for i in range(6):
            reference = SimpleUploadedFile(f"ref{i}.png", png_bytes(64, 48, "purple"), "image/png")
            form = {**FORM, "prompt": f"A lighthouse, take {i}", "n": str(1 + i % 3), "references": [reference]}
            assert client_alice.post("/", form).status_code == 302
        finished = wait_until(lambda: not GenerationTask.objects.needing_work().exists(), timeout=180)
    finally:
        stop_workers(workers, logs)
    assert finished, log_tail(tmp_path)

    tasks = list(GenerationTask.objects.order_by("created_at"))
    assert [t.status for t in tasks] == [Status.COMPLETED] * 6, log_tail(tmp_path)
    assert [t.images.count() for t in tasks] == [1, 2, 3, 1, 2, 3]
    # Every file is in the bucket, none is anywhere else, and none is there without a row.
    assert set(s3_storage.keys()) == stored_names()
    assert not (settings.MEDIA_ROOT / "results").exists()
    assert both_workers_did_work(queue, tmp_path), log_tail(tmp_path)

    gallery = client_alice.get("/gallery/")
    assert gallery.status_code == 200
    for image in GalleryImage.objects.all():
        assert f"/media/image/{image.pk}/thumb/".encode() in gallery.content
        presigned = client_alice.get(f"/media/image/{image.pk}/")
        assert presigned.status_code == 302
        original = httpx.get(presigned["Location"])
        assert original.status_code == 200
        assert hashlib.sha256(original.content).hexdigest() == image.sha256
        download = client_alice.get(f"/media/image/{image.pk}/download/")
        data = b"".join(download.streaming_content)
        assert download.status_code == 200
        with Image.open(io.BytesIO(data)) as im:
            assert im.size == (image.width, image.height)


def both_workers_did_work(queue, tmp_path):
    if queue == "database":
        from django_tasks_db.models import DBTaskResult

        ran = {ids[-1] for ids in DBTaskResult.objects.exclude(worker_ids=[]).values_list("worker_ids", flat=True)}
        return len(ran) == 2
    return all("Job OK" in path.read_text(errors="replace") for path in tmp_path.glob("worker-*.log"))


def test_tasks_survive_workers_killed_at_random_moments_on_redis_and_object_storage(
    rq_queue, s3_storage, team, alice, settings, tmp_path
):
    """The crash test of tests/gallery/test_worker.py on this configuration: two RQ workers, one
    of them killed with SIGKILL at a random moment, again and again, and restarted."""
    rng = random.Random(16)
    tasks = [
        make_task(team, alice, prompt=f"Crash test {i}", n=rng.randint(1, 3),
                  references=[make_reference(colour="purple")] if i % 3 == 0 else [])
        for i in range(12)
    ]
    env = worker_env(settings.MEDIA_ROOT, TASKS_BACKEND=rq_queue.url, **s3_env(s3_storage))
    workers, logs = start_workers(2, env, tmp_path)
    kills = 0
    try:
        while kills < 8:
            time.sleep(rng.uniform(0.3, 1.5))
            victim = rng.randrange(2)
            kill(workers[victim])
            kills += 1
            workers[victim] = start_worker(env, logs[victim])
        finished = wait_until(lambda: not GenerationTask.objects.needing_work().exists(), timeout=180)
    finally:
        stop_workers(workers, logs)
    assert finished, f"{list(GenerationTask.objects.unfinished().values('status', 'retries'))}\n{log_tail(tmp_path)}"

    for task in GenerationTask.objects.filter(pk__in=[t.pk for t in tasks]):
        assert task.is_final
        if task.status == Status.COMPLETED:
            assert task.images.count() == task.n, task
    assert GenerationTask.objects.filter(status=Status.COMPLETED).count() >= 10
    # A kill between a reference's upload for the sandbox and its record leaves that copy, and
    # only that, without a row: it expires as EvoLink's uploads do (72 hours).
    left = set(s3_storage.keys()) - stored_names()
    assert all(name.startswith("sandbox/uploads/") for name in left), left
    assert orphans.expire_upstream_copies(timezone.now() + orphans.UPSTREAM_COPY_LIFETIME) == len(left)
    assert set(s3_storage.keys()) == stored_names()  # no object without a row, no row without its object
