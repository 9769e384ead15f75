"""POST /v1/images/generations and GET /v1/tasks/{id} over the Django test client (SPEC §5): the
upstream's body and task object, the studio form's rules per model, errors in the upstream's
shape with nothing created, idempotency, rate limits, other teams' tasks and the signed results."""

import threading
import uuid

import pytest
from django.db import connection
from django.test import Client

from gallery import pipeline
from gallery.models import GenerationTask, ReferenceImage
from tests.factories import image_bytes, make_task, png_bytes, run_until_final
from tests.gallery.api_kit import ApiClient, assert_error, data_uri, make_key

BODY = {"model": "doubao-seedream-4.0", "prompt": "A red fox reading a newspaper", "n": 2, "size": "1:1",
        "quality": "1K"}


def nothing_created():
    return GenerationTask.objects.count() == 0 and ReferenceImage.objects.count() == 0


def test_it_creates_a_task_and_answers_with_the_upstream_task_object(api, key, team, alice):
    response = api.post("/v1/images/generations", BODY)

    assert response.status_code == 200
    obj = response.json()
    task = GenerationTask.objects.get()
    assert obj == {
        "created": int(task.created_at.timestamp()),
        "id": str(task.pk),
        "model": "doubao-seedream-4.0",
        "object": "image.generation.task",
        "progress": 0,
        "status": "pending",
        "task_info": {"can_cancel": True, "estimated_time": 45},
        "type": "image",
        "usage": {"billing_rule": "per_call", "credits_reserved": 0.0, "user_group": "default"},
    }
    assert task.team == team and task.api_key == key[0] and task.created_by == alice
    # The prompt goes upstream as the script wrote it: no "Generate 2 different images." added.
    assert task.sent_prompt == task.prompt == BODY["prompt"]
    assert (task.n, task.size, task.quality, task.priority) == (2, "1:1", "1K", "standard")


def test_a_task_polled_to_the_end_gives_signed_links_that_work_without_a_session(api):
    task_id = api.post("/v1/images/generations", BODY).json()["id"]
    run_until_final(GenerationTask.objects.get(pk=task_id))

    first = api.get(f"/v1/tasks/{task_id}").json()
    assert first["status"] == "completed" and first["progress"] == 100 and len(first["results"]) >= 1
    assert first["task_info"]["can_cancel"] is False
    anonymous = Client()
    image = anonymous.get(first["results"][0])
    assert image.status_code == 200 and image["Content-Type"] == "image/png"
    assert b"".join(image.streaming_content).startswith(b"\x89PNG")


def test_results_links_are_renewed_on_every_get_and_a_forged_one_is_404(api, settings):
    task_id = api.post("/v1/images/generations", BODY).json()["id"]
    run_until_final(GenerationTask.objects.get(pk=task_id))
    link = api.get(f"/v1/tasks/{task_id}").json()["results"][0]
    import time
    from unittest import mock

    # Signatures carry the second they were made: a GET a second later gets a new link (the
    # clock is moved, not waited for).
    with mock.patch("time.time", return_value=time.time() + 1.5):
        assert api.get(f"/v1/tasks/{task_id}").json()["results"][0] != link
    token = link.rsplit("/", 1)[1]
    forged = token[:-6] + ("A" if token[-6] != "A" else "B") + token[-5:]
    assert Client().get(f"/v1/results/{forged}").status_code == 404
    assert Client().get("/v1/results/12.png").status_code == 404
    settings.API_RESULT_URL_DAYS = 1

    with mock.patch("time.time", return_value=time.time() + 2 * 86400):
        assert Client().get(link.split("testserver", 1)[1]).status_code == 404  # expired


def test_failed_and_cancelled_tasks_carry_an_error_object(api):
    failed = api.post("/v1/images/generations", {**BODY, "prompt": "No [sandbox:fail=content_policy_violation]"}).json()
    run_until_final(GenerationTask.objects.get(pk=failed["id"]))
    obj = api.get(f"/v1/tasks/{failed['id']}").json()
    assert obj["status"] == "failed" and obj["error"]["code"] == "content_policy_violation"
    assert obj["error"]["message"]

    cancelled = GenerationTask.objects.get(pk=api.post("/v1/images/generations", BODY).json()["id"])
    pipeline.cancel(cancelled)
    obj = api.get(f"/v1/tasks/{cancelled.pk}").json()
    assert obj["status"] == "failed" and obj["error"]["code"] == "request_cancelled"


def test_another_teams_task_is_404_and_so_is_an_unknown_or_malformed_id(api, rival_api, team, alice):
    mine = make_task(team, alice)
    assert_error(rival_api.get(f"/v1/tasks/{mine.pk}"), 404, "id")
    assert_error(api.get(f"/v1/tasks/{uuid.uuid4()}"), 404)
    assert_error(api.get("/v1/tasks/task-unified-1757165031-seedream4d"), 404)
    assert api.get(f"/v1/tasks/{mine.pk}").status_code == 200


def test_the_models_own_rules_apply_each_with_its_message(api):
    cases = [
        ({"model": "doubao-seedream-4.5", "quality": "1K"}, "quality", "Seedream 4.5 has no 1K"),
        ({"model": "doubao-seedream-4.5", "quality": "2K", "prompt_priority": "fast"}, "prompt_priority", "only the standard"),
        ({"model": "doubao-seedream-5.0-lite", "quality": "4K"}, "quality", "no 4K"),
        ({"model": "doubao-seedream-5.0-pro", "n": 2, "quality": "1K"}, "n", "one image per task"),
        ({"model": "doubao-seedream-4.0", "model_params": {"watermark": True}}, "model_params.watermark", "5.0 Pro only"),
        ({"model": "doubao-seedream-4.0", "model_params": {"tools": [{"type": "web_search"}]}}, "model_params.tools", "web search"),
        ({"model": "doubao-seedream-4.0", "size": "100x100"}, "size", "custom sizes of 921,600"),
        ({"model": "doubao-seedream-4.0", "prompt": "x" * 2001}, "prompt", "at most 2,000"),
        ({"model": "doubao-seedream-5.0-pro", "n": 1, "quality": "1K", "model_params": {"background": "transparent"}},
         "model_params.background", "exactly one PNG"),
    ]
    for change, param, words in cases:
        assert_error(api.post("/v1/images/generations", {**BODY, **change}), 400, param, words)
    assert nothing_created()


@pytest.mark.parametrize(
    ("body", "param", "words"),
    [
        ([1, 2], None, "JSON object"),
        ({"prompt": "  "}, "prompt", "Write a prompt"),
        ({"prompt": 5}, "prompt", "string"),
        ({"prompt": "a\x00b"}, "prompt", "control character"),
        ({**BODY, "model": "dall-e-3"}, "model", "Unknown model"),
        ({**BODY, "n": 0}, "n", "between 1 and 15"),
        ({**BODY, "n": "2"}, "n", "between 1 and 15"),
        ({**BODY, "n": True}, "n", "between 1 and 15"),
        ({**BODY, "n": 10**30}, "n", "between 1 and 15"),
        ({**BODY, "size": "7:5"}, "size", "WIDTHxHEIGHT"),
        ({**BODY, "size": "99999x99999"}, "size", None),
        ({**BODY, "quality": "8K"}, "quality", "quality"),
        ({**BODY, "prompt_priority": "urgent"}, "prompt_priority", "standard or fast"),
        ({**BODY, "image_urls": "https://example.com/a.png"}, "image_urls", "list"),
        ({**BODY, "image_urls": [data_uri()] * 11}, "image_urls", "limit is 10"),
        ({**BODY, "n": 6, "image_urls": [data_uri()] * 10}, "n", "at most 5 images"),
        ({**BODY, "image_urls": ["ftp://example.com/a.png"]}, "image_urls[0]", "not ftp"),
        ({**BODY, "image_urls": ["data:image/png;base64,!!!"]}, "image_urls[0]", "not valid base64"),
        ({**BODY, "image_urls": ["https://example.com/api/v1/files/content/forged.png"]}, None, None),
        ({**BODY, "callback_url": "ftp://example.com/hook"}, "callback_url", "not ftp"),
        ({**BODY, "callback_url": "https://example.com/" + "a" * 2100}, "callback_url", "at most 2,048"),
        ({**BODY, "callback_url": "https://10.0.0.1/hook"}, "callback_url", "private network"),
        ({**BODY, "callback_url": 7}, "callback_url", "string"),
        ({**BODY, "model_params": []}, "model_params", "object"),
        ({**BODY, "model_params": {"seed": 1}}, "model_params.seed", "no 'seed'"),
        ({**BODY, "model_params": {"output_format": "gif"}}, "model_params.output_format", "png or jpeg"),
    ],
)
def test_bad_input_is_a_400_in_the_upstreams_shape_and_creates_nothing(api, body, param, words, settings):
    settings.ALLOW_HTTP_URLS = False
    settings.ALLOW_LOOPBACK_URLS = False
    response = api.post("/v1/images/generations", body)
    if param is None and words is None:
        # A URL that only looks like one of ours is an ordinary https URL, fetched later by the worker.
        assert response.status_code == 200
        return
    assert_error(response, 400, param, words or "")
    assert nothing_created()


def test_reference_images_break_the_upload_rules_with_the_right_status(api):
    gif = image_bytes(64, 48, "PNG")
    import io

    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (40, 40)).save(out, "GIF")
    assert_error(api.post("/v1/images/generations", {**BODY, "image_urls": [data_uri(out.getvalue(), "image/gif")]}),
                 415, "image_urls[0]", "GIF")
    assert_error(api.post("/v1/images/generations", {**BODY, "image_urls": [data_uri(b"<html>", "image/png")]}),
                 415, "image_urls[0]", "not an image")
    assert_error(api.post("/v1/images/generations", {**BODY, "image_urls": [data_uri(png_bytes(300, 40))]}),
                 400, "image_urls[0]", "too narrow")
    big = b"\x89PNG" + b"\0" * (10 * 2**20 + 10)
    assert_error(api.post("/v1/images/generations", {**BODY, "image_urls": [data_uri(big)]}), 413, "image_urls[0]")
    assert gif and nothing_created()


def test_data_uri_references_are_stored_in_order(api):
    urls = [data_uri(png_bytes(64, 48, "red")), data_uri(png_bytes(48, 64, "blue"))]
    task_id = api.post("/v1/images/generations", {**BODY, "n": 1, "image_urls": urls}).json()["id"]
    refs = list(GenerationTask.objects.get(pk=task_id).references.all())
    assert [(r.position, r.width, r.height) for r in refs] == [(0, 64, 48), (1, 48, 64)]


def test_a_body_that_is_not_json_is_415_or_400(api):
    assert_error(api.post("/v1/images/generations", raw_body="prompt=hi", content_type="application/x-www-form-urlencoded"), 415)
    assert_error(api.post("/v1/images/generations", raw_body="{not json"), 400, None, "not valid JSON")
    assert_error(api.post("/v1/images/generations", raw_body=b"\xff\xfe"), 400)
    assert nothing_created()


def test_a_body_over_the_request_limit_is_413_in_the_upstreams_shape(api):
    response = api.client.post("/v1/images/generations", data=b"{}", content_type="application/json",
                               headers=api.headers(), CONTENT_LENGTH=str(200 * 2**20))
    assert_error(response, 413)


def test_wrong_methods_are_405(api):
    assert_error(api.get("/v1/images/generations"), 405)
    assert_error(api.post("/v1/credits", {}), 405)


def test_a_budget_refusal_is_402_and_creates_nothing(api, team, settings):
    from decimal import Decimal

    from gallery.models import Charge

    settings.PRICE_OVERRIDES = {"sandbox": Decimal("0.03")}
    team.monthly_budget = Decimal("0.05")  # two images at $0.03 do not fit
    team.save()
    error = assert_error(api.post("/v1/images/generations", BODY), 402, None, "left of its $0.05 budget")
    assert error["type"] == "insufficient_quota_error"
    assert nothing_created() and not Charge.objects.exists()
    assert api.post("/v1/images/generations", {**BODY, "n": 1}).status_code == 200  # one fits


def test_a_storage_failure_is_503_not_500(api, monkeypatch):
    def broken(*args, **kwargs):
        raise pipeline.StorageUnavailable("The studio could not save your reference images just now.")

    monkeypatch.setattr(pipeline, "submit_all", broken)
    assert_error(api.post("/v1/images/generations", BODY), 503)


def test_a_model_no_provider_serves_is_400(api):
    # EvoLink's price for 5.0 Pro is unpublished, but the sandbox serves it: make it unpriced everywhere.
    from django.test import override_settings

    with override_settings(EVOLINK_API_KEY="sk-evo-x", PRICE_OVERRIDES={}):
        response = api.post("/v1/images/generations", {**BODY, "model": "doubao-seedream-5.0-pro", "n": 1})
    assert_error(response, 400, "model", "No provider")
    assert nothing_created()


def test_an_unexpected_error_is_a_json_500_never_an_html_page(api, monkeypatch):
    def bug(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(pipeline, "submit_all", bug)
    response = api.post("/v1/images/generations", BODY)
    assert_error(response, 500)
    assert response["Content-Type"] == "application/json"


# Idempotency ------------------------------------------------------------------------------------


def test_a_retry_with_the_same_key_and_body_gets_the_first_answer(api):
    headers = {"Idempotency-Key": "batch-7-item-1"}
    first = api.post("/v1/images/generations", BODY, headers=headers)
    # The same JSON spelled differently is the same body.
    again = api.post("/v1/images/generations", raw_body='{"quality":"1K","size":"1:1","n":2,"prompt":"A red fox reading '
                     'a newspaper","model":"doubao-seedream-4.0"}', headers=headers)
    assert first.status_code == again.status_code == 200
    assert again.json() == first.json() and again["Idempotent-Replayed"] == "true"
    assert GenerationTask.objects.count() == 1


def test_the_same_key_with_another_body_is_422(api):
    headers = {"Idempotency-Key": "k1"}
    api.post("/v1/images/generations", BODY, headers=headers)
    assert_error(api.post("/v1/images/generations", {**BODY, "n": 3}, headers=headers), 422, "Idempotency-Key")
    assert GenerationTask.objects.count() == 1


def test_a_retry_while_the_first_is_in_flight_is_409(api, key):
    from gallery.api import idempotency

    idempotency.begin(key[0], "k2", idempotency.body_digest(b'{"prompt": "x"}'))
    response = api.post("/v1/images/generations", {"prompt": "x"}, headers={"Idempotency-Key": "k2"})
    assert_error(response, 409, "Idempotency-Key")
    assert response["Retry-After"] == "1"
    assert GenerationTask.objects.count() == 0


def test_a_refused_request_keeps_nothing_so_the_fixed_one_may_use_the_key(api):
    headers = {"Idempotency-Key": "k3"}
    assert_error(api.post("/v1/images/generations", {**BODY, "n": 99}, headers=headers), 400)
    assert api.post("/v1/images/generations", {**BODY, "n": 99}, headers=headers).status_code == 400
    assert api.post("/v1/images/generations", BODY, headers=headers).status_code == 200


def test_keys_are_per_api_key_and_expire_after_a_day(api, team, alice):
    from datetime import timedelta

    from django.utils import timezone

    from gallery.models import IdempotencyRecord

    headers = {"Idempotency-Key": "daily"}
    api.post("/v1/images/generations", BODY, headers=headers)
    other = ApiClient(make_key(team, alice, "Other")[1])
    other.post("/v1/images/generations", BODY, headers=headers)
    assert GenerationTask.objects.count() == 2
    IdempotencyRecord.objects.update(created_at=timezone.now() - timedelta(hours=25))
    api.post("/v1/images/generations", BODY, headers=headers)
    assert GenerationTask.objects.count() == 3


def test_a_malformed_idempotency_key_is_400(api):
    assert_error(api.post("/v1/images/generations", BODY, headers={"Idempotency-Key": "x" * 256}), 400,
                 "Idempotency-Key")
    assert_error(api.post("/v1/images/generations", BODY, headers={"Idempotency-Key": "naïve"}), 400)


@pytest.mark.django_db(transaction=True)
def test_concurrent_identical_posts_create_exactly_one_task(team, alice):
    raw = make_key(team, alice)[1]
    barrier = threading.Barrier(4)
    answers = []

    def post():
        try:
            client = ApiClient(raw)
            barrier.wait()
            response = client.post("/v1/images/generations", BODY, headers={"Idempotency-Key": "same"})
            answers.append((response.status_code, response.json()))
        finally:
            connection.close()

    threads = [threading.Thread(target=post) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert GenerationTask.objects.count() == 1
    task_id = str(GenerationTask.objects.get().pk)
    assert sorted(status for status, _ in answers) in ([200] * 4, *[[200] * k + [409] * (4 - k) for k in range(1, 4)])
    assert all(body["id"] == task_id for status, body in answers if status == 200)


# Rate limit and credits --------------------------------------------------------------------------


def test_the_rate_limit_per_key_is_429_with_retry_after(api, rival_api, settings):
    settings.API_RATE_LIMIT_PER_MINUTE = 3
    for _ in range(3):
        assert api.get("/v1/credits").status_code == 200
    response = api.get("/v1/credits")
    error = assert_error(response, 429, None, "at most 3 a minute")
    # A sliding minute, counted in 1 s sub-windows (the newest counted whole): at most 61 s.
    assert error["type"] == "rate_limit_error" and 1 <= int(response["Retry-After"]) <= 61
    assert rival_api.get("/v1/credits").status_code == 200  # another key has its own count


def test_credits_report_the_months_spend_in_the_upstreams_shape(api, team, alice, settings):
    settings.PRICE_OVERRIDES = {"sandbox": __import__("decimal").Decimal("0.05")}
    make_task(team, alice, n=2)
    body = api.get("/v1/credits").json()
    assert body["success"] is True
    assert body["data"]["user"]["used_credits"] == pytest.approx(0.10)
    assert body["data"]["user"]["unlimited_credits"] is True and body["data"]["user"]["remaining_credits"] > 0
    assert body["data"]["token"]["unlimited_credits"] is True


def test_credits_report_what_is_left_of_a_budget(api, team, alice, settings):
    from decimal import Decimal

    settings.PRICE_OVERRIDES = {"sandbox": Decimal("2.5")}
    team.monthly_budget = Decimal(10)
    team.save()
    make_task(team, alice, n=3)
    user = api.get("/v1/credits").json()["data"]["user"]
    assert user["remaining_credits"] == 2.5 and user["used_credits"] == 7.5 and user["unlimited_credits"] is False
