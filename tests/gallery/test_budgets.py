"""Costs and budgets (SPEC §6, issue 15): what each task reserves and finally costs, budgets and
per-member caps refused before anything is created, checked atomically, and months counted in
the team's time zone."""

import csv
import io
import re
from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone

from gallery import budgets, catalog, pipeline
from gallery.budgets import BudgetExceeded, Month, month_status
from gallery.models import Charge, GenerationTask, ReferenceImage, Role, Status
from tests.factories import make_reference, make_task, run_until_final
from tests.gallery.test_races import race


@pytest.fixture
def priced_sandbox(settings):
    settings.PRICE_OVERRIDES = {"sandbox": Decimal("0.03")}


def set_budget(team, budget=None, member_cap=None, zone=None):
    team.monthly_budget = None if budget is None else Decimal(budget)
    team.member_monthly_cap = None if member_cap is None else Decimal(member_cap)
    team.time_zone = zone or team.time_zone
    team.save()


def charge_of(task):
    return Charge.objects.get(task=task)


# What a task costs -------------------------------------------------------------------------------


@pytest.mark.parametrize("model, quality, n, price", [
    (catalog.SD40, "2K", 3, Decimal("0.0222")),
    (catalog.SD45, "4K", 2, Decimal("0.035")),
    (catalog.SD50_LITE, "3K", 4, Decimal("0.032")),
])
def test_a_task_reserves_n_times_its_models_price_and_settles_to_the_images_made(evolink, team, alice, model, quality, n, price):
    task = make_task(team, alice, n=n, model=model, quality=quality)
    charge = charge_of(task)
    assert (task.price_per_image, task.reserved_cost) == (price, price * n)
    assert (charge.provider, charge.model, charge.reserved_cost, charge.final_cost) == ("evolink", model, price * n, None)
    assert month_status(team).spent == price * n  # the reservation counts until the task ends

    task = run_until_final(task)
    charge.refresh_from_db()
    assert task.status == Status.COMPLETED and task.final_cost == price * n
    assert (charge.final_cost, charge.images, charge.failed) == (price * n, n, False)
    assert charge.seconds is not None and charge.seconds >= 0


def test_a_partial_result_costs_only_the_images_produced(evolink, team, alice):
    task = run_until_final(make_task(team, alice, prompt="Four foxes [evolink:fewer=1]", n=4))
    assert task.status == Status.COMPLETED and task.images.count() == 1
    assert task.reserved_cost == Decimal("0.0888") and task.final_cost == Decimal("0.0222")
    assert charge_of(task).cost == Decimal("0.0222")
    assert month_status(team).spent == Decimal("0.0222")


def test_a_failed_task_costs_nothing_when_nothing_was_produced(evolink, team, alice):
    task = run_until_final(make_task(team, alice, prompt="Blocked [evolink:fail=content_policy_violation]", n=2))
    charge = charge_of(task)
    assert task.status == Status.FAILED
    assert (charge.final_cost, charge.images, charge.failed) == (0, 0, True)
    assert month_status(team).spent == 0


def test_pro_reserves_one_image_whatever_n_says(evolink, team, alice, settings):
    settings.PRICE_OVERRIDES = {"evolink:doubao-seedream-5.0-pro": Decimal("0.05")}
    task = make_task(team, alice, n=4, model=catalog.SD50_PRO, quality="1K")
    assert (task.n, task.reserved_cost, charge_of(task).reserved_cost) == (1, Decimal("0.05"), Decimal("0.05"))


def test_a_price_change_never_rewrites_what_a_task_was_submitted_at(priced_sandbox, team, alice, settings):
    task = make_task(team, alice, n=2)
    settings.PRICE_OVERRIDES = {"sandbox": Decimal("0.50")}
    task = run_until_final(task)
    assert (task.price_per_image, task.final_cost) == (Decimal("0.03"), Decimal("0.06"))
    assert charge_of(task).final_cost == Decimal("0.06")


def test_failing_over_to_a_pricier_provider_reprices_the_reservation(evolink, byteplus, team, alice):
    evolink.fault("create", 503, times=None)
    task = make_task(team, alice, n=2)
    assert charge_of(task).reserved_cost == Decimal("0.0444")
    task = run_until_final(task)
    charge = charge_of(task)
    assert task.provider == "byteplus" and task.status == Status.COMPLETED
    assert (charge.provider, charge.price_per_image, charge.reserved_cost, charge.final_cost) == (
        "byteplus", Decimal("0.03"), Decimal("0.06"), Decimal("0.06"))


def test_failing_over_never_overshoots_the_budget(evolink, byteplus, team, alice):
    set_budget(team, "0.05")  # EvoLink's 2 × $0.0222 fits; BytePlus's 2 × $0.03 does not
    evolink.fault("create", 503, times=None)
    task = run_until_final(make_task(team, alice, n=2))
    assert task.status == Status.FAILED and task.error_code == "budget_exceeded"
    assert "budget" in task.failure.sentence and task.can_retry
    assert byteplus.created == []  # the pricier provider was never asked
    assert month_status(team).spent == 0


def test_a_deleted_task_still_counts_against_the_month(priced_sandbox, team, alice):
    task = run_until_final(make_task(team, alice, n=2))
    assert pipeline.delete(task)
    assert not GenerationTask.objects.filter(pk=task.pk).exists()
    assert month_status(team).spent == Decimal("0.06")
    assert Charge.objects.get(team=team).task is None


# Budgets ---------------------------------------------------------------------------------------


def test_a_submission_over_the_budget_is_refused_in_the_form_and_creates_nothing(priced_sandbox, team, alice, submit):
    set_budget(team, "0.10")
    make_task(team, alice, n=2)  # $0.06 of $0.10 spent
    files_before = ReferenceImage.objects.count()
    response = submit(n="2", references=[_upload()])
    assert response.status_code == 402
    page = response.content.decode()
    assert "This would cost $0.06, and the team has $0.04 left of its $0.10 budget" in page
    assert "An owner can raise the budget" in page
    assert GenerationTask.objects.count() == 1 and Charge.objects.count() == 1
    assert ReferenceImage.objects.count() == files_before
    assert response.on_commit_callbacks == []


def _upload():
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile("ref.png", make_reference().data, content_type="image/png")


def test_what_fits_exactly_is_accepted(priced_sandbox, team, alice, submit):
    set_budget(team, "0.06")
    assert submit(n="2").status_code == 302
    assert month_status(team).spent == Decimal("0.06") and month_status(team).left == 0


def test_a_comparison_is_refused_whole_when_all_its_models_together_do_not_fit(evolink, team, alice, submit):
    set_budget(team, "0.05")  # 4.0 ($0.0222) fits alone, with 4.5 ($0.035) it does not
    response = submit(compare=[catalog.SD40, catalog.SD45], quality="2K")
    assert response.status_code == 402 and GenerationTask.objects.count() == 0 and Charge.objects.count() == 0


def test_the_member_cap_refuses_one_member_and_not_the_others(priced_sandbox, team, alice, bob):
    set_budget(team, member_cap="0.05")
    make_task(team, bob, n=1)
    with pytest.raises(BudgetExceeded, match=r"you have \$0\.02 left of the \$0\.05 each member may spend"):
        make_task(team, bob, n=1)
    make_task(team, alice, n=1)  # Alice has her own $0.05
    assert Charge.objects.filter(user=bob).count() == 1 and Charge.objects.filter(user=alice).count() == 1


def test_a_retry_over_the_budget_is_refused_out_loud(priced_sandbox, team, alice, client_alice):
    task = run_until_final(make_task(team, alice, prompt="x", n=2))
    task.status, task.error_code = Status.FAILED, "service_error"
    task.save()
    set_budget(team, "0.07")
    response = client_alice.post(f"/tasks/{task.pk}/retry/")
    assert response.status_code == 402 and "budget" in response.content.decode()
    assert GenerationTask.objects.count() == 1


def test_the_sandbox_costs_nothing_and_never_hits_a_budget(team, alice):
    set_budget(team, "0")
    task = make_task(team, alice, n=4)
    assert task.reserved_cost == 0 and month_status(team).spent == 0


def test_last_months_spend_does_not_count_against_this_month(priced_sandbox, team, alice):
    set_budget(team, "0.05")
    old = make_task(team, alice, n=1)
    Charge.objects.filter(task=old).update(created_at=timezone.now() - timezone.timedelta(days=40))
    make_task(team, alice, n=1)  # fits: last month's $0.03 is not this month's (else BudgetExceeded)
    assert month_status(team).spent == Decimal("0.03")
    assert Charge.objects.filter(team=team).count() == 2
    with pytest.raises(BudgetExceeded):  # this month's $0.03 + $0.03 would pass the $0.05 budget
        make_task(team, alice, n=1)


@pytest.mark.django_db(transaction=True)
def test_submissions_at_once_near_the_limit_never_overshoot_the_budget(settings, alice, bob):
    # Eight submissions of $0.03 race for a $0.10 budget: at most three may get through. On
    # PostgreSQL the team row's lock decides; on SQLite the IMMEDIATE transactions do.
    from tests.factories import make_team

    settings.PRICE_OVERRIDES = {"sandbox": Decimal("0.03")}
    for round_ in range(3):
        team = make_team(f"Race {round_}", alice, (bob, Role.MEMBER))
        set_budget(team, "0.10")
        results = race(*[lambda user=user: make_task(team, user, n=1) for user in [alice, bob] * 4])
        refused = [r for r in results if isinstance(r, BudgetExceeded)]
        assert not [r for r in results if isinstance(r, Exception) and not isinstance(r, BudgetExceeded)]
        assert len(refused) == 5, results
        assert month_status(team).spent == Decimal("0.09")
        assert GenerationTask.objects.filter(team=team).count() == Charge.objects.filter(team=team).count() == 3


# Months in the team's time zone ----------------------------------------------------------------


def test_months_begin_at_midnight_in_the_teams_time_zone(priced_sandbox, team, alice):
    set_budget(team, zone="Asia/Tokyo")
    task = make_task(team, alice, n=1)
    # 16:30 UTC on 30 November is 01:30 on 1 December in Tokyo.
    Charge.objects.filter(task=task).update(created_at=datetime(2026, 11, 30, 16, 30, tzinfo=ZoneInfo("UTC")))
    november, december = Month.parse(team, "2026-11"), Month.parse(team, "2026-12")
    assert december.start == datetime(2026, 12, 1, tzinfo=ZoneInfo("Asia/Tokyo"))
    assert month_status(team, november).spent == 0
    assert month_status(team, december).spent == Decimal("0.03")
    assert Month.containing(team, datetime(2026, 11, 30, 16, 30, tzinfo=ZoneInfo("UTC"))) == december

    set_budget(team, zone="America/Los_Angeles")  # 08:30 on 30 November there
    assert month_status(team, Month.parse(team, "2026-11")).spent == Decimal("0.03")


@pytest.mark.parametrize("text", ["2026-13", "2026-00", "26-11", "2026-1", "1999-12", "9999-01", "november", "", "2026-11-01"])
def test_a_month_that_is_not_one_is_refused_with_the_form_to_use(team, text):
    with pytest.raises(ValueError):
        Month.parse(team, text)


def test_months_step_across_years(team):
    december = Month.parse(team, "2026-12")
    assert str(december.next()) == "2027-01" and str(december.previous()) == "2026-11"
    assert str(Month.parse(team, "2026-01").previous()) == "2025-12"


# The usage page --------------------------------------------------------------------------------


def spend_some(team, alice, bob):
    """Alice: two tasks of 2 images; Bob: one of 3, one failed; a prompt that looks like a formula."""
    tasks = [
        make_task(team, alice, prompt="A red fox", n=2),
        make_task(team, alice, prompt="=HYPERLINK(\"http://x\")", n=2),
        make_task(team, bob, prompt="A blue heron", n=3),
    ]
    for task in tasks:
        run_until_final(task)
    failed = make_task(team, bob, prompt="Refused", n=1)
    failed.move_to(Status.FAILED, error_code="content_policy_violation")
    run_until_final(failed)
    return tasks + [failed]


def test_the_csv_has_one_row_per_task_and_adds_up_to_the_database(priced_sandbox, team, alice, bob, client_alice):
    spend_some(team, alice, bob)
    response = client_alice.get("/usage/export.csv")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    assert 'filename="usage-' in response["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert len(rows) == Charge.objects.filter(team=team).count() == 4
    assert sum(Decimal(row["cost"]) for row in rows) == month_status(team).spent == Decimal("0.21")
    assert sum(int(row["images"]) for row in rows) == 7
    assert {row["member"] for row in rows} == {"Alice", "Bob"}
    assert "'=HYPERLINK(\"http://x\")" in [row["prompt"] for row in rows]  # never a live formula
    refused = next(row for row in rows if row["prompt"] == "Refused")
    assert (refused["status"], refused["cost"], refused["reserved_cost"]) == ("failed", "0.0000", "0.0300")


def test_a_member_sees_the_same_team_report_as_an_owner(priced_sandbox, team, alice, bob, client_bob):
    """Issue 20: members see every teammate's task and cost in the history, so the usage page shows
    them the whole team too (it used to mix the team's totals with only their own rows)."""
    spend_some(team, alice, bob)
    page = client_bob.get("/usage/").content.decode()
    assert '<strong id="usage-spent">$0.21</strong>' in page  # the team's total
    members = page[page.index('class="usage-members'):page.index("By provider")]
    assert "Alice" in members and "Bob" in members and "$0.12" in members and "$0.09" in members
    rows = list(csv.DictReader(io.StringIO(b"".join(client_bob.get("/usage/export.csv").streaming_content).decode())))
    assert {row["member"] for row in rows} == {"Alice", "Bob"} and len(rows) == 4
    assert 'action="/usage/budget/"' not in page  # only owners set the budget


def test_owners_see_every_member_and_the_split_by_provider_and_model(priced_sandbox, team, alice, bob, client_alice):
    spend_some(team, alice, bob)
    page = client_alice.get("/usage/").content.decode()
    members = page[page.index('class="usage-members'):page.index("By provider")]
    assert "Alice" in members and "Bob" in members and "$0.12" in members and "$0.09" in members
    assert "Sandbox" in page[page.index('class="usage-providers'):]
    models = page[page.index('class="usage-models'):]
    assert "Seedream 4.0" in models and "$0.03" in models  # the average per image
    month = Month.containing(team)
    assert page.count('class="bar"') == (month.end - month.start).days  # one bar a day, empty days too
    assert "Failed tasks" in page and 'action="/usage/budget/"' in page


def test_another_teams_spend_never_shows(priced_sandbox, team, alice, bob, other_team, charlie, client_charlie):
    spend_some(team, alice, bob)
    page = client_charlie.get("/usage/").content.decode()
    assert '<strong id="usage-spent">$0</strong>' in page and "Alice" not in page
    rows = list(csv.DictReader(io.StringIO(b"".join(client_charlie.get("/usage/export.csv").streaming_content).decode())))
    assert rows == []


def test_an_owner_sets_the_budget_and_the_header_shows_spend_against_it(priced_sandbox, team, alice, bob, client_alice):
    response = client_alice.post("/usage/budget/", {"monthly_budget": "0.10", "member_monthly_cap": "", "time_zone": "Europe/Berlin"})
    assert response.status_code == 302
    team.refresh_from_db()
    assert (team.monthly_budget, team.member_monthly_cap, team.time_zone) == (Decimal("0.10"), None, "Europe/Berlin")
    make_task(team, alice, n=2)
    header = client_alice.get("/gallery/").content.decode()
    chip = header[header.index('id="header-spend"') - 60:header.index("spent this month")]
    assert "$0.06 / $0.10" in chip and "is-warning" not in chip
    make_task(team, bob, n=1)  # $0.09 of $0.10: past 80 %
    header = client_alice.get("/gallery/").content.decode()
    chip = header[header.index('id="header-spend"') - 60:header.index("spent this month")]
    assert "is-warning" in chip and "Budget warning" in chip


def test_members_see_the_spend_but_not_the_owners_warning(priced_sandbox, team, alice, bob, client_bob):
    set_budget(team, "0.10")
    make_task(team, alice, n=3)
    header = client_bob.get("/gallery/").content.decode()
    chip = header[header.index('id="header-spend"') - 60:header.index("spent this month")]
    assert "$0.09 / $0.10" in chip and "is-warning" not in chip


@pytest.mark.parametrize("data, problem", [
    ({"monthly_budget": "-5", "time_zone": "UTC"}, "greater than or equal to 0"),
    ({"monthly_budget": "abc", "time_zone": "UTC"}, "Enter a number"),
    ({"monthly_budget": "NaN", "time_zone": "UTC"}, "Enter a number"),
    ({"monthly_budget": "1.005", "time_zone": "UTC"}, "2 decimal places"),
    ({"monthly_budget": "99999999", "time_zone": "UTC"}, "less than or equal to 1000000"),
    ({"monthly_budget": "10", "time_zone": "Mars/Olympus"}, "is not a time zone"),
])
def test_a_budget_that_is_not_one_is_refused_and_changes_nothing(team, client_alice, data, problem):
    response = client_alice.post("/usage/budget/", data)
    assert response.status_code == 400 and problem in response.content.decode()
    team.refresh_from_db()
    assert (team.monthly_budget, team.time_zone) == (None, "UTC")


def test_only_owners_change_the_budget(team, client_bob):
    assert client_bob.post("/usage/budget/", {"monthly_budget": "1", "time_zone": "UTC"}).status_code == 403
    team.refresh_from_db()
    assert team.monthly_budget is None


def test_owners_see_the_evolink_balance_with_a_low_warning_and_what_it_buys(team, client_alice, client, bob, settings):
    from gallery.models import ProviderState

    settings.EVOLINK_API_KEY = "sk-evo-test"  # the balance shows only with an EvoLink key
    settings.EVOLINK_LOW_CREDITS = Decimal("500")
    ProviderState.objects.create(provider="evolink", credits=Decimal("160"), read_at=timezone.now())
    page = client_alice.get("/usage/").content.decode()
    balance = page[page.index('id="balance"'):page.index('id="budget"')]
    assert "Running low" in balance and "160.00 credits" in balance
    # 160 credits at 1.6 credits per $0.0222 image of 4.0: 100 images; 4.5 at $0.035: 63.
    assert "100 4.0" in balance and "63 4.5" in balance
    client.force_login(bob, backend="gallery.auth.EmailOrUsernameBackend")
    assert 'id="balance"' not in client.get("/usage/").content.decode()


def test_a_bad_month_in_the_address_says_why_and_shows_this_month(team, client_alice):
    response = client_alice.get("/usage/?month=2026-13")
    assert response.status_code == 400 and "is not a month between" in response.content.decode()
    assert client_alice.get("/usage/export.csv?month=x").status_code == 400


def test_the_header_spend_costs_one_query_and_only_on_pages_that_show_it(team, client_alice):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as page:
        client_alice.get("/gallery/")
    assert sum('"gallery_charge"' in q["sql"] for q in page.captured_queries) == 1
    # A history that changed brings the chip along (one query); an unchanged poll (204) asks nothing.
    with CaptureQueriesContext(connection) as fragment:
        html = client_alice.get("/history/", HTTP_HX_REQUEST="true").content.decode()
    assert sum('"gallery_charge"' in q["sql"] for q in fragment.captured_queries) == 1
    token = re.search(r'data-version="([^"]+)"', html).group(1)
    with CaptureQueriesContext(connection) as unchanged:
        assert client_alice.get(f"/history/?v={token}", HTTP_HX_REQUEST="true").status_code == 204
    assert not any('"gallery_charge"' in q["sql"] for q in unchanged.captured_queries)


def test_money_reads_as_people_write_it():
    assert [budgets.money(v) for v in (None, 0, Decimal("0.0222"), Decimal("0.06"), Decimal("1234.5"))] == [
        "–", "$0", "$0.02", "$0.06", "$1,234.50"]


@pytest.mark.parametrize("value, top", [("0.21", "0.3"), ("0.0222", "0.03"), ("1.02", "2"), ("7", "8"), ("95", "100"), ("0", "1")])
def test_the_charts_axis_ends_at_a_round_number_above_the_tallest_day(value, top):
    from gallery.charts import nice_ceiling

    assert nice_ceiling(Decimal(value)) == Decimal(top)


def test_the_chart_has_a_bar_a_day_scaled_to_the_axis():
    from datetime import date

    from gallery.charts import spend_chart
    from gallery.usage import Day

    days = [Day(date(2026, 2, d), Decimal("0.15") if d == 3 else Decimal(0), 5 if d == 3 else 0, 1) for d in range(1, 29)]
    chart = spend_chart(days)
    assert len(chart["bars"]) == 28 and [t["label"] for t in chart["ticks"]] == ["$0.00", "$0.10", "$0.20"]
    tallest = max(chart["bars"], key=lambda bar: bar.height)
    assert tallest.day == 3 and tallest.label == "Feb 3: $0.15, 5 images"
    assert tallest.height == pytest.approx((chart["base"] - 14) * 0.75, abs=0.2)
    assert [bar.day for bar in chart["labelled"]] == [1, 5, 10, 15, 20, 25]
