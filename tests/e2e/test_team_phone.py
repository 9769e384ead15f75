"""The team and API pages on a phone, and the main navigation (issue 20): at 390 px nothing scrolls
sideways and every Remove, Withdraw and Revoke is on the screen; the API page is reached by
clicking from the studio, by owners and members, on a laptop and on a phone; axe-core finds
nothing serious in light or dark."""

import pytest
from playwright.sync_api import expect

from gallery.models import ApiKey, Invite, Role
from tests.factories import make_user
from tests.e2e.axe import violations
from tests.e2e.test_studio_reach import LAPTOP, PHONE, sign_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def crowded_team(team, alice):
    """Studio with long names and addresses, pending invites and API keys."""
    from gallery.models import Membership

    for username, first, last, role in [
        ("dana", "Dana", "Okonkwo-Villanueva", Role.ADMIN),
        ("erin", "Erin", "Ito", Role.MEMBER),
        ("frank", "Francesca", "Montgomery-Castellanos", Role.MEMBER),
    ]:
        user = make_user(username, email=f"{username}.{last.lower()}@a-rather-long-company-domain.example.com",
                         first_name=first, last_name=last)
        Membership.objects.create(team=team, user=user, role=role)
    Invite.create(team, alice, email="someone.with.a.long.address@a-rather-long-company-domain.example.com")
    Invite.create(team, alice, role=Role.ADMIN)
    for name in ["Nightly catalogue batch for the spring collection", "CI", "Zapier"]:
        ApiKey.create(team, name, alice)
    return team


def shown(locator):
    """Waits until the element has faded in (Pico's menus do), so colours are measured as seen."""
    locator.page.wait_for_function("(el) => getComputedStyle(el).opacity === '1'", arg=locator.element_handle())


def scroll_width(page):
    return page.evaluate("document.documentElement.scrollWidth")


def within_width(page, locator):
    box = locator.bounding_box()
    return box is not None and box["x"] >= 0 and box["x"] + box["width"] <= page.viewport_size["width"]


def test_the_team_page_fits_a_phone_with_every_button_on_screen(new_context, live_server, crowded_team):
    page = new_context(**PHONE).new_page()
    sign_in(page, live_server)
    page.goto(f"{live_server.url}/team/")
    expect(page.get_by_role("heading", name="Pending invites")).to_be_visible()
    page.screenshot(path="/tmp/team-phone.png", full_page=True)

    assert scroll_width(page) <= 390
    removes = page.get_by_role("button", name="Remove", exact=False)
    assert removes.count() == 4  # bob, dana, erin, frank: not alice herself
    for button in [*removes.all(), *page.get_by_role("button", name="Withdraw").all()]:
        assert within_width(page, button), button
    for select in page.get_by_role("combobox").all():
        assert within_width(page, select)
    assert within_width(page, page.get_by_role("button", name="Delete team"))


def test_the_api_page_fits_a_phone_with_every_button_on_screen(new_context, live_server, crowded_team):
    page = new_context(**PHONE).new_page()
    sign_in(page, live_server)
    page.goto(f"{live_server.url}/api/")
    expect(page.locator("tr[data-key]")).to_have_count(3)
    page.screenshot(path="/tmp/api-phone.png", full_page=True)

    assert scroll_width(page) <= 390
    revokes = page.get_by_role("button", name="Revoke")
    assert revokes.count() == 3
    for button in [*revokes.all(), *page.get_by_role("button", name="New signing secret").all()]:
        assert within_width(page, button)


# The API page is found by clicking, by everyone in the team ---------------------------------------


@pytest.mark.parametrize("size", ["laptop", "phone"])
def test_an_owner_reaches_the_api_page_from_the_studio_by_clicking(size, new_context, live_server, team):
    page = new_context(**{"laptop": LAPTOP, "phone": PHONE}[size]).new_page()
    sign_in(page, live_server)
    if size == "phone":
        menu = page.locator(".nav-menu")
        expect(menu.get_by_text("Menu")).to_be_visible()  # in sight, not in the account menu
        menu.locator("summary").click()
        nav = menu
    else:
        nav = page.locator(".main-nav")
    expect(nav.get_by_role("link", name="Studio")).to_have_attribute("aria-current", "page")

    nav.get_by_role("link", name="API").click()

    expect(page).to_have_url(f"{live_server.url}/api/")
    expect(page.get_by_role("heading", name="API", exact=True)).to_be_visible()
    if size == "phone":
        page.locator(".nav-menu summary").click()
    expect(nav.get_by_role("link", name="API")).to_have_attribute("aria-current", "page")
    expect(nav.get_by_role("link", name="Providers")).to_be_visible()  # an owner's too
    assert scroll_width(page) <= page.viewport_size["width"]


@pytest.mark.parametrize("size", ["laptop", "phone"])
def test_a_member_sees_the_api_link_too_but_not_providers(size, new_context, live_server, team):
    page = new_context(**{"laptop": LAPTOP, "phone": PHONE}[size]).new_page()
    sign_in(page, live_server, "bob")
    nav = page.locator(".main-nav")
    if size == "phone":
        page.locator(".nav-menu summary").click()
        nav = page.locator(".nav-menu")

    nav.get_by_role("link", name="API").click()

    expect(page).to_have_url(f"{live_server.url}/api/")
    expect(page.get_by_text("Owners and admins create and revoke keys.")).to_be_visible()
    expect(page.get_by_role("link", name="Providers")).to_have_count(0)


def test_the_account_menu_keeps_only_the_accounts_things(new_context, live_server, team):
    page = new_context(**PHONE).new_page()
    sign_in(page, live_server)
    page.locator("details.user-menu summary").click()
    account = page.locator("details.user-menu")
    expect(account.get_by_role("link", name="Change password")).to_be_visible()
    expect(account.get_by_role("link", name="Gallery")).to_have_count(0)


# Every control fits, shows its focus, and axe finds nothing serious -----------------------------------


def test_the_callbacks_table_fits_a_phone(new_context, live_server, crowded_team, alice):
    from gallery.models import CallbackDelivery, Delivery
    from tests.factories import make_finished_task

    key = ApiKey.objects.first()
    for i in range(2):
        CallbackDelivery.objects.create(
            task=make_finished_task(crowded_team, alice, prompt=f"A long prompt for callback number {i} " * 3),
            team=crowded_team, api_key=key, url="https://hooks.example.com/" + "very-long-path/" * 8,
            webhook_id=f"msg_{i}", state=Delivery.FAILED, attempts=0,
        )
    page = new_context(**PHONE).new_page()
    sign_in(page, live_server)
    page.goto(f"{live_server.url}/api/")
    expect(page.locator("tr[data-delivery]")).to_have_count(2)

    assert scroll_width(page) <= 390
    for button in page.get_by_role("button", name="Redeliver").all():
        assert within_width(page, button)


def test_account_team_and_invite_pages_fit_a_phone(new_context, live_server, team, alice, charlie, settings):
    from gallery.models import Team

    _, token = Invite.create(team, alice, email="charlie@example.com")
    _, open_token = Invite.create(team, alice)
    Team.create_with_owner("Rivals", charlie)
    page = new_context(**PHONE).new_page()
    wide = []

    def visit(path):
        page.goto(f"{live_server.url}{path}")
        expect(page.locator("main h1")).to_be_visible()
        if scroll_width(page) > 390:
            wide.append((path, scroll_width(page)))

    for path in ["/login/", "/password/reset/", "/password/reset/sent/", "/password/reset/complete/",
                 f"/invite/{open_token}/", "/invite/not-a-real-token/"]:
        visit(path)
    sign_in(page, live_server, "charlie")
    for path in ["/teams/new/", "/password/change/", "/password/change/done/", f"/invite/{token}/"]:
        visit(path)
    assert not wide, wide


def test_focus_is_visible_on_text_buttons_and_the_team_pages_controls(new_context, live_server, crowded_team):
    page = new_context(**PHONE).new_page()
    sign_in(page, live_server)
    page.goto(f"{live_server.url}/team/")
    summary = page.locator("details.user-menu summary")
    summary.focus()
    page.keyboard.press("Enter")  # opened from the keyboard
    targets = [
        page.locator("details.user-menu").get_by_role("button", name="Sign out"),
        page.locator(".nav-menu summary"),
        page.get_by_role("button", name="Remove Bob"),
        page.get_by_label("Role of Bob", exact=True),
    ]
    for target in targets:
        target.focus()
        ring = target.evaluate("""(el) => { const s = getComputedStyle(el);
            return {visible: el.matches(':focus-visible'), outline: s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) >= 2,
                    shadow: s.boxShadow !== 'none'}; }""")
        # An outline of ours, or Pico's focus ring (a box-shadow) on its form controls.
        assert ring["visible"] and (ring["outline"] or ring["shadow"]), (target, ring)


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_axe_finds_nothing_serious_on_the_team_and_api_pages(scheme, browser, live_server, crowded_team):
    found = {}
    for size, viewport in [("phone", PHONE), ("laptop", LAPTOP)]:
        context = browser.new_context(**viewport, color_scheme=scheme, bypass_csp=True)  # axe is injected
        page = context.new_page()
        sign_in(page, live_server)
        for path in ["/team/", "/api/"]:
            page.goto(f"{live_server.url}{path}")
            found[f"{size} {path}"] = violations(page)
        if size == "phone":
            page.locator(".nav-menu summary").click()
            shown(page.locator(".nav-menu ul"))
            found["phone menu open"] = violations(page)
        context.close()
    assert not any(found.values()), found


# Destructive actions ask first, in the one styled dialog -------------------------------------------------


def test_removing_a_member_asks_first_and_cancel_keeps_them(new_context, live_server, team, bob):
    from gallery.models import Membership

    page = new_context(**PHONE).new_page()
    page.on("dialog", lambda dialog: pytest.fail(f"the browser's own {dialog.type}() was used"))
    sign_in(page, live_server)
    page.goto(f"{live_server.url}/team/")

    page.get_by_role("button", name="Remove Bob").click()
    dialog = page.locator("dialog.confirm-dialog")
    expect(dialog).to_be_visible()
    expect(dialog.get_by_role("heading")).to_have_text("Remove Bob from Studio?")
    expect(dialog).to_contain_text("They lose access to the team's images at once.")
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_be_hidden()
    assert Membership.objects.filter(user=bob).exists()

    page.get_by_role("button", name="Remove Bob").click()
    dialog.get_by_role("button", name="Remove", exact=True).click()
    expect(page.get_by_text("Bob was removed from Studio.")).to_be_visible()
    assert not Membership.objects.filter(user=bob).exists()


def test_an_owner_deletes_the_team_on_a_phone(new_context, live_server, team):
    from gallery.models import Team

    page = new_context(**PHONE).new_page()
    sign_in(page, live_server)
    page.goto(f"{live_server.url}/team/")
    field = page.get_by_label("Type the team's name, Studio, to confirm")

    field.fill("Studoi")
    page.get_by_role("button", name="Delete team").click()
    page.locator("dialog.confirm-dialog").get_by_role("button", name="Delete team").click()
    expect(page.get_by_role("alert")).to_contain_text("That is not this team's name.")
    assert Team.objects.filter(pk=team.pk).exists()

    page.get_by_label("Type the team's name, Studio, to confirm").fill("Studio")
    page.get_by_role("button", name="Delete team").click()
    page.locator("dialog.confirm-dialog").get_by_role("button", name="Delete team").click()
    expect(page).to_have_url(f"{live_server.url}/teams/new/")
    expect(page.get_by_text("Studio was deleted, with its images and files.")).to_be_visible()
    assert not Team.objects.filter(pk=team.pk).exists()
    assert scroll_width(page) <= 390
