"""`manage.py orphans`: files without a row and rows without a file, on disk and in a bucket."""

import os
import time
from datetime import timedelta
from io import StringIO

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.management import call_command
from django.utils import timezone

from gallery import orphans as orphans_module
from gallery import pipeline, pruning
from tests.factories import make_finished_task, make_image, make_reference, make_task, run_until_final


def orphans(*args):
    out = StringIO()
    call_command("orphans", *args, stdout=out)
    return out.getvalue()


@pytest.fixture(params=["disk", "bucket"])
def storage(request, settings):
    if request.param == "bucket":
        request.getfixturevalue("s3_storage")
    return request.param


def test_a_tidy_store_has_no_orphans(storage, team, alice):
    run_until_final(make_task(team, alice, n=2, references=[make_reference()]))

    out = orphans("--older-than", "0")

    assert "0 orphan files" in out and "0 rows without their file" in out
    assert "5 files checked" in out  # two originals, two thumbnails, one reference


def test_it_finds_files_no_row_names_and_deletes_them_only_when_asked(storage, team, alice, other_team):
    image = make_image(make_finished_task(team, alice))
    stray = [
        default_storage.save(f"results/{team.pk}/2025/01/01/lost-0.png", ContentFile(b"x" * 10)),
        default_storage.save(f"references/{other_team.pk}/2025/01/01/lost.png", ContentFile(b"y")),
        default_storage.save("results/999999/2025/01/01/of-a-deleted-team.png", ContentFile(b"z")),
        default_storage.save("sandbox/uploads/forgotten.png", ContentFile(b"u")),
        default_storage.save("stray.txt", ContentFile(b"s")),
    ]

    out = orphans("--older-than", "0")

    for name in stray:
        assert f"orphan file: {name}" in out
    assert image.file.name not in out
    assert "5 orphan files" in out
    assert all(default_storage.exists(name) for name in stray)  # a report changes nothing

    out = orphans("--older-than", "0", "--delete")

    assert "deleted 5 orphan files" in out
    assert not any(default_storage.exists(name) for name in stray)
    assert default_storage.exists(image.file.name) and default_storage.exists(image.thumbnail.name)
    assert "0 orphan files" in orphans("--older-than", "0")


def test_a_fresh_file_may_be_in_flight_and_is_left_alone(team, alice):
    name = default_storage.save(f"results/{team.pk}/2025/01/01/being-stored-0.png", ContentFile(b"x"))

    out = orphans("--delete")  # the default grace: a day

    assert "0 orphan files" in out and "1 newer than" in out
    assert default_storage.exists(name)
    old = time.time() - 2 * 86400
    os.utime(default_storage.path(name), (old, old))
    assert "deleted 1 orphan files" in orphans("--delete")


def test_an_upload_no_reference_names_expires_after_72_hours_like_evolinks(storage, team, alice):
    """A worker killed between uploading a reference for the sandbox (or BytePlus) and recording
    it leaves a copy no row names; the next worker uploads again. The copy expires as EvoLink's
    file service would let it."""
    task = make_task(team, alice, references=[make_reference()])
    pipeline.advance(task.pk)  # created upstream with its reference uploaded; not finished yet
    recorded = task.references.get().upstream_file_id
    assert recorded.startswith("sandbox/uploads/")  # still needed
    left = default_storage.save("sandbox/uploads/left-by-a-killed-worker.png", ContentFile(b"u"))
    now = timezone.now()

    assert pruning.prune()["upstream_copies"] == 0  # both younger than 72 hours
    assert orphans_module.expire_upstream_copies(now + timedelta(hours=1)) == 1

    assert not default_storage.exists(left)
    assert default_storage.exists(recorded)


def test_it_reports_rows_whose_file_is_gone_and_never_deletes_rows(storage, team, alice):
    image = make_image(make_finished_task(team, alice))
    default_storage.delete(image.thumbnail.name)

    out = orphans("--older-than", "0", "--delete")

    assert f"missing file: image {image.pk} (thumbnail) names {image.thumbnail.name}" in out
    assert "1 rows without their file" in out
    image.refresh_from_db()  # still there


def test_pruning_forgets_jobs_of_killed_workers_that_rq_keeps_a_year(team, alice, rq_queue,
                                                                     django_capture_on_commit_callbacks):
    from datetime import UTC, datetime, timedelta

    import django_rq
    from rq.registry import FailedJobRegistry

    from gallery import pruning

    with django_capture_on_commit_callbacks(execute=True):
        make_task(team, alice)
        make_task(team, alice)
    queue = django_rq.get_queue("default")
    registry = FailedJobRegistry(queue=queue)
    old, recent = [queue.fetch_job(job_id) for job_id in queue.get_job_ids()]
    for job, ended in ((old, datetime.now(UTC) - timedelta(days=2)), (recent, datetime.now(UTC))):
        queue.remove(job.id)
        job.ended_at = ended
        job.save()
        registry.add(job, ttl=365 * 86400)

    assert pruning.prune()["finished_jobs"] == 1
    assert registry.get_job_ids() == [recent.id]
