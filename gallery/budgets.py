"""Team budgets: a monthly cap for the team and per member, checked and reserved atomically
when tasks are submitted (SPEC §6)."""


class BudgetExceeded(Exception):
    """A submission's reserved cost would pass what is left of a budget; nothing was created.
    `message` is the sentence shown in the form (and in the API's 402 answer)."""

    def __init__(self, message):
        super().__init__(message)
        self.message = message


class MonthStatus:
    """This month's spend of a team, its budget (None: no budget) and what is left of it."""

    def __init__(self, spent, budget=None):
        self.spent, self.budget = spent, budget
        self.left = None if budget is None else max(budget - spent, 0)


def month_status(team, now=None):
    """A minimal version for the Team API's /v1/credits (the budgets work replaces it): this
    month's tasks count at their final cost when settled, else at what they reserved."""
    from decimal import Decimal

    from django.db.models import Sum
    from django.db.models.functions import Coalesce
    from django.utils import timezone

    from gallery.models import GenerationTask

    now = timezone.localtime(now or timezone.now())
    start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    spent = (
        GenerationTask.objects.for_team(team)
        .filter(created_at__gte=start)
        .aggregate(total=Sum(Coalesce("final_cost", "reserved_cost")))["total"]
    )
    return MonthStatus(spent or Decimal(0), None)
