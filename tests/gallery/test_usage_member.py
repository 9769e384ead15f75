"""The usage page is one report for the whole team, whatever the role (issue 20): a member who
spent nothing still sees the team's members and a CSV of the team's tasks; words about EvoLink
only where EvoLink is configured; the budget form offers common time zones first."""

import csv
import io
from decimal import Decimal

import pytest
from django.utils import timezone

from gallery.budgets import Month
from gallery.forms.budgets import BudgetForm
from gallery.models import Membership, ProviderState, Role
from gallery.usage import MonthReport
from tests.factories import make_user
from tests.factories import make_task, run_until_final


@pytest.fixture
def priced_sandbox(settings):
    settings.PRICE_OVERRIDES = {"sandbox": Decimal("0.03")}


@pytest.fixture
def dana(team):
    """A member who has generated nothing this month."""
    user = make_user("dana", first_name="Dana")
    Membership.objects.create(team=team, user=user, role=Role.MEMBER)
    return user


@pytest.fixture
def client_dana(client, dana):
    client.force_login(dana, backend="gallery.auth.EmailOrUsernameBackend")
    return client


@pytest.fixture
def work(priced_sandbox, team, alice, bob):
    for user, n in [(alice, 2), (bob, 1)]:
        run_until_final(make_task(team, user, prompt=f"{user.first_name}'s lighthouse", n=n))


def csv_rows(client):
    return list(csv.DictReader(io.StringIO(b"".join(client.get("/usage/export.csv").streaming_content).decode())))


def test_a_member_who_spent_nothing_sees_the_teams_members_and_csv(work, client_dana):
    page = client_dana.get("/usage/").content.decode()
    assert '<strong id="usage-spent">$0.09</strong>' in page
    members = page[page.index('class="usage-members'):page.index("By provider")]
    assert "Alice" in members and "$0.06" in members and "Bob" in members and "$0.03" in members
    assert "Nothing this month" not in page and "your tasks" not in page.lower()
    rows = csv_rows(client_dana)
    assert [row["member"] for row in rows] == ["Alice", "Bob"]
    assert sum(Decimal(row["cost"]) for row in rows) == Decimal("0.09")


def test_every_role_gets_the_same_rows(work, team, client, alice, bob):
    report = MonthReport(team, Month.containing(team))
    assert [(line.label, line.cost) for line in report.members()] == [("Alice", Decimal("0.06")), ("Bob", Decimal("0.03"))]
    exports = []
    for user in (alice, bob):
        client.force_login(user, backend="gallery.auth.EmailOrUsernameBackend")
        exports.append(csv_rows(client))
    assert exports[0] == exports[1] and len(exports[0]) == 2


def test_in_sandbox_mode_the_page_says_so_and_nothing_about_evolink(team, client_alice, settings):
    settings.EVOLINK_API_KEY = settings.BYTEPLUS_API_KEY = ""
    ProviderState.objects.create(provider="evolink", credits=Decimal("160"), read_at=timezone.now())  # left from before
    page = client_alice.get("/usage/").content.decode()
    assert "EvoLink" not in page and "Not read yet" not in page
    assert "runs on the offline sandbox" in page


def test_with_an_evolink_key_an_owner_is_told_the_balance_is_not_read_yet(team, client_alice, settings):
    settings.EVOLINK_API_KEY = "sk-evo-test"
    page = client_alice.get("/usage/").content.decode()
    assert "EvoLink balance" in page and "Not read yet" in page and "offline sandbox" not in page


def test_the_time_zone_list_offers_common_zones_first_then_all(team):
    team.time_zone = "Pacific/Auckland"
    team.save()
    html = str(BudgetForm(instance=team)["time_zone"])
    common, rest = html.split('<optgroup label="All time zones">')
    assert '<optgroup label="Common time zones">' in common
    values = [part.split('"')[0] for part in common.split('value="')[1:]]
    assert values[:2] == ["UTC", "Pacific/Auckland"]  # UTC, then the team's own zone
    for zone in ("Europe/London", "Europe/Berlin", "America/New_York", "America/Los_Angeles", "Asia/Tokyo",
                 "Asia/Shanghai", "Asia/Singapore", "Australia/Sydney"):
        assert zone in values
    assert len(values) < 20 and len(values) == len(set(values))
    assert common.count("selected") == 1 and 'value="Pacific/Auckland" selected' in common
    assert "selected" not in rest  # the team's zone is chosen once, in the common group
    assert rest.count("<option") > 300 and 'value="America/Argentina/Buenos_Aires"' in rest


@pytest.mark.parametrize("zone, valid", [("Europe/Berlin", True), ("America/Argentina/Buenos_Aires", True),
                                         ("Pacific/Chatham", True), ("Mars/Olympus", False)])
def test_any_zone_of_the_database_is_still_accepted(team, zone, valid):
    form = BudgetForm({"monthly_budget": "", "member_monthly_cap": "", "time_zone": zone}, instance=team)
    assert form.is_valid() is valid
