"""Team budgets (SPEC §6): a monthly cap for the team and one for each member, in dollars per
calendar month in the team's time zone. A submission's reserved cost is checked against what is
left and recorded in the same transaction, under a lock on the team's row, so submissions
arriving together cannot overshoot; the ledger (Charge) is settled when each task ends."""

import zoneinfo
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.db import transaction
from django.db.models import Case, DecimalField, F, Sum, When
from django.utils import timezone

from .models import Charge, Status, Team
from .options import say

ZERO = Decimal(0)
WARN_AT = Decimal("0.8")  # owners see a warning once this share of the budget is spent

# What a charge counts for: its final cost once settled, its reservation before.
CHARGE_COST = Case(
    When(final_cost__isnull=True, then=F("reserved_cost")),
    default=F("final_cost"),
    output_field=DecimalField(max_digits=12, decimal_places=4),
)


class BudgetExceeded(Exception):
    """A submission's reserved cost would pass what is left of a budget; nothing was created.
    `message` is the sentence shown in the form (and in the API's 402 answer)."""

    def __init__(self, message):
        super().__init__(message)
        self.message = message


def team_zone(team):
    try:
        return zoneinfo.ZoneInfo(team.time_zone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return zoneinfo.ZoneInfo("UTC")


@dataclass(frozen=True)
class Month:
    """A calendar month in a team's time zone."""

    year: int
    month: int
    zone: zoneinfo.ZoneInfo

    @classmethod
    def containing(cls, team, moment=None):
        local = (moment or timezone.now()).astimezone(team_zone(team))
        return cls(local.year, local.month, team_zone(team))

    @classmethod
    def parse(cls, team, text):
        """"2026-11" → that month; ValueError for anything else (or outside 2000–9998)."""
        year, _, month = (text or "").partition("-")
        if not (year.isdigit() and month.isdigit() and len(year) == 4 and len(month) == 2):
            raise ValueError(f"“{text}” is not a month: use the form 2026-11.")
        year, month = int(year), int(month)
        if not (2000 <= year <= 9998 and 1 <= month <= 12):
            raise ValueError(f"“{text}” is not a month between 2000-01 and 9998-12.")
        return cls(year, month, team_zone(team))

    @property
    def start(self):
        return datetime(self.year, self.month, 1, tzinfo=self.zone)

    @property
    def end(self):
        return self.next().start

    def next(self):
        return Month(self.year + self.month // 12, self.month % 12 + 1, self.zone)

    def previous(self):
        return Month(self.year - (self.month == 1), (self.month - 2) % 12 + 1, self.zone)

    def __str__(self):
        return f"{self.year:04d}-{self.month:02d}"

    @property
    def label(self):
        return self.start.strftime("%B %Y")


def charges_in(team, month):
    return Charge.objects.filter(team=team, created_at__gte=month.start, created_at__lt=month.end)


def spent(charges):
    return charges.aggregate(total=Sum(CHARGE_COST))["total"] or ZERO


@dataclass(frozen=True)
class MonthStatus:
    month: Month
    spent: Decimal
    budget: Decimal | None

    @property
    def left(self):
        return None if self.budget is None else max(self.budget - self.spent, ZERO)

    @property
    def share(self):
        """Spent as a share of the budget (0–1+), None without a budget."""
        if self.budget is None:
            return None
        return self.spent / self.budget if self.budget else Decimal(1)

    @property
    def percent(self):
        return None if self.share is None else min(int(self.share * 100), 100)

    @property
    def warn(self):
        return self.share is not None and self.share >= WARN_AT


def month_status(team, month=None):
    """This month's spend for the team against its budget."""
    month = month or Month.containing(team)
    return MonthStatus(month, spent(charges_in(team, month)), team.monthly_budget)


def money(value):
    """$0.02 style; costs below a cent keep more digits so they never show as $0.00."""
    if value is None:
        return "–"
    value = Decimal(value)
    if value == 0:
        return "$0"
    if value < Decimal("0.01"):
        return f"${value:.4f}".rstrip("0")
    return f"${value:,.2f}"


def reserve(team, user, amount, month=None, excluding=None):
    """Checks that `amount` more fits the team's budget and the member's cap this month; call it
    inside the transaction that records the charge. Raises BudgetExceeded otherwise. Takes the
    team row's lock first (on SQLite the IMMEDIATE transaction already serialises writers), so
    two submissions near the limit are decided one after the other."""
    assert transaction.get_connection().in_atomic_block, "reserve() must run inside the charge's transaction"
    team = Team.objects.select_for_update().get(pk=team.pk)
    if amount <= 0 or (team.monthly_budget is None and team.member_monthly_cap is None):
        return
    month = month or Month.containing(team)
    charges = charges_in(team, month)
    if excluding is not None:
        charges = charges.exclude(pk=excluding.pk)
    if team.monthly_budget is not None:
        left = team.monthly_budget - spent(charges)
        if amount > left:
            raise BudgetExceeded(say(
                "team_budget", cost=money(amount), left=money(max(left, ZERO)), budget=money(team.monthly_budget),
                month=month.label,
            ))
    if team.member_monthly_cap is not None and user is not None:
        left = team.member_monthly_cap - spent(charges.filter(user=user))
        if amount > left:
            raise BudgetExceeded(say(
                "member_cap", cost=money(amount), left=money(max(left, ZERO)), cap=money(team.member_monthly_cap),
                month=month.label,
            ))


def headroom(team, user):
    """What is left this month of the team's budget and of this member's cap, for the studio to warn
    before Generate with the sentences reserve() refuses with: {"month", "team", "member"}, each
    of the last two None without a limit, else {"left", "limit"} in dollars (floats) and as text."""
    month = Month.containing(team)
    charges = charges_in(team, month)

    def limit(amount, queryset):
        if amount is None:
            return None
        left = max(amount - spent(queryset), ZERO)
        return {"left": float(left), "leftText": money(left), "limitText": money(amount)}

    return {
        "month": month.label,
        "team": limit(team.monthly_budget, charges),
        "member": limit(team.member_monthly_cap, charges.filter(user=user)),
    }


def record(task):
    """The ledger row of a task just created (inside the submit transaction, after reserve())."""
    return Charge.objects.create(
        task=task, team_id=task.team_id, user_id=task.created_by_id, created_at=task.created_at,
        model=task.model, quality=task.quality, provider=task.provider, n=task.n,
        price_per_image=task.price_per_image, reserved_cost=task.reserved_cost,
    )


def reprice(task, provider, price):
    """A task failing over to another provider: its reservation follows the new price. A pricier
    provider is checked against the budget first (BudgetExceeded: the task must not go there)."""
    reserved = price * task.n
    with transaction.atomic():
        charge = Charge.objects.filter(task=task).first()
        if charge and reserved > charge.reserved_cost:
            month = Month.containing(task.team, task.created_at)
            reserve(task.team, task.created_by, reserved, month, excluding=charge)
        task.update_fields(provider=provider, price_per_image=price, reserved_cost=reserved)
        Charge.objects.filter(task=task).update(provider=provider, price_per_image=price, reserved_cost=reserved)


def settle(task, images):
    """The task has ended with `images` kept: the reservation becomes the final cost."""
    final = task.price_per_image * images
    seconds = (task.finished_at - task.created_at).total_seconds() if task.finished_at else None
    with transaction.atomic():
        task.update_fields(tidy_pending=False, final_cost=final)
        Charge.objects.filter(task=task).update(
            final_cost=final, images=images, failed=task.status == Status.FAILED, seconds=seconds
        )
