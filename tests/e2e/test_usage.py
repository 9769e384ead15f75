"""The usage page in a real browser (issue 15): a month with data shows its chart and tables, the
owner sets a budget, the header shows spend against it, and the CSV downloads."""

import csv
import io
from decimal import Decimal

import pytest
from playwright.sync_api import expect

from gallery.budgets import month_status
from tests.e2e.test_studio import sign_in
from tests.e2e.test_studio_reach import PHONE
from tests.factories import make_task, run_until_final

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def month_of_work(settings, team, alice, bob):
    settings.PRICE_OVERRIDES = {"sandbox": Decimal("0.03")}
    for user, n in [(alice, 2), (alice, 1), (bob, 3)]:
        run_until_final(make_task(team, user, prompt=f"{user.first_name}'s lighthouse", n=n))


def test_the_usage_page_shows_the_months_chart_and_tables(live_server, page, team, month_of_work):
    sign_in(page, live_server)
    page.get_by_role("link", name="Usage").first.click()
    expect(page.get_by_role("heading", name="Usage")).to_be_visible()
    expect(page.locator("#usage-spent")).to_have_text("$0.18")

    chart = page.locator(".usage-chart svg")
    expect(chart).to_be_visible()
    assert chart.bounding_box()["width"] > 600  # drawn at the page's width, not a thumbnail
    bars = page.locator(".usage-chart rect.bar")
    tall = [bar for bar in bars.all() if float(bar.get_attribute("height")) > 0]
    assert len(tall) == 1  # everything happened today
    assert tall[0].bounding_box()["height"] > 50
    expect(tall[0].locator("title")).to_contain_text("$0.18, 6 images")

    members = page.locator("table.usage-members")
    expect(members.locator("tr", has_text="Alice")).to_contain_text("$0.09")
    expect(members.locator("tr", has_text="Bob")).to_contain_text("$0.09")
    expect(page.locator("table.usage-models")).to_contain_text("Seedream 4.0")

    with page.expect_download() as download:
        page.get_by_role("link", name="CSV of").click()
    rows = list(csv.DictReader(io.StringIO(open(download.value.path(), encoding="utf-8").read())))
    assert len(rows) == 3 and sum(Decimal(row["cost"]) for row in rows) == Decimal("0.18")


def test_an_owner_sets_a_budget_and_the_header_warns_past_80_percent(live_server, page, team, month_of_work):
    sign_in(page, live_server)
    page.goto(f"{live_server.url}/usage/")
    page.get_by_label("Monthly budget for the team ($)").fill("0.20")
    page.get_by_label("Months are counted in the time zone").select_option("Europe/Berlin")
    page.get_by_role("button", name="Save budget").click()
    expect(page.get_by_text("Budget saved.")).to_be_visible()
    chip = page.locator("#header-spend")
    expect(chip).to_contain_text("$0.18 / $0.20")
    expect(chip).to_have_class("spend-chip is-warning")  # 90 % spent: owners are warned
    expect(page.locator(".usage-totals progress")).to_have_attribute("value", "90")
    team.refresh_from_db()
    assert team.monthly_budget == Decimal("0.20") and month_status(team).left == Decimal("0.02")


def test_on_a_phone_the_page_fits_the_screen(live_server, browser, team, month_of_work):
    context = browser.new_context(**PHONE)
    page = context.new_page()
    sign_in(page, live_server)
    page.goto(f"{live_server.url}/usage/")
    expect(page.locator(".usage-chart svg")).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    context.close()
