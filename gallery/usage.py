"""The usage page's numbers for one team and month (SPEC §6), read from the ledger (Charge):
spend and images by day, by member, by provider and by model, failed tasks, and the CSV rows."""

from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

from django.conf import settings
from django.db.models import Count, Q, Sum
from django.db.models.functions import TruncDate

from gallery import catalog, offers
from gallery.budgets import CHARGE_COST, ZERO, charges_in, month_status


@dataclass(frozen=True)
class Line:
    """One row of a table: a name and what it spent."""

    key: str
    label: str
    cost: Decimal
    images: int
    tasks: int
    seconds: float | None = None

    @property
    def per_image(self):
        return self.cost / self.images if self.images else None

    @property
    def seconds_per_image(self):
        return self.seconds / self.images if self.images and self.seconds is not None else None


@dataclass(frozen=True)
class Day:
    day: date
    cost: Decimal
    images: int
    tasks: int


# Annotation names differ from the fields they sum (Django would confuse the two).
TOTALS = {"spent": Sum(CHARGE_COST), "image_count": Sum("images"), "task_count": Count("id")}


def _line(key, label, row):
    return Line(key, label, row["spent"] or ZERO, row["image_count"] or 0, row["task_count"], row.get("busy_seconds"))


def _lines(charges, key, label):
    rows = charges.values(key).annotate(**TOTALS, busy_seconds=Sum("seconds", filter=Q(images__gt=0)))
    return [_line(row[key], label(row[key]), row) for row in rows.order_by("-spent", key)]


class MonthReport:
    """Everything the usage page shows, the same for every role: the whole team's numbers, by
    member too (members already see every teammate's task, its cost and who made it in the
    studio history, so hiding them here would protect nothing and only contradict the totals).
    Only budget settings and the provider balance are for owners (the view decides)."""

    def __init__(self, team, month):
        self.team, self.month = team, month
        self.charges = charges_in(team, month)
        self.status = month_status(team, month)
        self.total = _line("", "Total", self.charges.aggregate(**TOTALS))
        self.failed = _line("failed", "Failed tasks", self.charges.filter(failed=True).aggregate(**TOTALS))

    def days(self):
        """Every day of the month, days without tasks included (the chart's x axis)."""
        found = {
            row["day"]: row
            for row in self.charges.annotate(day=TruncDate("created_at", tzinfo=self.month.zone))
            .values("day").annotate(**TOTALS).order_by()
        }
        days, day = [], self.month.start.date()
        while day < self.month.end.date():
            row = found.get(day, {})
            days.append(Day(day, row.get("spent") or ZERO, row.get("image_count") or 0, row.get("task_count") or 0))
            day += timedelta(days=1)
        return days

    def _names(self):
        return {m.user_id: m.user.display_name for m in self.team.memberships.select_related("user")}

    def members(self):
        names = self._names()
        return _lines(self.charges, "user", lambda pk: names.get(pk, "Former member"))

    def providers(self):
        return _lines(self.charges, "provider", offers.label)

    def models(self):
        return _lines(self.charges, "model", lambda model: catalog.MODELS[model].name if model in catalog.MODELS else model)

    def switch_costs(self):
        """What this month's images would have cost on each model, at today's price for its
        default tier at the provider that would serve it: what a model switch would save."""
        images = self.total.images
        estimates = []
        for model in catalog.MODELS.values():
            dollars = offers.price(model.id, model.default_quality)
            if dollars is not None:
                estimates.append((model, dollars, dollars * images))
        return estimates

    def csv_rows(self):
        """The month's tasks, the whole team's, one row each, oldest first."""
        names = self._names()
        for charge in self.charges.select_related("task").order_by("created_at", "id"):
            task = charge.task
            yield {
                "date": charge.created_at.astimezone(self.month.zone).isoformat(timespec="seconds"),
                "member": names.get(charge.user_id, "Former member"),
                "prompt": task.prompt if task else "(task deleted)",
                "model": charge.model,
                "size": _size(task) if task else "",
                "quality": charge.quality,
                "images_asked": charge.n,
                "provider": charge.provider,
                "status": task.status if task else ("failed" if charge.failed else "deleted"),
                "images": charge.images,
                "price_per_image": charge.price_per_image,
                "reserved_cost": charge.reserved_cost,
                "cost": charge.cost,
            }


CSV_COLUMNS = ("date", "member", "prompt", "model", "size", "quality", "images_asked", "provider", "status",
               "images", "price_per_image", "reserved_cost", "cost")


def _size(task):
    return f"{task.custom_width}x{task.custom_height}" if task.custom_width else task.size


def balance_estimates(credits):
    """About how many images an EvoLink balance buys of each model it serves (None: unknown)."""
    return [(model, offers.images_for(credits, model.id, model.default_quality)) for model in catalog.MODELS.values()
            if offers.price_per_image("evolink", model.id, model.default_quality) is not None]


def low_balance(credits):
    return credits is not None and credits < settings.EVOLINK_LOW_CREDITS
