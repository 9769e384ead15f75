from django.shortcuts import render

from gallery.access import manager_required
from gallery.providers import KEY_SETTINGS, LABELS, ProviderError, get_provider, router


@manager_required
def providers(request):
    rows = router.overview()
    configured = {row["name"] for row in rows}
    credits = None
    if "evolink" in configured:
        try:
            credits = get_provider("evolink").credits()  # a short timeout: the page never waits long
        except ProviderError:
            credits = "unavailable"
    ctx = {
        "rows": rows,
        "credits": credits,
        "unconfigured": [(LABELS[name], key) for name, key in KEY_SETTINGS.items() if name not in configured],
    }
    return render(request, "gallery/providers.html", ctx)
