"""Idempotency-Key: a retried POST gets the first answer (24 h); the same key with another body
is refused (422), and so is a retry while the first request is still being handled (409).

The unique (key, Idempotency-Key) row is the lock: of two identical POSTs sent at once, one
inserts it and creates the task, the other finds it. Only successful answers are kept: a refused
request changed nothing, so the client may fix it and send it again under the same key."""

import hashlib
import json
from datetime import timedelta

from django.db import IntegrityError, transaction
from django.utils import timezone

from gallery.models import IdempotencyRecord

from .errors import ApiError

KEEP = timedelta(hours=24)
# A record still "in flight" after this long was left by a request that died: it is taken over.
ABANDONED = timedelta(minutes=10)


def body_digest(raw):
    """The same JSON, however it is spaced or ordered, is the same body."""
    try:
        canonical = json.dumps(json.loads(raw), sort_keys=True, separators=(",", ":")).encode()
    except (ValueError, RecursionError):
        canonical = raw
    return hashlib.sha256(canonical).hexdigest()


def clean_key(value):
    if not value or len(value) > 255 or not value.isprintable() or not value.isascii():
        raise ApiError(400, "Idempotency-Key must be 1 to 255 printable ASCII characters.", "Idempotency-Key")
    return value


def begin(api_key, idempotency_key, digest):
    """(record, None) for a request to handle now, or (None, (status, body)) to answer at once."""
    now = timezone.now()
    for _ in range(3):
        try:
            with transaction.atomic():
                return IdempotencyRecord.objects.create(api_key=api_key, key=idempotency_key, body_digest=digest), None
        except IntegrityError:
            pass
        found = IdempotencyRecord.objects.filter(api_key=api_key, key=idempotency_key).first()
        if found is None:
            continue  # finished with an error and deleted meanwhile: try again
        stale = found.created_at < now - KEEP or (found.response_status is None and found.created_at < now - ABANDONED)
        if stale:
            IdempotencyRecord.objects.filter(pk=found.pk, created_at=found.created_at).delete()
            continue
        if found.body_digest != digest:
            raise ApiError(422, "This Idempotency-Key was already used with a different body. Use a new key for a "
                                "new request.", "Idempotency-Key")
        if found.response_status is None:
            raise ApiError(409, "A request with this Idempotency-Key is still being handled. Retry in a moment.",
                           "Idempotency-Key", headers={"Retry-After": "1"})
        return None, (found.response_status, found.response_body)
    raise ApiError(409, "A request with this Idempotency-Key is still being handled. Retry in a moment.",
                   "Idempotency-Key", headers={"Retry-After": "1"})


def finish(record, status, body):
    if record is None:
        return
    if 200 <= status < 300:
        IdempotencyRecord.objects.filter(pk=record.pk).update(response_status=status, response_body=body)
    else:
        IdempotencyRecord.objects.filter(pk=record.pk).delete()


def prune(now=None):
    now = now or timezone.now()
    return IdempotencyRecord.objects.filter(created_at__lt=now - KEEP).delete()[0]
