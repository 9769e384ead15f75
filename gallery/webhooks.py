"""Callbacks to an API task's callback_url, signed the Standard Webhooks way (SPEC §5).

The outbox row is written with the task's final state (gallery.pipeline.finish), so a crash cannot
lose it; the worker delivers it, at least once: 10 s per attempt, no redirect followed (a 3xx is
a failure), retried on a schedule over about a day, until a 2xx. A 410 Gone stops the retries, as
does an address the studio never calls. Every attempt is recorded for the API page."""

import base64
import hashlib
import hmac
import json
import logging
import secrets
import time
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from gallery import netguard
from gallery.api_objects import base_url, task_object
from gallery.models import CallbackAttempt, CallbackDelivery, Delivery, GenerationTask
from gallery.outbound import USER_AGENT, url_policy

log = logging.getLogger(__name__)

TIMEOUT_SECONDS = 10.0
MAX_ANSWER_BYTES = 64 * 1024  # the receiver's answer is only read for its status
LEASE = timedelta(seconds=60)
# Seconds to wait after each failed attempt (Standard Webhooks' suggested schedule): eight
# attempts in all, the last about 27 hours after the first.
RETRY_SCHEDULE = (5, 5 * 60, 30 * 60, 2 * 3600, 5 * 3600, 10 * 3600, 10 * 3600)


def record_final(task):
    """The outbox row for a task that just reached a final state (inside pipeline.finish's transaction)."""
    delivery, created = CallbackDelivery.objects.get_or_create(
        task_id=task.pk,
        defaults={"team_id": task.team_id, "api_key_id": task.api_key_id, "url": task.callback_url,
                  "webhook_id": f"msg_{secrets.token_hex(12)}"},
    )
    if created:
        transaction.on_commit(lambda: enqueue(delivery.pk))


def enqueue(delivery_id, run_after=None):
    # The job loop: the job (gallery/tasks.py) calls deliver, which may enqueue the next attempt.
    from gallery.tasks import deliver_callback

    job = deliver_callback.using(run_after=run_after) if run_after else deliver_callback
    job.enqueue(delivery_id)


def sign(secret, webhook_id, timestamp, body):
    """`v1,<base64 HMAC-SHA256 of "id.timestamp.body">` with a `whsec_…` secret."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    digest = hmac.new(key, f"{webhook_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def payload_for(delivery):
    task = GenerationTask.objects.get(pk=delivery.task_id)
    return task_object(task, base_url(task=task))


def deliver(delivery_id):
    """One attempt, if the delivery is due and no other worker has it. Returns the attempt or None."""
    now = timezone.now()
    claimed = (
        CallbackDelivery.objects.filter(pk=delivery_id, state=Delivery.PENDING, next_attempt_at__lte=now)
        .filter(Q(lease_until=None) | Q(lease_until__lt=now))
        .update(lease_until=now + LEASE)
    )
    if not claimed:
        return None
    delivery = CallbackDelivery.objects.select_related("api_key").get(pk=delivery_id)
    try:
        return attempt(delivery)
    finally:
        CallbackDelivery.objects.filter(pk=delivery.pk).update(lease_until=None)


def attempt(delivery):
    if not delivery.payload:
        delivery.payload = json.dumps(payload_for(delivery), separators=(",", ":"))
        CallbackDelivery.objects.filter(pk=delivery.pk).update(payload=delivery.payload)
    body = delivery.payload.encode()
    timestamp = str(int(time.time()))
    secrets_now = delivery.api_key.signing_secrets() if delivery.api_key else []
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "webhook-id": delivery.webhook_id,
        "webhook-timestamp": timestamp,
        "webhook-signature": " ".join(sign(secret, delivery.webhook_id, timestamp, body) for secret in secrets_now),
    }
    started = time.monotonic()
    status, error, final = None, "", False
    try:
        with netguard.make_client(url_policy()) as client:
            answer = netguard.request(client, delivery.url, url_policy(), max_bytes=MAX_ANSWER_BYTES,
                                      deadline_seconds=TIMEOUT_SECONDS, method="POST", content=body, headers=headers)
        status = answer.status
        if 300 <= status < 400:
            error = f"Answered with a redirect (HTTP {status}); callbacks do not follow redirects."
        elif status == 410:
            error, final = "Answered 410 Gone: no more retries.", True
        elif not 200 <= status < 300:
            error = f"Answered HTTP {status}."
    except netguard.UnsafeURL as e:
        error, final = f"Refused: {e.message}", True
    except netguard.FetchError as e:
        error = e.message if e.code != "too_large" else "The receiver's answer was too large."
        if e.code == "too_large":
            status = 200  # a receiver chatty in its answer still received the callback
    elapsed = int((time.monotonic() - started) * 1000)
    now = timezone.now()
    logged = CallbackAttempt.objects.create(delivery=delivery, status_code=status, error=error[:300], duration_ms=elapsed)
    tries = delivery.attempts + 1
    fields = {"attempts": tries}
    if not error:
        fields.update(state=Delivery.DELIVERED, delivered_at=now)
    elif status == 410:
        fields.update(state=Delivery.GONE)
    elif final or tries > len(RETRY_SCHEDULE):
        fields.update(state=Delivery.FAILED)
    else:
        fields.update(next_attempt_at=now + timedelta(seconds=RETRY_SCHEDULE[tries - 1]))
    CallbackDelivery.objects.filter(pk=delivery.pk).update(**fields)
    if fields.get("next_attempt_at"):
        enqueue(delivery.pk, run_after=fields["next_attempt_at"])
    log.info("Callback %s attempt %s: %s", delivery.webhook_id, tries, error or f"HTTP {status}")
    return logged


def redeliver(delivery):
    """Sends the callback again from the start of the schedule, with fresh result links."""
    CallbackDelivery.objects.filter(pk=delivery.pk).update(
        state=Delivery.PENDING, attempts=0, next_attempt_at=timezone.now(), payload="",
    )
    enqueue(delivery.pk)


def requeue_overdue(grace_seconds=None):
    """Deliveries whose job was lost (a crash between commit and enqueue, a dead worker)."""
    now = timezone.now()
    grace = timedelta(seconds=settings.SWEEP_GRACE_SECONDS if grace_seconds is None else grace_seconds)
    overdue = (
        CallbackDelivery.objects.filter(state=Delivery.PENDING, next_attempt_at__lt=now - grace)
        .filter(Q(lease_until=None) | Q(lease_until__lt=now))
        .values_list("pk", "next_attempt_at")[:500]
    )
    count = 0
    for pk, due in overdue:
        if CallbackDelivery.objects.filter(pk=pk, next_attempt_at=due).update(next_attempt_at=now):
            enqueue(pk)
            count += 1
    return count
