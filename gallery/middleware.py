from django.contrib.auth import get_user_model
from django.shortcuts import redirect
from django.urls import reverse

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
            and not request.path.startswith(("/static/", "/v1/"))
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
