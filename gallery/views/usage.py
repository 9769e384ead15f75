import csv

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import StreamingHttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from gallery import offers, usage
from gallery.access import team_required
from gallery.budgets import Month
from gallery.charts import spend_chart
from gallery.forms.budgets import BudgetForm
from gallery.models import ProviderState, Role


def _month(request):
    """The month asked for (?month=2026-11), else the current one; a bad value says why."""
    text = request.GET.get("month")
    if not text:
        return Month.containing(request.team), ""
    try:
        return Month.parse(request.team, text), ""
    except ValueError as e:
        return Month.containing(request.team), str(e)


def _report(request, month):
    """The team's report, the same for every role (gallery/usage.py says why)."""
    return usage.MonthReport(request.team, month)


@team_required
@require_GET
def usage_page(request, budget_form=None, status=200):
    month, problem = _month(request)
    report = _report(request, month)
    is_owner = request.membership.role == Role.OWNER
    # EvoLink's balance means something only with an EvoLink key; without any provider key the
    # studio draws on the offline sandbox, and the page says so instead.
    evolink = bool(settings.EVOLINK_API_KEY)
    balance = (ProviderState.objects.filter(provider="evolink", read_at__isnull=False).first()
               if is_owner and evolink else None)
    ctx = {
        "month": month,
        "this_month": Month.containing(request.team),
        "problem": problem,
        "report": report,
        "chart": spend_chart(report.days()),
        "budget_form": budget_form or (BudgetForm(instance=request.team) if is_owner else None),
        "evolink_configured": evolink,
        "sandbox_only": offers.configured() == ["sandbox"],
        "balance": balance,
        "balance_images": usage.balance_estimates(balance.credits) if balance else [],
        "balance_low": balance is not None and usage.low_balance(balance.credits),
    }
    return render(request, "gallery/usage.html", ctx, status=400 if problem else status)


@team_required
@require_POST
def budget(request):
    """Owners set the team's monthly budget, the per-member cap and the time zone."""
    if request.membership.role != Role.OWNER:
        raise PermissionDenied("Only the team's owners can change its budget.")
    form = BudgetForm(request.POST, instance=request.team)
    if not form.is_valid():
        request.method = "GET"
        return usage_page(request, budget_form=form, status=400)
    form.save()
    messages.success(request, "Budget saved. It applies to submissions from now on.")
    return redirect("usage")


class _Echo:
    def write(self, value):
        return value


def _cell(value):
    """A spreadsheet must not run a prompt as a formula (=, +, -, @ at the start)."""
    text = str(value)
    return f"'{text}" if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


@team_required
@require_GET
def usage_csv(request):
    month, problem = _month(request)
    if problem:
        return usage_page(request)
    writer = csv.writer(_Echo())
    rows = _report(request, month).csv_rows()
    lines = (writer.writerow([_cell(row[column]) for column in usage.CSV_COLUMNS]) for row in rows)
    response = StreamingHttpResponse(
        (line for chunk in ([writer.writerow(usage.CSV_COLUMNS)], lines) for line in chunk),
        content_type="text/csv; charset=utf-8",
    )
    response["Content-Disposition"] = f'attachment; filename="usage-{month}.csv"'
    return response
