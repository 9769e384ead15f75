from django.conf import settings
from django.shortcuts import render

from gallery.access import manager_required
from gallery.models import ProviderState
from gallery.providers import KEY_SETTINGS, LABELS, router
from gallery.providers.evolink import images_for


@manager_required
def providers(request):
    rows = router.overview()
    configured = {row["name"] for row in rows}
    # The worker reads the balance every few minutes; the page only shows what it last read.
    balance = ProviderState.objects.filter(provider="evolink").first() if "evolink" in configured else None
    ctx = {
        "rows": rows,
        "evolink_configured": "evolink" in configured,
        "balance": balance,
        "images_left": (images_for(balance.credits, settings.DEFAULT_MODEL) or 0) if balance else 0,
        "unconfigured": [(LABELS[name], key) for name, key in KEY_SETTINGS.items() if name not in configured],
    }
    return render(request, "gallery/providers.html", ctx)
