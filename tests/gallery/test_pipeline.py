import errno
import io
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from unittest import mock

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import connection
from django.utils import timezone
from django_tasks_db.models import DBTaskResult
from PIL import Image

from gallery import pipeline, sweeper
from gallery.models import GenerationTask, SandboxRun, Status, WorkerHeartbeat
from gallery.providers.sandbox import SandboxProvider
from gallery.routing import get_provider
from tests.factories import make_reference, make_task, run_until_final


def stored_files(settings, folder="results"):
    root = Path(settings.MEDIA_ROOT) / folder
    return sorted(str(p.relative_to(settings.MEDIA_ROOT)) for p in root.rglob("*") if p.is_file())


def test_a_task_goes_from_queued_to_completed_with_n_stored_images(team, alice, settings):
    settings.PRICE_OVERRIDES = {"sandbox": Decimal("0.0222")}
    task = make_task(team, alice, n=3, references=[make_reference(), make_reference(30, 60, "teal")])
    assert task.reserved_cost == Decimal("0.0666")

    task = run_until_final(task)

    assert task.status == Status.COMPLETED
    assert task.final_cost == Decimal("0.0666")
    images = list(task.images.order_by("index"))
    assert [i.index for i in images] == [0, 1, 2]
    for image in images:
        assert (image.width, image.height) == (1024, 1024)
        assert image.format == "PNG"
        with image.file.open("rb") as f:
            assert len(f.read()) == image.bytes
        with image.thumbnail.open("rb") as f, Image.open(f) as thumb:
            assert thumb.format == "WEBP" and max(thumb.size) <= 512
    assert task.submitted_at and task.storing_at and task.finished_at


def test_the_sent_prompt_asks_for_n_images_and_the_stored_prompt_keeps_both(team, alice):
    task = make_task(team, alice, prompt="Three cats", n=3)
    assert task.prompt == "Three cats"
    assert task.sent_prompt == "Three cats\n\nGenerate 3 different images."
    run_until_final(task)
    assert SandboxRun.objects.get(client_ref=str(task.pk)).params["prompt"] == task.sent_prompt


def test_fewer_images_than_n_is_a_success_billed_by_images_produced(team, alice, settings):
    settings.PRICE_OVERRIDES = {"sandbox": Decimal("0.5")}
    task = run_until_final(make_task(team, alice, prompt="cats [sandbox:fewer=2]", n=4))
    assert task.status == Status.COMPLETED
    assert task.images.count() == 2
    assert task.final_cost == Decimal("1.0")


def test_a_final_upstream_error_fails_the_task_with_a_human_reason(team, alice):
    task = run_until_final(make_task(team, alice, prompt="x [sandbox:fail=content_policy_violation]"))
    assert task.status == Status.FAILED
    assert task.error_code == "content_policy_violation"
    assert "safety filter" in task.error_message
    assert task.retries == 0
    assert task.final_cost == 0


def test_a_retryable_upstream_error_is_retried_and_then_succeeds(team, alice):
    task = run_until_final(make_task(team, alice, prompt="x [sandbox:flaky]", n=2))
    assert task.status == Status.COMPLETED
    assert task.retries == 1
    assert SandboxRun.objects.filter(client_ref=str(task.pk)).count() == 2
    assert task.images.count() == 2


def test_retryable_errors_are_bounded(team, alice, settings):
    settings.TASK_MAX_RETRIES = 2
    task = run_until_final(make_task(team, alice, prompt="x [sandbox:fail=service_error]"))
    assert task.status == Status.FAILED
    assert task.retries == 2
    assert "We tried 3 times" in task.error_message
    assert SandboxRun.objects.filter(client_ref=str(task.pk)).count() == 3


@pytest.mark.parametrize("status,retried", [(503, True), (429, True), (400, False), (402, False)])
def test_http_errors_at_create_are_retried_only_when_retryable(status, retried, team, alice, settings):
    settings.TASK_MAX_RETRIES = 1
    task = run_until_final(make_task(team, alice, prompt=f"x [sandbox:http={status}]"))
    assert task.status == Status.FAILED
    assert task.retries == (1 if retried else 0)
    assert f"HTTP {status}" in task.error_message


def test_retry_waits_with_backoff(team, alice, settings):
    settings.TASK_CHECK_SECONDS = 10
    task = make_task(team, alice, prompt="x [sandbox:http=503]")
    before = timezone.now()
    pipeline.advance(task.pk)
    task.refresh_from_db()
    assert task.status == Status.QUEUED
    assert task.next_check_at >= before + timedelta(seconds=8)
    assert "Trying again" in task.error_message


def test_advancing_a_final_task_does_nothing(team, alice):
    task = run_until_final(make_task(team, alice))
    finished_at = task.finished_at
    pipeline.advance(task.pk)
    task.refresh_from_db()
    assert task.finished_at == finished_at and task.images.count() == 1


def test_a_task_leased_by_another_worker_is_left_alone(team, alice):
    task = make_task(team, alice)
    assert GenerationTask.objects.get(pk=task.pk).take_lease()
    pipeline.advance(task.pk)
    task.refresh_from_db()
    assert task.status == Status.QUEUED
    assert not SandboxRun.objects.exists()


def test_storing_each_image_twice_leaves_one_row_and_one_file(team, alice, settings):
    task = make_task(team, alice, n=2)
    pipeline.advance(task.pk)  # queued → submitted
    task.refresh_from_db()
    assert task.take_lease()  # as a worker would
    pipeline.follow(task)  # → storing, with result URLs
    assert task.status == Status.STORING
    provider = get_provider("sandbox")
    for _ in range(2):
        for index, url in enumerate(task.result_urls):
            pipeline.store_one(task, provider, index, url)
    assert task.images.count() == 2
    assert len(stored_files(settings)) == 4  # two originals, two thumbnails
    pipeline.store_results(task)
    pipeline.store_results(task)
    task.refresh_from_db()
    assert task.status == Status.COMPLETED
    assert task.images.count() == 2
    assert len(stored_files(settings)) == 4


def test_a_file_left_by_a_crashed_store_is_replaced_not_duplicated(team, alice, settings):
    task = make_task(team, alice)
    pipeline.advance(task.pk)
    task.refresh_from_db()
    assert task.take_lease()
    pipeline.follow(task)
    # A worker died after writing the file but before creating the row.
    default_storage.save(task.images_expected_name(0, ".png"), ContentFile(b"half a file"))
    task.release_lease()
    run_until_final(task)
    image = task.images.get()
    assert stored_files(settings) == sorted([image.file.name, image.thumbnail.name])
    with image.file.open("rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_delivering_references_twice_gives_the_same_urls(team, alice):
    task = make_task(team, alice, references=[make_reference(), make_reference(colour="blue")])
    assert task.take_lease()
    provider = get_provider("sandbox")
    first = pipeline.deliver_references(task, provider)
    second = pipeline.deliver_references(task, provider)
    assert first == second and len(first) == 2


def test_a_worker_that_died_mid_create_causes_one_resubmission_at_most(team, alice):
    task = make_task(team, alice)
    GenerationTask.objects.filter(pk=task.pk).update(create_started_at=timezone.now())
    task = run_until_final(task)
    assert task.status == Status.COMPLETED
    assert task.uncertain_creates == 1

    again = make_task(team, alice)
    GenerationTask.objects.filter(pk=again.pk).update(create_started_at=timezone.now(), uncertain_creates=1)
    again = run_until_final(again)
    assert again.status == Status.FAILED
    assert again.error_code == "lost_contact"
    assert not SandboxRun.objects.filter(client_ref=str(again.pk)).exists()


def test_a_task_past_its_deadline_fails_as_timed_out(team, alice, settings):
    settings.SANDBOX_RUN_SECONDS = 60
    task = make_task(team, alice)
    pipeline.advance(task.pk)
    pipeline.advance(task.pk)
    task.refresh_from_db()
    assert task.status in (Status.SUBMITTED, Status.RUNNING)
    GenerationTask.objects.filter(pk=task.pk).update(deadline_at=timezone.now() - timedelta(seconds=1))
    pipeline.advance(task.pk)
    task.refresh_from_db()
    assert task.status == Status.FAILED
    assert task.error_code == "timed_out"
    assert task.error_message.startswith("Timed out")


def test_a_task_storing_at_its_deadline_keeps_the_images_it_has(team, alice):
    task = make_task(team, alice, n=3)
    pipeline.advance(task.pk)
    task.refresh_from_db()
    assert task.take_lease()
    pipeline.follow(task)
    pipeline.store_one(task, get_provider("sandbox"), 0, task.result_urls[0])
    task.release_lease()
    GenerationTask.objects.filter(pk=task.pk).update(deadline_at=timezone.now() - timedelta(seconds=1))
    pipeline.advance(task.pk)
    task.refresh_from_db()
    assert task.status == Status.COMPLETED
    assert task.images.count() == 1


def test_a_full_disk_is_retried_and_the_task_completes_afterwards(team, alice, settings):
    task = make_task(team, alice)
    pipeline.advance(task.pk)
    full = OSError(errno.ENOSPC, "No space left on device")
    with mock.patch.object(default_storage, "save", side_effect=full):
        pipeline.advance(task.pk)
    task.refresh_from_db()
    assert task.status == Status.STORING
    assert "No space left on device" in task.error_message
    assert not task.images.exists()
    task = run_until_final(task)
    assert task.status == Status.COMPLETED and task.images.count() == 1


def test_an_oversized_result_is_refused_while_reading(team, alice, settings):
    settings.MAX_RESULT_BYTES = 1000
    task = run_until_final(make_task(team, alice, n=2))
    assert task.status == Status.FAILED
    assert task.error_code == "download_failed"
    assert stored_files(settings) == []


@pytest.mark.django_db(transaction=True)
def test_no_provider_call_happens_inside_a_transaction(team, alice, monkeypatch):
    seen = []
    for name in ("create", "get", "open_result", "deliver_reference"):
        original = getattr(SandboxProvider, name)

        def spy(self, *args, _original=original, _name=name, **kwargs):
            seen.append((_name, connection.in_atomic_block))
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(SandboxProvider, name, spy)
    run_until_final(make_task(team, alice, n=2, references=[make_reference()]))
    assert {name for name, _ in seen} == {"create", "get", "open_result", "deliver_reference"}
    assert not any(in_transaction for _, in_transaction in seen)


def test_submit_enqueues_the_job_only_after_commit(team, alice, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        make_task(team, alice)
        assert not DBTaskResult.objects.exists()
    assert len(callbacks) == 1
    callbacks[0]()
    job = DBTaskResult.objects.get()
    assert job.task_path == "gallery.tasks.advance"


def test_a_failed_submission_leaves_no_rows_and_no_files(team, alice, settings):
    with mock.patch("gallery.pipeline.ReferenceImage.objects.bulk_create", side_effect=RuntimeError("boom")):
        with pytest.raises(RuntimeError):
            make_task(team, alice, references=[make_reference()])
    assert not GenerationTask.objects.exists()
    assert stored_files(settings, "references") == []


def test_retry_creates_a_new_task_with_the_same_inputs(team, alice):
    failed = run_until_final(make_task(team, alice, prompt="x [sandbox:fail=invalid_parameters]", n=2, references=[make_reference()]))
    retried = pipeline.retry(failed, alice)
    assert retried.pk != failed.pk and retried.retry_of == failed
    assert (retried.prompt, retried.n, retried.size, retried.quality) == (failed.prompt, 2, "1:1", "1K")
    assert retried.references.get().sha256 == failed.references.get().sha256


def test_cancel_stops_following_and_keeps_stored_images(team, alice):
    task = make_task(team, alice, n=2)
    pipeline.advance(task.pk)
    task.refresh_from_db()
    assert task.take_lease()
    pipeline.follow(task)
    pipeline.store_one(task, get_provider("sandbox"), 0, task.result_urls[0])
    task.release_lease()
    task.refresh_from_db()
    assert pipeline.cancel(task) is True
    pipeline.advance(task.pk)
    task.refresh_from_db()
    assert task.status == Status.CANCELLED
    assert task.images.count() == 1


# The sweeper ------------------------------------------------------------------------------


def test_the_sweeper_requeues_an_overdue_task_whose_job_was_lost(team, alice, settings):
    settings.SWEEP_GRACE_SECONDS = 5
    task = make_task(team, alice)
    DBTaskResult.objects.all().delete()  # the job is lost
    GenerationTask.objects.filter(pk=task.pk).update(next_check_at=timezone.now() - timedelta(seconds=10))
    assert sweeper.requeue_overdue_tasks() == 1
    assert DBTaskResult.objects.filter(status="READY").count() == 1
    # The nudge is claimed: the next sweep does not enqueue it again.
    assert sweeper.requeue_overdue_tasks() == 0


def test_the_sweeper_leaves_leased_and_on_time_tasks_alone(team, alice, settings):
    settings.SWEEP_GRACE_SECONDS = 5
    leased = make_task(team, alice)
    on_time = make_task(team, alice)
    GenerationTask.objects.filter(pk=leased.pk).update(next_check_at=timezone.now() - timedelta(seconds=10))
    leased.take_lease()
    GenerationTask.objects.filter(pk=on_time.pk).update(next_check_at=timezone.now() - timedelta(seconds=1))
    assert sweeper.requeue_overdue_tasks() == 0


def test_the_sweeper_ends_tasks_past_their_deadline(team, alice):
    task = make_task(team, alice)
    GenerationTask.objects.filter(pk=task.pk).update(deadline_at=timezone.now() - timedelta(seconds=1))
    assert sweeper.end_expired_tasks() == 1
    task.refresh_from_db()
    assert task.status == Status.FAILED and task.error_code == "timed_out"


def test_the_sweeper_puts_back_jobs_left_running_by_a_dead_worker(team, alice, settings):
    settings.WORKER_HEARTBEAT_SECONDS = 1
    for task in (make_task(team, alice), make_task(team, alice)):
        pipeline.enqueue(task.pk)
    dead, alive = DBTaskResult.objects.all()
    long_ago = timezone.now() - timedelta(minutes=5)
    WorkerHeartbeat.objects.create(worker_id="dead", hostname="h", pid=1, last_seen=long_ago)
    WorkerHeartbeat.objects.create(worker_id="alive", hostname="h", pid=2)
    DBTaskResult.objects.filter(pk=dead.pk).update(status="RUNNING", worker_ids=["dead"], started_at=long_ago)
    DBTaskResult.objects.filter(pk=alive.pk).update(status="RUNNING", worker_ids=["alive"], started_at=long_ago)
    assert sweeper.requeue_orphaned_jobs() == 1
    dead.refresh_from_db()
    alive.refresh_from_db()
    assert (dead.status, alive.status) == ("READY", "RUNNING")


def test_references_reach_the_provider_as_png_or_jpeg_without_metadata(team, alice, settings, monkeypatch):
    webp, jpeg = io.BytesIO(), io.BytesIO()
    exif = Image.Exif()
    exif.get_ifd(0x8825)[2] = (48.0, 51.0, 0.0)  # GPS latitude
    exif[0x010F] = "PhoneMaker"
    source = Image.new("RGB", (80, 60), "crimson")
    source.save(webp, "WEBP", lossless=True, exif=exif.tobytes())
    source.save(jpeg, "JPEG", exif=exif.tobytes())
    for data in (webp, jpeg):
        assert Image.open(io.BytesIO(data.getvalue())).getexif().get_ifd(0x8825)  # GPS is there to strip
    refs = [make_reference_from(webp.getvalue(), "photo.webp"), make_reference_from(jpeg.getvalue(), "photo.jpg")]
    received = []
    original = SandboxProvider.deliver_reference
    monkeypatch.setattr(
        SandboxProvider, "deliver_reference",
        lambda self, data, image_format: received.append((data, image_format)) or original(self, data, image_format),
    )
    task = make_task(team, alice, references=refs)
    pipeline.advance(task.pk)

    (png_data, png_type), (jpeg_data, jpeg_type) = received
    assert (png_type, jpeg_type) == ("PNG", "JPEG")
    with Image.open(io.BytesIO(png_data)) as sent:
        assert sent.format == "PNG" and not sent.getexif()
        assert sent.convert("RGB").tobytes() == source.tobytes()  # lossless
    with Image.open(io.BytesIO(jpeg_data)) as sent:
        assert sent.format == "JPEG" and not sent.getexif()
    task = run_until_final(task)
    assert task.status == Status.COMPLETED
    assert stored_files(settings, "sandbox") == []  # the provider's copies are deleted once final


def make_reference_from(data, name):
    from gallery.forms.studio import CheckedReference
    from gallery.images.decode import inspect_image

    return CheckedReference(name=name, data=data, info=inspect_image(data))
