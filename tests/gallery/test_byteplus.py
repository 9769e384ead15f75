"""The BytePlus ModelArk client against its fake on a real socket: one synchronous call, base64
references, its error codes mapped to sentences, and the pipeline storing what it answered."""

import io
import time
from decimal import Decimal
from pathlib import Path

import pytest
from PIL import Image

from gallery import pipeline
from gallery.forms.studio import CheckedReference
from gallery.images.decode import inspect_image
from gallery.models import Status
from gallery.providers import ProviderError, byteplus
from gallery.providers.base import FINAL_CODES
from tests.factories import make_reference, make_task, run_until_final
from tests.fakes.byteplus import FakeBytePlus


@pytest.fixture
def fake(settings):
    settings.EVOLINK_API_KEY = ""
    with FakeBytePlus() as server:
        server.use_in(settings)
        yield server


def files_under(settings, folder):
    root = Path(settings.MEDIA_ROOT) / folder
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def test_a_task_runs_in_one_call_and_its_images_are_stored_at_once(fake, team, alice, settings):
    task = make_task(team, alice, prompt="Two kites", n=2, size="16:9")
    assert task.provider == "byteplus" and task.price_per_image == Decimal("0.03")

    pipeline.advance(task.pk)  # the one call, and the images stored right after it
    task.refresh_from_db()
    assert task.status == Status.COMPLETED and task.submitted_at <= task.storing_at
    task = run_until_final(task)

    assert task.status == Status.COMPLETED
    assert task.final_cost == Decimal("0.06")
    assert [(i.width, i.height) for i in task.images.order_by("index")] == [(1312, 736)] * 2
    assert len(files_under(settings, "results")) == 4
    assert fake.created == [
        {
            "model": "seedream-4-0-250828",
            "prompt": "Two kites\n\nGenerate 2 different images.",
            "size": "1312x736",
            "sequential_image_generation": "auto",
            "sequential_image_generation_options": {"max_images": 2},
            "optimize_prompt_options": {"mode": "standard"},
            "response_format": "url",
            "watermark": False,
            "stream": False,
        }
    ]
    request = fake.received[0]
    assert request.headers["authorization"] == "Bearer bp-fake-key"
    assert request.headers["user-agent"].startswith("SeedreamStudio/")


def test_auto_size_sends_only_the_resolution_and_one_image_is_not_a_sequence(fake, team, alice):
    task = run_until_final(make_task(team, alice, size="auto", quality="2K", priority="fast"))
    assert task.status == Status.COMPLETED
    sent = fake.created[0]
    assert sent["size"] == "2K" and sent["sequential_image_generation"] == "disabled"
    assert "sequential_image_generation_options" not in sent
    assert sent["optimize_prompt_options"] == {"mode": "fast"}


def test_a_custom_size_is_sent_as_width_x_height(fake, team, alice):
    task = run_until_final(make_task(team, alice, custom_size=(1600, 900)))
    assert fake.created[0]["size"] == "1600x900"
    assert (task.images.get().width, task.images.get().height) == (1600, 900)


def test_references_travel_as_data_uris_without_metadata_and_local_copies_are_removed(fake, team, alice, settings):
    exif = Image.Exif()
    exif.get_ifd(0x8825)[2] = (48.0, 51.0, 0.0)
    webp = io.BytesIO()
    source = Image.new("RGB", (80, 60), "teal")
    source.save(webp, "WEBP", lossless=True, exif=exif.tobytes())
    ref = CheckedReference(name="a.webp", data=webp.getvalue(), info=inspect_image(webp.getvalue()))

    task = run_until_final(make_task(team, alice, references=[ref, make_reference()]))

    assert task.status == Status.COMPLETED
    assert fake.created[0]["image"][0].startswith("data:image/png;base64,")
    assert [r["content_type"] for r in fake.references] == ["image/png", "image/png"]
    with Image.open(io.BytesIO(fake.references[0]["data"])) as sent:
        assert not sent.getexif() and sent.convert("RGB").tobytes() == source.tobytes()
    assert files_under(settings, "byteplus") == []  # deleted once the task is final


def test_fewer_images_than_n_is_billed_by_images_produced(fake, team, alice):
    task = run_until_final(make_task(team, alice, prompt="Cats [byteplus:fewer=1]", n=3))
    assert task.status == Status.COMPLETED
    assert task.images.count() == 1 and task.final_cost == Decimal("0.03")


def test_no_funds_fails_the_task_and_tells_an_owner_to_top_up(fake, team, alice, settings):
    fake.fault("create", 403, code="AccountOverdueError")
    task = run_until_final(make_task(team, alice, references=[make_reference()]))
    assert task.status == Status.FAILED and task.retries == 0
    assert task.error_code == "insufficient_quota_error"
    assert task.error_message == byteplus.NO_FUNDS
    assert task.final_cost == 0 and files_under(settings, "byteplus") == []


@pytest.mark.parametrize(
    "status,code,error_code,words",
    [
        (401, "AuthenticationError", "authentication_error", "check BYTEPLUS_API_KEY"),
        (403, "AccessDenied", "permission_error", "enable the model in the ModelArk console"),
        (404, "InvalidEndpointOrModel.NotFound", "not_found_error", "activate the model"),
        (400, "InvalidParameter", "invalid_parameters", "BytePlus said: “size is not valid"),
    ],
)
def test_final_errors_fail_the_task_with_a_sentence(status, code, error_code, words, fake, team, alice):
    fake.fault("create", status, code=code, message="size is not valid.")
    task = run_until_final(make_task(team, alice))
    assert task.status == Status.FAILED and task.retries == 0
    assert task.error_code == error_code and words in task.error_message
    assert len(fake.created) == 1 and not task.images.exists()


@pytest.mark.parametrize("marker", ["[byteplus:sensitive]", "[byteplus:blocked]"])
def test_a_blocked_prompt_or_result_fails_with_the_safety_sentence(marker, fake, team, alice):
    task = run_until_final(make_task(team, alice, prompt=f"x {marker}"))
    assert task.status == Status.FAILED
    assert (task.error_code, task.error_message) == ("content_policy_violation", FINAL_CODES["content_policy_violation"])


@pytest.mark.parametrize("status", [429, 500, 503])
def test_passing_errors_are_retried(status, fake, team, alice):
    fake.fault("create", status, retry_after="1" if status == 429 else None)
    task = run_until_final(make_task(team, alice))
    assert task.status == Status.COMPLETED and task.retries == 1
    assert len(fake.created) == 2


def test_a_slow_answer_times_out_and_is_retried(fake, team, alice, monkeypatch):
    monkeypatch.setattr(byteplus, "CALL_DEADLINE", 0.3)
    fake.slow_seconds = 1.5
    fake.fault("create", "slow")
    task = make_task(team, alice)
    started = time.monotonic()
    pipeline.advance(task.pk)
    assert time.monotonic() - started < 1.4
    task.refresh_from_db()
    assert (task.status, task.error_message) == (Status.QUEUED, "BytePlus did not answer in time. Trying again…")
    assert run_until_final(task).status == Status.COMPLETED


def test_an_unreadable_answer_is_retried(fake, team, alice):
    fake.fault("create", "garbage")
    task = make_task(team, alice)
    pipeline.advance(task.pk)
    task.refresh_from_db()
    assert task.error_code == "invalid_response" and "could not read" in task.error_message
    assert run_until_final(task).status == Status.COMPLETED


def test_what_create_answered_is_stored_and_nothing_is_followed(fake, team, alice):
    task = make_task(team, alice)
    pipeline.advance(task.pk)
    task.refresh_from_db()
    assert task.status == Status.COMPLETED and len(task.result_urls) == 1
    assert [r.method for r in fake.received if r.path.startswith("/api/v3/")] == ["POST"]
    with pytest.raises(ProviderError) as error:
        byteplus.BytePlusProvider().get(task.upstream_id)
    assert error.value.code == "resource_not_found" and not error.value.retryable


def test_the_call_may_last_the_task_lease_less_a_margin(fake, team, alice, settings, monkeypatch):
    from gallery import netguard

    settings.TASK_LEASE_SECONDS = 120
    seen = []
    original = netguard.request
    monkeypatch.setattr(netguard, "request", lambda *a, **k: seen.append(k["deadline_seconds"]) or original(*a, **k))
    run_until_final(make_task(team, alice))
    assert seen == [110.0]
