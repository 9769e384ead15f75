"""The EvoLink client against a fake EvoLink on a real socket (SPEC §7): what the studio sends,
and how each documented answer and fault ends — state, message, stored files, upstream calls."""

import io
import socket
import threading
import time
import uuid
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from django.db import connection
from django.utils import timezone
from PIL import Image

from gallery import pipeline
from gallery.forms.studio import CheckedReference
from gallery.images.decode import inspect_image
from gallery.models import GenerationTask, LeaseLost, Status
from gallery.providers import evolink, http
from gallery.providers.base import FINAL_CODES, RETRYABLE_CODES, UNKNOWN_FAILURE
from tests.factories import make_reference, make_task, run_until_final
from tests.fakes.evolink import FakeEvoLink


@pytest.fixture
def fake(settings):
    with FakeEvoLink() as server:
        server.use_in(settings)
        yield server


def stored_results(settings):
    root = Path(settings.MEDIA_ROOT) / "results"
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def gets(fake):
    return [r for r in fake.received if r.path.startswith("/v1/tasks/")]


def reference_from(data, name):
    return CheckedReference(name=name, data=data, info=inspect_image(data))


# Success ------------------------------------------------------------------------------------


def test_a_task_completes_after_k_polls_and_its_images_are_stored(fake, team, alice, settings):
    task = run_until_final(make_task(team, alice, prompt="Two foxes [evolink:polls=3]", n=2))

    assert task.status == Status.COMPLETED
    assert task.provider == "evolink" and task.upstream_id.startswith("task-unified-")
    assert task.final_cost == Decimal("0.0444")
    assert [(i.width, i.height, i.format) for i in task.images.order_by("index")] == [(1024, 1024, "PNG")] * 2
    assert len(stored_results(settings)) == 4  # two originals, two thumbnails
    assert fake.created == [
        {
            "model": "doubao-seedream-4.0",
            "prompt": "Two foxes [evolink:polls=3]\n\nGenerate 2 different images.",
            "n": 2,
            "size": "1:1",
            "quality": "1K",
            "prompt_priority": "standard",
        }
    ]
    assert len(gets(fake)) == 3
    create = fake.calls("/v1/images/generations")[0]
    assert create.headers["authorization"] == "Bearer sk-evo-fake"
    assert create.headers["user-agent"].startswith("SeedreamStudio/")


def test_fewer_images_than_n_is_a_success_billed_by_images_produced(fake, team, alice):
    task = run_until_final(make_task(team, alice, prompt="Cats [evolink:fewer=1]", n=3))
    assert task.status == Status.COMPLETED and task.error_message == ""
    assert task.images.count() == 1
    assert task.final_cost == Decimal("0.0222")
    assert fake.created[0]["n"] == 3


def test_a_custom_size_is_sent_as_width_x_height_without_quality(fake, team, alice):
    task = run_until_final(make_task(team, alice, custom_size=(1600, 900), priority="fast"))
    assert task.status == Status.COMPLETED
    sent = fake.created[0]
    assert sent["size"] == "1600x900" and "quality" not in sent and sent["prompt_priority"] == "fast"
    assert (task.images.get().width, task.images.get().height) == (1600, 900)


def test_references_reach_the_file_service_as_png_or_jpeg_without_metadata_and_are_deleted(fake, team, alice):
    exif = Image.Exif()
    exif.get_ifd(0x8825)[2] = (48.0, 51.0, 0.0)  # GPS latitude
    webp, jpeg = io.BytesIO(), io.BytesIO()
    source = Image.new("RGB", (80, 60), "crimson")
    source.save(webp, "WEBP", lossless=True, exif=exif.tobytes())
    source.save(jpeg, "JPEG", exif=exif.tobytes())
    refs = [reference_from(webp.getvalue(), "a.webp"), reference_from(jpeg.getvalue(), "b.jpg")]

    task = run_until_final(make_task(team, alice, references=refs))

    assert task.status == Status.COMPLETED
    png_upload, jpeg_upload = fake.uploads
    assert (png_upload["content_type"], jpeg_upload["content_type"]) == ("image/png", "image/jpeg")
    with Image.open(io.BytesIO(png_upload["data"])) as sent:
        assert sent.format == "PNG" and not sent.getexif()
        assert sent.convert("RGB").tobytes() == source.tobytes()  # lossless
    with Image.open(io.BytesIO(jpeg_upload["data"])) as sent:
        assert sent.format == "JPEG" and not sent.getexif()
    assert fake.created[0]["image_urls"] == [png_upload["file_url"], jpeg_upload["file_url"]]
    # Once final, the studio frees the account's file slots.
    assert fake.deleted == [png_upload["file_id"], jpeg_upload["file_id"]]
    assert list(task.references.values_list("upstream_file_id", flat=True)) == ["", ""]


def test_a_callback_url_is_sent_only_with_a_public_https_address(fake, team, alice, settings):
    run_until_final(make_task(team, alice))
    settings.STUDIO_PUBLIC_URL = "http://studio.example.com"
    run_until_final(make_task(team, alice))
    settings.STUDIO_PUBLIC_URL = "https://studio.example.com"
    task = run_until_final(make_task(team, alice))

    assert task.status == Status.COMPLETED
    assert ["callback_url" in body for body in fake.created] == [False, False, True]
    url = fake.created[2]["callback_url"]
    token = pipeline.callback_token(task.pk)
    assert url == f"https://studio.example.com/upstream/evolink/{task.pk}/{token}/"
    assert len(token) == 32 and token != pipeline.callback_token(uuid.uuid4())


# Task failures by error code ----------------------------------------------------------------


@pytest.mark.parametrize("code", sorted(FINAL_CODES))
def test_a_final_task_error_fails_at_once_with_its_sentence(code, fake, team, alice, settings):
    task = run_until_final(make_task(team, alice, prompt=f"x [evolink:fail={code}]", references=[make_reference()]))
    assert task.status == Status.FAILED
    assert (task.error_code, task.error_message) == (code, FINAL_CODES[code])
    assert task.retries == 0 and task.final_cost == 0
    assert not task.images.exists() and stored_results(settings) == []
    assert len(fake.created) == 1
    assert fake.deleted == [fake.uploads[0]["file_id"]]


@pytest.mark.parametrize("code", sorted(RETRYABLE_CODES))
def test_a_retryable_task_error_is_retried_then_fails_with_its_sentence(code, fake, team, alice, settings):
    settings.TASK_MAX_RETRIES = 1
    task = run_until_final(make_task(team, alice, prompt=f"x [evolink:fail={code}]"))
    assert task.status == Status.FAILED
    assert task.error_code == code
    assert task.error_message == f"{RETRYABLE_CODES[code]} We tried 2 times; please retry later."
    assert len(fake.created) == 2 and not task.images.exists()


def test_a_retryable_task_error_is_retried_and_the_retry_succeeds(fake, team, alice):
    task = run_until_final(make_task(team, alice, prompt="x [evolink:fail-once=generation_timeout]"))
    assert task.status == Status.COMPLETED
    assert task.retries == 1 and task.images.count() == 1
    assert len(fake.created) == 2


def test_a_failed_task_without_an_error_object_is_retried_with_a_plain_reason(fake, team, alice, settings):
    settings.TASK_MAX_RETRIES = 1
    task = run_until_final(make_task(team, alice, prompt="x [evolink:fail]"))
    assert task.status == Status.FAILED
    assert task.error_code == "unknown_error"
    assert task.error_message == f"{UNKNOWN_FAILURE} We tried 2 times; please retry later."
    assert len(fake.created) == 2


def test_a_task_the_upstream_no_longer_knows_fails(fake, team, alice):
    fake.fault("get", 404)
    task = run_until_final(make_task(team, alice))
    assert task.status == Status.FAILED
    assert (task.error_code, task.error_message) == ("resource_not_found", FINAL_CODES["resource_not_found"])
    assert len(gets(fake)) == 1


# HTTP errors --------------------------------------------------------------------------------


def test_429_with_retry_after_waits_that_long_then_succeeds(fake, team, alice):
    fake.fault("create", 429, retry_after="7")
    task = make_task(team, alice)
    before = timezone.now()
    pipeline.advance(task.pk)
    task.refresh_from_db()
    assert task.status == Status.QUEUED and task.error_code == "rate_limit_error"
    assert task.error_message == "EvoLink is receiving too many requests from this account right now. Trying again…"
    assert task.next_check_at >= before + timezone.timedelta(seconds=7)

    task = run_until_final(task)
    assert task.status == Status.COMPLETED and task.retries == 1
    assert len(fake.created) == 2


def test_429_without_retry_after_backs_off_briefly(fake, team, alice):
    fake.fault("create", 429)
    task = make_task(team, alice)
    before = timezone.now()
    pipeline.advance(task.pk)
    task.refresh_from_db()
    assert task.status == Status.QUEUED
    assert task.next_check_at < before + timezone.timedelta(seconds=2)  # 0.2 s × jitter
    assert run_until_final(task).status == Status.COMPLETED


@pytest.mark.parametrize(
    "status,code",
    [(500, "internal_server_error"), (502, "upstream_error"), (503, "service_unavailable_error")],
)
def test_server_errors_at_create_are_retried(status, code, fake, team, alice):
    fake.fault("create", status, times=2)
    task = make_task(team, alice)
    pipeline.advance(task.pk)
    task.refresh_from_db()
    assert task.error_code == code and task.error_message.endswith("Trying again…")
    task = run_until_final(task)
    assert task.status == Status.COMPLETED and task.retries == 2
    assert len(fake.created) == 3 and task.images.count() == 1


def test_server_errors_while_polling_do_not_lose_the_task(fake, team, alice):
    fake.fault("get", 503, times=3)
    task = run_until_final(make_task(team, alice))
    assert task.status == Status.COMPLETED and task.retries == 0
    assert len(fake.created) == 1  # never paid twice
    assert len(gets(fake)) == 5


@pytest.mark.parametrize(
    "status,code,words",
    [
        (400, "invalid_request_error", "EvoLink refused the request. EvoLink said: “Prompt blocked by the safety system.”"),
        (401, "authentication_error", "EVOLINK_API_KEY"),
        (403, "permission_error", "not allowed"),
        (404, "not_found_error", "does not know"),
        (413, "request_too_large_error", "fewer or smaller reference images"),
    ],
)
def test_final_http_errors_fail_the_task_without_retrying(status, code, words, fake, team, alice, settings):
    fake.fault("create", status, message="Prompt blocked by the safety system.")
    task = run_until_final(make_task(team, alice, references=[make_reference()]))
    assert task.status == Status.FAILED and task.retries == 0
    assert task.error_code == code and words in task.error_message
    assert len(fake.created) == 1 and stored_results(settings) == []
    assert fake.deleted == [fake.uploads[0]["file_id"]]


def test_no_credits_fails_the_task_and_tells_an_owner_to_top_up(fake, team, alice):
    fake.credits = 1.0  # less than one image
    task = run_until_final(make_task(team, alice, references=[make_reference()]))
    assert task.status == Status.FAILED and task.retries == 0
    assert task.error_code == "insufficient_quota_error"
    assert "run out of credits" in task.error_message and "top up the EvoLink credits" in task.error_message
    assert task.final_cost == 0
    assert fake.deleted == [fake.uploads[0]["file_id"]]


def test_a_wrong_key_is_refused_with_a_message_for_the_administrator(fake, team, alice, settings):
    settings.EVOLINK_API_KEY = "sk-evo-wrong"
    task = run_until_final(make_task(team, alice))
    assert task.status == Status.FAILED and task.error_code == "authentication_error"
    assert "check EVOLINK_API_KEY" in task.error_message
    assert fake.calls("/v1/images/generations")[0].headers["authorization"] == "Bearer sk-evo-wrong"


# Network trouble and unreadable answers -----------------------------------------------------


def test_a_slow_answer_times_out_and_is_retried(fake, team, alice, monkeypatch):
    monkeypatch.setattr(evolink, "CALL_DEADLINE", 0.3)
    fake.slow_seconds = 1.5
    fake.fault("create", "slow")
    task = make_task(team, alice)
    started = time.monotonic()
    pipeline.advance(task.pk)
    assert time.monotonic() - started < 1.4
    task.refresh_from_db()
    assert task.status == Status.QUEUED and task.error_code == "timeout"
    assert task.error_message == "EvoLink did not answer in time. Trying again…"
    # The slow create reached EvoLink, which made that task too: the possible double is recorded.
    assert task.uncertain_creates == 1
    assert run_until_final(task).status == Status.COMPLETED
    assert len(fake.created) == 2 and task.uncertain_creates == 1


@pytest.mark.parametrize("route", ["create", "get"])
def test_a_dropped_connection_is_retried(route, fake, team, alice):
    fake.fault(route, "drop")
    task = run_until_final(make_task(team, alice))
    assert task.status == Status.COMPLETED and task.images.count() == 1
    assert len(fake.calls("/v1/images/generations")) == (2 if route == "create" else 1)


def test_a_dropped_connection_leaves_a_readable_message(fake, team, alice):
    fake.fault("create", "drop")
    task = make_task(team, alice)
    pipeline.advance(task.pk)
    task.refresh_from_db()
    assert task.error_code == "network"
    assert task.error_message.startswith("The studio could not reach EvoLink (")


def test_invalid_json_at_create_is_retried_with_a_clear_message(fake, team, alice):
    fake.fault("create", "garbage")
    task = make_task(team, alice)
    pipeline.advance(task.pk)
    task.refresh_from_db()
    assert task.status == Status.QUEUED and task.error_code == "invalid_response"
    assert task.error_message == "EvoLink sent an answer the studio could not read. It will be tried again. Trying again…"
    assert run_until_final(task).status == Status.COMPLETED


def test_invalid_json_while_polling_is_read_again_later(fake, team, alice):
    fake.fault("get", "garbage")
    task = make_task(team, alice)
    pipeline.advance(task.pk)  # create
    pipeline.advance(task.pk)  # the unreadable poll
    task.refresh_from_db()
    assert task.status == Status.SUBMITTED and task.retries == 0
    assert run_until_final(task).status == Status.COMPLETED
    assert len(fake.created) == 1 and len(gets(fake)) == 3


# Results ------------------------------------------------------------------------------------


def test_an_expired_result_link_skips_that_image_and_keeps_the_others(fake, team, alice):
    fake.fault("result", "expired")
    task = run_until_final(make_task(team, alice, n=2))
    assert task.status == Status.COMPLETED
    assert task.images.count() == 1 and task.final_cost == Decimal("0.0222")
    assert task.error_message == "1 of 2 images could not be downloaded from the provider."


@pytest.mark.parametrize("fault", ["truncated", "huge", "bomb", "wrong-type"])
def test_a_result_that_is_not_a_whole_safe_image_is_not_stored(fault, fake, team, alice, settings):
    settings.MAX_RESULT_BYTES = 4 * 1024 * 1024
    fake.fault("result", fault)
    task = run_until_final(make_task(team, alice))
    assert task.status == Status.FAILED and task.error_code == "download_failed"
    assert task.error_message == "The provider finished, but none of its images could be downloaded. Retry the task."
    assert stored_results(settings) == [] and task.final_cost == 0


@pytest.mark.parametrize("via", [[301], [302, 307], [301, 302, 307, 302]])
def test_result_links_that_redirect_are_followed_to_the_image(via, fake, team, alice, settings):
    fake.fault("result", "redirect", times=2, via=via)
    task = run_until_final(make_task(team, alice, prompt="Behind a CDN", n=2))
    assert task.status == Status.COMPLETED and task.images.count() == 2
    hops = [r.path for r in fake.received if r.path.startswith("/hops/")]
    assert len(hops) == 2 * len(via)
    assert all(image.width == 1024 and image.format == "PNG" for image in task.images.all())


def test_a_redirect_loop_is_not_followed_forever_and_the_image_is_reported_lost(fake, team, alice):
    fake.fault("result", "redirect-loop")
    task = run_until_final(make_task(team, alice, prompt="Lost in a loop", n=2))
    assert task.status == Status.COMPLETED and task.images.count() == 1
    assert "1 of 2 images could not be downloaded" in task.error_message
    assert len([r for r in fake.received if r.path.startswith("/loop/")]) <= 3


def test_a_redirect_to_a_page_that_is_not_an_image_stores_nothing(fake, team, alice, settings):
    fake.fault("result", "redirect-html")
    task = run_until_final(make_task(team, alice, prompt="Expired page"))
    assert task.status == Status.FAILED and task.error_code == "download_failed"
    assert stored_results(settings) == []


def test_too_many_redirects_are_refused(fake, team, alice):
    fake.fault("result", "redirect", via=[302] * 7)
    task = run_until_final(make_task(team, alice, prompt="Seven hops"))
    assert task.status == Status.FAILED and task.error_code == "download_failed"
    assert len([r for r in fake.received if r.path.startswith("/hops/")]) == 5


def test_a_redirect_to_an_internal_address_is_refused_without_connecting(fake, team, alice, monkeypatch):
    attempted = []
    real_connect = socket.create_connection

    def guarded(address, *args, **kwargs):
        attempted.append(address[0])
        assert address[0] in ("127.0.0.1", "::1"), f"connected to {address[0]}"
        return real_connect(address, *args, **kwargs)

    monkeypatch.setattr(socket, "create_connection", guarded)
    fake.fault("result", "redirect-to", location="http://169.254.169.254/latest/meta-data/")
    task = run_until_final(make_task(team, alice, prompt="To the metadata service"))
    assert task.status == Status.FAILED and task.error_code == "download_failed"
    assert set(attempted) == {"127.0.0.1"}


def test_bytes_are_capped_over_the_whole_redirect_chain(fake, team, alice, settings):
    first = run_until_final(make_task(team, alice, prompt="Measure"))
    # Room for any of the fake's images (their sizes vary by a few kB with their labels), but not
    # for four 16 kB redirect pages in front of one.
    settings.MAX_RESULT_BYTES = first.images.get().bytes + 8_000
    direct = run_until_final(make_task(team, alice, prompt="Direct"))
    fake.fault("result", "redirect", via=[302] * 4, page_bytes=16_000)
    chained = run_until_final(make_task(team, alice, prompt="Through four redirects"))
    assert direct.status == Status.COMPLETED
    assert chained.status == Status.FAILED and chained.error_code == "download_failed"


def test_a_result_server_error_is_retried_later(fake, team, alice):
    fake.fault("result", 502)
    task = run_until_final(make_task(team, alice))
    assert task.status == Status.COMPLETED and task.images.count() == 1
    assert len(fake.calls("/results/")) == 2


# The file service ---------------------------------------------------------------------------


def test_a_full_file_service_is_retried_and_then_fails_with_a_plain_reason(fake, team, alice, settings):
    settings.TASK_MAX_RETRIES = 1
    fake.fault("upload", "quota", times=None)
    task = run_until_final(make_task(team, alice, references=[make_reference()]))
    assert task.status == Status.FAILED and task.error_code == "file_quota"
    assert task.error_message.startswith("EvoLink's file storage for this account is full")
    assert fake.created == [] and fake.uploads == []


def test_a_full_file_service_recovers_once_files_are_freed(fake, team, alice):
    fake.max_files = 0
    task = make_task(team, alice, references=[make_reference()])
    pipeline.advance(task.pk)
    task.refresh_from_db()
    assert task.status == Status.QUEUED and task.error_code == "file_quota"
    fake.max_files = 100
    task = run_until_final(task)
    assert task.status == Status.COMPLETED and len(fake.uploads) == 1


def test_a_refused_reference_fails_the_task(fake, team, alice):
    fake.fault("upload", 400, message="Unsupported file type")
    task = run_until_final(make_task(team, alice, references=[make_reference()]))
    assert task.status == Status.FAILED and task.error_code == "file_rejected"
    assert task.error_message == "EvoLink's file service refused a reference image. It said: “Unsupported file type”"


# Small contracts ----------------------------------------------------------------------------


def test_the_credit_balance_is_read(fake):
    fake.credits = 1095.3996
    assert evolink.EvoLinkProvider().credits() == {"user": 1095.3996, "images": 684, "token": None}


@pytest.mark.parametrize(
    "header,seconds", [("7", 7.0), ("0", 0.0), ("99999", 600.0), ("soon", None), (None, None)]
)
def test_retry_after_is_read_as_seconds_and_capped(header, seconds):
    assert http.retry_after(header) == seconds


def test_retry_after_may_be_an_http_date():
    when = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 30))
    assert 28 <= http.retry_after(when) <= 31


@pytest.mark.django_db(transaction=True)
def test_no_request_is_made_inside_a_database_transaction(fake, team, alice, monkeypatch):
    seen = []
    original = httpx.Client.send

    def spy(self, request, **kwargs):
        seen.append((request.method, request.url.path, connection.in_atomic_block))
        return original(self, request, **kwargs)

    monkeypatch.setattr(httpx.Client, "send", spy)
    task = run_until_final(make_task(team, alice, n=2, references=[make_reference()]))

    assert task.status == Status.COMPLETED
    paths = {path.split("/")[2] if path.startswith("/v1/") else path.split("/")[1] for _, path, _ in seen}
    assert {"images", "tasks", "api", "results"} <= paths  # create, poll, file service, download
    assert not [call for call in seen if call[2]]


# The lease around slow steps ------------------------------------------------------------------


def refs(count):
    colours = ["red", "green", "blue", "orange", "purple", "teal"]
    return [make_reference(colour=colours[i % len(colours)]) for i in range(count)]


def in_thread(function, *args):
    """Runs function in a thread with its own database connection, as a second worker would."""
    from django.db import connections

    def run():
        try:
            function(*args)
        finally:
            connections.close_all()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def wait_for_lease(task):
    deadline = time.monotonic() + 5
    while not GenerationTask.objects.filter(pk=task.pk).exclude(lease_token="").exists():
        assert time.monotonic() < deadline, "the first worker never took the task"
        time.sleep(0.01)


@pytest.mark.django_db(transaction=True)
def test_slow_reference_uploads_keep_the_lease_so_a_second_worker_never_creates_the_task_twice(
    fake, team, alice, settings
):
    settings.TASK_LEASE_SECONDS = 2
    fake.slow_seconds = 0.7
    fake.fault("upload", "slow", times=4)  # 2.8 s of uploads: longer than one lease
    task = make_task(team, alice, references=refs(4))
    first = in_thread(pipeline.advance, task.pk)
    wait_for_lease(task)
    while first.is_alive():  # a second worker keeps trying to take the same task
        pipeline.advance(task.pk)
        time.sleep(0.1)
    first.join()
    task = run_until_final(task)
    assert task.status == Status.COMPLETED
    assert len(fake.created) == 1
    assert len(fake.uploads) == 4


@pytest.mark.django_db(transaction=True)
def test_a_worker_whose_lease_was_taken_stops_before_paying(fake, team, alice, settings):
    upload_answers = threading.Event()
    fake.fault("upload", "hold", until=upload_answers)  # the first upload waits until the takeover
    task = make_task(team, alice, references=refs(3))
    first = in_thread(pipeline.advance, task.pk)
    wait_for_lease(task)
    # As if the first worker had stalled past its lease and another worker had taken the task over.
    GenerationTask.objects.filter(pk=task.pk).update(
        lease_until=timezone.now() + timedelta(minutes=1), lease_token="second-worker"
    )
    upload_answers.set()
    first.join()
    assert fake.created == []  # the first worker noticed at its next step and did not create
    # …and took back the file its late upload left at the provider: the new holder sends its own.
    assert [upload["file_id"] for upload in fake.uploads] == fake.deleted
    assert not task.references.exclude(upstream_file_id="").exists()
    GenerationTask.objects.filter(pk=task.pk).update(lease_until=None, lease_token="")
    task = run_until_final(task)
    assert task.status == Status.COMPLETED and len(fake.created) == 1


@pytest.mark.django_db
def test_a_task_taken_over_right_after_its_lease_was_taken_is_not_adopted(team, alice):
    # The window between take_lease() and the first re-read: re-reading the row must not hand
    # this worker the other worker's token (it would then extend, use and release their lease).
    task = make_task(team, alice)
    assert task.take_lease()
    own = task.lease_token
    GenerationTask.objects.filter(pk=task.pk).update(
        lease_until=timezone.now() + timedelta(minutes=1), lease_token="second-worker"
    )
    with pytest.raises(LeaseLost):
        task.reload()
    assert task.lease_token == own
    task.release_lease()
    assert GenerationTask.objects.get(pk=task.pk).lease_token == "second-worker"
