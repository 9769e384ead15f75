"""Failover: a task goes to the cheapest configured provider whose circuit breaker is not open,
and to the next one when that provider fails (SPEC §7: "if it is down, the next cheapest
available is used").

The breaker reads the last create calls recorded in the database (ProviderCall), so web and
worker processes agree: after BREAKER_FAILURES failures in a row a provider is open (skipped)
for BREAKER_COOLDOWN_SECONDS, then half-open: the next task tries it again, and one success
closes it while one more failure opens it for another cool-down.
"""

import logging
from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.db.models import Count, Q
from django.utils import timezone

from gallery.models import ProviderCall, ProviderState

from . import KEY_SETTINGS, LABELS, ProviderError, get_provider, price_per_image

log = logging.getLogger(__name__)
CLOSED, OPEN, HALF_OPEN = "closed", "open", "half-open"
# The provider's account cannot run anything (key refused, no funds, no access): another
# provider may well run the task, so these fail over like passing errors do.
ACCOUNT_CODES = {"authentication_error", "insufficient_quota_error", "permission_error"}
RECENT = timedelta(hours=24)
RESTING = "providers_resting"
NO_PROVIDER = (
    "No provider configured on this studio offers this model (it has no price for it). Whoever runs "
    "the studio can add one in the PRICES setting; until then pick another model."
)
ALL_RESTING = (
    "Every provider failed several times in a row just now, so the studio is giving them a "
    "short rest before trying again."
)


def configured(model=None, quality=None):
    """The providers this instance may use for `model` (all of them when None), cheapest first:
    those with a key set and a price for the model; the sandbox only without any real provider."""
    names = [name for name, key in KEY_SETTINGS.items() if getattr(settings, key)]
    if not names:
        return ["sandbox"]
    if model is None:
        return sorted(names, key=lambda name: price_per_image(name) if price_per_image(name) is not None else 1e9)
    priced = [(price_per_image(name, model, quality), name) for name in names]
    return [name for price, name in sorted((p, n) for p, n in priced if p is not None)]


def breaker(name, now=None):
    """(state, until): `until` is when an open breaker turns half-open."""
    now = now or timezone.now()
    calls = ProviderCall.objects.filter(provider=name).order_by("-at", "-id")
    last = list(calls[: settings.BREAKER_FAILURES])
    if len(last) < settings.BREAKER_FAILURES or any(call.ok for call in last):
        return CLOSED, None
    until = last[0].at + timedelta(seconds=settings.BREAKER_COOLDOWN_SECONDS)
    return (OPEN if now < until else HALF_OPEN), until


def first_choice(model=None, quality=None):
    names = configured(model, quality)
    if len(names) <= 1:
        return names[0] if names else None
    return next((name for name in names if breaker(name)[0] != OPEN), names[0])


def create(task_id, attempt, model=None, quality=None):
    """Calls `attempt(provider)` (deliver the references, create the task) at each usable
    provider, cheapest first, until one accepts; returns (provider, UpstreamTask).

    A half-open provider is tried by one task at a time across all workers (the probe); the
    others pass it by as if it were still resting. A refusal of the task itself (its prompt,
    its settings) is raised at once: the next provider would refuse it too. When every
    provider failed, the first passing error is raised (the pipeline retries it later), else
    the first final one. Every upstream call inside `attempt` goes through `call`, which
    records it for the breaker.
    """
    now = timezone.now()
    usable, reopen_at, probing = [], [], set()
    names = configured(model, quality)
    if not names:
        raise ProviderError(NO_PROVIDER, code="model_unavailable")
    for name in names:
        state, until = breaker(name, now)
        if state == OPEN:
            reopen_at.append(until)
        elif state == HALF_OPEN and not claim_probe(name, now):
            reopen_at.append(now + timedelta(seconds=settings.BREAKER_COOLDOWN_SECONDS / 4))
        else:
            usable.append(name)
            if state == HALF_OPEN:
                probing.add(name)
    if not usable:
        wait = max(0.0, (min(reopen_at) - now).total_seconds())
        last = ProviderCall.objects.filter(ok=False).order_by("-at", "-id").first()
        message = f"{ALL_RESTING} Last problem: {last.message}" if last and last.message else ALL_RESTING
        raise ProviderError(message, code=RESTING, retryable=True, retry_after=wait)
    errors = []
    for name in usable:
        provider = get_provider(name)
        try:
            return provider, attempt(provider)
        except ProviderError as e:
            if not provider_failed(e):
                raise
            log.warning("Task %s: %s failed (%s); trying the next provider", task_id, name, e.code)
            errors.append(e)
        finally:
            if name in probing:
                release_probe(name)
    raise next((e for e in errors if e.retryable), errors[0])


def call(name, operation):
    """Runs one upstream call of provider `name` (any kind: create, status, file upload) and
    records how it went: the breaker counts every call that fails."""
    try:
        result = operation()
    except ProviderError as e:
        record(name, ok=not provider_failed(e), code=e.code, message=e.message)
        raise
    record(name, ok=True)
    return result


def provider_failed(error):
    """A passing error or an account problem is the provider's; a refusal of the task is not."""
    return error.retryable or error.code in ACCOUNT_CODES


def claim_probe(name, now):
    """Whether this worker may send the one probe a half-open provider gets at a time."""
    ProviderState.objects.get_or_create(provider=name)
    until = now + timedelta(seconds=settings.TASK_LEASE_SECONDS)
    free = Q(probe_until__isnull=True) | Q(probe_until__lt=now)
    return bool(ProviderState.objects.filter(free, provider=name).update(probe_until=until))


def release_probe(name):
    ProviderState.objects.filter(provider=name, probe_until__isnull=False).update(probe_until=None)


def record(name, ok, code="", message=""):
    ProviderCall.objects.create(provider=name, at=timezone.now(), ok=ok, code=code, message=message)


def overview():
    """The providers page's rows: each configured provider with its price and health. `calls`
    are every request to it in the last RECENT (creating tasks, checking on them, sending and
    deleting references: what `call` records), `failed` those the provider itself failed
    (`provider_failed`). A task the provider took and then failed, or a prompt it refused, is
    not a failed request: the page counts those from the tasks (gallery/views/providers.py)."""
    now = timezone.now()
    rows = []
    for name in configured():
        state, until = breaker(name, now)
        recent = ProviderCall.objects.filter(provider=name, at__gte=now - RECENT)
        counts = recent.aggregate(calls=Count("id"), failed=Count("id", filter=Q(ok=False)))
        last_failure = recent.filter(ok=False).order_by("-at").first()
        rows.append(
            {
                "name": name,
                "label": LABELS.get(name, name),
                "price": price_per_image(name),
                "state": state,
                "until": until,
                "calls": counts["calls"],
                "failed": counts["failed"],
                "error_rate": round(100 * counts["failed"] / counts["calls"]) if counts["calls"] else None,
                "last_failure": last_failure,
            }
        )
    return rows


def read_balances():
    """Asks each configured provider that reports a balance for it, and keeps the answer for the
    pages (run by the worker: a slow upstream never slows a page). Returns how many were read."""
    read = 0
    for name in configured():
        provider = get_provider(name)
        if not hasattr(provider, "credits"):
            continue
        now = timezone.now()
        try:
            balance = provider.credits()
        except ProviderError as e:
            ProviderState.objects.update_or_create(provider=name, defaults={"tried_at": now, "problem": e.message})
            continue
        ProviderState.objects.update_or_create(
            provider=name,
            defaults={
                "credits": Decimal(str(balance["user"])),
                "key_credits": None if balance["token"] is None else Decimal(str(balance["token"])),
                "read_at": now,
                "tried_at": now,
                "problem": "",
            },
        )
        read += 1
    return read
