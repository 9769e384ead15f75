"""Callbacks to callback_url (SPEC §5): an outbox row with the final state, signed the Standard
Webhooks way (checked with the `standardwebhooks` reference verifier), delivered at least once
with retries, 410 and redirects handled, every attempt on the API page, and redelivery."""

import json
import time
from datetime import timedelta

import pytest
from django.utils import timezone
from standardwebhooks import Webhook

from gallery import pipeline, sweeper, webhooks
from gallery.models import CallbackAttempt, CallbackDelivery, Delivery, GenerationTask, Status
from tests.factories import run_until_final
from tests.fakes.server import FakeServer
from tests.gallery.api_kit import make_key

BODY = {"prompt": "A lighthouse at dusk", "size": "1:1", "quality": "1K"}


class Receiver(FakeServer):
    """Answers each callback with the next status of `statuses` (then the last one again)."""

    def __init__(self, *statuses, location=None, delay=0):
        super().__init__()
        self.statuses = list(statuses) or [200]
        self.location, self.delay = location, delay
        self.routes["/hook"] = self.answer
        self.routes["/elsewhere"] = self.answer

    def answer(self, handler):
        status = self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0]
        time.sleep(self.delay)
        handler.send_response(status)
        if self.location:
            handler.send_header("Location", self.location)
        handler.send_header("Content-Length", "2")
        handler.end_headers()
        handler.wfile.write(b"ok")

    @property
    def hooks(self):
        return [r for r in self.received if r.path == "/hook"]


@pytest.fixture
def enqueued(monkeypatch):
    """Jobs the callback code schedules, recorded instead of queued (tests call deliver directly)."""
    jobs = []
    monkeypatch.setattr(webhooks, "enqueue", lambda pk, run_after=None: jobs.append((pk, run_after)))
    return jobs


def finished_task(api, receiver, prompt="A lighthouse at dusk"):
    answer = api.post("/v1/images/generations", {**BODY, "prompt": prompt, "callback_url": f"{receiver.url}/hook"})
    assert answer.status_code == 200, answer.content
    return run_until_final(GenerationTask.objects.get(pk=answer.json()["id"]))


def due_now(delivery):
    CallbackDelivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now())


def test_a_finished_task_writes_its_outbox_row_and_the_callback_arrives_signed(api, key, enqueued):
    with Receiver(200) as receiver:
        task = finished_task(api, receiver)
        delivery = CallbackDelivery.objects.get(task=task)
        assert delivery.state == Delivery.PENDING and delivery.api_key == key[0]
        attempt = webhooks.deliver(delivery.pk)

    assert attempt.succeeded and attempt.status_code == 200 and attempt.duration_ms >= 0
    [hook] = receiver.hooks
    # The reference verifier accepts it with the key's secret, and reads the task object.
    payload = Webhook(key[2]).verify(hook.body, hook.headers)
    assert payload["id"] == str(task.pk) and payload["status"] == "completed" and payload["results"]
    assert hook.headers["webhook-id"] == delivery.webhook_id and hook.headers["content-type"] == "application/json"
    assert abs(int(hook.headers["webhook-timestamp"]) - time.time()) < 60
    delivery.refresh_from_db()
    assert delivery.state == Delivery.DELIVERED and delivery.attempts == 1 and delivery.delivered_at


def test_a_wrong_secret_or_a_changed_body_fails_verification(api, key, team, alice, enqueued):
    from standardwebhooks.webhooks import WebhookVerificationError

    with Receiver(200) as receiver:
        finished_task(api, receiver)
        webhooks.deliver(CallbackDelivery.objects.get().pk)
    [hook] = receiver.hooks
    other_secret = make_key(team, alice, "Other")[2]
    with pytest.raises(WebhookVerificationError):
        Webhook(other_secret).verify(hook.body, hook.headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(key[2]).verify(hook.body.replace(b"completed", b"failed"), hook.headers)


def test_failed_and_cancelled_tasks_call_back_too(api, enqueued):
    with Receiver(200) as receiver:
        failed = finished_task(api, receiver, "No [sandbox:fail=content_policy_violation]")
        cancelled_id = api.post("/v1/images/generations", {**BODY, "callback_url": f"{receiver.url}/hook"}).json()["id"]
        pipeline.cancel(GenerationTask.objects.get(pk=cancelled_id))
        for delivery in CallbackDelivery.objects.all():
            webhooks.deliver(delivery.pk)
    bodies = sorted((json.loads(h.body)["status"], json.loads(h.body)["error"]["code"]) for h in receiver.hooks)
    assert bodies == [("failed", "content_policy_violation"), ("failed", "request_cancelled")]
    assert failed.status == Status.FAILED


def test_a_flaky_receiver_gets_it_at_least_once_after_retries_with_backoff(api, key, enqueued):
    with Receiver(500, 503, 200) as receiver:
        finished_task(api, receiver)
        delivery = CallbackDelivery.objects.get()
        webhooks.deliver(delivery.pk)
        delivery.refresh_from_db()
        assert delivery.state == Delivery.PENDING and delivery.attempts == 1
        wait = delivery.next_attempt_at - timezone.now()
        assert timedelta(seconds=3) < wait <= timedelta(seconds=5)
        assert enqueued[-1] == (delivery.pk, delivery.next_attempt_at)
        assert webhooks.deliver(delivery.pk) is None  # not due yet: nothing sent
        due_now(delivery)
        webhooks.deliver(delivery.pk)
        delivery.refresh_from_db()
        assert timedelta(minutes=4) < delivery.next_attempt_at - timezone.now() <= timedelta(minutes=5)
        due_now(delivery)
        webhooks.deliver(delivery.pk)
    delivery.refresh_from_db()
    assert delivery.state == Delivery.DELIVERED and delivery.attempts == 3
    assert [a.status_code for a in delivery.attempt_log.all()] == [500, 503, 200]
    # Every attempt was the same message, verifiable, with one webhook-id.
    assert len({h.headers["webhook-id"] for h in receiver.hooks}) == 1
    assert len({h.body for h in receiver.hooks}) == 1
    for hook in receiver.hooks:
        Webhook(key[2]).verify(hook.body, hook.headers)


def test_it_gives_up_after_the_whole_schedule(api, enqueued):
    with Receiver(500) as receiver:
        finished_task(api, receiver)
        delivery = CallbackDelivery.objects.get()
        for _ in range(len(webhooks.RETRY_SCHEDULE) + 1):
            due_now(delivery)
            webhooks.deliver(delivery.pk)
        due_now(delivery)
        assert webhooks.deliver(delivery.pk) is None
    delivery.refresh_from_db()
    assert delivery.state == Delivery.FAILED and delivery.attempts == len(webhooks.RETRY_SCHEDULE) + 1 >= 4


def test_410_gone_stops_the_retries(api, enqueued):
    with Receiver(410) as receiver:
        finished_task(api, receiver)
        delivery = CallbackDelivery.objects.get()
        webhooks.deliver(delivery.pk)
    delivery.refresh_from_db()
    assert delivery.state == Delivery.GONE and enqueued == []


def test_a_redirect_is_a_failure_and_is_not_followed(api, enqueued):
    with Receiver(302, location="/elsewhere") as receiver:
        finished_task(api, receiver)
        delivery = CallbackDelivery.objects.get()
        attempt = webhooks.deliver(delivery.pk)
    assert attempt.status_code == 302 and "redirect" in attempt.error
    assert [r.path for r in receiver.received] == ["/hook"]
    delivery.refresh_from_db()
    assert delivery.state == Delivery.PENDING


def test_a_slow_receiver_times_out(api, enqueued, monkeypatch):
    monkeypatch.setattr(webhooks, "TIMEOUT_SECONDS", 0.5)
    with Receiver(200, delay=1.5) as receiver:
        finished_task(api, receiver)
        attempt = webhooks.deliver(CallbackDelivery.objects.get().pk)
    assert attempt.status_code is None and "0.5 seconds" in attempt.error and attempt.duration_ms < 1400


def test_the_outbox_row_and_the_final_state_commit_together(api, monkeypatch, enqueued):
    """If the outbox row cannot be written, the task does not become final either (and the
    worker's step retries): a final task with a callback_url always has its row."""
    with Receiver(200) as receiver:
        answer = api.post("/v1/images/generations", {**BODY, "callback_url": f"{receiver.url}/hook"}).json()
    task = GenerationTask.objects.get(pk=answer["id"])

    def broken(task):
        raise RuntimeError("disk full")

    monkeypatch.setattr(webhooks, "record_final", broken)
    with pytest.raises(RuntimeError):
        pipeline.finish(task, Status.CANCELLED)
    task.refresh_from_db()
    assert task.status == Status.QUEUED and not CallbackDelivery.objects.exists()


def test_the_sweeper_requeues_a_delivery_whose_job_was_lost(api, enqueued, settings):
    settings.SWEEP_GRACE_SECONDS = 30
    with Receiver(200) as receiver:
        finished_task(api, receiver)
    delivery = CallbackDelivery.objects.get()
    CallbackDelivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now() - timedelta(minutes=5))
    enqueued.clear()
    assert sweeper.sweep()["requeued_callbacks"] == 1
    assert enqueued == [(delivery.pk, None)]
    assert sweeper.sweep()["requeued_callbacks"] == 0  # claimed: not enqueued twice


def test_a_rotated_secret_signs_beside_the_old_one_for_a_day(api, key, enqueued):
    new_secret = key[0].rotate_signing_secret()
    with Receiver(200) as receiver:
        finished_task(api, receiver)
        webhooks.deliver(CallbackDelivery.objects.get().pk)
    [hook] = receiver.hooks
    assert len(hook.headers["webhook-signature"].split(" ")) == 2
    Webhook(new_secret).verify(hook.body, hook.headers)
    Webhook(key[2]).verify(hook.body, hook.headers)


def test_the_api_page_shows_every_attempt_and_owners_redeliver(api, client_alice, enqueued):
    with Receiver(500, 200) as receiver:
        finished_task(api, receiver)
        delivery = CallbackDelivery.objects.get()
        webhooks.deliver(delivery.pk)
        page = client_alice.get("/api/").content.decode()
        assert delivery.webhook_id in page and "HTTP 500" in page and " ms" in page

        response = client_alice.post(f"/api/callbacks/{delivery.pk}/redeliver/")
        assert response.status_code == 302
        delivery.refresh_from_db()
        assert delivery.state == Delivery.PENDING and delivery.attempts == 0 and enqueued[-1] == (delivery.pk, None)
        webhooks.deliver(delivery.pk)
    delivery.refresh_from_db()
    assert delivery.state == Delivery.DELIVERED and CallbackAttempt.objects.count() == 2


def test_members_see_callbacks_but_cannot_redeliver_and_other_teams_get_404(api, client, bob, charlie, other_team,
                                                                            enqueued):
    with Receiver(200) as receiver:
        finished_task(api, receiver)
    delivery = CallbackDelivery.objects.get()
    client.force_login(bob, backend="gallery.auth.EmailOrUsernameBackend")
    assert delivery.webhook_id in client.get("/api/").content.decode()
    assert client.post(f"/api/callbacks/{delivery.pk}/redeliver/").status_code == 403
    client.force_login(charlie, backend="gallery.auth.EmailOrUsernameBackend")
    assert delivery.webhook_id not in client.get("/api/").content.decode()
    assert client.post(f"/api/callbacks/{delivery.pk}/redeliver/").status_code == 404
