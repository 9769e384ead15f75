"""Which provider runs a task: the providers built from settings, and failover. A task goes to
the cheapest configured provider whose circuit breaker is not open, and to the next one when that
provider fails (SPEC §7: "if it is down, the next cheapest available is used").

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

from gallery import offers
from gallery.models import ProviderCall, ProviderState, SandboxRun
from gallery.providers import ProviderError
from gallery.providers.byteplus import BytePlusProvider
from gallery.providers.evolink import EvoLinkProvider
from gallery.providers.sandbox import SandboxProvider

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


def get_provider(name):
    """The provider called `name`, one instance per process and configuration, so its HTTP
    clients (and their loaded CA bundle and open connections) are reused call after call."""
    if not offers.is_configured(name):
        key = offers.KEY_SETTINGS[name]
        raise ProviderError(
            f"{offers.label(name)} is no longer configured on this instance ({key} is not set).",
            code="provider_unavailable",
        )
    if name not in BUILDERS:
        raise ProviderError(f"The provider “{name}” is not available on this instance.", code="unknown_provider")
    configuration = tuple(str(getattr(settings, setting, "")) for setting in CONFIGURATION[name])
    built = _instances.get(name)
    if built is None or built[0] != configuration:  # first use, or the settings changed (tests)
        built = _instances[name] = (configuration, BUILDERS[name]())
    return built[1]


# How each provider is built, and the settings it is built from. The sandbox keeps its runs where
# every process sees them (the SandboxRun table), handed in: providers import no models.
BUILDERS = {
    "sandbox": lambda: SandboxProvider(SandboxRun.objects),
    "evolink": EvoLinkProvider,
    "byteplus": BytePlusProvider,
}
CONFIGURATION = {
    "sandbox": (),
    "evolink": ("EVOLINK_API_KEY", "EVOLINK_BASE_URL", "EVOLINK_FILES_URL", "ALLOW_HTTP_URLS", "ALLOW_LOOPBACK_URLS"),
    "byteplus": ("BYTEPLUS_API_KEY", "BYTEPLUS_BASE_URL", "ALLOW_HTTP_URLS", "ALLOW_LOOPBACK_URLS"),
}
_instances = {}


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
    """The provider a new task is priced for: the cheapest one that serves the model and is not
    resting (the sandbox until an upstream key is configured). `create` may still send the task
    elsewhere; None when no configured provider has a price for the model."""
    names = offers.configured(model or settings.DEFAULT_MODEL, quality)
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
    names = offers.configured(model, quality)
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
    for name in offers.configured():
        state, until = breaker(name, now)
        recent = ProviderCall.objects.filter(provider=name, at__gte=now - RECENT)
        counts = recent.aggregate(calls=Count("id"), failed=Count("id", filter=Q(ok=False)))
        last_failure = recent.filter(ok=False).order_by("-at").first()
        rows.append(
            {
                "name": name,
                "label": offers.label(name),
                "price": offers.price_per_image(name),
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
    for name in offers.configured():
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
