from django.conf import settings
from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from gallery import health

# Without these this machine cannot serve a request: a load balancer should send traffic elsewhere.
VITAL = ("database", "storage", "queue")


@require_safe
@never_cache
def healthz(request):
    """For load balancers and monitors; no sign-in, no session. 503 when the database, the storage
    or the queue cannot be reached. With ?workers=1 (for a monitor, not a load balancer: workers
    being down is no reason to take web machines out) also when no worker has beaten lately or the
    oldest waiting job has waited longer than HEALTHZ_MAX_WAIT_SECONDS."""
    checks = health.report()
    failing = [name for name in VITAL if not checks[name]["ok"]]
    if request.GET.get("workers") == "1":
        if not checks["workers"]["ok"] or not checks["workers"]["alive"]:
            failing.append("workers")
        wait = checks["queue"].get("oldest_wait_seconds")
        if wait is not None and wait > settings.HEALTHZ_MAX_WAIT_SECONDS:
            failing.append("queue_wait")
    return JsonResponse(
        {"status": "fail" if failing else "ok", "failing": failing, "checks": checks},
        status=503 if failing else 200,
    )
