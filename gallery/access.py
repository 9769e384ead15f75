"""Access rules in one place: who may see a team's pages, and the team-scoped lookup."""

from functools import wraps

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404, redirect


def team_required(view):
    """Signed in and in a team; a person without a team is asked to create one."""

    @login_required
    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if request.team is None:
            messages.info(request, "You are not in a team yet. Create one, or ask for an invite link.")
            return redirect("team_create")
        return view(request, *args, **kwargs)

    return wrapper


def manager_required(view):
    """Owners and admins only; members get 403 with a plain explanation."""

    @team_required
    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if not request.membership.can_manage:
            raise PermissionDenied("Only the team's owners and admins can do this.")
        return view(request, *args, **kwargs)

    return wrapper


def get_for_team(request, model_or_queryset, **lookup):
    """The current team's object or a 404: other teams' objects look absent, never forbidden."""
    queryset = getattr(model_or_queryset, "objects", model_or_queryset)
    return get_object_or_404(queryset.filter(team=request.team), **lookup)
