"""The Team API's rows: keys, idempotency records, files uploaded through the file service, and
the callback outbox with every delivery attempt (SPEC §5)."""

import base64
import hashlib
import hmac
import secrets
from datetime import timedelta

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.crypto import constant_time_compare

from .tasks import StoredReference
from .teams import Team

KEY_PREFIX = "sk-studio-"
LOOKUP_CHARS = 12  # after KEY_PREFIX: the part stored in clear to find the row
SECRET_ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
# A rotated signing secret keeps signing beside the new one for a day, so receivers can switch.
ROTATION_OVERLAP = timedelta(hours=24)


def _random(length):
    return "".join(secrets.choice(SECRET_ALPHABET) for _ in range(length))


def hash_key(raw):
    # The key carries ~280 bits of randomness, so a plain SHA-256 is as strong as a slow hash here.
    return hashlib.sha256(raw.encode()).hexdigest()


class ApiKeyQuerySet(models.QuerySet):
    def for_team(self, team):
        return self.filter(team=team)

    def active(self):
        return self.filter(revoked_at=None)


class ApiKey(models.Model):
    """A team's key. The key itself is shown once: only its lookup prefix and hash are kept.

    The webhook signing secret is not stored either: it is derived from SECRET_KEY and a random
    nonce kept here, so rotating it is choosing a new nonce (and a leaked database row alone
    signs nothing)."""

    team = models.ForeignKey(Team, models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=40, unique=True)
    key_hash = models.CharField(max_length=64)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, models.SET_NULL, null=True, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    signing_nonce = models.CharField(max_length=32)
    previous_signing_nonce = models.CharField(max_length=32, blank=True)
    signing_rotated_at = models.DateTimeField(null=True, blank=True)

    objects = ApiKeyQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return f"{self.name} ({self.prefix}…)"

    @classmethod
    def create(cls, team, name, created_by):
        """Returns (key, raw key, signing secret); the last two are shown once."""
        lookup = _random(LOOKUP_CHARS)
        raw = f"{KEY_PREFIX}{lookup}{_random(48)}"
        key = cls.objects.create(
            team=team, name=name, created_by=created_by, prefix=f"{KEY_PREFIX}{lookup}", key_hash=hash_key(raw),
            signing_nonce=secrets.token_hex(16),
        )
        return key, raw, key.signing_secret()

    @classmethod
    def authenticate(cls, raw):
        """(key, problem): the key a raw value names, or None and a sentence for the 401."""
        raw = (raw or "").strip()
        if not raw.startswith(KEY_PREFIX) or len(raw) < len(KEY_PREFIX) + LOOKUP_CHARS + 1 or len(raw) > 200:
            return None, "The API key is not a studio key. Send Authorization: Bearer sk-studio-…"
        key = cls.objects.select_related("team", "created_by").filter(prefix=raw[: len(KEY_PREFIX) + LOOKUP_CHARS]).first()
        # Compared even when no row was found, so the answer takes as long either way.
        matches = constant_time_compare(hash_key(raw), key.key_hash if key else "0" * 64)
        if key is None or not matches:
            return None, "The API key is not valid. Check it on the studio's API page."
        if key.revoked_at:
            return None, "This API key was revoked. Create a new one on the studio's API page."
        return key, ""

    @property
    def is_active(self):
        return self.revoked_at is None

    def touch(self):
        """Records use, at most once a minute (a busy script should not write on every call)."""
        now = timezone.now()
        if not self.last_used_at or now - self.last_used_at > timedelta(seconds=60):
            ApiKey.objects.filter(pk=self.pk).update(last_used_at=now)
            self.last_used_at = now

    def revoke(self):
        ApiKey.objects.filter(pk=self.pk, revoked_at=None).update(revoked_at=timezone.now())

    @staticmethod
    def _secret(nonce):
        digest = hmac.new(settings.SECRET_KEY.encode(), f"gallery.api.webhook:{nonce}".encode(), hashlib.sha256)
        return "whsec_" + base64.b64encode(digest.digest()[:24]).decode()

    def signing_secret(self):
        return self._secret(self.signing_nonce)

    def signing_secrets(self):
        """The secrets that sign a callback now: the current one, and the previous one for a day
        after a rotation."""
        found = [self.signing_secret()]
        if self.previous_signing_nonce and self.signing_rotated_at and timezone.now() - self.signing_rotated_at < ROTATION_OVERLAP:
            found.append(self._secret(self.previous_signing_nonce))
        return found

    def rotate_signing_secret(self):
        """A new signing secret (returned, to be shown once); the old one signs for a day more."""
        self.previous_signing_nonce, self.signing_nonce = self.signing_nonce, secrets.token_hex(16)
        self.signing_rotated_at = timezone.now()
        self.save(update_fields=["previous_signing_nonce", "signing_nonce", "signing_rotated_at"])
        return self.signing_secret()


class IdempotencyRecord(models.Model):
    """The first answer to a POST sent with an Idempotency-Key, kept 24 hours. `response_status`
    None: the first request is still being handled."""

    api_key = models.ForeignKey(ApiKey, models.CASCADE, related_name="+")
    key = models.CharField(max_length=255)
    body_digest = models.CharField(max_length=64)
    created_at = models.DateTimeField(default=timezone.now)
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    response_body = models.JSONField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint("api_key", "key", name="idempotency_key")]

    def __str__(self):
        return f"{self.key} ({self.response_status or 'in flight'})"


class ApiFile(StoredReference):
    """A reference image uploaded through the file service; its file_url works in image_urls."""

    file_id = models.CharField(max_length=40, unique=True)
    team = models.ForeignKey(Team, models.CASCADE, related_name="+")
    api_key = models.ForeignKey(ApiKey, models.SET_NULL, null=True, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta(StoredReference.Meta):
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return self.file_id


class Delivery(models.TextChoices):
    PENDING = "pending", "Pending"
    DELIVERED = "delivered", "Delivered"
    FAILED = "failed", "Failed"  # out of retries, or a URL the studio never calls
    GONE = "gone", "Stopped (410 Gone)"


class CallbackDelivery(models.Model):
    """The outbox: one per finished API task with a callback_url, written in the same transaction
    as the task's final state, so a crash cannot lose it. The worker delivers it."""

    task = models.OneToOneField("gallery.GenerationTask", models.CASCADE, related_name="callback")
    team = models.ForeignKey(Team, models.CASCADE, related_name="+")
    api_key = models.ForeignKey(ApiKey, models.SET_NULL, null=True, related_name="deliveries")
    url = models.URLField(max_length=2048)
    webhook_id = models.CharField(max_length=40, unique=True)
    state = models.CharField(max_length=10, choices=Delivery.choices, default=Delivery.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    lease_until = models.DateTimeField(null=True, blank=True)
    # The body as sent, fixed at the first attempt so every retry carries the same bytes (text,
    # not JSON: PostgreSQL's jsonb would reorder the keys).
    payload = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["state", "next_attempt_at"], name="callback_due")]

    def __str__(self):
        return f"{self.webhook_id} → {self.url} ({self.state})"


class CallbackAttempt(models.Model):
    delivery = models.ForeignKey(CallbackDelivery, models.CASCADE, related_name="attempt_log")
    at = models.DateTimeField(default=timezone.now)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    error = models.CharField(max_length=300, blank=True)
    duration_ms = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["at", "id"]

    def __str__(self):
        return f"{self.delivery_id} at {self.at}: {self.status_code or self.error}"

    @property
    def succeeded(self):
        return self.status_code is not None and 200 <= self.status_code < 300
