from django.contrib.auth import get_user_model
from django.shortcuts import redirect, render
from django.template.defaultfilters import filesizeformat
from django.urls import reverse

from gallery import logs, options
from gallery.api.errors import envelope_for, error_response, is_api_path

TEAM_SESSION_KEY = "team_id"


class OnboardingMiddleware:
    """On an instance without users, every page leads to the onboarding page."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        welcome = reverse("welcome")
        if (
            not request.user.is_authenticated
            and request.path != welcome
            and not request.path.startswith(("/static/", "/v1/", "/api/v1/", "/healthz/"))
            and not get_user_model().objects.exists()
        ):
            return redirect(welcome)
        return self.get_response(request)


class CurrentTeamMiddleware:
    """Attaches the current team and the user's membership in it to every request.

    The team comes from the session; a stale or forged id falls back to the user's first team,
    so a request never acts for a team its user does not belong to.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request.team = request.membership = None
        request.memberships = []
        if request.user.is_authenticated:
            memberships = list(
                request.user.memberships.select_related("team").order_by("team__name", "team_id")
            )
            request.memberships = memberships
            wanted = request.session.get(TEAM_SESSION_KEY, request.user.last_team_id)
            current = next((m for m in memberships if m.team_id == wanted), None)
            if current is None and memberships:
                current = min(memberships, key=lambda m: m.created_at)
            if current:
                request.membership, request.team = current, current.team
        return self.get_response(request)


def switch_team(request, team):
    request.session[TEAM_SESSION_KEY] = team.pk
    if request.user.is_authenticated and request.user.last_team_id != team.pk:
        request.user.last_team = team
        request.user.save(update_fields=["last_team"])


class RequestIdMiddleware:
    """Gives each request an id, logged with everything it causes and sent back in X-Request-ID,
    so a person quoting the id from an error page leads straight to the traceback."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request.id = logs.new_request_id(request.headers.get("X-Request-ID", ""))
        token = logs.request_id.set(request.id)
        try:
            response = self.get_response(request)
        finally:
            logs.request_id.reset(token)
        response["X-Request-ID"] = request.id
        return response


class RequestSizeMiddleware:
    """Refuses a request body over MAX_REQUEST_BYTES from its Content-Length, before reading it,
    with a sentence instead of Django's bare 400. (Without a Content-Length Django reads no body.)"""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if length > options.MAX_REQUEST_BYTES and is_api_path(request.path):
            return error_response(
                413, f"This request is {filesizeformat(length)}, more than the studio accepts in one go "
                f"({filesizeformat(options.MAX_REQUEST_BYTES)}). Nothing was saved.", envelope=envelope_for(request.path),
            )
        if length > options.MAX_REQUEST_BYTES:
            message = (
                f"This upload is {filesizeformat(length)}, more than the studio accepts in one go "
                f"({filesizeformat(options.MAX_REQUEST_BYTES)}): at most {options.MAX_REFERENCES} "
                f"reference images of up to {filesizeformat(options.MAX_REFERENCE_BYTES)} each. "
                "Nothing was saved. Remove some images or use smaller ones."
            )
            ctx = {"title": "Upload too large", "message": message}
            return render(request, "error.html", ctx, status=413)
        return self.get_response(request)
