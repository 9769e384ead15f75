"""A new person opens an empty instance in a real browser, onboards and lands in the studio."""

import pytest
from playwright.sync_api import expect

from gallery.models import Membership, Role, User
from tests.factories import PASSWORD


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_a_new_user_onboards_and_lands_signed_in_on_the_studio(live_server, page):
    assert not User.objects.exists()

    page.goto(f"{live_server.url}/gallery/")

    expect(page).to_have_url(f"{live_server.url}/welcome/")
    expect(page.get_by_role("heading", name="Welcome to Seedream Studio")).to_be_visible()
    page.get_by_label("Team name").fill("Pixel Foundry")
    page.get_by_label("Your name").fill("Dana Scully")
    page.get_by_label("E-mail").fill("dana@example.com")
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_label("Password again").fill(PASSWORD)
    page.get_by_role("button", name="Create team and sign in").click()

    expect(page).to_have_url(f"{live_server.url}/")
    expect(page.locator("details.team-switcher summary")).to_have_text("Team: Pixel Foundry")
    expect(page.locator("details.user-menu summary")).to_have_text("Account: Dana Scully")
    expect(page.get_by_text("Welcome to Seedream Studio! Pixel Foundry is ready.")).to_be_visible()
    expect(page.get_by_role("link", name="Studio", exact=True)).to_have_attribute("aria-current", "page")
    owner = User.objects.get()
    assert owner.is_superuser
    assert Membership.objects.get(user=owner).role == Role.OWNER


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_onboarding_in_the_browser_explains_a_password_mismatch(live_server, page):
    page.goto(f"{live_server.url}/welcome/")
    page.get_by_label("Team name").fill("Pixel Foundry")
    page.get_by_label("Your name").fill("Dana Scully")
    page.get_by_label("E-mail").fill("dana@example.com")
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_label("Password again").fill("something else entirely")
    page.get_by_role("button", name="Create team and sign in").click()

    expect(page.get_by_text("The two passwords are not the same.")).to_be_visible()
    expect(page).to_have_url(f"{live_server.url}/welcome/")
    expect(page.get_by_label("Team name")).to_have_value("Pixel Foundry")
    assert not User.objects.exists()
