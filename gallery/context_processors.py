from django.utils.functional import SimpleLazyObject

from gallery import budgets


def current_team(request):
    team = getattr(request, "team", None)
    return {
        "team": team,
        "membership": getattr(request, "membership", None),
        "memberships": getattr(request, "memberships", []),
        # This month's spend against the budget, for the header; read only by pages that show it.
        "spend": SimpleLazyObject(lambda: budgets.month_status(team)) if team else None,
    }
