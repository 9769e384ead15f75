"""The app's URLs plus /bench/bare/, a view that does nothing (the floor of bench/poll.py).

The bare view still goes through every middleware (session, user, current team), as any page
does: what it leaves out is the view's own work."""

from django.http import HttpResponse
from django.urls import include, path

from seedream_site.urls import handler403, handler404, handler500  # noqa: F401


def bare(request):
    return HttpResponse("ok")


urlpatterns = [
    path("bench/bare/", bare),
    path("", include("seedream_site.urls")),
]
