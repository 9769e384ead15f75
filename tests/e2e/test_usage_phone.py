"""The usage and providers pages on a phone (issue 20): 390 px wide with no sideways scroll, their
tables stacked into cards, axe-core finding nothing serious in light or dark, and a visible focus
ring on their controls."""

from decimal import Decimal

import pytest
from playwright.sync_api import expect

from gallery import routing
from tests.factories import PASSWORD
from tests.e2e.axe import violations
from tests.e2e.test_studio_reach import PHONE
from tests.factories import make_task, run_until_final
from tests.e2e.test_studio_reach import sign_in as sign_in_as

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def month_of_work(settings, team, alice, bob):
    settings.PRICE_OVERRIDES = {"sandbox": Decimal("0.03")}
    settings.TASK_MAX_RETRIES = 0
    for user, prompt, n in [
        (alice, "A lighthouse at dusk over a long and winding coastline, in soft pastel light", 2),
        (bob, "A heron", 3),
        (bob, "[sandbox:fail=content_policy_violation] A fox", 1),
        (alice, "[sandbox:http=400] A crane", 1),
    ]:
        run_until_final(make_task(team, user, prompt=prompt, n=n))
    # A long failure message without spaces must wrap inside its card, not widen the page.
    routing.record("sandbox", ok=False, code="service_unavailable_error", message="upstream/" * 40)


def fits_the_phone(page):
    return page.evaluate("document.documentElement.scrollWidth") <= 390


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_usage_and_providers_fit_a_phone_with_nothing_serious_for_axe(scheme, browser, live_server, month_of_work):
    context = browser.new_context(**PHONE, color_scheme=scheme, bypass_csp=True)  # axe is injected
    page = context.new_page()
    sign_in_as(page, live_server, "alice")
    found, wide = {}, []
    for path in ["/usage/", "/providers/"]:
        page.goto(f"{live_server.url}{path}")
        expect(page.locator("main h1")).to_be_visible()
        if not fits_the_phone(page):
            wide.append((path, page.evaluate("document.documentElement.scrollWidth")))
        found[path] = violations(page)
    page.goto(f"{live_server.url}/usage/")
    page.locator("details", has_text="Each day as a table").locator("summary").click()
    if not fits_the_phone(page):
        wide.append(("/usage/ days open", page.evaluate("document.documentElement.scrollWidth")))
    found["/usage/ days open"] = violations(page)
    context.close()
    assert not wide, wide
    assert not any(found.values()), found


def test_on_a_phone_the_tables_stack_into_cards(browser, live_server, month_of_work):
    context = browser.new_context(**PHONE)
    page = context.new_page()
    sign_in_as(page, live_server, "alice")
    page.goto(f"{live_server.url}/providers/")
    card = page.locator('tr[data-provider="sandbox"]')
    expect(card).to_contain_text("2 of 4 finished tasks failed")
    expect(card).to_contain_text("1 when sent, 1 after the provider took it")
    assert page.locator("table.providers thead").bounding_box()["height"] <= 1  # left for screen readers
    box = card.bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= 390
    expect(card.locator('td[data-label="Requests"]')).to_contain_text("requests failed")

    page.goto(f"{live_server.url}/usage/")
    members = page.locator("table.usage-members")
    assert members.locator("thead").bounding_box()["height"] <= 1
    for row in members.locator("tbody tr").all():
        box = row.bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= 390
    cell = page.locator("table.usage-models tbody tr").first.locator("td").last
    label = cell.evaluate("td => getComputedStyle(td, '::before').content")
    assert label == '"Time per image"'  # each value says what it is
    assert fits_the_phone(page)
    context.close()


def test_a_member_sees_the_whole_teams_usage_on_a_phone(browser, live_server, month_of_work):
    context = browser.new_context(**PHONE)
    page = context.new_page()
    sign_in_as(page, live_server, "bob")
    page.goto(f"{live_server.url}/usage/")
    members = page.locator("table.usage-members")
    expect(members.locator("tr", has_text="Alice")).to_contain_text("$0.06")
    expect(members.locator("tr", has_text="Bob")).to_contain_text("$0.09")
    expect(page.get_by_text("runs on the offline sandbox")).to_be_visible()
    expect(page.get_by_text("EvoLink")).to_have_count(0)
    assert fits_the_phone(page)
    context.close()


def test_focus_is_visible_on_the_usage_pages_controls(page, live_server, month_of_work):
    sign_in_as(page, live_server, "alice")

    def outline_of_focused():
        return page.evaluate(
            "() => { const s = getComputedStyle(document.activeElement);"
            " return [document.activeElement.tagName, s.outlineStyle, parseFloat(s.outlineWidth)]; }"
        )

    page.goto(f"{live_server.url}/usage/")
    page.locator(".usage-head nav a").first.focus()
    page.keyboard.press("Shift+Tab")
    page.keyboard.press("Tab")  # focus by keyboard: :focus-visible
    tag, style, width = outline_of_focused()
    assert tag == "A" and style == "solid" and width >= 2
    page.locator("#id_time_zone").focus()
    page.keyboard.press("Shift+Tab")
    page.keyboard.press("Tab")
    tag, style, width = outline_of_focused()
    assert tag == "SELECT" and style == "solid" and width >= 2
    page.locator("main details summary").first.focus()
    page.keyboard.press("Shift+Tab")
    page.keyboard.press("Tab")
    tag, style, width = outline_of_focused()
    assert tag == "SUMMARY" and style == "solid" and width >= 2
