"""Onboarding, sign-in and sign-out, lockout, password change and reset (SPEC §1)."""

import re

import pytest
from axes.models import AccessAttempt

from gallery.models import Membership, Role, Team, User
from tests.factories import PASSWORD

NEW_PASSWORD = "plum orchard at midnight"

ONBOARDING = {
    "team_name": "Pixel Foundry",
    "name": "Dana Scully",
    "email": "Dana@Example.com",
    "password1": PASSWORD,
    "password2": PASSWORD,
}


def signed_in_user_id(client):
    value = client.session.get("_auth_user_id")
    return int(value) if value else None


def current_team_in_header(response):
    match = re.search(r'<summary><span class="sr-only">Team: </span>([^<]*)</summary>', response.content.decode())
    return match.group(1).strip() if match else None


# Onboarding


@pytest.mark.django_db
@pytest.mark.parametrize(
    "url", ["/", "/gallery/", "/usage/", "/api/", "/team/", "/teams/new/", "/login/", "/admin/", "/invite/x/"]
)
def test_an_empty_instance_sends_every_page_to_onboarding(client, url):
    response = client.get(url)

    assert response.status_code == 302
    assert response["Location"] == "/welcome/"


@pytest.mark.django_db
def test_the_onboarding_page_asks_for_the_team_and_its_owner(client):
    response = client.get("/welcome/")

    assert response.status_code == 200
    for field in ("team_name", "name", "email", "password1", "password2"):
        assert f'name="{field}"' in response.content.decode()


@pytest.mark.django_db
def test_onboarding_creates_the_first_team_and_its_owner_and_signs_them_in(client):
    assert not User.objects.exists() and not Team.objects.exists()

    response = client.post("/welcome/", ONBOARDING, follow=True)

    owner = User.objects.get()
    assert owner.email == "Dana@Example.com"
    assert (owner.first_name, owner.last_name) == ("Dana", "Scully")
    assert owner.is_staff and owner.is_superuser
    assert owner.check_password(PASSWORD)
    membership = Membership.objects.get()
    assert (membership.user, membership.team.name, membership.role) == (owner, "Pixel Foundry", Role.OWNER)
    assert signed_in_user_id(client) == owner.pk
    assert response.redirect_chain == [("/", 302)]
    assert response.status_code == 200
    assert current_team_in_header(response) == "Pixel Foundry"
    assert "Pixel Foundry is ready" in response.content.decode()


def test_onboarding_is_closed_once_anyone_has_an_account(client, alice):
    get = client.get("/welcome/")
    post = client.post("/welcome/", {**ONBOARDING, "email": "mallory@example.com"})

    assert get.status_code == 302 and get["Location"] != "/welcome/"
    assert post.status_code == 302 and post["Location"] != "/welcome/"
    assert list(User.objects.values_list("username", flat=True)) == ["alice"]
    assert not Team.objects.exists()
    assert signed_in_user_id(client) is None


def test_an_instance_with_users_no_longer_redirects_to_onboarding(client, alice):
    response = client.get("/login/")

    assert response.status_code == 200
    assert "Sign in" in response.content.decode()


@pytest.mark.django_db
@pytest.mark.parametrize(
    "changes, message",
    [
        ({"password2": "something else entirely"}, "The two passwords are not the same."),
        ({"password1": "12345678", "password2": "12345678"}, "This password is too common."),
        ({"password1": "Sh0rt!", "password2": "Sh0rt!"}, "This password is too short."),
        ({"team_name": "   "}, "This field is required."),
        ({"name": ""}, "This field is required."),
        ({"email": "not-an-address"}, "Enter a valid email address."),
    ],
)
def test_onboarding_with_bad_input_explains_and_creates_nothing(client, changes, message):
    response = client.post("/welcome/", {**ONBOARDING, **changes})

    assert response.status_code == 400
    assert message in response.content.decode()
    assert not User.objects.exists()
    assert not Team.objects.exists()
    assert signed_in_user_id(client) is None


@pytest.mark.django_db
def test_an_empty_onboarding_post_asks_for_every_field(client):
    response = client.post("/welcome/", {})

    assert response.status_code == 400
    assert response.content.decode().count("This field is required.") == 5
    assert not User.objects.exists()


@pytest.mark.django_db
def test_onboarding_keeps_what_was_typed_except_passwords(client):
    response = client.post("/welcome/", {**ONBOARDING, "password2": "nope nope nope"})

    body = response.content.decode()
    assert 'value="Pixel Foundry"' in body
    assert 'value="Dana@Example.com"' in body
    assert PASSWORD not in body


# Sign-in and sign-out


@pytest.mark.parametrize("typed", ["alice@example.com", "ALICE@Example.COM", "  alice@example.com ", "alice"])
def test_it_signs_in_by_email_in_any_case_or_by_username(client, alice, team, typed):
    response = client.post("/login/", {"username": typed, "password": PASSWORD})

    assert response.status_code == 302
    assert response["Location"] == "/"
    assert signed_in_user_id(client) == alice.pk


def test_it_follows_next_after_signing_in(client, alice, team):
    response = client.post("/login/", {"username": "alice", "password": PASSWORD, "next": "/team/"})

    assert response.status_code == 302
    assert response["Location"] == "/team/"


def test_it_ignores_a_next_that_leaves_the_site(client, alice, team):
    response = client.post(
        "/login/", {"username": "alice", "password": PASSWORD, "next": "https://evil.example/steal"}
    )

    assert response.status_code == 302
    assert response["Location"] == "/"


def test_a_wrong_password_shows_a_clear_message(client, alice, team):
    response = client.post("/login/", {"username": "alice@example.com", "password": "not my password"})

    assert response.status_code == 400
    assert "That e-mail/username and password do not match" in response.content.decode()
    assert signed_in_user_id(client) is None
    assert AccessAttempt.objects.get().failures_since_start == 1


def test_an_unknown_account_gets_the_same_message(client, alice):
    response = client.post("/login/", {"username": "nobody@example.com", "password": PASSWORD})

    assert response.status_code == 400
    assert "That e-mail/username and password do not match" in response.content.decode()
    assert signed_in_user_id(client) is None


def test_a_switched_off_account_cannot_sign_in(client, alice):
    alice.is_active = False
    alice.save()

    response = client.post("/login/", {"username": "alice", "password": PASSWORD})

    assert response.status_code == 400
    assert signed_in_user_id(client) is None


def test_sign_in_with_missing_fields_asks_for_them(client, alice):
    response = client.post("/login/", {})

    assert response.status_code == 400
    assert "This field is required." in response.content.decode()
    assert signed_in_user_id(client) is None


def test_a_signed_in_person_opening_the_sign_in_page_goes_to_the_studio(client_alice):
    response = client_alice.get("/login/")

    assert response.status_code == 302
    assert response["Location"] == "/"


def test_signing_out_by_post_ends_the_session(client_alice, alice):
    assert signed_in_user_id(client_alice) == alice.pk

    response = client_alice.post("/logout/")

    assert response.status_code == 302
    assert response["Location"] == "/login/"
    assert signed_in_user_id(client_alice) is None
    assert client_alice.get("/team/")["Location"].startswith("/login/")


def test_signing_out_by_get_is_refused_and_keeps_the_session(client_alice, alice):
    response = client_alice.get("/logout/")

    assert response.status_code == 405
    assert signed_in_user_id(client_alice) == alice.pk


def test_every_page_offers_sign_out_as_a_form(client_alice):
    body = client_alice.get("/team/").content.decode()

    assert re.search(r'<form method="post" action="/logout/">', body)


# Lockout


def fail(client, typed, times=1):
    for _ in range(times):
        response = client.post("/login/", {"username": typed, "password": "wrong password"})
    return response


def test_it_locks_sign_in_after_five_wrong_passwords(client, alice, team, settings):
    assert settings.AXES_FAILURE_LIMIT == 5

    fourth = fail(client, "alice", times=4)
    fifth = fail(client, "alice")

    assert fourth.status_code == 400
    assert fifth.status_code == 429
    body = fifth.content.decode()
    assert "Too many failed sign-ins" in body
    assert "after 5 wrong passwords" in body
    assert "15 minutes" in body
    assert signed_in_user_id(client) is None


def test_a_locked_account_stays_locked_even_with_the_right_password(client, alice, team):
    fail(client, "alice", times=5)

    response = client.post("/login/", {"username": "alice", "password": PASSWORD})

    assert response.status_code == 429
    assert "Too many failed sign-ins" in response.content.decode()
    assert signed_in_user_id(client) is None


def test_lockout_counts_failures_per_account_whichever_name_is_typed(client, alice, team):
    fail(client, "alice", times=2)
    fail(client, "ALICE@example.com", times=2)
    fail(client, "alice@EXAMPLE.com")

    by_email = client.post("/login/", {"username": "alice@example.com", "password": PASSWORD})
    by_username = client.post("/login/", {"username": "alice", "password": PASSWORD})

    assert by_email.status_code == 429
    assert by_username.status_code == 429
    assert signed_in_user_id(client) is None
    assert AccessAttempt.objects.get().username == "alice"


def test_lockout_of_one_account_does_not_lock_another(client, alice, bob, team):
    fail(client, "alice", times=5)

    response = client.post("/login/", {"username": "bob@example.com", "password": PASSWORD})

    assert response.status_code == 302
    assert signed_in_user_id(client) == bob.pk


def test_a_successful_sign_in_resets_the_failure_count(client, alice, team):
    fail(client, "alice", times=4)
    client.post("/login/", {"username": "alice", "password": PASSWORD})
    client.post("/logout/")

    response = fail(client, "alice", times=4)

    assert response.status_code == 400
    assert "do not match" in response.content.decode()


# Password change and reset


def test_a_signed_in_person_changes_their_password(client_alice, alice):
    response = client_alice.post(
        "/password/change/",
        {"old_password": PASSWORD, "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
    )

    assert response.status_code == 302
    assert response["Location"] == "/password/change/done/"
    alice.refresh_from_db()
    assert alice.check_password(NEW_PASSWORD)
    # The session survives the change.
    assert client_alice.get("/team/").status_code == 200


def test_a_password_change_with_the_wrong_old_password_changes_nothing(client_alice, alice):
    response = client_alice.post(
        "/password/change/",
        {"old_password": "a guess", "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
    )

    assert response.status_code == 400
    assert "Your old password was entered incorrectly" in response.content.decode()
    alice.refresh_from_db()
    assert alice.check_password(PASSWORD)


def test_password_change_needs_a_signed_in_person(client, alice):
    response = client.get("/password/change/")

    assert response.status_code == 302
    assert response["Location"].startswith("/login/")


def test_password_reset_mails_a_link_that_sets_a_new_password(client, alice, team, mailoutbox):
    response = client.post("/password/reset/", {"email": "ALICE@example.com"})

    assert response.status_code == 302
    assert response["Location"] == "/password/reset/sent/"
    assert len(mailoutbox) == 1
    assert mailoutbox[0].to == ["alice@example.com"]
    assert mailoutbox[0].subject == "Reset your Seedream Studio password"
    link = re.search(r"http://testserver(/password/reset/\S+/)", mailoutbox[0].body).group(1)

    form = client.get(link, follow=True)
    assert "Choose a new password" in form.content.decode()
    set_password_url = form.redirect_chain[-1][0]
    done = client.post(set_password_url, {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD})

    assert done.status_code == 302
    assert done["Location"] == "/password/reset/complete/"
    alice.refresh_from_db()
    assert alice.check_password(NEW_PASSWORD)
    signed_in = client.post("/login/", {"username": "alice@example.com", "password": NEW_PASSWORD})
    assert signed_in.status_code == 302
    assert signed_in_user_id(client) == alice.pk


def test_a_password_reset_link_works_only_once(client, alice, mailoutbox):
    client.post("/password/reset/", {"email": "alice@example.com"})
    link = re.search(r"http://testserver(/password/reset/\S+/)", mailoutbox[0].body).group(1)
    set_password_url = client.get(link, follow=True).redirect_chain[-1][0]
    client.post(set_password_url, {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD})

    again = client.get(link, follow=True)

    assert "This link no longer works" in again.content.decode()
    alice.refresh_from_db()
    assert alice.check_password(NEW_PASSWORD)


def test_password_reset_for_an_unknown_address_sends_nothing_and_reveals_nothing(client, alice, mailoutbox):
    response = client.post("/password/reset/", {"email": "nobody@example.com"})

    assert response.status_code == 302
    assert response["Location"] == "/password/reset/sent/"
    assert mailoutbox == []


def test_a_forged_password_reset_link_says_it_no_longer_works(client, alice):
    response = client.get("/password/reset/Zm9v/garbage-token/")

    assert response.status_code == 200
    assert "This link no longer works" in response.content.decode()
    alice.refresh_from_db()
    assert alice.check_password(PASSWORD)
