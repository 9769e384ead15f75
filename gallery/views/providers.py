from collections import Counter

from django.conf import settings
from django.db.models import Count, Q
from django.shortcuts import render
from django.utils import timezone

from gallery import offers, routing
from gallery.access import manager_required
from gallery.failures import describe
from gallery.models import GenerationTask, ProviderState, Status


def task_outcomes(team, names, since):
    """What happened to the team's tasks started since `since`, per provider (the one that ran
    each task last): how many ended, how many failed, whether the provider refused them when
    they were sent (no task id came back) or failed them after taking them, and why, in the
    history's own words. The request counts (routing.overview) cannot show these: a status check
    that answers "failed" is a request that went fine, and a refused prompt says nothing of the
    provider's health, so neither is a failed request."""
    tasks = GenerationTask.objects.filter(team=team, provider__in=names, created_at__gte=since)
    failed = Q(status=Status.FAILED)
    counts = {
        row["provider"]: row
        for row in tasks.values("provider").annotate(
            ended=Count("id", filter=Q(status__in=[Status.COMPLETED, Status.FAILED])),
            failed=Count("id", filter=failed),
            failed_when_sent=Count("id", filter=failed & Q(upstream_id="")),
            unfinished=Count("id", filter=~Q(status__in=[Status.COMPLETED, Status.FAILED, Status.CANCELLED])),
        ).order_by()
    }
    reasons = {name: Counter() for name in names}
    for row in tasks.filter(failed).values("provider", "error_code").annotate(n=Count("id")).order_by():
        reasons[row["provider"]][describe(row["error_code"]).sentence] += row["n"]
    outcomes = {}
    for name in names:
        row = counts.get(name, {"ended": 0, "failed": 0, "failed_when_sent": 0, "unfinished": 0})
        outcomes[name] = {
            "ended": row["ended"],
            "failed": row["failed"],
            "failed_when_sent": row["failed_when_sent"],
            "failed_after_taken": row["failed"] - row["failed_when_sent"],
            "unfinished": row["unfinished"],
            "reasons": reasons[name].most_common(),
        }
    return outcomes


@manager_required
def providers(request):
    rows = routing.overview()
    configured = {row["name"] for row in rows}
    since = timezone.now() - routing.RECENT
    outcomes = task_outcomes(request.team, [row["name"] for row in rows], since)
    for row in rows:
        row["tasks"] = outcomes[row["name"]]
    # The worker reads the balance every few minutes; the page only shows what it last read.
    balance = ProviderState.objects.filter(provider="evolink").first() if "evolink" in configured else None
    ctx = {
        "rows": rows,
        "window_hours": int(routing.RECENT.total_seconds() // 3600),
        "breaker_failures": settings.BREAKER_FAILURES,
        "evolink_configured": "evolink" in configured,
        "balance": balance,
        "images_left": (offers.images_for(balance.credits, settings.DEFAULT_MODEL) or 0) if balance else 0,
        "unconfigured": offers.unconfigured(),
    }
    return render(request, "gallery/providers.html", ctx)
